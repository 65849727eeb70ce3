"""Threaded werkzeug servers on loopback, shared by the emulator and the local stack."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

__all__ = ["QuietHandler", "ThreadedServer"]

log = logging.getLogger(__name__)


class QuietHandler(WSGIRequestHandler):
    """No per-request lines, and no request text in error lines (a bad request line may
    hold anything, PHI included). TCP_NODELAY: werkzeug writes headers and body separately,
    and Nagle + delayed ACK would add ~40 ms to every answer."""

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("%s: malformed or dropped HTTP request", self.server.server_address)


class ThreadedServer:
    """A WSGI app served by a threaded werkzeug server on its own daemon thread.

    Listening and serving start in the constructor; ``stop()`` shuts it down and joins.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str) -> None:
        self.host = host
        self._server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
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
