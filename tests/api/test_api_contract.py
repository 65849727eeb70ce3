"""The published contract against the running system: Schemathesis runs ``openapi.json`` against
the API that ``spcs-local up`` serves (the real function behind the local API Gateway, the
emulator's model services and Cortex Search).

Checks (``contract/schemathesis.toml``): no 5xx, no schema-valid request refused, every answer
as documented (status, content type, headers, body schema), for generated requests inside and
outside the contract. A bounded, seeded number of cases per operation keeps it near half a
minute once the stack is up. Suspends run in a second pass: a suspended model service answers
inference with 503. IAM (SigV4) is API Gateway's; the local gateway does not check it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_support import REPO

pytestmark = pytest.mark.emulator

CONTRACT = Path(__file__).parent / "contract"
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 300


@dataclass(frozen=True)
class LocalApi:
    url: str
    endpoints: Path
    log: Path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    """``spcs-local up --api-port 0`` in a subprocess; its endpoints file says where the API is."""
    work = tmp_path_factory.mktemp("contract")
    endpoints, log = work / "endpoints.json", work / "stack.log"
    command = [sys.executable, "-m", "spcs_local.cli", "up", "--api-port", "0"]
    command += ["--config-out", str(endpoints), "--work-dir", str(work / "stack")]
    command += ["--status-seconds", "60"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not endpoints.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"spcs-local up did not start (exit {proc.returncode}):\n{tail}")
            time.sleep(0.25)
        time.sleep(0.5)  # the file is written in one call; let it land
        url = json.loads(endpoints.read_text(encoding="utf-8"))["api_url"]
        yield LocalApi(url=url, endpoints=endpoints, log=log)
    finally:
        _stop(proc)


PASSES = {
    "everything but suspend": ["--exclude-operation-id", "suspendService"],
    "suspend": [
        "--include-operation-id",
        "listServices",
        "--include-operation-id",
        "suspendService",
    ],
}


def schemathesis(local_api: LocalApi, *selection: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(CONTRACT / "hooks.py"),
        "CONTRACT_ENDPOINTS": str(local_api.endpoints),
    }
    command = [sys.executable, "-m", "schemathesis.cli"]
    command += ["--config-file", str(CONTRACT / "schemathesis.toml"), "run"]
    command += [str(REPO / "openapi.json"), "--url", local_api.url, *selection]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def test_api_contract_holds_against_the_local_stack(local_api: LocalApi) -> None:
    for name, selection in PASSES.items():
        started = time.monotonic()
        done = schemathesis(local_api, *selection)
        elapsed = time.monotonic() - started
        out = done.stdout
        report = (
            out if len(out) < 30_000 else f"{out[:15_000]}\n...\n{out[-15_000:]}"
        ) + done.stderr[-5_000:]
        assert done.returncode == 0, (
            f"{name}: Schemathesis found failures ({elapsed:.0f} s):\n{report}"
        )
        assert " passed" in done.stdout, report
