"""``spcs-local demo``: start the stack, send a feed, account for every event, show the story.

Accounting never trusts the runner's counters: the sent event ids are reconciled against the
results table (read through snowflake-connector-python) and the DLQs (every message received
and parsed), and the resumes/suspends come from the emulator's lifecycle history.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .ehr_feed import account
from .feed import FeedEvent, event_key, insert_notes, send_events
from .stack import LocalStack

RESULTS_COLUMNS = (
    "EVENT_ID",
    "KIND",
    "SUBJECT_ID",
    "SERVICE",
    "MODEL_VERSION",
    "STATUS",
    "OUTPUT",
    "LATENCY_MS",
    "PROCESSED_AT",
)
NO_CODE = "RETRIES_EXHAUSTED"  # moved by SQS after maxReceiveCount: no error_code attribute


@dataclass(frozen=True)
class DlqMessage:
    queue: str
    message_id: str
    key: str
    code: str
    attributes: dict[str, str]
    message_attributes: dict[str, str]
    body_bytes: int


@dataclass
class DemoRun:
    """What a demo run produced (the summary is computed from these, not from counters)."""

    events: list[FeedEvent]
    sent_at: dict[str, float]
    started: float
    results: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[DlqMessage] = field(default_factory=list)
    resumes: dict[str, int] = field(default_factory=dict)
    suspends: dict[str, int] = field(default_factory=dict)
    # queue name -> [(paused at, re-enabled at or None)] seen by the local Lambda API
    pauses: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    finished: float = 0.0
    sent: list[dict[str, str]] = field(default_factory=list)  # every SQS body sent (sent.jsonl)
    # service -> [(epoch seconds, instance count set)]: the control plane's scaling
    instances: dict[str, list[tuple[float, int]]] = field(default_factory=dict)


# -- reconciliation (pure) ----------------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))  # nearest-rank
    return ordered[rank - 1]


def summarize(run: DemoRun) -> dict[str, Any]:
    """The ``--json-summary`` document.

    ``lost``: sent events with neither a result row nor a DLQ message. ``duplicate_results``:
    result rows beyond the first per event id, plus events that have a row and also sit in a
    DLQ (handled twice). Latency: result ``PROCESSED_AT`` minus the event's send time.
    """
    sent = {e.key for e in run.events if e.key in run.sent_at}
    rows = Counter(str(r["EVENT_ID"]) for r in run.results)
    dlq_keys = {m.key for m in run.dlq}
    # A message that became several rows (EHR intake) is accounted for once all of them exist.
    expanded, expanded_duplicates, owner = account(run.events, rows, dlq_keys)
    accounted = set(rows) | dlq_keys | expanded
    duplicates = sum(n - 1 for n in rows.values()) + len(set(rows) & dlq_keys)
    duplicates += expanded_duplicates
    latencies = []
    for row in run.results:
        event_id = str(row["EVENT_ID"])
        at, sent_at = (
            _epoch(row.get("PROCESSED_AT")),
            run.sent_at.get(owner.get(event_id, event_id)),
        )
        if at is not None and sent_at is not None:
            latencies.append(max(0.0, (at - sent_at) * 1000.0))
    latency = (
        {
            "p50": round(_percentile(latencies, 0.50), 1),
            "p95": round(_percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
        }
        if latencies
        else {"p50": None, "p95": None, "max": None}
    )
    return {
        "events_sent": len(sent),
        "results_rows": len(run.results),
        "dlq": dict(sorted(Counter(m.code for m in run.dlq).items())),
        "lost": len(sent - accounted),
        "duplicate_results": duplicates,
        "resumes": dict(sorted(run.resumes.items())),
        "suspends": dict(sorted(run.suspends.items())),
        "latency_ms": latency,
        "duration_s": round(run.finished - run.started, 1),
        "instances": instances_over_time(run),
    }


def instances_over_time(run: DemoRun) -> dict[str, dict[str, Any]]:
    """Per service: the counts set, at seconds from the start, and how many were outs / ins."""
    out: dict[str, dict[str, Any]] = {}
    for service, changes in sorted(run.instances.items()):
        steps = [[round(at - run.started, 1), count] for at, count in changes]
        counts = [1, *(count for _, count in changes)]
        pairs = list(itertools.pairwise(counts))
        out[service] = {
            "timeline": steps,
            "scale_outs": sum(1 for a, b in pairs if b > a),
            "scale_ins": sum(1 for a, b in pairs if b < a),
            "peak": max(counts),
        }
    return out


def expected_dlq(events: Iterable[FeedEvent]) -> dict[str, int]:
    return dict(sorted(Counter(e.expected_code for e in events if e.expected_code).items()))


# -- reading the system's state ---------------------------------------------------------------


def read_results(stack: LocalStack) -> list[dict[str, Any]]:
    """Every row of the results table, through the connector."""
    table = stack.registry_document["snowflake"].get(
        "results_table", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
    )
    rows = stack.sql().execute(f"SELECT {', '.join(RESULTS_COLUMNS)} FROM {table}")
    return [dict(zip(RESULTS_COLUMNS, row, strict=True)) for row in rows]


def count_results(stack: LocalStack) -> int:
    table = stack.registry_document["snowflake"].get(
        "results_table", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
    )
    rows = stack.sql().execute(f"SELECT COUNT(*) FROM {table}")
    return int(rows[0][0]) if rows else 0


def drain_dlqs(stack: LocalStack) -> list[DlqMessage]:
    """Receive (and so hide, not delete) every message of every DLQ, parsed."""
    assert stack.resources is not None
    sqs = stack.client("sqs")
    out: list[DlqMessage] = []
    for queue in stack.resources.dead_letter_queues:
        empty = 0
        while empty < 2:
            answer = sqs.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=600,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                empty += 1
                continue
            for m in messages:
                attrs = {
                    k: str(v.get("StringValue", ""))
                    for k, v in m.get("MessageAttributes", {}).items()
                }
                body = m.get("Body", "")
                out.append(
                    DlqMessage(
                        queue=queue.name,
                        message_id=m["MessageId"],
                        key=event_key(body),
                        code=attrs.get("error_code") or NO_CODE,
                        attributes={k: str(v) for k, v in m.get("Attributes", {}).items()},
                        message_attributes=attrs,
                        body_bytes=len(body.encode("utf-8")),
                    )
                )
    return out


def mapping_pauses(
    stack: LocalStack, since: float = 0.0
) -> dict[str, list[tuple[float, float | None]]]:
    """Per source queue, each pause of its mapping (UpdateEventSourceMapping Enabled=false)
    and when it was re-enabled."""
    out: dict[str, list[tuple[float, float | None]]] = {}
    for mapping in stack.mappings:
        spans: list[tuple[float, float | None]] = []
        for at, enabled in mapping.history:
            if at < since:
                continue
            if not enabled:
                spans.append((at, None))
            elif spans and spans[-1][1] is None:
                spans[-1] = (spans[-1][0], at)
        out[mapping.queue_arn.rsplit(":", 1)[-1]] = spans
    return out


def dlq_depth(stack: LocalStack) -> int:
    assert stack.resources is not None
    depths = stack.queue_depths()
    return sum(sum(depths[q.name]) for q in stack.resources.dead_letter_queues)


# -- artifacts --------------------------------------------------------------------------------


def _write_jsonl(path: Path, records: Iterable[Any]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, default=str) + "\n")
            n += 1
    return n


def _log_records(stack: LocalStack) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pool in stack.pools.values():
        for path in pool.log_paths:
            container = path.stem.rsplit(".", 1)[-1]
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    record: Any = json.loads(line)
                except ValueError:
                    record = {"message": line}
                out.append({"function": pool.name, "container": container, "record": record})
    return out


def write_artifacts(
    stack: LocalStack, run: DemoRun, summary: dict[str, Any], out_dir: Path
) -> dict[str, int]:
    """logs, metrics (EMF), DynamoDB items, DLQ messages (attributes, no bodies),
    notifications, results, every SQS message body sent (sent.jsonl), summary."""
    assert stack.resources is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = _log_records(stack)
    counts = {
        "logs.jsonl": _write_jsonl(out_dir / "logs.jsonl", logs),
        "metrics.jsonl": _write_jsonl(
            out_dir / "metrics.jsonl",
            (r for r in logs if isinstance(r["record"], dict) and "_aws" in r["record"]),
        ),
    }
    ddb = stack.client("dynamodb")
    items: list[dict[str, Any]] = []
    for table in stack.resources.tables.values():
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            items.extend({"table": table, "item": item} for item in page.get("Items", []))
    counts["dynamodb.jsonl"] = _write_jsonl(out_dir / "dynamodb.jsonl", items)
    counts["dlq.jsonl"] = _write_jsonl(
        out_dir / "dlq.jsonl",
        (
            {
                "queue": m.queue,
                "message_id": m.message_id,
                "event_key": m.key,
                "error_code": m.code,
                "message_attributes": m.message_attributes,
                "attributes": m.attributes,
                "body_bytes": m.body_bytes,
            }
            for m in run.dlq
        ),
    )
    notes: list[dict[str, Any]] = []
    url = stack.resources.notifications_queue_url
    if url:
        sqs = stack.client("sqs")
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
            if not got.get("Messages"):
                break
            for m in got["Messages"]:
                try:
                    notes.append(json.loads(m["Body"]))
                except ValueError:
                    notes.append({"Message": m["Body"]})
    counts["notifications.jsonl"] = _write_jsonl(out_dir / "notifications.jsonl", notes)
    counts["results.jsonl"] = _write_jsonl(out_dir / "results.jsonl", run.results)
    counts["sent.jsonl"] = _write_jsonl(out_dir / "sent.jsonl", run.sent)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return counts


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """A one-line text progress bar on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self._last_line = 0.0
        self._open = False

    def bar(self, label: str, done: int, total: int, extra: str = "") -> None:
        total = max(total, 1)
        filled = min(self.width, int(self.width * done / total))
        text = f"{label:<12} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {extra}"
        self.line(text)

    def line(self, text: str, *, force: bool = False) -> None:
        if self.tty:
            self.stream.write("\r" + text[:160].ljust(100))
            self.stream.flush()
            self._open = True
            return
        now = time.monotonic()
        if force or now - self._last_line >= 5.0:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_line = now

    def done(self, text: str | None = None) -> None:
        if self.tty and self._open:
            self.stream.write("\n")
            self._open = False
        if text:
            self.stream.write(text + "\n")
        self.stream.flush()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class DemoOptions:
    rate: float = 0.0
    timeout_s: float = 240.0
    idle_timeout_s: float | None = None  # default from the idle window
    insert_notes: bool = True


