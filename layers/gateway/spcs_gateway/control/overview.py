"""``status``: one ``ServiceOverview`` per managed service (the CLI's table, the API's
``GET /v1/services``). Observes and reads; never changes anything."""

from __future__ import annotations

from collections.abc import Iterable

from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.control.results import ServiceOverview, UnknownServiceError
from spcs_gateway.lifecycle import idle_countdown
from spcs_gateway.status import Observation, Observed, ServiceObservation, ServiceStatus


def overview(ctx: ControlContext, names: Iterable[str] | None = None) -> list[ServiceOverview]:
    """Every registry service, or the ``names`` asked for (``UnknownServiceError`` if any is
    not in the registry). A service that cannot be observed shows UNKNOWN with its code."""
    configs = list(ctx.registry.services)
    if names is not None:
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if ctx.config(n) is None]
        if unknown:
            raise UnknownServiceError(unknown)
        configs = [c for c in configs if c.name in wanted]
    now = ctx.clock()
    records = ctx.store.get_all([c.name for c in configs])
    rows: list[ServiceOverview] = []
    for config in configs:
        record = records[config.name]
        code: str | None = None
        obs: Observation
        seen: ServiceObservation | None = None
        try:
            obs = seen = ctx.services.observe(config.service)
        except CALL_ERRORS as exc:
            obs, code = Observed(ServiceStatus.UNKNOWN.value), call_error_code(exc)
        backlog = ctx.work_for(config, record, now)
        countdown = idle_countdown(config, record, obs, backlog, now, ctx.settings.policy)
        resumes_today, suspends_today = record.daily_counts(now)
        known = not backlog.unknown(config.queues)
        rows.append(
            ServiceOverview(
                name=config.name,
                service=config.service,
                compute_pool=config.compute_pool,
                status=str(ServiceStatus.parse(obs.status).value),
                ready=obs.ready,
                last_activity=record.last_activity,
                idle_countdown_s=countdown.seconds,
                idle_reason=countdown.reason.value,
                resumes_today=resumes_today,
                suspends_today=suspends_today,
                mappings_paused=record.mappings_paused,
                lease_held=record.lease_active(now),
                backlog=backlog.messages if known else None,
                on_demand=backlog.on_demand_in_flight,
                code=code,
                instances=seen.instances_total if seen else 0,
                instances_ready=seen.instances_ready if seen else 0,
                min_instances=seen.min_instances if seen else None,
                max_instances=seen.max_instances if seen else None,
            )
        )
    return rows
