"""The resume protocol (``ensure_ready``, and a reconcile's RESUME / FINISH_RESUME).

Ordered so a crash at any point is healed by the next reconcile (``decide_service`` sees the
leftovers):

1. take the resume lease with a conditional write (of concurrent callers exactly one wins; the
   others answer ``in_progress``) and observe again under it, so a resume that finished in the
   meantime is not repeated;
2. resume the compute pool if it is suspended (``pools.resume_pool_if_suspended``);
3. set ``mappings_paused`` in the service's record, then pause the mappings of its queues
   (waiting messages burn no receive counts while containers start);
4. ``ALTER SERVICE ... RESUME`` and count it (``record_resume``);
5. poll until READY within the caller's budget; then re-enable the mappings, clear
   ``mappings_paused``, record the observation and release the lease (``finish_resume``). Out
   of budget, the lease and the paused mappings stay: reconcile sees RUNNING + READY + paused
   and finishes (``FINISH_RESUME``), whoever holds the lease.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.learning import learn_arrival, learn_resume
from spcs_gateway.control.pools import resume_pool_if_suspended
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.control.results import ControlCode, ControlResult, Outcome
from spcs_gateway.lifecycle import Action, Backlog, Decision, Reason, decide_service
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import ServiceObservation, ServiceStatus


def start_resume(
    ctx: ControlContext, config: ServiceConfig, owner: str, reason: str, *, pause: bool = True
) -> bool | None:
    """Steps 1-4 (step 3 only with ``pause``: a pre-resume has no waiting messages). None:
    another caller holds the lease. False: the service was no longer SUSPENDED under the
    lease (nothing issued, lease released)."""
    name = config.name
    now = ctx.clock()
    if not ctx.store.try_acquire_lease(name, owner, now, ctx.settings.lease_ttl):
        return None
    try:
        again = ctx.services.observe(config.service)
        if ServiceStatus.parse(again.status) is not ServiceStatus.SUSPENDED:
            ctx.store.release_lease(name, owner)
            return False
        resume_pool_if_suspended(ctx, config, now, reason)
        if pause:
            ctx.store.set_mappings_paused(name, True)
            ctx.mappings.pause(config.queues)
        ctx.services.resume(config.service)
    except BaseException:
        # Nothing was resumed: undo what we can; what we cannot, reconcile heals (a stale
        # pause on a SUSPENDED service is re-enabled; a backlog gets a new resume).
        with contextlib.suppress(Exception):
            ctx.mappings.resume(config.queues)
            ctx.store.set_mappings_paused(name, False)
            ctx.store.release_lease(name, owner)
        raise
    ctx.store.record_resume(name, now)
    ctx.emit("Resumes", 1, name, reason)
    ctx.info("service resume issued", service_name=name, reason=reason)
    return True


def finish_resume(
    ctx: ControlContext,
    config: ServiceConfig,
    record: ServiceRecord,
    *,
    owner: str | None = None,
    observation: ServiceObservation | None = None,
) -> None:
    """Step 5: re-enable the mappings, clear the flag, record READY, release the lease.
    Idempotent, and in this order so a crash half-way repeats it at the next reconcile."""
    name = config.name
    ctx.mappings.resume(config.queues)
    if record.mappings_paused:
        ctx.store.set_mappings_paused(name, False)
    if observation is not None:
        ctx.store.record_observation(name, observation, ctx.clock())
    holders = {owner} if owner else set()
    if record.mappings_paused and record.lease_owner:
        holders.add(record.lease_owner)  # a finished resume is completed by whoever sees it
    for holder in holders:
        ctx.store.release_lease(name, holder)


def ensure_ready(ctx: ControlContext, name: str, *, budget_s: float) -> ControlResult:
    """Make ``name`` READY: resume it (once, whoever else asks) and wait up to ``budget_s``
    (0: issue the resume and return; reconcile finishes it)."""
    config = ctx.config(name)
    if config is None:
        return ControlResult(name, Outcome.UNKNOWN_SERVICE, code=ControlCode.UNKNOWN_SERVICE)
    result = _ensure_ready(ctx, config, budget_s)
    ctx.emit("EnsureReady", 1, name, result.outcome)
    return result


def _ensure_ready(ctx: ControlContext, config: ServiceConfig, budget_s: float) -> ControlResult:
    name = config.name
    poll = ctx.settings.poll_interval_s
    deadline = ctx.clock() + timedelta(seconds=max(budget_s, 0.0))
    # The caller waiting for the service is demand, as an on-demand call is.
    demand = Backlog(on_demand_in_flight=1)
    owner: str | None = None
    resumed = False
    renewed_at = renewed_from = ctx.clock()
    obs: ServiceObservation | None = None
    decision: Decision | None = None
    try:
        while True:
            now = ctx.clock()
            obs = ctx.services.observe(config.service)
            record = ctx.store.get(name)
            decision = decide_service(config, record, obs, demand, now, ctx.settings.policy)
            if obs.ready:
                finish_resume(ctx, config, record, owner=owner, observation=obs)
                if resumed:
                    learn_resume(ctx, config, (now - renewed_from).total_seconds(), now)
                return _result(name, Outcome.READY, obs, decision, resumed)
            if decision.action is Action.RESUME:
                owner = ctx.new_owner()
                started = start_resume(ctx, config, owner, decision.reason)
                if started is None:
                    return _result(name, Outcome.IN_PROGRESS, obs, decision, resumed)
                if started:
                    resumed, renewed_at, renewed_from = True, now, now
                    learn_arrival(ctx, config, now)
                else:
                    owner = None
            elif decision.action is Action.WAIT:
                theirs = record.lease_active(now) and record.lease_owner != owner
                if decision.reason is Reason.RESUME_IN_PROGRESS and theirs:
                    return _result(name, Outcome.IN_PROGRESS, obs, decision, resumed)
            elif decision.action is Action.NONE:
                # Failed, gone or unknown status: left alone (no resume loop).
                return _result(
                    name, Outcome.FAILED, obs, decision, resumed, ControlCode.SERVICE_FAILED
                )
            now = ctx.clock()
            if (deadline - now).total_seconds() < poll:
                outcome = Outcome.RESUMING if owner else Outcome.STARTING
                return _result(name, outcome, obs, decision, resumed)
            if owner and now - renewed_at >= ctx.settings.lease_ttl / 2:
                # Polling may outlast the lease; renew it so nobody takes over a live resume.
                ctx.store.try_acquire_lease(name, owner, now, ctx.settings.lease_ttl)
                renewed_at = now
            ctx.sleep(poll)
    except CALL_ERRORS as exc:
        code = call_error_code(exc)
        ctx.warn("ensure_ready failed", service_name=name, error_code=code)
        return _result(name, Outcome.ERROR, obs, decision, resumed, code)


def _result(
    name: str,
    outcome: Outcome,
    obs: ServiceObservation | None,
    decision: Decision | None,
    resumed: bool,
    code: str | None = None,
) -> ControlResult:
    return ControlResult(
        service=name,
        outcome=outcome,
        status=obs.status if obs is not None else None,
        ready=bool(obs is not None and obs.ready),
        resumed=resumed,
        reason=decision.reason.value if decision is not None else None,
        code=code,
    )
