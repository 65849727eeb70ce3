"""End to end through the runner: ``spcs-local demo`` with services that start suspended.

The JSON summary must account for every event (reconciled from the results table and the DLQs,
not the runner's counters): nothing lost, nothing twice, exactly the poison in the DLQs with
their reason codes, one resume per service, and the services suspended again after idling.
The artifacts directory must hold what the system emitted, without PHI in the logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from stack_support import require_control_plane, stack_template

from spcs_local.stack.commands import registry_idle_floor
from spcs_local.stack.feed import split_total, synthetic_feed

EVENTS = 40  # 30 notes, 6 images, 4 poison (one of each kind), and 4 FHIR/HL7 v2/DICOM more
SEED = 11


def test_stack_e2e_demo_accounts_for_every_event(tmp_path: Path) -> None:
    require_control_plane()
    idle = max(3, registry_idle_floor())
    summary_path, artifacts = tmp_path / "summary.json", tmp_path / "artifacts"
    cmd = [
        sys.executable, "-m", "spcs_local.cli", "demo",
        "--template", str(stack_template()),
        "--events", str(EVENTS), "--seed", str(SEED),
        "--start-suspended", "--resume-seconds", "1",
        "--idle-seconds", str(idle), "--schedule-seconds", "1",
        "--timeout", "120",
        "--json-summary", str(summary_path), "--artifacts", str(artifacts),
        "--work-dir", str(tmp_path / "work"),
    ]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240 + 2 * idle, env={**os.environ}, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())

    notes, images, poison = split_total(EVENTS)
    # The same feed the demo sends: the synthetic events plus a tenth more EHR-native messages.
    events = synthetic_feed(notes, images, poison, seed=SEED, ehr=EVENTS // 10)
    assert summary["events_sent"] == len(events) == EVENTS + EVENTS // 10
    assert summary["lost"] == 0
    assert summary["duplicate_results"] == 0
    good = [e for e in events if e.expected_code is None]
    assert summary["results_rows"] == sum(len(e.row_ids) or 1 for e in good)
    assert summary["dlq"] == dict(Counter(e.expected_code for e in events if e.expected_code))
    assert {"INVALID_EVENT", "INVALID_IMAGE", "INVALID_JSON", "UNKNOWN_SCHEMA"} <= set(
        summary["dlq"]
    )
    assert summary["resumes"] == {"biobert_ner": 1, "biomedclip": 1}
    assert summary["suspends"] == {"biobert_ner": 1, "biomedclip": 1}
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    assert "every event accounted for" in done.stdout

    # Artifacts: everything the system emitted.
    files = {p.name: p.read_text() for p in artifacts.iterdir()}
    for name in (
        "logs.jsonl",
        "metrics.jsonl",
        "dynamodb.jsonl",
        "dlq.jsonl",
        "notifications.jsonl",
        "results.jsonl",
    ):
        assert name in files, name
    logs = [json.loads(line) for line in files["logs.jsonl"].splitlines()]
    functions = {record["function"] for record in logs}
    assert {"spcs-gateway-note-router", "spcs-gateway-image-router"} <= functions
    assert any(f.endswith("-control") for f in functions)
    metrics = [json.loads(line)["record"] for line in files["metrics.jsonl"].splitlines()]
    assert any(m.get("outcome") == "poison" for m in metrics)
    assert all("_aws" in m for m in metrics)
    items = [json.loads(line) for line in files["dynamodb.jsonl"].splitlines()]
    assert {i["item"]["service"]["S"] for i in items} >= {"biobert_ner", "biomedclip"}
    dead = [json.loads(line) for line in files["dlq.jsonl"].splitlines()]
    assert dict(Counter(d["error_code"] for d in dead)) == summary["dlq"]
    assert all(d["message_attributes"]["source_message_id"] for d in dead)
    results = [json.loads(line) for line in files["results.jsonl"].splitlines()]
    # One row per event; an EHR message becomes the rows its notes/documents make.
    expected = {rid for e in good for rid in (e.row_ids or (e.key,))}
    assert {r["EVENT_ID"] for r in results} == expected

    # PHI canary: note text never reaches logs, metrics, DynamoDB, the DLQ dump or notifications.
    texts = [json.loads(e.body)["text"] for e in events if e.kind == "note"]
    phrases = {text.split(".")[0] for text in texts} | {text[-40:] for text in texts}
    for name in (
        "logs.jsonl",
        "metrics.jsonl",
        "dynamodb.jsonl",
        "dlq.jsonl",
        "notifications.jsonl",
    ):
        leaked = [p for p in phrases if p in files[name]]
        assert not leaked, (name, leaked[:2])
