"""The chaos run's accounting and diagnostics, pure: no stack, no I/O but reading log files.

``account()`` is the verdict's arithmetic. An event is **accounted** when it has a result row
or a DLQ message. After the run it is:

- **lost** only if, after a full drain (every source queue empty: nothing visible, delayed or
  in flight), it has neither a row nor a DLQ message: there is nowhere left for it to be;
- **unaccounted** (a stall, never "lost") if the run stopped because nothing progressed for the
  stated interval while messages were still in a queue: the stall report says where they are.

``duplicate_results``: rows beyond the first per event id, plus events that have a row and a
DLQ message. The DLQ check: every poison event dead-lettered with its code, nothing else.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FAULT_KINDS = ("503", "429", "drop", "latency")


def reconcile_dlq(expected: dict[str, str], found: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``expected``: poison event key -> reason code; ``found``: (key, code) per DLQ message.

    ``exact``: every poison event is dead-lettered with its code and nothing else is.
    ``redelivered_copies``: DLQ messages beyond the first for one event with the right code
    (a batch that crashed after its poison was dead-lettered is delivered again, and SQS
    dead-letters at least once; consumers dedupe on ``source_message_id``)."""
    codes: dict[str, set[str]] = {}
    for key, code in found:
        codes.setdefault(key, set()).add(code)
    per_key = Counter(key for key, _ in found)
    missing = sorted(set(expected) - set(codes))
    unexpected = sorted(k for k in codes if k not in expected)
    wrong_code = sorted(k for k in codes if k in expected and codes[k] != {expected[k]})
    return {
        "exact": not (missing or unexpected or wrong_code),
        "missing": missing,
        "unexpected": unexpected,
        "wrong_code": wrong_code,
        "redelivered_copies": sum(n - 1 for k, n in per_key.items() if k in expected),
    }


def account(
    sent: Iterable[str],
    result_ids: Iterable[str],
    dlq_keys: Iterable[str],
    queued: int,
) -> dict[str, Any]:
    """The verdict's arithmetic. ``sent``: keys of the events sent; ``result_ids``: one per
    result row (repeats are duplicates); ``dlq_keys``: one per DLQ message; ``queued``:
    messages still in the source queues (visible + delayed + in flight) when the run ended.

    ``lost`` is a number only when ``queued`` is 0 (drained); otherwise it is None and
    ``unaccounted`` counts the events still on their way."""
    sent_set = set(sent)
    rows = Counter(result_ids)
    dlq = set(dlq_keys)
    accounted = (set(rows) | dlq) & sent_set
    unaccounted = sorted(sent_set - accounted)
    drained = queued == 0
    return {
        "sent": len(sent_set),
        "accounted": len(accounted),
        "drained": drained,
        "lost": len(unaccounted) if drained else None,
        "unaccounted": len(unaccounted),
        "unaccounted_keys": unaccounted,
        "duplicate_results": sum(n - 1 for n in rows.values()) + len(set(rows) & dlq),
        "foreign_results": len(set(rows) - sent_set),
    }


def fault_counts(status: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Faults injected per kind, total and per service, from the emulator's ``/admin/status``."""
    total = dict.fromkeys(FAULT_KINDS, 0)
    per_service: dict[str, dict[str, int]] = {}
    for name, ingress in sorted(status.get("ingress", {}).items()):
        faults = ingress.get("stats", {}).get("faults", {})
        per_service[name] = {k: int(faults.get(k, 0)) for k in FAULT_KINDS}
        for kind in FAULT_KINDS:
            total[kind] += per_service[name][kind]
    return {"total": total, **per_service}


def verdict(figures: dict[str, Any]) -> list[str]:
    """What failed (empty: the run proves its claims)."""
    problems = []
    if figures["events_sent"] < figures["events"]:
        problems.append(f"the feed sent {figures['events_sent']} of {figures['events']} events")
    stall = figures.get("stall")
    if stall:
        problems.append(
            f"stalled: {stall['unaccounted']} event(s) not yet accounted for after "
            f"{stall['no_progress_s']} s without progress (where: see 'stall'; not counted lost)"
        )
    if figures["lost"]:
        problems.append(f"{figures['lost']} event(s) lost")
    if figures["duplicate_results"]:
        problems.append(f"{figures['duplicate_results']} duplicate result(s)")
    if not figures["dlq_check"]["exact"]:
        problems.append("the DLQs do not hold exactly the poison with its codes")
    missing = [k for k, n in figures["faults_injected"]["total"].items() if not n]
    if missing:
        problems.append(f"no fault injected of kind(s) {', '.join(missing)}")
    for what, kill in figures["kills"].items():
        if not kill.get("done"):
            problems.append(f"the {what} kill did not happen")
    if not figures["suspend"].get("done"):
        problems.append("the SQL suspension did not happen")
    if figures["source_queues_left"] and not stall:
        problems.append(f"{figures['source_queues_left']} message(s) left in the source queues")
    return problems


# -- latency ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))  # nearest-rank
    return ordered[rank - 1]


def _summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50), 1),
        "p95": round(percentile(values, 0.95), 1),
        "max": round(max(values), 1),
    }


