"""PHI and secret canaries across everything the local stack leaves behind.

The whole system runs locally (moto server, the emulator, the real handlers in Lambda-like
worker processes driven by the event-source-mapping runner). A feed whose every string field
carries a canary (note text, attributes, labels, ids, an unknown key and its value, a broken
body, an undecodable image) goes through it; then every artifact the demo writes
(``--artifacts``: logs, EMF metrics, DynamoDB items, DLQ attributes, notifications, results) and
every file in the stack's work directory (each function's log, the moto server's log, the
emulator's state) is scanned. Canaries may appear only where PHI belongs: the results table
(``results.jsonl``) and the emulator's database (Snowflake). The input queues and DLQ bodies
hold them too, in moto's memory, which writes no file. No file but the key file itself holds
a line of the service user's private key, and no log or artifact holds a JWT (assertion or
ingress token).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from rel_support import MARK

pytestmark = pytest.mark.emulator

# The results table and Snowflake's storage; and sent.jsonl, the feed's own copy of what it put
# on SQS: the inline route carries the note in the message by design (the reference route's
# canary test, tests/stack/test_stack_reference_canary.py, proves its bodies carry none).
ALLOWED_PHI = {"results.jsonl", "emulator.sqlite3", "sent.jsonl"}
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _feed() -> tuple[list[str], dict[str, int]]:
    at = "2025-03-03T18:00:00Z"
    bodies = []
    for i in range(12):
        bodies.append(
            json.dumps(
                {
                    "schema": "clinical-note.v1",
                    "event_id": f"ca-note-{i}",
                    "note_id": f"{MARK}noteid{i}",
                    "source": f"{MARK}source",
                    "occurred_at": at,
                    "text": f"{MARK}text{i} otitis media, started amoxicillin {MARK}tail{i}",
                    "attributes": {"mrn": f"{MARK}attr{i}", f"{MARK}key": [f"{MARK}nested"]},
                }
            )
        )
    for i in range(4):
        bodies.append(
            json.dumps(
                {
                    "schema": "medical-image.v1",
                    "event_id": f"ca-image-{i}",
                    "image_id": f"{MARK}imageid{i}",
                    "source": "pacs",
                    "occurred_at": at,
                    "image": {"base64": _png(), "content_type": "image/png"},
                    "candidate_labels": [f"{MARK}label{i}", "pneumonia"],
                }
            )
        )
    poison_note = {
        "schema": "clinical-note.v1",
        "event_id": "ca-poison-extra",
        "note_id": "n",
        "source": "s",
        "occurred_at": at,
        "text": f"{MARK}textpoison",
        f"{MARK}extrakey": f"{MARK}extravalue",
    }
    poison_image = {
        "schema": "medical-image.v1",
        "event_id": "ca-poison-image",
        "image_id": "i",
        "source": "pacs",
        "occurred_at": at,
        "image": {
            "base64": base64.b64encode(f"{MARK}notapng".encode()).decode(),
            "content_type": "image/png",
        },
        "candidate_labels": [f"{MARK}labelpoison"],
    }
    bodies += [
        '{"schema": "clinical-note.v1", "event_id": "ca-broken", "text": "' + MARK + "broken",
        json.dumps(poison_note),
        json.dumps(poison_image),
    ]
    return bodies, {"INVALID_EVENT": 1, "INVALID_IMAGE": 1, "INVALID_JSON": 1}


def test_canaries_only_where_phi_belongs(tmp_path: Path) -> None:
    from spcs_local.stack.demo import DemoOptions, Progress, run_demo, summarize, write_artifacts
    from spcs_local.stack.feed import FeedEvent, event_key, route
    from spcs_local.stack.stack import LocalStack, StackOptions

    bodies, poison = _feed()
    events = [FeedEvent(event_key(b), b, "file", route(b)) for b in bodies]
    work, artifacts = tmp_path / "work", tmp_path / "artifacts"
    stack = LocalStack(StackOptions(work_dir=work, warm_ner=True))
    stack.start()
    try:
        out = io.StringIO()
        run = run_demo(stack, events, DemoOptions(timeout_s=120), progress=Progress(out))
        summary = summarize(run)
        write_artifacts(stack, run, summary, artifacts)
    finally:
        stack.stop()

    assert summary["lost"] == 0
    assert summary["duplicate_results"] == 0
    assert summary["results_rows"] == 16
    assert summary["dlq"] == poison

    files = [p for p in [*artifacts.rglob("*"), *work.rglob("*")] if p.is_file()]
    names = {p.name for p in files}
    assert {"logs.jsonl", "metrics.jsonl", "dynamodb.jsonl", "dlq.jsonl", "moto.log"} <= names
    assert any(p.parent.name == "logs" and p.suffix == ".log" for p in files)
    key_file = next(p for p in files if p.name == "rsa_key.p8")
    key_lines = [
        line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")
    ]

    phi_seen = set()
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if MARK in text:
            phi_seen.add(path.name)
        if path != key_file:
            leaked = [line for line in key_lines if line in text]
            assert not leaked, f"private key material in {path}"
        if path.suffix in (".log", ".jsonl", ".json"):
            assert not JWT.search(text), f"a JWT in {path}"
    # The results table holds the model output (PHI by design); nothing of the gateway may.
    assert phi_seen <= ALLOWED_PHI, phi_seen - ALLOWED_PHI
    assert "results.jsonl" in phi_seen  # the canaries went all the way through
