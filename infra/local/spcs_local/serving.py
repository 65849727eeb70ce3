"""Threaded werkzeug servers on loopback, shared by the emulator and the local stack.

By default werkzeug closes every connection after its answer. With ``idle_timeout`` the
server keeps HTTP/1.1 connections alive and closes one that sends no next request within
that many seconds, like SPCS ingress closing keep-alive connections idle for 90 s.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

__all__ = ["KeepAliveHandler", "QuietHandler", "ThreadedServer"]

log = logging.getLogger(__name__)

_DROPPED = (ConnectionError, TimeoutError)


class QuietHandler(WSGIRequestHandler):
    """No per-request lines, and no request text in error lines (a bad request line may
    hold anything, PHI included). TCP_NODELAY: werkzeug writes headers and body separately,
    and Nagle + delayed ACK would add ~40 ms to every answer."""

    # The server's set of open connections (ThreadedServer.stop() closes them); per class.
    open_connections: set[socket.socket] | None = None
    open_lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.open_connections is not None:
            with self.open_lock:
                self.open_connections.add(self.connection)

    def finish(self) -> None:
        if self.open_connections is not None:
            with self.open_lock:
                self.open_connections.discard(self.connection)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        if format.startswith("Request timed out"):  # an idle keep-alive connection closed
            log.debug("%s: closed an idle connection", self.server.server_address)
            return
        log.warning("%s: malformed or dropped HTTP request", self.server.server_address)


def _content_length(environ: dict[str, Any]) -> int:
    try:
        return max(int(environ.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return -1


class KeepAliveHandler(QuietHandler):
    """HTTP/1.1 keep-alive for WSGI apps with small answers.

    werkzeug's own ``run_wsgi`` always answers ``Connection: close`` (it drains the socket
    after each answer, which would eat a kept-alive connection's next request). This one
    buffers the answer, sends ``Content-Length``, reads whatever is left of the request body
    (so it is never parsed as the next request) and keeps the connection unless the client
    asked to close it. The idle limit is the socket timeout (``timeout``): a connection with
    no next request in time is closed by ``BaseHTTPRequestHandler`` (also a client stalling
    mid-request is cut off after as long).
    """

    max_drain_bytes = 16 * 1024 * 1024

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        body: LimitedStream | None = None
        length = _content_length(environ)
        if environ.get("wsgi.input_terminated") or length < 0:
            self.close_connection = True  # chunked or unreadable length: no reuse
        else:
            body = LimitedStream(self.rfile, length)  # type: ignore[arg-type]
            environ["wsgi.input"] = body
        answer: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            answer[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except _DROPPED as exc:
            self.connection_dropped(exc, environ)
            self.close_connection = True
            return
        except Exception as exc:  # noqa: BLE001 - a bare 500, like werkzeug's
            log.error("%s: WSGI app failed (%s)", self.server.server_address, type(exc).__name__)
            answer[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
            self.close_connection = True
        try:
            self._finish_body(body, length)
            self._write(answer, b"".join(chunks))
        except _DROPPED as exc:
            self.connection_dropped(exc, environ)
            self.close_connection = True

    def _finish_body(self, body: LimitedStream | None, length: int) -> None:
        if body is None or body.is_exhausted:
            return
        if length > self.max_drain_bytes:
            self.close_connection = True
            return
        try:
            body.exhaust()
        except Exception:  # noqa: BLE001 - the client went away mid-body
            self.close_connection = True

    def _write(self, answer: list[Any], data: bytes) -> None:
        status, headers = answer if answer else ("500 INTERNAL SERVER ERROR", [])
        code_text, _, reason = str(status).partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        for key, value in headers:
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        bodyless = self.command == "HEAD" or 100 <= code < 200 or code in (204, 304)
        if not bodyless:
            self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data and not bodyless:
            self.wfile.write(data)
        self.wfile.flush()


class ThreadedServer:
    """A WSGI app served by a threaded werkzeug server on its own daemon thread.

    Listening and serving start in the constructor; ``stop()`` shuts it down and joins.
    ``idle_timeout`` (seconds) turns on keep-alive (``KeepAliveHandler``) and closes
    connections idle that long (``stop()`` closes the open ones too); None (default): one
    request per connection, as werkzeug does.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str,
        idle_timeout: float | None = None,
    ) -> None:
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be > 0")
        self.host = host
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        base = QuietHandler if idle_timeout is None else KeepAliveHandler
        # A class per server: werkzeug sets protocol_version (HTTP/1.1) on the class it gets,
        # StreamRequestHandler applies ``timeout`` to each connection's socket, and the
        # connections are tracked per server.
        handler = type(
            "Handler",
            (base,),
            {
                "timeout": idle_timeout,
                # Only kept-alive connections outlive their answer: track those.
                "open_connections": None if idle_timeout is None else self._connections,
                "open_lock": self._connections_lock,
            },
        )
        self._server = make_server(host, port, app, threaded=True, request_handler=handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=name,
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        self._server.shutdown()
        self._thread.join(timeout=timeout)
        self._server.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:  # kept-alive connections would otherwise outlive the server
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
