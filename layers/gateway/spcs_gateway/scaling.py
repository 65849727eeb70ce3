"""Scaling policy: how many instances a running SPCS service should run, from its backlog.

Pure: no I/O, the clock comes in as ``now``. ``lifecycle.py`` decides whether a service runs at
all; this module decides how many instances it runs while it does. The control round consults
both (``control/scale.py`` carries the decision out with ``ALTER SERVICE ... SET
MIN_INSTANCES = n MAX_INSTANCES = n``). Every decision carries a ``ScaleReason``: a stable,
PHI-free code for logs and metrics.

Rules:

- **Work.** The backlog is every message waiting or in flight on the service's queues
  (``lifecycle.Backlog``), plus what its trend adds over the drain target: the backlog's rise
  per second since the previous round (only a rise counts) times the target.
- **Need.** Each ready instance serves ``rate`` rows per second (learned, ``learn_rate``; a
  prior until measured). Instances already up serve the whole drain target; a new instance
  only after the model-load time (``load_s``: the service's learned resume time), so adding one
  buys ``rate * (target - load)`` rows, and at least a quarter of the target's worth when the
  load takes longer than the target. The need is the fewest instances that clear the work.
- **Scale out quickly**: as soon as the need exceeds the current count, after a short cooldown
  (``out_cooldown``) since the last change, straight to the need (clamped to the range).
- **Scale in slowly**: only after ``in_cooldown`` since the last change (a stabilisation
  window, as Kubernetes' HPA keeps one), only while no instance is still loading, and only to
  the need with ``in_headroom`` added (hysteresis: a count is not given up for a need that
  would bring it back); then straight there, never below what in-flight work needs.
- **Never below what in-flight work needs**: messages already in flight need
  ``ceil(in_flight / per_instance_in_flight)`` instances to finish where they are.
- **Bounds**: the registry's ``min_instances..max_instances``, narrowed by an operator's manual
  range (``spcs-gateway scale``) until the operator changes it.
- **Scale in before suspending**: when the lifecycle policy suspends a service that runs more
  than its minimum, the count drops to the minimum in the same round, before the SUSPEND, so
  the next resume starts the minimum and not the burst's count.
- Only a RUNNING service is scaled; a service that is starting, stopping or suspended keeps
  its count (a change would apply on its next resume anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from spcs_gateway.service_record import as_utc

__all__ = [
    "DEFAULT_POLICY",
    "ScaleAction",
    "ScaleDecision",
    "ScaleInputs",
    "ScaleReason",
    "ScalingPolicy",
    "decide_scale",
    "instances_needed",
    "learn_rate",
]


class ScaleAction(StrEnum):
    NONE = "NONE"
    SCALE_OUT = "SCALE_OUT"
    SCALE_IN = "SCALE_IN"


class ScaleReason(StrEnum):
    BACKLOG = "backlog"  # out: the backlog needs more instances to clear within the target
    BACKLOG_FALLING = "backlog_falling"  # in: fewer instances clear what is left
    BEFORE_SUSPEND = "before_suspend"  # in: to the minimum before the lifecycle's SUSPEND
    OUT_OF_RANGE = "out_of_range"  # the count is outside the allowed range: brought back in
    AT_NEED = "at_need"  # none: the count matches the need
    AT_MAX = "at_max"  # none: more are needed but the range's maximum runs
    OUT_COOLDOWN = "out_cooldown"  # none: more are needed, a change was made moments ago
    IN_COOLDOWN = "in_cooldown"  # none: fewer would do, but the last change is too recent
    HYSTERESIS = "hysteresis"  # none: fewer would do, but not with the headroom
    IN_FLIGHT = "in_flight"  # none: in-flight work holds the instances it is on
    LOADING = "loading"  # none: instances are still loading the model
    NOT_RUNNING = "not_running"  # none: only a RUNNING service is scaled
    BACKLOG_UNKNOWN = "backlog_unknown"  # none: a queue's depth could not be read
    MANUAL = "manual"  # an operator's scale command


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Knobs shared by every service (the range and drain target are per service)."""

    out_cooldown: timedelta = timedelta(seconds=60)
    in_cooldown: timedelta = timedelta(minutes=5)
    # Scale in only when the remaining instances would clear (1 + headroom) x the work.
    in_headroom: float = 0.5
    # Rows per second one ready instance serves, until the service's own rate is measured.
    prior_rate: float = 2.0
    # Weight of a new rate sample in the learned rate (exponential moving average).
    rate_weight: float = 0.3
    # A rate is learned only while the backlog stays at least this large (the service busy).
    rate_min_backlog: int = 20


DEFAULT_POLICY = ScalingPolicy()


