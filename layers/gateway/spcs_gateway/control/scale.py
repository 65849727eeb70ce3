"""Instance counts: a round's backlog-driven scaling and the operator's manual scale.

``scaling.decide_scale`` decides; this module gathers its inputs (Snowflake's observation, the
service's record, the backlog), carries the decision out with ``SpcsServices.scale``
(``ALTER SERVICE ... SET MIN_INSTANCES = n MAX_INSTANCES = n``: the gateway pins the count, so
SPCS's own CPU autoscaling does not move it), records it (``StateStore.record_scale``) and
emits ``ScaleOut`` / ``ScaleIn`` (reason) and ``Instances``. It also keeps the feeding event
source mappings' ``MaximumConcurrency`` at ready instances x
``ServiceConfig.mapping_concurrency_per_instance``, so more instances get more requests.

Only a service whose registry range allows more than one instance is touched: a 1..1 service
is neither scaled nor has its mappings' concurrency changed.

Order with the lifecycle (``reconcile.py``): scaling runs before the lifecycle's action. When
the lifecycle suspends a service that runs more than its minimum, the count is set to the
minimum first, in the same round, and then the SUSPEND is issued (``scaling.BEFORE_SUSPEND``):
a later resume then starts the minimum, not the last burst's count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from spcs_gateway import adaptive
from spcs_gateway.control.context import ControlContext
from spcs_gateway.control.ports import CALL_ERRORS, call_error_code
from spcs_gateway.control.results import ControlCode, ControlResult, Outcome
from spcs_gateway.lifecycle import Backlog
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.scaling import (
    ScaleAction,
    ScaleDecision,
    ScaleInputs,
    ScaleReason,
    decide_scale,
    learn_rate,
)
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import ServiceObservation, ServiceStatus

# A backlog sample older than this says nothing about the trend (the schedule was off).
MAX_SAMPLE_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class ScaleRound:
    decision: ScaleDecision
    code: str | None = None  # a Snowflake or AWS call failed


def scalable(config: ServiceConfig) -> bool:
    return config.max_instances > 1


def allowed_range(config: ServiceConfig, record: ServiceRecord) -> tuple[int, int]:
    """The registry's range, narrowed by the operator's manual range when one is set."""
    low, high = config.min_instances, config.max_instances
    if record.manual_min is not None and record.manual_max is not None:
        low = min(max(record.manual_min, low), high)
        high = max(min(record.manual_max, high), low)
    return low, high


def current_count(config: ServiceConfig, record: ServiceRecord, obs: ServiceObservation) -> int:
    """What Snowflake was told to run: SHOW SERVICES min_instances, else our record, else the
    instances seen, else the registry minimum."""
    for value in (obs.min_instances, record.instances, obs.instances_total or None):
        if value:
            return value
    return config.min_instances


def scale_round(
    ctx: ControlContext,
    config: ServiceConfig,
    record: ServiceRecord,
    obs: ServiceObservation,
    backlog: Backlog,
    *,
    suspending: bool,
    now: datetime,
) -> ScaleRound | None:
    """Decide and apply this round's count; None when the service is not scalable."""
    if not scalable(config):
        return None
    running = ServiceStatus.parse(obs.status) is ServiceStatus.RUNNING
    current = current_count(config, record, obs)
    if backlog.unknown(config.queues) and not suspending:
        return ScaleRound(ScaleDecision(ScaleAction.NONE, ScaleReason.BACKLOG_UNKNOWN, current))
    messages = backlog.messages
    elapsed = _elapsed(record, now)
    trend = 0.0 if elapsed is None else (messages - (record.backlog or 0)) / elapsed
    rate = record.rate
    if elapsed is not None and running:
        rate = learn_rate(rate, record.backlog or 0, messages, elapsed, obs.instances_ready)
    low, high = allowed_range(config, record)
    inputs = ScaleInputs(
        running=running,
        current=current,
        ready=obs.instances_ready,
        low=low,
        high=high,
        backlog=messages,
        in_flight=sum(d.in_flight for d in backlog.queues.values()),
        per_instance_in_flight=config.max_batch_rows * config.max_concurrency,
        rate=rate,
        load_s=(record.idle_model or adaptive.IdleModel()).resume_s(),
        drain_target_s=config.drain_target_seconds,
        trend_per_s=trend,
        last_change_at=record.scaled_at,
        suspending=suspending,
    )
    decision = decide_scale(inputs, now, ctx.scaling)
    try:
        ctx.store.record_backlog(config.name, messages, rate, now)
        if decision.action is not ScaleAction.NONE:
            apply_count(
                ctx, config, current, decision.instances, decision.instances, decision.reason, now
            )
        if running and not suspending and not record.mappings_paused:
            follow_ready(ctx, config, obs.instances_ready)
        elif suspending:
            # The next resume starts ``low`` instances: its mappings must not come back at the
            # last burst's concurrency.
            follow_ready(ctx, config, low)
    except CALL_ERRORS as exc:
        code = call_error_code(exc)
        ctx.warn("scale failed", service_name=config.name, error_code=code)
        ctx.emit("ReconcileErrors", 1, config.name, code)
        return ScaleRound(decision, code)
    return ScaleRound(decision)