def run_demo(
    stack: LocalStack,
    events: list[FeedEvent],
    options: DemoOptions | None = None,
    *,
    progress: Progress | None = None,
) -> DemoRun:
    """Send ``events`` through the running stack and wait until each one is accounted for
    (a result row or a DLQ message) or the timeout passes, then for idle suspension."""
    opts = options or DemoOptions()
    out = progress or Progress()
    started = time.time()
    if opts.insert_notes:
        # The EHR pipeline loads the notes, as the table's owner: the gateway's role has no
        # INSERT on them (it reads them through Cortex Search only).
        insert_notes(stack.admin_sql("SYSADMIN"), events)
        if any(e.stored_row is not None for e in events):
            # The reference route: notes and images live in Snowflake, the events name them.
            from .reference_feed import store_rows

            store_rows(stack.admin_sql("SYSADMIN"), events)
    urls = {
        "notes": stack.source_queue("token-classification").url,
        "images": stack.source_queue("zero-shot-image-classification").url,
    }
    # Result rows or DLQ messages to wait for: an EHR message may become several rows.
    total = sum(max(1, len(e.row_ids)) for e in {e.key: e for e in events}.values())
    report = send_events(
        stack.client("sqs"),
        events,
        urls,
        rate=opts.rate,
        progress=lambda n: out.bar("sent", n, len(events)),
    )
    out.done()
    run = DemoRun(events=events, sent_at=dict(report.sent_at or {}), started=started)
    run.sent = list(report.bodies or [])
    deadline = time.monotonic() + opts.timeout_s
    while time.monotonic() < deadline:
        rows, dead = count_results(stack), dlq_depth(stack)
        states = " ".join(f"{k}={v}" for k, v in sorted(stack.service_states().items()))
        out.bar("accounted", rows + dead, total, f"(results {rows}, dlq {dead}) {states}")
        if rows + dead >= total:
            break
        time.sleep(1.0)
    out.done()
    wait_for_idle(stack, opts, out)
    run.results = read_results(stack)
    run.dlq = drain_dlqs(stack)
    run.resumes, run.suspends = stack.lifecycle_counts(since=started)
    run.pauses = mapping_pauses(stack, since=started)
    run.instances = stack.instance_timeline(since=started)
    run.finished = time.time()
    return run


