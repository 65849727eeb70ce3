"""What the control plane records about one managed service, and the resume lease rule.

``ServiceRecord`` is one item of the service-state table (``service_state.ServiceStateStore``
in DynamoDB, ``control.memory.MemoryStateStore`` in memory): the last observed Snowflake status
(``status.ServiceStatus``), activity, our last resume and suspend, the resume lease, whether the
feeding event source mappings are paused, the on-demand counter, resume/suspend counters, the
adaptive policy's learned idle gaps and resume times (``adaptive.IdleModel``) and the scaling
policy's last decision and learned rate (``scaling.py``). Names, statuses,
timestamps, durations and counters only: never PHI.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from spcs_gateway.adaptive import IdleModel
from spcs_gateway.status import ServiceStatus


def as_utc(now: datetime) -> datetime:
    """``now`` in UTC; a naive datetime is refused.

    Arithmetic on datetimes sharing a ZoneInfo is wall-clock arithmetic; in UTC it is elapsed.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now if now.tzinfo is UTC else now.astimezone(UTC)


def counter_day(now: datetime) -> str:
    """The UTC calendar day that daily counters ("resumes today") belong to."""
    return now.astimezone(UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    name: str
    status: ServiceStatus = ServiceStatus.UNKNOWN  # last recorded observation
    ready: bool = False
    observed_at: datetime | None = None
    last_transition_at: datetime | None = None  # last time the recorded status changed
    last_activity: datetime | None = None  # routers / API, throttled per container
    resumed_at: datetime | None = None  # our last RESUME
    suspended_at: datetime | None = None  # our last SUSPEND
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    mappings_paused: bool = False  # ensure_ready paused the feeding event source mappings
    on_demand_in_flight: int = 0
    on_demand_expires_at: datetime | None = None  # counter is ignored after this instant
    resumes: int = 0
    suspends: int = 0
    counter_day: str | None = None  # UTC day of resumes_today / suspends_today
    resumes_today: int = 0
    suspends_today: int = 0
    idle_model: IdleModel | None = None  # adaptive policy: learned gaps, resume times, plan
    # Scaling (scaling.py): the instance count last set (MIN = MAX), when and why; an
    # operator's manual range (None: the registry's); the learned rows/s per ready instance;
    # the backlog the last round saw (its trend and the rate are measured against it).
    instances: int | None = None
    scaled_at: datetime | None = None
    scale_reason: str | None = None
    manual_min: int | None = None
    manual_max: int | None = None
    rate: float | None = None
    backlog: int | None = None
    backlog_at: datetime | None = None

    def lease_active(self, now: datetime) -> bool:
        return (
            self.lease_owner is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )

    def idle_since(self) -> datetime | None:
        """Start of the current idle period: latest activity, resume or status change."""
        marks = [t for t in (self.last_activity, self.resumed_at, self.last_transition_at) if t]
        return max(marks) if marks else None

    def active_on_demand(self, now: datetime) -> int:
        """In-flight on-demand calls, or 0 once the safeguard expiry has passed (a caller that
        crashed between begin and end must not block suspension forever)."""
        if self.on_demand_expires_at is None or self.on_demand_expires_at <= now:
            return 0
        return max(self.on_demand_in_flight, 0)

    def daily_counts(self, now: datetime) -> tuple[int, int]:
        """(resumes, suspends) on the UTC day of ``now``."""
        if self.counter_day != counter_day(now):
            return (0, 0)
        return (self.resumes_today, self.suspends_today)


# Former name, kept for importers (``from spcs_gateway.lifecycle import ServiceState``).
ServiceState = ServiceRecord


# ---------------------------------------------------------------------------------------------
# Leases (both stores' conditional writes mirror can_take_lease exactly)


def can_take_lease(state: ServiceRecord, owner: str, now: datetime) -> bool:
    """No lease, an expired lease (expiry <= now), or the same owner renewing."""
    now = as_utc(now)
    return (
        state.lease_owner is None
        or state.lease_expires_at is None
        or state.lease_expires_at <= now
        or state.lease_owner == owner
    )


def take_lease(
    state: ServiceRecord, owner: str, now: datetime, ttl: timedelta
) -> ServiceRecord | None:
    """The record after ``owner`` takes the lease, or None when someone else holds it."""
    now = as_utc(now)
    if not can_take_lease(state, owner, now):
        return None
    return replace(state, lease_owner=owner, lease_expires_at=now + ttl)
