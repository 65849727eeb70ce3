"""Lifecycle through the real connector and the ingress: suspend, 503, auto-resume, pools."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

pytestmark = pytest.mark.emulator

CLIP = "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"


def png_base64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 60, 90)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# The image service: its stand-in backend is cheap, and the lifecycle is the same for both.
BODY = {"data": [[0, png_base64(), ["pneumonia", "normal"], "this is a photo of {}"]]}


def show_service(conn: Any, name: str) -> dict[str, Any]:
    from snowflake.connector import DictCursor

    with conn.cursor(DictCursor) as cur:
        rows = cur.execute(f"SHOW SERVICES LIKE '{name}' IN SCHEMA PEDIATRIC_ML.MODELS").fetchall()
    assert len(rows) == 1
    return {k.lower(): v for k, v in rows[0].items()}


def describe_status(conn: Any) -> str:
    cur = conn.cursor()
    cur.execute(f"DESCRIBE SERVICE {CLIP}")
    names = [d[0].lower() for d in cur.description]
    return str(dict(zip(names, cur.fetchone(), strict=True))["status"])


def call(emulator: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(emulator.inference_url("biomedclip"), json=BODY, headers=headers, timeout=30)


def wait_for_200(emulator: Any, headers: dict[str, str], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if call(emulator, headers).status_code == 200:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError("the service did not become ready")


@pytest.fixture(scope="module")
def emu(emulator_factory: Callable[..., Any]) -> Any:
    return emulator_factory("--resume-seconds", "1")


@pytest.fixture(scope="module")
def conn(emu: Any) -> Any:
    connection = emu.connect()
    yield connection
    connection.close()


def test_suspend_by_sql_then_auto_resume(emu: Any, conn: Any) -> None:
    headers = emu.token_header("biomedclip")
    assert call(emu, headers).status_code == 200
    assert show_service(conn, "BIOMEDCLIP_SERVICE")["status"] == "RUNNING"

    conn.cursor().execute(f"ALTER SERVICE {CLIP} SUSPEND")
    assert show_service(conn, "BIOMEDCLIP_SERVICE")["status"] == "SUSPENDED"
    assert describe_status(conn) == "SUSPENDED"

    first = call(emu, headers)  # starts the resume
    assert first.status_code == 503
    assert first.headers["X-Emulator-Backend"] == "stand-in"
    assert int(first.headers["Retry-After"]) >= 1
    assert first.json()["status"] == "PENDING"
    assert show_service(conn, "BIOMEDCLIP_SERVICE")["status"] == "PENDING"
    assert describe_status(conn) == "PENDING"

    waited = wait_for_200(emu, headers)
    assert 0.5 <= waited <= 5.0  # --resume-seconds 1
    assert show_service(conn, "BIOMEDCLIP_SERVICE")["status"] == "RUNNING"


def test_unsupported_statement_raises_programming_error(conn: Any) -> None:
    from snowflake.connector.errors import ProgrammingError

    with pytest.raises(ProgrammingError):
        conn.cursor().execute("FROBNICATE SERVICE BIOMEDCLIP_SERVICE")
    assert show_service(conn, "BIOMEDCLIP_SERVICE")["name"] == "BIOMEDCLIP_SERVICE"  # still up


def test_pool_suspension_cascades_to_ingress(emu: Any, conn: Any) -> None:
    headers = emu.token_header("biomedclip")
    conn.cursor().execute("ALTER COMPUTE POOL ML_INFERENCE_POOL SUSPEND")
    assert show_service(conn, "BIOMEDCLIP_SERVICE")["status"] == "SUSPENDED"
    assert show_service(conn, "BIOBERT_NER_SERVICE")["status"] == "SUSPENDED"
    # AUTO_RESUME on service and pool: a call resumes both, after the resume delay.
    assert call(emu, headers).status_code == 503
    wait_for_200(emu, headers)
    assert show_service(conn, "BIOBERT_NER_SERVICE")["status"] == "SUSPENDED"  # not called


def test_without_auto_resume_503_until_resumed_by_sql(
    emulator_factory: Callable[..., Any],
) -> None:
    emu = emulator_factory("--resume-seconds", "0.5", "--no-auto-resume", "--start-suspended")
    headers = emu.token_header("biomedclip")
    with emu.connect() as connection:
        row = show_service(connection, "BIOMEDCLIP_SERVICE")
        assert row["status"] == "SUSPENDED"
        assert str(row["auto_resume"]).lower() == "false"
        for _ in range(3):
            response = call(emu, headers)
            assert response.status_code == 503
            assert response.json()["status"] == "SUSPENDED"
            time.sleep(0.4)  # well past --resume-seconds: still nothing resumes it
        assert show_service(connection, "BIOMEDCLIP_SERVICE")["status"] == "SUSPENDED"

        connection.cursor().execute(f"ALTER SERVICE IF EXISTS {CLIP} RESUME")
        assert show_service(connection, "BIOMEDCLIP_SERVICE")["status"] in ("PENDING", "RUNNING")
        wait_for_200(emu, headers)
        assert show_service(connection, "BIOMEDCLIP_SERVICE")["status"] == "RUNNING"
        # The other service was never resumed.
        assert show_service(connection, "BIOBERT_NER_SERVICE")["status"] == "SUSPENDED"


def test_admin_api_drives_the_lifecycle(emu: Any) -> None:
    headers = emu.token_header("biomedclip")
    assert emu.admin_post("services/biomedclip/suspend")["status"] == "SUSPENDED"
    assert call(emu, headers).status_code == 503
    assert emu.admin_get(f"services/{CLIP}")["status"] in ("PENDING", "RUNNING")
    wait_for_200(emu, headers)
