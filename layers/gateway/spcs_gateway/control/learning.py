"""The adaptive policy's learning, for the control plane: fold what a round or a resume saw
into the service's ``adaptive.IdleModel`` and store it in the service's record. What to do
with it is decided by ``lifecycle.decide_service`` (through ``adaptive.py``), never here.

What the control plane sees, and what it teaches:

- a round reads the latest activity (routers and the API record it): activity after a quiet
  stretch of at least a round ends an idle gap (``adaptive.observe_activity``);
- a caller that finds the service suspended (``ensure_ready``), or a backlog a round finds on
  a suspended service, is an arrival at a known instant (``adaptive.observe_arrival``); the
  first one ever also teaches the quiet stretch before it (since the last activity, suspend
  or status change the record knows);
- a resume is timed from RESUME to the first READY seen (by ``ensure_ready``'s polls, or
  at the first round that sees it ready): the learned resume cost R (``adaptive.observe_resume``).

A failed write never fails the round: learning is a hint, one lost observation costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from spcs_gateway import adaptive
from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.lifecycle import keep_alive_bounds
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import Observation, ServiceStatus

Change = Callable[[adaptive.IdleModel], adaptive.IdleModel]


def _ts(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def learn(
    ctx: ControlContext, config: ServiceConfig, record: ServiceRecord, change: Change
) -> ServiceRecord:
    """``record`` with its model changed, replanned and stored (once re-read on a race)."""
    if config.policy != "adaptive":
        return record
    bounds = keep_alive_bounds(config)
    current = record
    try:
        for _ in range(2):
            old = current.idle_model
            new = adaptive.replan(change(old or adaptive.IdleModel()), bounds)
            if new == old:
                return current
            if ctx.store.save_idle_model(config.name, new, old):
                return replace(current, idle_model=new)
            current = ctx.store.get(config.name)
    except CALL_ERRORS as exc:
        ctx.warn("learning skipped", service_name=config.name, error_code=call_error_code(exc))
    return current


def learn_round(
    ctx: ControlContext,
    config: ServiceConfig,
    before: ServiceRecord,
    record: ServiceRecord,
    obs: Observation,
    now: datetime,
) -> ServiceRecord:
    """What one round saw: the latest activity, and a resume that became ready since the last
    look (``before``: the record as the previous look left it)."""
    looked_at = _ts(before.observed_at)
    resumed_at = record.resumed_at
    # Starting at the last look, or resumed since it (a resume shorter than a round is READY
    # at the very next look, which never saw it PENDING).
    starting = (
        before.status is ServiceStatus.PENDING
        or (before.status is ServiceStatus.RUNNING and not before.ready)
        or (
            resumed_at is not None
            and (before.observed_at is None or resumed_at >= before.observed_at)
        )
    )

    def change(model: adaptive.IdleModel) -> adaptive.IdleModel:
        model = adaptive.observe_activity(model, _ts(record.last_activity), looked_at)
        if obs.ready and starting and resumed_at is not None:
            # First seen ready now: an upper bound (at most a round long), so a pre-resume
            # planned from it is ready early rather than late.
            model = adaptive.observe_resume(
                model, (now - resumed_at).total_seconds(), now.timestamp()
            )
        return model

    return learn(ctx, config, record, change)


def learn_arrival(ctx: ControlContext, config: ServiceConfig, at: datetime) -> None:
    """A caller found the service suspended at ``at``."""
    if config.policy == "adaptive":
        record = ctx.store.get(config.name)
        # Quiet since the last thing known before this call (activity, suspend, status change).
        marks = (record.last_activity, record.suspended_at, record.last_transition_at)
        quiet = max((t for t in marks if t is not None and t < at), default=None)
        learn(ctx, config, record, _arrival(at.timestamp(), _ts(quiet)))


def learn_resume(
    ctx: ControlContext, config: ServiceConfig, seconds: float, ready_at: datetime
) -> None:
    """A resume this process issued became ready after ``seconds``, at ``ready_at``."""
    if config.policy == "adaptive":
        record = ctx.store.get(config.name)
        at = ready_at.timestamp()
        learn(ctx, config, record, lambda m: adaptive.observe_resume(m, seconds, at))


def _arrival(at: float, quiet_since: float | None = None) -> Change:
    return lambda model: adaptive.observe_arrival(model, at, quiet_since)
