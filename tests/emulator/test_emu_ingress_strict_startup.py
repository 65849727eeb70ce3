"""Start-up behaviour on the emulator clock, over real HTTP: while a service resumes the
ingress answers 503 (Retry-After), then 502 (model server still loading), then for a short
window after RUNNING even a valid token gets 401, then 200.

The emulator runs in-process with a FakeClock (``EmulatorServer(config, clock=...)``), so
every phase boundary is exact.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.server import EmulatorConfig, EmulatorServer
from spcs_models import spec

PAT = "startup-pat"
AUTH = {"Authorization": f'Snowflake Token="{PAT}"'}
CLIP = spec.BIOMEDCLIP.service
RESUME = 10.0


def png_base64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (5, 50, 150)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


BODY = {"data": [[0, png_base64(), ["pneumonia", "normal"], spec.BIOMEDCLIP_TEMPLATE]]}


def start(tmp_path: Path, **overrides: float) -> tuple[EmulatorServer, FakeClock]:
    clock = FakeClock()
    config = EmulatorConfig(
        state_dir=tmp_path / "state",
        pats=[PAT],
        resume_seconds=RESUME,
        tick_seconds=60,  # transitions are applied on every request anyway
        **overrides,  # type: ignore[arg-type]
    )
    server = EmulatorServer(config, clock=clock)
    server.start()
    return server, clock


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[tuple[EmulatorServer, FakeClock]]:
    server, clock = start(tmp_path, startup_unauthorized_seconds=1.0)
    yield server, clock
    server.stop()


def call(server: EmulatorServer) -> httpx.Response:
    url = server.ingress_url("biomedclip") + "/predict"
    return httpx.post(url, json=BODY, headers=AUTH, timeout=10)


def test_503_then_502_then_401_window_then_200(emu: tuple[EmulatorServer, FakeClock]) -> None:
    server, clock = emu
    # A service that has run since the emulator started has no start-up window.
    assert call(server).status_code == 200
    assert server.account is not None
    server.account.suspend_service(CLIP)

    first = call(server)  # starts the resume (AUTO_RESUME): PENDING for 10 s
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "10"
    assert first.json()["status"] == "PENDING"
    clock.advance(4.9)
    early = call(server)
    assert early.status_code == 503
    assert early.headers["Retry-After"] == "6"
    clock.advance(0.1)  # t = 5: the last half of the resume is the model server loading
    loading = call(server)
    assert loading.status_code == 502
    assert "Retry-After" not in loading.headers
    assert loading.headers["X-Emulator-Backend"] == "stand-in"
    clock.advance(4.99)
    assert call(server).status_code == 502
    clock.advance(0.01)  # t = 10: RUNNING
    assert server.account.service(CLIP).status == "RUNNING"
    unauthorized = call(server)
    assert unauthorized.status_code == 401  # a valid PAT
    assert set(unauthorized.json()) == {"error", "message"}
    clock.advance(0.99)
    assert call(server).status_code == 401
    clock.advance(0.01)
    assert call(server).status_code == 200

    stats = server.status()["ingress"]["biomedclip"]["stats"]["responses"]
    assert stats == {"200": 2, "503": 2, "502": 2, "401": 2}


def test_window_follows_a_resume_by_sql_without_any_call(
    emu: tuple[EmulatorServer, FakeClock],
) -> None:
    server, clock = emu
    assert server.account is not None
    server.account.suspend_service(CLIP)
    server.account.resume_service(CLIP)  # ALTER SERVICE ... RESUME, nobody calls meanwhile
    clock.advance(RESUME + 0.5)
    assert call(server).status_code == 401  # RUNNING since 0.5 s
    clock.advance(0.5)
    assert call(server).status_code == 200


def test_phases_can_be_switched_off(tmp_path: Path) -> None:
    server, clock = start(tmp_path, startup_unauthorized_seconds=0, startup_bad_gateway_fraction=0)
    try:
        assert server.account is not None
        server.account.suspend_service(CLIP)
        assert call(server).status_code == 503
        clock.advance(RESUME - 0.01)
        assert call(server).status_code == 503  # no 502 phase
        clock.advance(0.01)
        assert call(server).status_code == 200  # no 401 window
    finally:
        server.stop()


def test_suspended_without_auto_resume_stays_503(emu: tuple[EmulatorServer, FakeClock]) -> None:
    server, clock = emu
    assert server.account is not None
    server.account.alter_service(CLIP, auto_resume=False)
    server.account.suspend_service(CLIP)
    for _ in range(3):
        response = call(server)
        assert response.status_code == 503
        assert response.json()["status"] == "SUSPENDED"
        assert "Retry-After" not in response.headers
        clock.advance(RESUME)
