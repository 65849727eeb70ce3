"""The operator's suspend (``spcs-gateway suspend``, ``POST /v1/services/{name}/suspend``).

Refused while work waits (backlog, unknown backlog, an on-demand call, a resume under way)
unless forced: the policy's own suspend gate decides, asked as if the service were running.
The idle window is the operator's call.
"""

from __future__ import annotations

from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.control.results import ControlCode, ControlResult, Outcome, SuspendTrigger
from spcs_gateway.lifecycle import Reason, idle_countdown
from spcs_gateway.status import Observed, ServiceObservation, ServiceStatus

# idle_countdown reasons that make a manual suspend refuse (without force).
SUSPEND_BLOCKERS: dict[Reason, ControlCode] = {
    Reason.LEASE_HELD: ControlCode.RESUME_IN_PROGRESS,
    Reason.BACKLOG_UNKNOWN: ControlCode.BACKLOG_UNKNOWN,
    Reason.BACKLOG: ControlCode.BACKLOG,
    Reason.IN_FLIGHT_ON_DEMAND: ControlCode.ON_DEMAND_IN_FLIGHT,
}


def suspend(ctx: ControlContext, name: str, *, force: bool = False) -> ControlResult:
    config = ctx.config(name)
    if config is None:
        return ControlResult(name, Outcome.UNKNOWN_SERVICE, code=ControlCode.UNKNOWN_SERVICE)
    obs: ServiceObservation | None = None
    try:
        now = ctx.clock()
        obs = ctx.services.observe(config.service)
        status = ServiceStatus.parse(obs.status)
        if status in (ServiceStatus.SUSPENDED, ServiceStatus.SUSPENDING):
            return ControlResult(name, Outcome.ALREADY_SUSPENDED, obs.status, obs.ready)
        if not force:
            record = ctx.store.get(name)
            backlog = ctx.work_for(config, record, now)
            # The policy's own suspend gate, asked as if the service were running: work
            # that blocks an idle suspension also blocks a manual one.
            running = Observed(ServiceStatus.RUNNING, True)
            gate = idle_countdown(config, record, running, backlog, now, ctx.settings.policy)
            if gate.reason in SUSPEND_BLOCKERS:
                return ControlResult(
                    name,
                    Outcome.REFUSED,
                    obs.status,
                    obs.ready,
                    reason=gate.reason.value,
                    code=SUSPEND_BLOCKERS[gate.reason],
                )
        ctx.services.suspend(config.service)
        ctx.store.record_suspend(name, now)
    except CALL_ERRORS as exc:
        return ControlResult(
            name,
            Outcome.ERROR,
            obs.status if obs else None,
            bool(obs and obs.ready),
            code=call_error_code(exc),
        )
    trigger = SuspendTrigger.FORCED if force else SuspendTrigger.MANUAL
    ctx.emit("Suspends", 1, name, trigger)
    ctx.info("service suspend issued", service_name=name, reason=trigger.value)
    return ControlResult(name, Outcome.SUSPENDED, obs.status, obs.ready, reason=trigger.value)