def latency_breakdown(
    latencies_ms: Mapping[str, float],
    sent_at: Mapping[str, float],
    kinds: Mapping[str, str],
    *,
    feed_start: float,
    windows: Mapping[str, tuple[float, float]] | None = None,
    slices: int = 10,
) -> dict[str, Any]:
    """Where latency comes from. ``latencies_ms``: event key -> PROCESSED_AT minus first send;
    ``sent_at``: key -> epoch of the first send; ``kinds``: key -> note/image; ``windows``:
    name -> (from, to) epochs (e.g. the NER suspension until its mapping was re-enabled).

    - ``by_kind``: images never wait for the NER suspension;
    - ``by_send_slice``: p50/p95 of the events sent in each tenth of the feed: a stack that
      keeps up shows flat slices with one bump (the suspension); one that falls behind shows
      latency growing slice after slice (queueing);
    - ``sent_in_<window>`` / ``outside_windows``: events sent inside each window vs the rest."""
    out: dict[str, Any] = {"all": _summary(list(latencies_ms.values()))}
    by_kind: dict[str, list[float]] = {}
    for key, value in latencies_ms.items():
        by_kind.setdefault(kinds.get(key, "?"), []).append(value)
    out["by_kind"] = {k: _summary(v) for k, v in sorted(by_kind.items())}
    times = [sent_at[k] for k in latencies_ms if k in sent_at]
    if times:
        end = max(times)
        span = max(end - feed_start, 1e-9)
        buckets: list[list[float]] = [[] for _ in range(slices)]
        for key, value in latencies_ms.items():
            at = sent_at.get(key)
            if at is None:
                continue
            index = min(slices - 1, max(0, int((at - feed_start) / span * slices)))
            buckets[index].append(value)
        out["by_send_slice"] = [
            {
                "sent_from_s": round(i * span / slices, 1),
                **{k: v for k, v in _summary(b).items() if k in ("n", "p50", "p95")},
            }
            for i, b in enumerate(buckets)
        ]
    inside: set[str] = set()
    for name, (start, stop) in (windows or {}).items():
        keys = [k for k in latencies_ms if start <= sent_at.get(k, -1.0) <= stop]
        inside.update(keys)
        out[f"sent_in_{name}"] = _summary([latencies_ms[k] for k in keys])
    if windows:
        out["outside_windows"] = _summary([v for k, v in latencies_ms.items() if k not in inside])
    return out


# -- what the functions did (their own log lines: ids, codes, counts, timings only) ------------


def function_log_stats(log_paths: Mapping[str, Sequence[Path]]) -> dict[str, Any]:
    """Per function, from the containers' log files: invocations, duration p50/p95/max,
    unhandled errors by type, records returned for retry by error code and by receive count,
    records dead-lettered by code. Shows whether retries pile up under load (a backoff or
    visibility problem) or whether the functions are simply waiting for work."""
    out: dict[str, Any] = {}
    for function, paths in sorted(log_paths.items()):
        durations: list[float] = []
        errors: Counter[str] = Counter()
        retried: Counter[str] = Counter()
        receive_counts: Counter[int] = Counter()
        dead: Counter[str] = Counter()
        records = 0
        for path in paths:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if not line.startswith("{"):
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                kind = record.get("type")
                if kind == "platform.report":
                    durations.append(float(record.get("durationMs") or 0.0))
                elif kind == "platform.error":
                    errors[str(record.get("errorType"))] += 1
                message = record.get("message")
                if message == "record returned for retry":
                    retried[str(record.get("error_code"))] += 1
                    receive_counts[int(record.get("receive_count") or 0)] += 1
                elif message == "record sent to DLQ":
                    dead[str(record.get("error_code"))] += 1
                elif message == "batch processed":
                    records += int(record.get("records") or 0)
        out[function] = {
            "invocations": len(durations),
            "records": records,
            "duration_ms": _summary(durations),
            "unhandled_errors": dict(sorted(errors.items())),
            "retried_by_code": dict(sorted(retried.items())),
            "retried_by_receive_count": {str(k): v for k, v in sorted(receive_counts.items())},
            "dead_lettered_by_code": dict(sorted(dead.items())),
        }
    return out
