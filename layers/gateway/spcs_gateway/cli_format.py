"""How ``spcs-gateway`` prints control-plane answers for a terminal (``--json`` prints their
``as_dict`` instead)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from spcs_gateway.control import ControlCode, ControlResult, Outcome, ServiceOverview


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{stamp} ({_duration((now - when).total_seconds())} ago)"


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def status_table(views: Sequence[ServiceOverview], now: datetime) -> str:
    """The aligned ``status`` table (one row per service)."""
    header = (
        "SERVICE",
        "STATUS",
        "READY",
        "LAST ACTIVITY",
        "IDLE IN",
        "WHY",
        "BACKLOG",
        "INSTANCES",
        "RESUMES",
        "SUSPENDS",
        "PAUSED",
    )
    rows = [header]
    for v in views:
        rows.append(
            (
                v.name,
                v.status if v.code is None else f"{v.status} ({v.code})",
                "yes" if v.ready else "no",
                _ago(v.last_activity, now),
                "-" if v.idle_countdown_s is None else _duration(v.idle_countdown_s),
                v.idle_reason,
                "?" if v.backlog is None else str(v.backlog),
                _instances(v),
                str(v.resumes_today),
                str(v.suspends_today),
                "yes" if v.mappings_paused else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    footer = (
        "RESUMES/SUSPENDS: today (UTC). IDLE IN: time until eligible for suspension. "
        "INSTANCES: ready/running [min..max set on the service]."
    )
    return "\n".join(line.rstrip() for line in lines) + "\n" + footer


def _instances(v: ServiceOverview) -> str:
    count = f"{v.instances_ready}/{v.instances}"
    if v.min_instances is None or v.max_instances is None:
        return count
    return f"{count} [{v.min_instances}..{v.max_instances}]"


def describe_result(result: ControlResult) -> str:
    status = f" ({result.status})" if result.status else ""
    text = {
        Outcome.READY: "ready" + (", resumed by this call" if result.resumed else ""),
        Outcome.RESUMING: "resume issued, not ready yet; reconcile re-enables its queues when "
        "it is READY",
        Outcome.IN_PROGRESS: "a resume is already in progress",
        Outcome.STARTING: "starting, not ready yet",
        Outcome.SUSPENDED: "suspend issued",
        Outcome.ALREADY_SUSPENDED: "already suspended",
        Outcome.SCALED: f"instances set to {result.min_instances}..{result.max_instances}",
    }.get(result.outcome, result.outcome.value)
    return f"{result.service}: {text}{status}"


def failure_text(result: ControlResult) -> str:
    """The detail of the one-line error for a result that is not ok."""
    name = result.service
    if result.outcome is Outcome.UNKNOWN_SERVICE:
        return f"{name!r} is not in the service registry; nothing was touched"
    if result.outcome is Outcome.REFUSED and result.code == ControlCode.OUT_OF_RANGE:
        return f"{name}: outside the registry's min_instances..max_instances; nothing was set"
    if result.outcome is Outcome.REFUSED:
        return f"{name}: suspend refused ({result.reason}); --force suspends anyway"
    if result.outcome is Outcome.FAILED:
        return f"{name}: service is {result.status}; nothing was done"
    return f"{name}: a Snowflake or AWS call failed"
