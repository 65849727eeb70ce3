"""The shared httpx client: keep-alive, timeouts, no environment influence."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from spcs_gateway.http import DEFAULT_TIMEOUT, KEEPALIVE_EXPIRY_S, build_http_client


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    ports: ClassVar[set[int]] = set()  # client source ports seen: one per TCP connection

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).ports.add(self.client_address[1])
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.ports = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_connections_are_kept_alive(server: str) -> None:
    with build_http_client() as client:
        for _ in range(5):
            assert client.post(server + "/x", content=b"{}").json() == {"ok": True}
    assert len(_Handler.ports) == 1


def test_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.invalid:3128")
    with build_http_client(max_connections=8) as client:
        assert client.trust_env is False
        assert client._mounts == {}  # environment proxies were not picked up
        assert client.timeout == DEFAULT_TIMEOUT
        assert None not in (
            client.timeout.connect,
            client.timeout.read,
            client.timeout.write,
            client.timeout.pool,
        )
        assert client.follow_redirects is False
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S < 90
        assert pool._max_connections == 8
        assert pool._ssl_context.verify_mode.name == "CERT_REQUIRED"


def test_explicit_timeout_and_transport() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    timeout = httpx.Timeout(1.0, connect=0.5)
    with build_http_client(timeout=timeout, transport=transport) as client:
        assert client.timeout == timeout
        assert client.post("https://abc-org-acct.snowflakecomputing.app/x").status_code == 204


def test_invalid_max_connections() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        build_http_client(max_connections=0)