@dataclass(frozen=True, slots=True)
class ScaleInputs:
    """One service, now. Counts are instances; work is messages (one row each)."""

    running: bool  # Snowflake status RUNNING
    current: int  # the count we (or the operator) last set; Snowflake's current count if none
    ready: int  # instances READY now
    low: int  # allowed range (registry, narrowed by an operator's manual range)
    high: int
    backlog: int  # visible + in flight + delayed
    in_flight: int
    per_instance_in_flight: int  # messages one instance holds in flight (batch x concurrency)
    rate: float | None  # learned rows/s per ready instance; None: the policy's prior
    load_s: float  # model-load time of a new instance
    drain_target_s: float
    trend_per_s: float = 0.0  # backlog change per second since the previous round
    last_change_at: datetime | None = None
    suspending: bool = False  # the lifecycle policy suspends the service this round


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    action: ScaleAction
    reason: ScaleReason
    instances: int  # the count to set (the current count when action is NONE)
    need: int = 0  # what the backlog needs, before the range and the rules


def instances_needed(
    work: float, rate: float, target_s: float, load_s: float, up: int, *, headroom: float = 0.0
) -> int:
    """The fewest instances that clear ``work`` (x (1 + headroom)) within ``target_s``, when
    ``up`` instances serve from now and new ones only after ``load_s``."""
    if work <= 0:
        return 0
    work *= 1.0 + headroom
    per_instance = rate * target_s
    if up * per_instance >= work:
        return max(math.ceil(work / per_instance - 1e-9), 1)
    per_new = rate * max(target_s - load_s, target_s / 4)
    return up + math.ceil((work - up * per_instance) / per_new - 1e-9)


def decide_scale(
    inputs: ScaleInputs, now: datetime, policy: ScalingPolicy = DEFAULT_POLICY
) -> ScaleDecision:
    """How many instances the service should run (module docstring)."""
    now = as_utc(now)
    current, low, high = inputs.current, inputs.low, max(inputs.high, inputs.low)
    if not inputs.running:
        return ScaleDecision(ScaleAction.NONE, ScaleReason.NOT_RUNNING, current)
    if inputs.suspending:
        if current > low:
            return ScaleDecision(ScaleAction.SCALE_IN, ScaleReason.BEFORE_SUSPEND, low)
        return ScaleDecision(ScaleAction.NONE, ScaleReason.AT_NEED, current)
    if current < low or current > high:
        target = min(max(current, low), high)
        action = ScaleAction.SCALE_OUT if target > current else ScaleAction.SCALE_IN
        return ScaleDecision(action, ScaleReason.OUT_OF_RANGE, target)
    rate = inputs.rate if inputs.rate and inputs.rate > 0 else policy.prior_rate
    target_s = float(inputs.drain_target_s)
    work = inputs.backlog + max(inputs.trend_per_s, 0.0) * target_s
    need = instances_needed(work, rate, target_s, inputs.load_s, current)
    floor = math.ceil(inputs.in_flight / max(inputs.per_instance_in_flight, 1))
    since = None if inputs.last_change_at is None else now - inputs.last_change_at
    if need > current:
        if current >= high:
            return ScaleDecision(ScaleAction.NONE, ScaleReason.AT_MAX, current, need)
        if since is not None and since < policy.out_cooldown:
            return ScaleDecision(ScaleAction.NONE, ScaleReason.OUT_COOLDOWN, current, need)
        return ScaleDecision(ScaleAction.SCALE_OUT, ScaleReason.BACKLOG, min(need, high), need)
    if current <= low or need >= current:
        return ScaleDecision(ScaleAction.NONE, ScaleReason.AT_NEED, current, need)
    # Fewer would do: the slow path.
    if inputs.ready < current:
        return ScaleDecision(ScaleAction.NONE, ScaleReason.LOADING, current, need)
    if since is not None and since < policy.in_cooldown:
        return ScaleDecision(ScaleAction.NONE, ScaleReason.IN_COOLDOWN, current, need)
    with_headroom = instances_needed(
        work, rate, target_s, inputs.load_s, current, headroom=policy.in_headroom
    )
    if with_headroom >= current:
        return ScaleDecision(ScaleAction.NONE, ScaleReason.HYSTERESIS, current, need)
    target = max(with_headroom, low)
    if floor >= current:
        return ScaleDecision(ScaleAction.NONE, ScaleReason.IN_FLIGHT, current, need)
    return ScaleDecision(
        ScaleAction.SCALE_IN, ScaleReason.BACKLOG_FALLING, max(target, floor), need
    )


def learn_rate(
    previous: float | None,
    backlog_before: int,
    backlog_now: int,
    elapsed_s: float,
    ready: int,
    policy: ScalingPolicy = DEFAULT_POLICY,
) -> float | None:
    """The learned rows/s per ready instance after a round, or ``previous`` unchanged.

    Only a busy interval teaches (the backlog at least ``rate_min_backlog`` at both ends, some
    instance ready): then the instances ran flat out, and the backlog's fall is what they
    served minus what arrived, a lower bound of their rate. A sample below the current estimate
    therefore moves it a third as much as one above it (arrivals explain a low sample as well
    as a slower service does). A rising backlog teaches nothing.
    """
    if elapsed_s <= 0 or ready <= 0:
        return previous
    if min(backlog_before, backlog_now) < policy.rate_min_backlog or backlog_now >= backlog_before:
        return previous
    sample = (backlog_before - backlog_now) / elapsed_s / ready
    if previous is None:
        return sample
    weight = policy.rate_weight if sample >= previous else policy.rate_weight / 3
    return previous + weight * (sample - previous)