def wait_for_idle(stack: LocalStack, opts: DemoOptions, out: Progress) -> bool:
    """Wait until every service is SUSPENDED again (the control plane's idle suspension)."""
    idle = stack.options.idle_seconds
    if idle is None and opts.idle_timeout_s is None:
        return False
    uptime = stack.options.min_uptime_seconds or float(idle or 0)
    limit = opts.idle_timeout_s or (
        max(float(idle or 0), uptime) + 4 * stack.options.schedule_seconds + 30
    )
    deadline = time.monotonic() + limit
    began = time.monotonic()
    while time.monotonic() < deadline:
        states = stack.service_states()
        waiting = {k: v for k, v in states.items() if v != "SUSPENDED"}
        if not waiting:
            out.done(f"all services suspended after idling ({time.monotonic() - began:.0f} s)")
            return True
        detail = " ".join(f"{k}={v}" for k, v in sorted(waiting.items()))
        out.line(f"idle wait    {time.monotonic() - began:4.0f}s / {limit:.0f}s  {detail}")
        time.sleep(1.0)
    out.done("services still running when the idle wait ended")
    return False


def story(run: DemoRun) -> str:
    """The control plane's part, in time order, relative to the start of the feed."""
    lines = []
    for queue, spans in sorted(run.pauses.items()):
        for paused, resumed in spans:
            back = f"re-enabled at +{resumed - run.started:.1f} s" if resumed else "still paused"
            lines.append(f"  mapping {queue}: paused at +{paused - run.started:.1f} s, {back}")
    return "\n".join(lines)