def apply_count(
    ctx: ControlContext,
    config: ServiceConfig,
    current: int,
    low: int,
    high: int,
    reason: ScaleReason,
    now: datetime,
) -> None:
    """ALTER SERVICE ... SET MIN_INSTANCES = low MAX_INSTANCES = high, recorded and counted
    (``ScaleOut`` / ``ScaleIn`` against ``current``, the count Snowflake was told before)."""
    ctx.services.scale(config.service, low, high)
    ctx.store.record_scale(config.name, low, reason.value, now)
    if low != current:
        ctx.emit("ScaleIn" if low < current else "ScaleOut", 1, config.name, reason.value)
    ctx.emit("Instances", low, config.name)
    ctx.info("scaled", service_name=config.name, instances=low, reason=reason.value)


def mapping_concurrency(config: ServiceConfig, ready: int, caps: Mapping[str, int]) -> int:
    """Ready instances (at least one) x the per-instance share, never above what the feeding
    routers may run at once (``ControlSettings.queue_max_concurrency``): a mapping allowed more
    than its function's reserved concurrency is throttled, and every throttle spends a receive
    on the way to the DLQ."""
    target = max(ready, 1) * config.mapping_concurrency_per_instance
    limits = [caps[q] for q in config.queues if q in caps]
    return min([target, *limits])


def follow_ready(ctx: ControlContext, config: ServiceConfig, ready: int) -> int:
    """Set the feeding mappings' MaximumConcurrency from the ready instances."""
    target = mapping_concurrency(config, ready, ctx.settings.queue_max_concurrency)
    return ctx.mappings.set_concurrency(config.queues, target)


def manual_scale(ctx: ControlContext, name: str, low: int, high: int) -> ControlResult:
    """The operator's ``scale``: set ``low..high`` (within the registry's range) on the service
    now, and keep the backlog-driven policy inside it until the operator changes it."""
    config = ctx.config(name)
    if config is None:
        return ControlResult(name, Outcome.UNKNOWN_SERVICE, code=ControlCode.UNKNOWN_SERVICE.value)
    if not config.min_instances <= low <= high <= config.max_instances:
        return ControlResult(name, Outcome.REFUSED, code=ControlCode.OUT_OF_RANGE.value)
    now = ctx.clock()
    try:
        obs = ctx.services.observe(config.service)
        current = current_count(config, ctx.store.get(config.name), obs)
        # The range first: a round that reads it after the ALTER keeps inside it. The
        # registry's whole range is no narrowing: it is forgotten, back to the policy alone.
        whole = (low, high) == (config.min_instances, config.max_instances)
        ctx.store.set_manual_range(config.name, None if whole else low, None if whole else high)
        apply_count(ctx, config, current, low, high, ScaleReason.MANUAL, now)
    except CALL_ERRORS as exc:
        code = call_error_code(exc)
        ctx.warn("manual scale failed", service_name=name, error_code=code)
        return ControlResult(name, Outcome.ERROR, code=code)
    return ControlResult(
        name,
        Outcome.SCALED,
        status=obs.status,
        ready=obs.ready,
        reason=ScaleReason.MANUAL.value,
        min_instances=low,
        max_instances=high,
    )


def _elapsed(record: ServiceRecord, now: datetime) -> float | None:
    if record.backlog_at is None or record.backlog is None:
        return None
    seconds = (now - record.backlog_at).total_seconds()
    return seconds if 0 < seconds <= MAX_SAMPLE_AGE.total_seconds() else None
