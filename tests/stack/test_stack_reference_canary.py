"""The reference route end to end on the local stack, with canary notes.

Notes carrying canary strings are stored in Snowflake (the emulator's EHR_NOTES), images in
MEDICAL_IMAGES; the queues carry reference events only (``stack/reference_feed.py``). The
routers run the model inside Snowflake; every event is accounted for (a result row or its DLQ
reason code) and no canary appears in anything on the AWS side: SQS message bodies as sent
(``sent.jsonl``), logs, metrics, DynamoDB items, DLQ dumps and notifications.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

from stack_support import require_control_plane, stack_template

from spcs_local.stack.commands import registry_idle_floor
from spcs_local.stack.demo import DemoOptions, Progress, run_demo, summarize, write_artifacts
from spcs_local.stack.feed import FeedEvent, synthetic_feed
from spcs_local.stack.reference_feed import reference_feed
from spcs_local.stack.stack import LocalStack, StackOptions

AWS_SIDE = ("sent.jsonl", "logs.jsonl", "metrics.jsonl", "dynamodb.jsonl", "dlq.jsonl")
AWS_SIDE += ("notifications.jsonl",)


def _with_canaries(seed: int) -> tuple[list[FeedEvent], list[str]]:
    """A synthetic feed whose every note text carries a canary of its own."""
    events: list[FeedEvent] = []
    canaries: list[str] = []
    for event in synthetic_feed(12, 3, 4, seed=seed):
        if event.kind == "note" and event.note_row is not None:
            canary = f"CANARY-REF-{len(canaries):03d}-Qx7"
            canaries.append(canary)
            body = json.loads(event.body)
            body["text"] = f"{body['text']} {canary}"
            row = (*event.note_row[:-1], body["text"])
            event = replace(event, body=json.dumps(body), note_row=row)
        events.append(event)
    return events, canaries


def _schema(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data["schema"])


def test_reference_route_keeps_note_text_out_of_aws(tmp_path: Path) -> None:
    require_control_plane()
    inline, canaries = _with_canaries(seed=5)
    events = reference_feed(inline)
    assert all(c not in e.body for e in events for c in canaries)
    options = StackOptions(
        template=stack_template(),
        work_dir=tmp_path / "work",
        resume_seconds=1,
        schedule_seconds=1,
        idle_seconds=max(3, registry_idle_floor()),
    )
    with LocalStack(options) as stack:
        run = run_demo(
            stack, events, DemoOptions(timeout_s=120, idle_timeout_s=1), progress=Progress()
        )
        summary = summarize(run)
        counts = write_artifacts(stack, run, summary, tmp_path / "artifacts")

    expected_dlq = Counter(e.expected_code for e in events if e.expected_code)
    assert summary["lost"] == 0
    assert summary["duplicate_results"] == 0
    assert summary["dlq"] == dict(sorted(expected_dlq.items()))
    assert {"REFERENCE_NOT_FOUND", "REFERENCE_NOT_ALLOWED"} <= set(summary["dlq"])
    good = [e for e in events if e.expected_code is None]
    assert summary["results_rows"] == len(good)
    assert counts["sent.jsonl"] == len(events)

    files = {name: (tmp_path / "artifacts" / name).read_text() for name in AWS_SIDE}
    sent = [json.loads(line) for line in files["sent.jsonl"].splitlines()]
    assert {_schema(s["body"]) for s in sent} == {
        "clinical-note-ref.v1",
        "medical-image-ref.v1",
        None,  # the invalid-JSON poison
    }
    for name, text in files.items():
        leaked = [c for c in canaries if c in text]
        assert not leaked, (name, leaked[:2])
    # Every reference that names a stored row has its result (Snowflake side), inline-shaped.
    results = [
        json.loads(line)
        for line in (tmp_path / "artifacts" / "results.jsonl").read_text().splitlines()
    ]
    assert {r["EVENT_ID"] for r in results} == {e.key for e in good}
    assert {r["KIND"] for r in results} == {"clinical-note", "medical-image"}