def summary_table(summary: dict[str, Any], expected: dict[str, int] | None = None) -> str:
    lines = ["", "spcs-local demo summary", "-" * 44]

    def row(name: str, value: Any) -> None:
        lines.append(f"  {name:<22} {value}")

    row("events sent", summary["events_sent"])
    row("result rows", summary["results_rows"])
    dlq = summary["dlq"]
    row("dead-lettered", sum(dlq.values()))
    for code, n in dlq.items():
        mark = ""
        if expected is not None:
            mark = (
                "  (expected)"
                if expected.get(code) == n
                else f"  (expected {expected.get(code, 0)})"
            )
        row(f"  {code}", f"{n}{mark}")
    row("lost", summary["lost"])
    row("duplicate results", summary["duplicate_results"])
    for service in sorted(set(summary["resumes"]) | set(summary["suspends"])):
        row(
            f"service {service}",
            f"{summary['resumes'].get(service, 0)} resume(s), "
            f"{summary['suspends'].get(service, 0)} suspend(s)",
        )
    for service, scaled in summary.get("instances", {}).items():
        steps = " -> ".join(f"{n} (+{t} s)" for t, n in scaled["timeline"])
        row(
            f"instances {service}",
            f"1 -> {steps}" if steps else "1 (not scaled)",
        )
        row("", f"{scaled['scale_outs']} scale-out(s), {scaled['scale_ins']} scale-in(s)")
    lat = summary["latency_ms"]
    row("latency p50/p95/max", f"{lat['p50']} / {lat['p95']} / {lat['max']} ms")
    row("duration", f"{summary['duration_s']} s")
    lines.append("-" * 44)
    ok = summary["lost"] == 0 and summary["duplicate_results"] == 0
    lines.append("  OK: every event accounted for, none twice" if ok else "  FAILED: see above")
    return "\n".join(lines)
