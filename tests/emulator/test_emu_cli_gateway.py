"""A program that knows only the command line, the --config-out document and the gateway's own
library authenticates, infers and drives the lifecycle (no fixture helpers on purpose)."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import snowflake.connector
from PIL import Image

from spcs_gateway.auth import TokenProvider
from spcs_gateway.http import build_http_client
from spcs_gateway.registry import AuthMode, parse_registry
from spcs_gateway.secrets import CredentialSource

pytestmark = pytest.mark.emulator


def test_gateway_library_against_the_command(tmp_path: Path) -> None:
    registry_path = tmp_path / "registry.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "spcs_local.cli", "emulator", "--port", "0",
            "--state-dir", str(tmp_path / "state"), "--config-out", str(registry_path),
            "--resume-seconds", "1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not registry_path.exists():
            assert process.poll() is None, "the emulator exited early"
            assert time.monotonic() < deadline, "the emulator did not write --config-out"
            time.sleep(0.05)

        registry = parse_registry(registry_path.read_text())
        settings = registry.snowflake
        assert settings.auth is AuthMode.KEYPAIR
        http = build_http_client()
        tokens = TokenProvider(settings, CredentialSource(settings), http)

        # The image service: the NER path is covered elsewhere, and its dictionaries would
        # cost this test seconds of CPU.
        clip = registry.service("biomedclip")
        labels = clip.label_sets["chest_xray"]
        buf = io.BytesIO()
        Image.new("L", (16, 16), 90).save(buf, format="PNG")
        # Flat format: the inputs, then the signature's parameter column (its default).
        template = dict(clip.param_columns)["hypothesis_template"]
        body = {"data": [[0, base64.b64encode(buf.getvalue()).decode(), labels, template]]}
        url = clip.url + clip.method_path

        response = http.post(url, json=body, headers=tokens.ingress_auth_header(clip.ingress_host))
        assert response.status_code == 200
        assert response.headers["X-Emulator-Backend"] == "stand-in"
        scores = response.json()["data"][0][1][clip.out_column]
        assert sorted(s["label"] for s in scores) == sorted(labels)
        assert tokens.exchanges == 1
        tokens.ingress_auth_header(clip.ingress_host)
        assert tokens.exchanges == 1  # the issued token is a JWT with exp: cached

        with snowflake.connector.connect(**tokens.connector_kwargs()) as conn:
            cur = conn.cursor()
            cur.execute(f"ALTER SERVICE {clip.service} SUSPEND")
            status = cur.execute(f"SELECT SYSTEM$GET_SERVICE_STATUS('{clip.service}')").fetchone()
            assert "SUSPENDED" in str(status[0])
            headers = tokens.ingress_auth_header(clip.ingress_host)
            assert http.post(url, json=body, headers=headers).status_code == 503
            deadline = time.monotonic() + 10
            # The auto-resume as a real proxy shows it: 503, then 502 while the model server
            # loads, then 401 to valid tokens for a moment after it is ready.
            seen = []
            while (answer := http.post(url, json=body, headers=headers)).status_code != 200:
                seen.append(answer.status_code)
                assert answer.status_code in (503, 502, 401)
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert seen == sorted(seen, key=[503, 502, 401].index)
            cur.execute(f"SHOW SERVICES LIKE '{clip.service.rsplit('.', 1)[1]}'")
            names = [d[0].lower() for d in cur.description]
            assert dict(zip(names, cur.fetchone(), strict=True))["status"] == "RUNNING"
        http.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    text = output.decode()
    assert "ready" in text
    assert "stopped" in text
    assert "Traceback" not in text
