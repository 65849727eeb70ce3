"""One control round (the scheduled tick): observe every registry service, record what was seen,
let the lifecycle policy decide whether it runs and the scaling policy how many instances
(``scale.py``: applied first, so a suspend follows the scale-in), carry both out; then the
compute pools (``pools.py``).

A service that cannot be observed is reported with its error code and skipped (and its pool is
left alone); an action that fails is reported the same way. Nothing raises out of a round.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.learning import learn_arrival, learn_round
from spcs_gateway.control.pools import reconcile_pools
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.control.results import Outcome, ReconcileReport, ServiceRound
from spcs_gateway.control.resume import finish_resume, start_resume
from spcs_gateway.control.scale import scale_round
from spcs_gateway.lifecycle import Action, Decision, Reason, decide_service
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import ServiceObservation, ServiceStatus

# A reconcile gap longer than this is not counted as running time (the schedule was off).
MAX_RUNNING_INTERVAL = timedelta(minutes=5)


def reconcile(ctx: ControlContext) -> ReconcileReport:
    """One control round over every registry service, then every registry compute pool."""
    now = ctx.clock()
    services = list(ctx.registry.services)
    names = [s.name for s in services]
    rounds: dict[str, ServiceRound] = {}
    observations: dict[str, ServiceObservation] = {}
    before = ctx.store.get_all(names)
    for config in services:
        try:
            obs = ctx.services.observe(config.service)
            ctx.store.record_observation(config.name, obs, now)
        except CALL_ERRORS as exc:
            rounds[config.name] = _failed_round(ctx, config.name, exc)
            continue
        observations[config.name] = obs
        _observe_metrics(ctx, config.name, before[config.name], obs, now)
    records = ctx.store.get_all(names)  # with this round's observations (transitions)
    decisions: dict[str, Decision] = {}
    for config in services:
        observed = observations.get(config.name)
        if observed is None:
            continue
        record = learn_round(ctx, config, before[config.name], records[config.name], observed, now)
        records[config.name] = record
        backlog = ctx.work_for(config, record, now)
        decision = decide_service(config, record, observed, backlog, now, ctx.settings.policy)
        decisions[config.name] = decision
        # The count first: a suspend is preceded by the scale-in to the minimum (scale.py).
        scaled = scale_round(
            ctx,
            config,
            record,
            observed,
            backlog,
            suspending=decision.action is Action.SUSPEND,
            now=now,
        )
        code: str | None = None
        try:
            outcome = _execute(ctx, config, observed, record, decision)
        except CALL_ERRORS as exc:
            outcome, code = Outcome.ERROR, call_error_code(exc)
            ctx.emit("ReconcileErrors", 1, config.name, code)
        rounds[config.name] = ServiceRound(
            config.name,
            observed.status,
            observed.ready,
            decision.action.value,
            decision.reason.value,
            outcome,
            code or (scaled.code if scaled else None),
            scaled.decision.instances if scaled else None,
            scaled.decision.action.value if scaled else "",
            scaled.decision.reason.value if scaled else "",
        )
        if outcome is not Outcome.NONE:
            ctx.info(
                "reconcile action",
                service_name=config.name,
                action=decision.action.value,
                reason=decision.reason.value,
                outcome=outcome.value,
                error_code=code,
            )
    pools = reconcile_pools(ctx, services, observations, records, decisions)
    return ReconcileReport(now, tuple(rounds[n] for n in names), tuple(pools))


def _failed_round(ctx: ControlContext, name: str, exc: BaseException) -> ServiceRound:
    code = call_error_code(exc)
    ctx.warn("observe failed", service_name=name, error_code=code)
    ctx.emit("ReconcileErrors", 1, name, code)
    return ServiceRound(name, ServiceStatus.UNKNOWN.value, False, "", "", Outcome.ERROR, code)


def _observe_metrics(
    ctx: ControlContext,
    name: str,
    before: ServiceRecord,
    obs: ServiceObservation,
    now: datetime,
) -> None:
    status = ServiceStatus.parse(obs.status)
    ctx.emit("ServiceStatus", 1, name, status.value)
    ctx.emit("ServiceReady", 1 if obs.ready else 0, name)
    # Running time since the previous round, when running at both ends (a billing proxy:
    # Sum over a period ~ seconds the service ran in it).
    if (
        status is ServiceStatus.RUNNING
        and before.status is ServiceStatus.RUNNING
        and before.observed_at is not None
        and timedelta(0) < now - before.observed_at <= MAX_RUNNING_INTERVAL
    ):
        ctx.emit("RunningSeconds", (now - before.observed_at).total_seconds(), name)


def _execute(
    ctx: ControlContext,
    config: ServiceConfig,
    obs: ServiceObservation,
    record: ServiceRecord,
    decision: Decision,
) -> Outcome:
    if decision.action is Action.RESUME:
        # A pre-resume ahead of a predicted arrival: nothing waits, so the mappings stay
        # enabled and the lease is released at once (a caller arriving while it starts
        # waits for READY through ensure_ready like any other).
        predicted = decision.reason is Reason.PREDICTED_ARRIVAL
        owner = ctx.new_owner()
        started = start_resume(ctx, config, owner, decision.reason, pause=not predicted)
        if started is None:
            return Outcome.IN_PROGRESS
        if started and predicted:
            ctx.store.release_lease(config.name, owner)
        elif started:
            learn_arrival(ctx, config, ctx.clock())
        return Outcome.RESUMED if started else Outcome.SKIPPED
    if decision.action is Action.SUSPEND:
        ctx.services.suspend(config.service)
        ctx.store.record_suspend(config.name, ctx.clock())
        ctx.emit("Suspends", 1, config.name, decision.reason)
        return Outcome.SUSPENDED
    if decision.action is Action.FINISH_RESUME:
        finish_resume(ctx, config, record, observation=obs if obs.ready else None)
        return Outcome.FINISHED
    return Outcome.NONE if decision.action is Action.NONE else Outcome.WAITING
