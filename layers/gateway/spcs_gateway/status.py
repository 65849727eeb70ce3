"""What Snowflake reports about a managed service or compute pool, right now.

Three notions are kept apart by name across the library:

- ``ServiceStatus`` (here): Snowflake's status of a service (``SHOW SERVICES``), an enum;
- ``service_record.ServiceRecord``: what the control plane recorded about a service (one
  DynamoDB item: last observed status, activity, lease, counters);
- ``control.ServiceOverview``: one row of ``spcs-gateway status`` / ``GET /v1/services``,
  built from both plus the queue backlog.

``Observation`` is what the lifecycle policy needs from an observation (status and readiness);
``ServiceObservation`` (what ``spcs_services`` reads through SQL, and what the in-memory
adapter returns) and the plain ``Observed`` value both satisfy it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

_Status = TypeVar("_Status", bound=StrEnum)


def _parse_status(kind: type[_Status], value: str | None, unknown: _Status) -> _Status:
    """A status string as Snowflake prints it (any case); unknown or empty -> ``unknown``."""
    if isinstance(value, kind):
        return value
    if not value:
        return unknown
    try:
        return kind(value.strip().upper())
    except ValueError:
        return unknown


class ServiceStatus(StrEnum):
    """Service status as SHOW SERVICES / SYSTEM$GET_SERVICE_STATUS report it
    (docs/SNOWFLAKE_FACTS.md)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    DONE = "DONE"
    SUSPENDING = "SUSPENDING"
    SUSPENDED = "SUSPENDED"
    DELETING = "DELETING"
    DELETED = "DELETED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UNKNOWN = "UNKNOWN"  # not observed, or a value this code does not know

    @classmethod
    def parse(cls, value: str | None) -> ServiceStatus:
        return _parse_status(cls, value, cls.UNKNOWN)


class PoolStatus(StrEnum):
    """Compute pool state (SHOW COMPUTE POOLS)."""

    STARTING = "STARTING"
    ACTIVE = "ACTIVE"
    IDLE = "IDLE"
    SUSPENDED = "SUSPENDED"
    STOPPING = "STOPPING"
    RESIZING = "RESIZING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: str | None) -> PoolStatus:
        return _parse_status(cls, value, cls.UNKNOWN)


class Observation(Protocol):
    """What the lifecycle policy needs to know about one service now."""

    @property
    def status(self) -> str: ...  # SHOW SERVICES status (any case; unknown -> UNKNOWN)

    @property
    def ready(self) -> bool: ...  # RUNNING and every container READY


@dataclass(frozen=True, slots=True)
class Observed:
    """A plain ``Observation`` (tests, and wherever only status and readiness are known)."""

    status: str
    ready: bool = False

    @classmethod
    def of(cls, status: str | None, container_statuses: Iterable[str] = ()) -> Observed:
        """From SHOW SERVICES ``status`` and SHOW SERVICE CONTAINERS ``status`` values."""
        parsed = ServiceStatus.parse(status)
        containers = [c.strip().upper() for c in container_statuses]
        ready = parsed is ServiceStatus.RUNNING and bool(containers)
        return cls(parsed, ready and all(c == "READY" for c in containers))


@dataclass(frozen=True)
class ServiceObservation:
    """One managed service as Snowflake shows it (ids and status strings only)."""

    fqn: str
    status: str  # Snowflake service status: PENDING, RUNNING, SUSPENDED, ...
    compute_pool: str | None
    instances_ready: int
    instances_total: int
    # SHOW SERVICES min_instances / max_instances (None: the column was not there).
    min_instances: int | None = None
    max_instances: int | None = None

    @property
    def ready(self) -> bool:
        return (
            self.status == ServiceStatus.RUNNING
            and self.instances_total > 0
            and self.instances_ready == self.instances_total
        )


@dataclass(frozen=True)
class PoolObservation:
    name: str
    state: str  # STARTING, ACTIVE, IDLE, SUSPENDED, ...
    # Services and jobs running on the pool, all owners (None: the column was not there).
    running: int | None = None
