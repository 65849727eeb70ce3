"""Lifecycle policy: when to resume, suspend or leave alone a managed SPCS service and its pool.

Pure: no I/O. The control function, the operator CLI, the benchmarks and the demo all decide
through these functions, so the rules live in exactly one place.

Conventions:
- instants are timezone-aware ``datetime`` values (UTC by convention; any zone compares right);
- durations are ``timedelta`` (except ``ServiceConfig.idle_seconds``, which comes from the
  registry as an int);
- every decision carries a ``Reason``: a stable, PHI-free code for logs and metrics.

Rules (docs/ARCHITECTURE.md, "Lifecycle"):
- A RUNNING service is suspended only when all of these hold: no resume lease is active, the
  depth of every queue that feeds it is known and zero (visible + in flight + delayed), no
  on-demand call is in flight, it is not inside (or within the lead time before) a warm window,
  it has been idle for its window (``now - idle_since >= idle_seconds``, where ``idle_since``
  is the latest of last activity, last resume and last observed status change), and it has been
  up at least its minimum uptime since our last resume: ``ServiceConfig.min_uptime_seconds``
  when the registry sets it, else ``LifecyclePolicy.min_uptime`` (``_min_uptime``).
- Hysteresis: a resume counts as activity, so a service woken by a late event stays up for at
  least ``max(idle_seconds, minimum uptime)``; it is not suspended again until its window passes
  anew. Resuming is never delayed: waiting work always wins.
- Scale-to-zero policy per service (``ServiceConfig.policy``). ``fixed``: the idle window
  above. ``adaptive`` (the default): once the hard rules above (lease, backlog, on-demand call,
  warm window) allow a suspend, ``adaptive.py``'s learned plan decides instead of the idle
  window: stay up for the keep-alive after the last activity and inside a pre-resume window;
  the minimum uptime applies only when the registry sets ``min_uptime_seconds``. The plan
  never idles longer than ``keep_alive_bounds`` allows.
- A SUSPENDED service is resumed when work waits for it (backlog or on-demand call), a warm
  window (with its lead time) is open, or (adaptive) a pre-resume window opens ahead of a
  predicted arrival (once per window).
- Transitional statuses are never fought: PENDING and SUSPENDING wait; FAILED is reported and
  left alone (no resume loop); a finished resume (RUNNING, containers READY, mappings still
  paused) is completed by whoever sees it first, lease or not (re-enabling is idempotent).
- A compute pool is suspended only when suspension is enabled for it, every managed service on
  it is SUSPENDED with no resume under way, and the pool itself says nothing runs on it
  (``SHOW COMPUTE POOLS`` ``num_services``: services and jobs of every owner, including those
  the gateway's role cannot see). Without that fact the pool is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from spcs_gateway import adaptive
from spcs_gateway.queues import QueueDepth
from spcs_gateway.registry import ServiceConfig, validate_cron
from spcs_gateway.service_record import (
    ServiceRecord,
    ServiceState,
    as_utc,
    can_take_lease,
    counter_day,
    take_lease,
)
from spcs_gateway.status import Observation, Observed, PoolStatus, ServiceStatus
from spcs_gateway.warm_windows import WarmSpan, active_warm_window, in_warm_window

# The policy's inputs, importable from here with the policy (``from spcs_gateway.lifecycle
# import ServiceRecord, ServiceStatus, Observed``); they live in status.py and service_record.py.
__all__ = [
    "DEFAULT_POLICY",
    "Action",
    "Backlog",
    "Decision",
    "IdleCountdown",
    "LifecyclePolicy",
    "Observation",
    "Observed",
    "PoolAction",
    "PoolDecision",
    "PoolStatus",
    "Reason",
    "ServiceRecord",
    "ServiceState",
    "ServiceStatus",
    "WarmSpan",
    "active_warm_window",
    "can_take_lease",
    "counter_day",
    "decide_pool",
    "decide_service",
    "idle_countdown",
    "in_warm_window",
    "keep_alive_bounds",
    "pool_needs_resume",
    "take_lease",
    "validate_cron",
]

# ---------------------------------------------------------------------------------------------
# Backlog


@dataclass(frozen=True, slots=True)
class Backlog:
    """Work waiting for one service. ``queues`` (``queues.QueueDepth``: visible, in flight,
    delayed; all count as waiting work) maps the logical queue names of
    ``ServiceConfig.queues`` to their depth; a configured queue missing here counts as unknown
    (never suspend on a guess). ``on_demand_in_flight`` is ``ServiceRecord.active_on_demand``."""

    queues: Mapping[str, QueueDepth] = field(default_factory=dict)
    on_demand_in_flight: int = 0

    @property
    def messages(self) -> int:
        return sum(q.total for q in self.queues.values())

    def unknown(self, queue_names: Iterable[str]) -> bool:
        return any(name not in self.queues for name in queue_names)


# ---------------------------------------------------------------------------------------------
# Decisions


class Action(StrEnum):
    NONE = "NONE"
    RESUME = "RESUME"  # (resume the pool if needed,) ALTER SERVICE ... RESUME
    SUSPEND = "SUSPEND"  # ALTER SERVICE ... SUSPEND
    # Re-enable the feeding event source mappings, clear mappings_paused, record READY.
    FINISH_RESUME = "FINISH_RESUME"
    WAIT = "WAIT"  # a transition is under way; issue nothing


class PoolAction(StrEnum):
    NONE = "NONE"
    RESUME = "RESUME"
    SUSPEND = "SUSPEND"
    WAIT = "WAIT"


class Reason(StrEnum):
    # service: why act / why not
    IDLE_WINDOW_ELAPSED = "idle_window_elapsed"
    IDLE_WINDOW_PENDING = "idle_window_pending"
    KEEP_ALIVE = "keep_alive"  # adaptive: inside the learned keep-alive after work
    PREDICTED_ARRIVAL = "predicted_arrival"  # adaptive: pre-resume window for a regular arrival
    HYSTERESIS = "hysteresis"
    BACKLOG = "backlog"
    BACKLOG_UNKNOWN = "backlog_unknown"
    IN_FLIGHT_ON_DEMAND = "in_flight_on_demand"
    WARM_WINDOW = "warm_window"
    LEASE_HELD = "lease_held"
    RESUME_IN_PROGRESS = "resume_in_progress"  # PENDING (or SUSPENDED) under an active lease
    RESUME_UNOWNED = "resume_unowned"  # PENDING with no active lease: finish once READY
    STARTING = "starting"  # RUNNING, containers not all READY
    RESUME_COMPLETE = "resume_complete"
    STALE_PAUSE = "stale_pause"  # mappings left paused on a suspended service with no work
    SUSPENDING = "suspending"
    SUSPENDED_IDLE = "suspended_idle"
    NOT_RUNNING = "not_running"
    SERVICE_FAILED = "service_failed"
    SERVICE_GONE = "service_gone"
    STATUS_UNKNOWN = "status_unknown"
    # pool
    SERVICE_RESUME = "service_resume"
    POOL_RUNNING = "pool_running"
    POOL_TRANSITION = "pool_transition"
    POOL_SUSPENDED = "pool_suspended"
    POOL_SUSPEND_DISABLED = "pool_suspend_disabled"
    NO_MANAGED_SERVICES = "no_managed_services"
    SERVICES_RUNNING = "services_running"
    POOL_RUNS_OTHER_WORK = "pool_runs_other_work"
    POOL_FACTS_UNKNOWN = "pool_facts_unknown"
    ALL_SERVICES_SUSPENDED = "all_services_suspended"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: Reason


@dataclass(frozen=True, slots=True)
class PoolDecision:
    action: PoolAction
    reason: Reason


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """Knobs shared by every service (per-service ones live in ServiceConfig)."""

    # Minimum time up after our resume. A resume costs minutes of start-up (model load), so
    # suspending sooner would spend more than it saves and invite resume/suspend loops.
    # The default for services whose registry entry leaves min_uptime_seconds unset.
    min_uptime: timedelta = timedelta(minutes=5)
    # Pre-resume this long before a warm window opens (covers start-up before clinic hours).
    warm_lead: timedelta = timedelta(minutes=15)


DEFAULT_POLICY = LifecyclePolicy()


@dataclass(frozen=True, slots=True)
class IdleCountdown:
    """For ``spcs-gateway status``: when the service becomes eligible for suspension.

    ``eligible_at``/``seconds`` are None while work blocks suspension (backlog, on-demand call,
    lease) or the service is not running; ``reason`` says which rule applies now.
    """

    reason: Reason
    eligible_at: datetime | None
    seconds: float | None


def _min_uptime(config: ServiceConfig, policy: LifecyclePolicy) -> timedelta:
    """The service's own minimum uptime when the registry sets one, else the policy's."""
    if config.min_uptime_seconds is not None:
        return timedelta(seconds=config.min_uptime_seconds)
    return policy.min_uptime


def _suspend_gate(
    config: ServiceConfig,
    state: ServiceRecord,
    backlog: Backlog,
    now: datetime,
    policy: LifecyclePolicy,
) -> tuple[Reason, datetime | None]:
    """The first rule that blocks suspending a running service (or IDLE_WINDOW_ELAPSED), and the
    earliest instant it may be suspended if nothing changes (None while work blocks it)."""
    if state.lease_active(now):
        return Reason.LEASE_HELD, None
    if backlog.unknown(config.queues):
        return Reason.BACKLOG_UNKNOWN, None
    if backlog.messages > 0:
        return Reason.BACKLOG, None
    if backlog.on_demand_in_flight > 0:
        return Reason.IN_FLIGHT_ON_DEMAND, None
    if config.policy == "adaptive":
        return _adaptive_gate(config, state, now, policy)
    idle_at = (state.idle_since() or now) + timedelta(seconds=config.idle_seconds)
    eligible_at = idle_at
    uptime_at = state.resumed_at + _min_uptime(config, policy) if state.resumed_at else None
    if uptime_at is not None:
        eligible_at = max(eligible_at, uptime_at)
    window = active_warm_window(config.warm_windows, now, policy.warm_lead)
    if window is not None:
        return Reason.WARM_WINDOW, max(eligible_at, window.end)
    if now < idle_at:
        return Reason.IDLE_WINDOW_PENDING, eligible_at
    if uptime_at is not None and now < uptime_at:
        return Reason.HYSTERESIS, eligible_at
    return Reason.IDLE_WINDOW_ELAPSED, eligible_at


def keep_alive_bounds(config: ServiceConfig) -> adaptive.Bounds:
    """The operator's bounds on an adaptive service's keep-alive (max: ``idle_seconds``)."""
    top = config.keep_alive_max_seconds
    return adaptive.Bounds(
        config.keep_alive_min_seconds, top if top is not None else config.idle_seconds
    )


def _anchor(state: ServiceRecord, now: datetime) -> datetime | None:
    """Start of the idle period for the adaptive plan: the last activity (or, for a service
    never seen working, the record's own idle start). A pre-resume is not activity. An anchor
    still in the future is a guess (an arrival plus the expected resume time) that what
    happened since overrides: the last activity or resume, whichever is later."""
    model = state.idle_model
    if model is None or model.last is None:
        return state.idle_since()
    last = datetime.fromtimestamp(model.last, tz=UTC)
    if last > now:
        marks = [t for t in (state.last_activity, state.resumed_at) if t is not None]
        return max(marks) if marks else now
    return max(last, state.last_activity) if state.last_activity else last


def _adaptive_gate(
    config: ServiceConfig, state: ServiceRecord, now: datetime, policy: LifecyclePolicy
) -> tuple[Reason, datetime | None]:
    plan = adaptive.current_plan(state.idle_model, keep_alive_bounds(config))
    anchor = _anchor(state, now) or now
    until = adaptive.hold_until(plan, anchor.timestamp(), now.timestamp())
    eligible_at = datetime.fromtimestamp(until, tz=UTC) if until is not None else now
    uptime_at = None
    if config.min_uptime_seconds is not None and state.resumed_at is not None:
        uptime_at = state.resumed_at + timedelta(seconds=config.min_uptime_seconds)
        eligible_at = max(eligible_at, uptime_at)
    window = active_warm_window(config.warm_windows, now, policy.warm_lead)
    if window is not None:
        return Reason.WARM_WINDOW, max(eligible_at, window.end)
    if until is not None:
        keeping = now < anchor + timedelta(seconds=plan.keep_alive)
        return (Reason.KEEP_ALIVE if keeping else Reason.PREDICTED_ARRIVAL), eligible_at
    if uptime_at is not None and now < uptime_at:
        return Reason.HYSTERESIS, eligible_at
    return Reason.IDLE_WINDOW_ELAPSED, eligible_at


def _resume_reason(
    config: ServiceConfig,
    backlog: Backlog,
    now: datetime,
    policy: LifecyclePolicy,
    state: ServiceRecord | None = None,
) -> Reason | None:
    if backlog.messages > 0:
        return Reason.BACKLOG
    if backlog.on_demand_in_flight > 0:
        return Reason.IN_FLIGHT_ON_DEMAND
    if active_warm_window(config.warm_windows, now, policy.warm_lead) is not None:
        return Reason.WARM_WINDOW
    if config.policy == "adaptive" and state is not None and state.idle_model is not None:
        model = state.idle_model
        anchor = _anchor(state, now)
        plan = adaptive.current_plan(model, keep_alive_bounds(config))
        resumed = state.resumed_at.timestamp() if state.resumed_at else None
        if anchor is not None and adaptive.pre_resume_due(
            plan, anchor.timestamp(), now.timestamp(), model.resume_s(), resumed
        ):
            return Reason.PREDICTED_ARRIVAL
    return None


_FAILED = frozenset({ServiceStatus.FAILED, ServiceStatus.INTERNAL_ERROR})
_GONE = frozenset({ServiceStatus.DONE, ServiceStatus.DELETING, ServiceStatus.DELETED})


def decide_service(
    config: ServiceConfig,
    state: ServiceRecord,
    observation: Observation,
    backlog: Backlog,
    now: datetime,
    policy: LifecyclePolicy = DEFAULT_POLICY,
) -> Decision:
    """What the control plane should do about one managed service now."""
    now = as_utc(now)
    status = ServiceStatus.parse(observation.status)
    if status is ServiceStatus.RUNNING:
        if observation.ready and state.mappings_paused:
            return Decision(Action.FINISH_RESUME, Reason.RESUME_COMPLETE)
        reason, _ = _suspend_gate(config, state, backlog, now, policy)
        if reason is Reason.IDLE_WINDOW_ELAPSED:
            return Decision(Action.SUSPEND, reason)
        if not observation.ready:
            return Decision(Action.WAIT, Reason.STARTING)
        return Decision(Action.NONE, reason)
    if status is ServiceStatus.SUSPENDED:
        if state.lease_active(now):
            # The lease holder has issued (or is about to issue) RESUME; the observation lags.
            return Decision(Action.WAIT, Reason.RESUME_IN_PROGRESS)
        wanted = _resume_reason(config, backlog, now, policy, state)
        if wanted is not None:
            return Decision(Action.RESUME, wanted)
        if state.mappings_paused:
            return Decision(Action.FINISH_RESUME, Reason.STALE_PAUSE)
        return Decision(Action.NONE, Reason.SUSPENDED_IDLE)
    if status is ServiceStatus.PENDING:
        if state.lease_active(now):
            return Decision(Action.WAIT, Reason.RESUME_IN_PROGRESS)
        return Decision(Action.WAIT, Reason.RESUME_UNOWNED)
    if status is ServiceStatus.SUSPENDING:
        return Decision(Action.WAIT, Reason.SUSPENDING)
    if status in _FAILED:
        return Decision(Action.NONE, Reason.SERVICE_FAILED)
    if status in _GONE:
        return Decision(Action.NONE, Reason.SERVICE_GONE)
    return Decision(Action.NONE, Reason.STATUS_UNKNOWN)


def idle_countdown(
    config: ServiceConfig,
    state: ServiceRecord,
    observation: Observation,
    backlog: Backlog,
    now: datetime,
    policy: LifecyclePolicy = DEFAULT_POLICY,
) -> IdleCountdown:
    """Seconds until the service becomes eligible for suspension, if nothing changes."""
    now = as_utc(now)
    if ServiceStatus.parse(observation.status) is not ServiceStatus.RUNNING:
        return IdleCountdown(Reason.NOT_RUNNING, None, None)
    reason, eligible_at = _suspend_gate(config, state, backlog, now, policy)
    if eligible_at is None:
        return IdleCountdown(reason, None, None)
    return IdleCountdown(reason, eligible_at, max((eligible_at - now).total_seconds(), 0.0))


# ---------------------------------------------------------------------------------------------
# Compute pools

_POOL_TRANSITIONS = frozenset({PoolStatus.STARTING, PoolStatus.STOPPING, PoolStatus.RESIZING})


def pool_needs_resume(pool_status: str) -> bool:
    """Resume the pool before resuming a service on it."""
    return PoolStatus.parse(pool_status) is PoolStatus.SUSPENDED


def decide_pool(
    pool_status: str,
    members: Sequence[tuple[Observation, ServiceRecord]],
    now: datetime,
    *,
    resume_requested: bool = False,
    running_on_pool: int | None = None,
    suspend_when_idle: bool = True,
) -> PoolDecision:
    """What to do about one compute pool named in the registry.

    ``members``: the managed services on the pool (observation and state). ``resume_requested``:
    some member's decision this round is RESUME. ``running_on_pool``: services and jobs running
    on the pool, every owner's (``num_services``); suspending the pool would stop them, and the
    gateway's role may not see them, so anything running keeps the pool up and an unknown count
    never suspends it. ``suspend_when_idle``: per-pool switch (default on).
    """
    now = as_utc(now)
    pool_status = PoolStatus.parse(pool_status)
    if pool_status in _POOL_TRANSITIONS:
        return PoolDecision(PoolAction.WAIT, Reason.POOL_TRANSITION)
    if pool_status is PoolStatus.UNKNOWN:
        return PoolDecision(PoolAction.NONE, Reason.STATUS_UNKNOWN)
    if resume_requested:
        if pool_needs_resume(pool_status):
            return PoolDecision(PoolAction.RESUME, Reason.SERVICE_RESUME)
        return PoolDecision(PoolAction.NONE, Reason.POOL_RUNNING)
    if pool_status is PoolStatus.SUSPENDED:
        return PoolDecision(PoolAction.NONE, Reason.POOL_SUSPENDED)
    if not suspend_when_idle:
        return PoolDecision(PoolAction.NONE, Reason.POOL_SUSPEND_DISABLED)
    if not members:
        return PoolDecision(PoolAction.NONE, Reason.NO_MANAGED_SERVICES)
    if any(state.lease_active(now) for _, state in members):
        return PoolDecision(PoolAction.NONE, Reason.LEASE_HELD)
    if any(ServiceStatus.parse(obs.status) is not ServiceStatus.SUSPENDED for obs, _ in members):
        return PoolDecision(PoolAction.NONE, Reason.SERVICES_RUNNING)
    if running_on_pool is None:
        return PoolDecision(PoolAction.NONE, Reason.POOL_FACTS_UNKNOWN)
    if running_on_pool > 0:
        return PoolDecision(PoolAction.NONE, Reason.POOL_RUNS_OTHER_WORK)
    return PoolDecision(PoolAction.SUSPEND, Reason.ALL_SERVICES_SUSPENDED)
