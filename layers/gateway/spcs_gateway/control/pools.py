"""Compute pools: resume one before resuming a service on it; suspend one once everything on it
sleeps (``lifecycle.decide_pool`` decides, on pool-level facts only).

Whether idle pools are suspended at all: the pool's ``suspend_when_idle`` in the registry, else
the control function's ``SUSPEND_IDLE_POOLS`` (``ControlSettings.suspend_idle_pools``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.control.results import PoolRound
from spcs_gateway.lifecycle import Action, Decision, PoolAction, Reason, decide_pool
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import ServiceObservation


def resume_pool_if_suspended(
    ctx: ControlContext, config: ServiceConfig, now: datetime, reason: str
) -> None:
    """Step 2 of the resume protocol: the service's pool must run before the service can."""
    observed = ctx.services.pool(config.compute_pool)
    if decide_pool(observed.state, [], now, resume_requested=True).action is PoolAction.RESUME:
        ctx.services.resume_pool(config.compute_pool)
        ctx.emit("PoolResumes", 1, config.compute_pool, reason)


def reconcile_pools(
    ctx: ControlContext,
    services: Sequence[ServiceConfig],
    observations: Mapping[str, ServiceObservation],
    records: Mapping[str, ServiceRecord],
    decisions: Mapping[str, Decision],
) -> list[PoolRound]:
    """One round over every compute pool the registry's services run on, after the services'."""
    by_pool: dict[str, list[ServiceConfig]] = {}
    for config in services:
        by_pool.setdefault(config.compute_pool.upper(), []).append(config)
    rounds: list[PoolRound] = []
    for pool, members in sorted(by_pool.items()):
        try:
            rounds.append(_reconcile_pool(ctx, pool, members, observations, records, decisions))
        except CALL_ERRORS as exc:
            code = call_error_code(exc)
            ctx.emit("ReconcileErrors", 1, pool, code)
            rounds.append(PoolRound(pool, "UNKNOWN", "", "", code))
    return rounds


def _reconcile_pool(
    ctx: ControlContext,
    pool: str,
    members: Sequence[ServiceConfig],
    observations: Mapping[str, ServiceObservation],
    records: Mapping[str, ServiceRecord],
    decisions: Mapping[str, Decision],
) -> PoolRound:
    now = ctx.clock()
    observed = ctx.services.pool(pool)
    if any(m.name not in observations for m in members):
        # A member we could not observe might be running: never suspend on a guess.
        return PoolRound(pool, observed.state, PoolAction.NONE.value, Reason.STATUS_UNKNOWN.value)
    decision = decide_pool(
        observed.state,
        [(observations[m.name], records[m.name]) for m in members],
        now,
        resume_requested=any(decisions[m.name].action is Action.RESUME for m in members),
        running_on_pool=observed.running,
        suspend_when_idle=ctx.registry.pool_suspends_when_idle(
            pool, default=ctx.settings.suspend_idle_pools
        ),
    )
    if decision.action is PoolAction.SUSPEND:
        ctx.services.suspend_pool(pool)
        ctx.emit("PoolSuspends", 1, pool, decision.reason)
        ctx.info("compute pool suspend issued", pool=pool, reason=decision.reason.value)
    elif decision.action is PoolAction.RESUME:
        ctx.services.resume_pool(pool)
        ctx.emit("PoolResumes", 1, pool, decision.reason)
    return PoolRound(pool, observed.state, decision.action.value, decision.reason.value)
