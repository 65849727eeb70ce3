"""Command line: argument checks, PAT mode, --public-key mode, generated key pair."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from spcs_gateway.registry import AuthMode, parse_registry

pytestmark = pytest.mark.emulator
PAT = "emulator-test-pat-0123456789"
SEARCH_PATH = (
    "/api/v2/databases/PEDIATRIC_ML/schemas/CLINICAL_DATA/"
    "cortex-search-services/CLINICAL_NOTES_SEARCH:query"
)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spcs_local.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_script_and_help() -> None:
    script = shutil.which("spcs-local", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "emulator", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--public-key", "--pat", "--resume-seconds", "--no-auto-resume",
                 "--start-suspended", "--fault", "--state-dir", "--config-out"):  # fmt: skip
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "loopback"),
        (["--fault", "biobert_ner:503=7"], "--fault"),
        (["--fault", "biobert_ner:nonsense=1"], "--fault"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("emulator", "--state-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_generated_key_pair(emulator: Any) -> None:
    private = emulator.state_dir / "rsa_key.p8"
    public = emulator.state_dir / "rsa_key.pub"
    assert emulator.secret_path == private.resolve()
    for path in (private, public):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(private.resolve()) in emulator.output  # says where
    parse_registry(emulator.registry_path.read_text())  # the gateway's own validation


def test_pat_mode(emulator_factory: Callable[..., Any]) -> None:
    emu = emulator_factory("--pat", PAT)
    registry = parse_registry(emu.registry_path.read_text())
    assert registry.snowflake.auth is AuthMode.PAT
    assert emu.secret_path.read_text() == PAT
    assert stat.S_IMODE(emu.secret_path.stat().st_mode) == 0o600

    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    image = base64.b64encode(buf.getvalue()).decode()
    response = httpx.post(
        emu.inference_url("biomedclip"),
        json={"data": [[0, image, ["otitis media", "normal"], "this is a photo of {}"]]},
        headers={"Authorization": f'Snowflake Token="{PAT}"'},
        timeout=30,
    )
    assert response.status_code == 200
    assert len(response.json()["data"][0][1]["labels"]) == 2
    wrong = httpx.post(
        emu.inference_url("biobert_ner"),
        json={"data": [[0, "x"]]},
        headers={"Authorization": 'Snowflake Token="not-the-pat"'},
    )
    assert wrong.status_code == 401

    with emu.connect() as conn:  # authenticator=PROGRAMMATIC_ACCESS_TOKEN
        pools = conn.cursor().execute("SHOW COMPUTE POOLS").fetchall()
        assert len(pools) == 1
    search = httpx.post(
        emu.account_url + SEARCH_PATH,
        json={"query": "fever"},
        headers={"Authorization": f"Bearer {PAT}"},
    )
    assert search.status_code == 200
    assert "results" in search.json()


def test_public_key_mode(emulator_factory: Callable[..., Any], tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "user.pub").write_bytes(public_pem)
    emu = emulator_factory("--public-key", str(tmp_path / "user.pub"))
    assert emu.config["snowflake"]["auth"] == "keypair"
    assert not emu.secret_path.exists()  # the emulator never sees the private key
    assert str(emu.secret_path) in emu.output

    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fp = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": f"LOCALTEST.GATEWAY_SVC.{fp}",
            "sub": "LOCALTEST.GATEWAY_SVC",
            "iat": now,
            "exp": now + 600,
        },
        key,
        algorithm="RS256",
    )
    token = httpx.post(
        f"{emu.account_url}/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "scope": emu.scope_host("biomedclip"),
            "assertion": assertion,
        },
    )
    assert token.status_code == 200
    answer = httpx.post(
        emu.inference_url("biomedclip"),
        json={"data": [[0, "AAAA", ["a", "b"], "this is a photo of {}"]]},  # not an image
        headers={"Authorization": f'Snowflake Token="{token.text}"'},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_input"
