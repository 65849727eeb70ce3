"""Ingress limits over real HTTP: 504 at the request limit (backend plus injected latency; the
late answer is discarded) and keep-alive connections closed by the server when idle."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from spcs_local.emulator.auth import EmulatorAuth
from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.faults import FaultInjector, parse_faults
from spcs_local.emulator.ingress import IngressApp, IngressSettings, ParsedRequest
from spcs_local.emulator.state import GateDecision
from spcs_local.serving import ThreadedServer
from spcs_models import spec

PAT = "limits-pat"
AUTH = {"Authorization": f'Snowflake Token="{PAT}"'}
LIMIT = 0.4


class Gate:
    def ingress_gate(self, fqn: str) -> GateDecision:
        return GateDecision(True, "RUNNING", None)


class SlowRunner:
    """Answers after ``delay`` seconds and says when it finished."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.finished = threading.Event()

    def __call__(self, parsed: ParsedRequest) -> list[Any]:
        self.finished.clear()
        time.sleep(self.delay)
        self.finished.set()
        return [[] for _ in parsed.rows]


def serve(
    runner: Callable[[ParsedRequest], list[Any]],
    *,
    faults: FaultInjector | None = None,
    idle_timeout: float | None = None,
) -> tuple[IngressApp, ThreadedServer]:
    app = IngressApp(
        fqn="PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
        names=("biobert_ner",),
        deployment=spec.NER,
        runner=runner,
        backend_name="lexicon",
        account=Gate(),
        auth=EmulatorAuth("LOCALTEST", "GATEWAY_SVC", [], {PAT}, FakeClock()),
        faults=faults or FaultInjector(),
        settings=IngressSettings(request_timeout_seconds=LIMIT),
    )
    server = ThreadedServer(app, name="ingress-limits-test", idle_timeout=idle_timeout)
    app.scope_host = f"127.0.0.1:{server.port}"
    return app, server


@pytest.fixture
def slow() -> Iterator[tuple[SlowRunner, IngressApp, ThreadedServer]]:
    runner = SlowRunner()
    app, server = serve(runner, faults=FaultInjector())
    yield runner, app, server
    server.stop()


def post(server: ThreadedServer) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"data": [[0, "x"]]}, headers=AUTH, timeout=10)


def test_a_slow_backend_gets_504_at_the_limit_and_its_answer_is_dropped(
    slow: tuple[SlowRunner, IngressApp, ThreadedServer],
) -> None:
    runner, app, server = slow
    runner.delay = 1.5
    started = time.monotonic()
    response = post(server)
    took = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"] == "gateway_timeout"
    assert LIMIT <= took < 1.2  # at the limit, not when the backend finishes
    assert not runner.finished.is_set()
    assert runner.finished.wait(3)  # the backend finishes later ...
    assert app.stats.snapshot()["responses"] == {"504": 1}  # ... and nobody gets its answer
    runner.delay = 0.0
    assert post(server).status_code == 200


def test_injected_latency_counts_against_the_limit(
    slow: tuple[SlowRunner, IngressApp, ThreadedServer],
) -> None:
    runner, app, server = slow
    app._faults.set(parse_faults(["*:latency_ms=5000"]))
    started = time.monotonic()
    assert post(server).status_code == 504
    assert time.monotonic() - started < 1.5  # not the 5 s of latency
    # Latency and backend each within the limit, together beyond it.
    app._faults.set(parse_faults(["*:latency_ms=250"]))
    runner.delay = 0.25
    assert post(server).status_code == 504
    runner.delay = 0.0
    assert post(server).status_code == 200


def _request(conn: http.client.HTTPConnection, headers: dict[str, str] = AUTH) -> int:
    conn.request(
        "POST",
        "/predict",
        body=b'{"data": [[0, "x"]]}',
        headers={**headers, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    assert response.getheader("Connection") != "close"
    return response.status


def _closed_by_peer(conn: http.client.HTTPConnection, wait: float) -> bool:
    assert conn.sock is not None
    conn.sock.settimeout(wait)
    try:
        return conn.sock.recv(1) == b""
    except TimeoutError:
        return False


def test_idle_keep_alive_connections_are_closed_by_the_server() -> None:
    _, server = serve(SlowRunner(), idle_timeout=0.3)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        assert _request(conn) == 200
        sock = conn.sock
        assert sock is not None
        time.sleep(0.1)
        # A 401 leaves its body unread by the app: the server reads it, so it is not taken
        # for the next request on the kept-alive connection.
        assert _request(conn, {"Authorization": 'Snowflake Token="wrong"'}) == 401
        assert _request(conn) == 200
        assert conn.sock is sock  # one connection, kept alive within the idle limit
        assert _closed_by_peer(conn, wait=2.0)  # then closed by the server (EOF)
        conn.close()
    finally:
        server.stop()


def test_stop_closes_kept_alive_connections() -> None:
    _, server = serve(SlowRunner(), idle_timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    assert _request(conn) == 200
    assert not _closed_by_peer(conn, wait=0.3)
    server.stop()
    assert _closed_by_peer(conn, wait=2.0)
    conn.close()


def test_without_an_idle_limit_each_connection_serves_one_request() -> None:
    _, server = serve(SlowRunner(), idle_timeout=None)  # the stack's other servers
    try:
        response = httpx.post(
            f"{server.url}/predict", json={"data": [[0, "x"]]}, headers=AUTH, timeout=5
        )
        assert response.status_code == 200
        assert response.headers["Connection"] == "close"
    finally:
        server.stop()


@pytest.mark.emulator
def test_limits_from_the_command_line(emulator_factory: Callable[..., Any]) -> None:
    emu = emulator_factory("--request-timeout-seconds", "0.5", "--idle-close-seconds", "0.5")
    url = emu.inference_url("biobert_ner")
    headers = emu.token_header("biobert_ner")
    emu.admin_post("faults", {"faults": ["biobert_ner:latency_ms=3000"]})
    started = time.monotonic()
    response = httpx.post(url, json={"data": [[0, "x"]]}, headers=headers, timeout=10)
    assert response.status_code == 504
    assert time.monotonic() - started < 2.0
    emu.admin_post("faults", {"faults": []})

    host, port = emu.scope_host("biobert_ner").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("POST", "/predict", body=b"{}", headers={**headers, "Content-Type": "x"})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 400  # malformed on purpose: no NER dictionaries needed
    assert _closed_by_peer(conn, wait=3.0)
    conn.close()
