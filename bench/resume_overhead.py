"""Resume overhead: how much longer than the resume itself the first event of a burst waits.

The whole local stack (``spcs_local.stack.LocalStack``: emulator, moto server, the real
handlers driven by the event-source-mapping runner, the control function and its schedule)
starts with the NER service SUSPENDED and a resume that takes R seconds in the emulator
(``--resume-seconds``; the ingress does not auto-resume, so only the control plane can wake
it). One clinical note is sent, then a burst of more notes while the service resumes. Reported:

- ``overhead_s``: time from the first note's SendMessage to its row in the results table
  (polled through the connector every 0.2 s), minus R;
- ``dlq``: messages in every DLQ at the end (must be 0: a resume burns no receive counts);
- ``resumes``: SUSPENDED -> PENDING transitions of the service in the emulator's lifecycle
  history (must be 1: concurrent routers and the schedule ask once between them).

Target: overhead <= reconcile interval (the schedule period used here) + 2 s, 0 DLQ, 1 RESUME.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
SERVICE = "biobert_ner"
TASK = "token-classification"
TABLE = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"


def unavailable() -> str | None:
    """Why this benchmark cannot run here, or None."""
    try:
        import spcs_local.stack.stack  # noqa: F401
    except ImportError as exc:
        return f"the local stack is not importable ({exc})"
    text = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.exists() else ""
    if "functions/control" not in text:
        return "template.yaml declares no control function yet (functions/control)"
    return None


def _note(event_id: str, i: int) -> str:
    return json.dumps(
        {
            "schema": "clinical-note.v1",
            "event_id": event_id,
            "note_id": f"NOTE-R{i:04d}",
            "source": "bench",
            "occurred_at": "2025-03-03T09:00:00Z",
            "text": "Synthetic note: 6-year-old with asthma exacerbation, albuterol given.",
        }
    )


def run(
    *,
    quick: bool = False,
    resume_seconds: float = 30.0,
    schedule_seconds: float = 10.0,
    burst: int = 30,
) -> dict[str, Any]:
    from spcs_local.stack.demo import dlq_depth
    from spcs_local.stack.stack import LocalStack, StackOptions

    if quick:
        burst = 10  # R stays 30 s: below the 15-30 s first retry delay, that delay is measured
    options = StackOptions(
        start_suspended=True,
        auto_resume=False,
        resume_seconds=resume_seconds,
        schedule_seconds=schedule_seconds,
    )
    run_id = uuid.uuid4().hex[:8]
    first_id = f"resume-{run_id}-0000"
    with LocalStack(options) as stack:
        sqs = stack.client("sqs")
        queue = stack.source_queue(TASK).url
        sql = stack.sql()
        since = time.time()
        sent = time.monotonic()  # monotonic for durations; ``since`` to place transitions
        sqs.send_message(QueueUrl=queue, MessageBody=_note(first_id, 0))
        ids = [f"resume-{run_id}-{i:04d}" for i in range(1, burst + 1)]
        for start in range(0, len(ids), 10):
            chunk = ids[start : start + 10]
            entries = [
                {"Id": str(n), "MessageBody": _note(eid, start + n + 1)}
                for n, eid in enumerate(chunk)
            ]
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        deadline = sent + resume_seconds + 300
        first_at: float | None = None
        while time.monotonic() < deadline:
            rows = sql.execute(f"SELECT EVENT_ID FROM {TABLE} WHERE EVENT_ID = ?", [first_id])
            if rows:
                first_at = time.monotonic()
                break
            time.sleep(0.2)
        # The rest of the burst, then give stragglers a moment to reach a DLQ if they would.
        wanted = set(ids)
        while time.monotonic() < deadline:
            marks = ", ".join("?" * len(ids))
            rows = sql.execute(
                f"SELECT EVENT_ID FROM {TABLE} WHERE EVENT_ID IN ({marks})",
                ids,
            )
            if wanted <= {str(r[0]) for r in rows}:
                break
            time.sleep(0.5)
        all_done = time.monotonic()
        resumes, _ = stack.lifecycle_counts(since=since)
        dlq = dlq_depth(stack)
        fqn = next(
            s["service"] for s in stack.emulator_registry["services"] if s["name"] == SERVICE
        )
        moments = _moments(stack.emulator.account.transitions(), fqn, since)
    latency = None if first_at is None else first_at - sent
    overhead = None if latency is None else latency - resume_seconds
    budget = schedule_seconds + 2.0
    return {
        "resume_seconds": resume_seconds,
        "reconcile_interval_s": schedule_seconds,
        "burst": burst,
        "first_result_s": None if latency is None else round(latency, 2),
        "overhead_s": None if overhead is None else round(overhead, 2),
        "burst_done_s": round(all_done - sent, 2),
        # Where the time went (emulator history, seconds after the first SendMessage):
        # RESUME issued (router invocation + async ensure_ready), service RUNNING (+ R).
        "resume_issued_s": moments.get("PENDING"),
        "running_s": moments.get("RUNNING"),
        "row_after_running_s": (
            None
            if latency is None or moments.get("RUNNING") is None
            else round(latency - moments["RUNNING"], 2)
        ),
        "dlq": dlq,
        "resumes": resumes.get(SERVICE, 0),
        "targets": {
            "resume_overhead_le_interval_plus_2s": {
                "value": None if overhead is None else round(overhead, 2),
                "met": overhead is not None and overhead <= budget,
            },
            "resume_dlq_eq_0": {"value": dlq, "met": dlq == 0},
            "resume_resumes_eq_1": {
                "value": resumes.get(SERVICE, 0),
                "met": resumes.get(SERVICE, 0) == 1,
            },
        },
    }


def _moments(transitions: Sequence[Any], fqn: str, since: float) -> dict[str, float]:
    """First transition of the service into each state after ``since``, in seconds after it."""
    out: dict[str, float] = {}
    for row in transitions:
        if row.kind == "service" and str(row.name).upper() == fqn.upper() and row.ts >= since:
            out.setdefault(str(row.to_state), round(row.ts - since, 2))
    return out


def table(result: dict[str, Any]) -> list[str]:
    return [
        f"{'R s':>6}{'interval s':>12}{'RESUME at':>11}{'RUNNING at':>12}{'first row s':>13}"
        f"{'overhead s':>12}{'burst done s':>14}{'DLQ':>5}{'RESUMEs':>9}",
        f"{result['resume_seconds']:>6.0f}{result['reconcile_interval_s']:>12.0f}"
        f"{result['resume_issued_s']!s:>11}{result['running_s']!s:>12}"
        f"{result['first_result_s']!s:>13}{result['overhead_s']!s:>12}"
        f"{result['burst_done_s']:>14}{result['dlq']:>5}{result['resumes']:>9}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="resume overhead on the local stack")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        raise SystemExit(f"resume overhead: {reason}")
    result = run(quick=args.quick)
    print(json.dumps(result, indent=2) if args.json else "\n".join(table(result)))


if __name__ == "__main__":
    main()
