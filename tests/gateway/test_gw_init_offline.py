"""Init is network-free and loads only what its auth mode needs.

Each function module runs in a fresh interpreter (as Lambda's Init would) with every socket
connect and name lookup refused; then its SnapStart before-snapshot hooks run under the same
refusal (they run at publish, and nothing they open may end up in the snapshot). A PAT
deployment must not load PyJWT or cryptography at all; a key-pair one loads them before the
snapshot, not at plain init.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = ("note_router", "image_router", "api", "control")
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/spcs-gateway-notes"

_CHILD = """
import json, runpy, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network I/O during init")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.socket.sendto = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

sys.path.insert(0, {root!r})
runpy.run_path({app!r}, run_name="app")
WATCHED = ("jwt", "cryptography", "snowflake.connector")
loaded_at_init = sorted(m for m in WATCHED if m in sys.modules)
from spcs_gateway import snapshot
snapshot.REGISTRY.run_before_snapshot()
loaded_after_hooks = sorted(m for m in WATCHED if m in sys.modules)
print(json.dumps({{"init": loaded_at_init, "snapshot": loaded_after_hooks}}))
"""


def _registry(auth: str) -> dict[str, Any]:
    return {
        "version": 1,
        "snowflake": {
            "account": "myorg-acct",
            "user": "svc_gateway",
            "role": "GATEWAY_ROLE",
            "warehouse": "GATEWAY_WH",
            "auth": auth,
            "secret": {"secret_id": "spcs-gateway/snowflake"},
        },
        "services": [
            {
                "name": "ner",
                "service": "PEDIATRIC_ML.MODELS.BIOBERT_NER",
                "compute_pool": "CPU_POOL",
                "url": "https://ner-myorg-acct.snowflakecomputing.app",
                "task": "token-classification",
                "queues": ["notes"],
            },
            {
                "name": "zsc",
                "service": "PEDIATRIC_ML.MODELS.BIOMEDCLIP",
                "compute_pool": "GPU_POOL",
                "url": "https://zsc-myorg-acct.snowflakecomputing.app",
                "task": "zero-shot-image-classification",
                "queues": ["images"],
            },
        ],
    }


def _run(name: str, auth: str, tmp_path: Path) -> dict[str, list[str]]:
    registry = tmp_path / f"registry-{auth}.json"
    registry.write_text(json.dumps(_registry(auth)))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": name,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "SPCS_GATEWAY_REGISTRY_FILE": str(registry),
        "SERVICE_NAME": "zsc" if name == "image_router" else "ner",
        "DLQ_URL": QUEUE + "-dlq",
        "SOURCE_QUEUE_URL": QUEUE,
        "SERVICE_STATE_TABLE": "spcs-gateway-service-state",
        "QUEUE_URLS": json.dumps({"notes": QUEUE}),
        "QUEUE_ARNS": json.dumps({"notes": "arn:aws:sqs:us-east-1:123456789012:notes"}),
        "CONTROL_FUNCTION_NAME": "spcs-gateway-control",
    }
    app = REPO / "functions" / name / "app.py"
    code = _CHILD.format(root=str(app.parent), app=str(app))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gw_init_and_snapshot_hooks_do_no_network_io_with_pat(name: str, tmp_path: Path) -> None:
    loaded = _run(name, "pat", tmp_path)
    # PAT deployments never load the key-pair stack, not even for the snapshot.
    assert "jwt" not in loaded["snapshot"]
    assert "cryptography" not in loaded["init"]


@pytest.mark.parametrize("name", ["note_router", "api"])
def test_gw_keypair_crypto_loads_before_the_snapshot_not_at_init(name: str, tmp_path: Path) -> None:
    loaded = _run(name, "keypair", tmp_path)
    assert "jwt" not in loaded["init"]
    assert "jwt" in loaded["snapshot"]
    assert "cryptography" in loaded["snapshot"]
    assert "snowflake.connector" in loaded["snapshot"]  # warmed for the first MERGE
