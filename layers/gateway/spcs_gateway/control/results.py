"""What the control plane answers, and its JSON: one outcome vocabulary for every answer.

``ControlResult`` answers ``ensure_ready`` and ``suspend``; ``ReconcileReport`` (one
``ServiceRound`` per service, one ``PoolRound`` per pool) answers ``reconcile``;
``ServiceOverview`` is one row of ``status``. Every field is a name, a status, a reason or error
code, a count or a time: never PHI. ``as_dict`` is the JSON the control function returns (its
contract is in ``control_invoke.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What a call did about one service (``ControlResult.outcome``, ``ServiceRound.outcome``,
    and the ``outcome`` metric dimension of ``EnsureReady``)."""

    # ensure_ready / suspend
    READY = "ready"  # RUNNING, every container READY; mappings enabled
    RESUMING = "resuming"  # our RESUME was issued; not READY within the budget (reconcile ends it)
    IN_PROGRESS = "in_progress"  # another caller holds the resume lease
    STARTING = "starting"  # starting without a resume of ours (PENDING, SUSPENDING, ...)
    SUSPENDED = "suspended"  # SUSPEND issued (also by a reconcile round)
    ALREADY_SUSPENDED = "already_suspended"
    REFUSED = "refused"  # suspend refused: work waits (see code)
    FAILED = "failed"  # FAILED / gone / unknown status: nothing done
    UNKNOWN_SERVICE = "unknown_service"  # not in the registry: nothing touched
    ERROR = "error"  # a Snowflake or AWS call failed (see code)
    # a reconcile round
    RESUMED = "resumed"  # RESUME issued
    FINISHED = "finished"  # a resume completed: mappings re-enabled, lease released
    WAITING = "waiting"  # a transition is under way; nothing issued
    SKIPPED = "skipped"  # RESUME decided, but under the lease the service was no longer SUSPENDED
    # scale
    SCALED = "scaled"  # ALTER SERVICE ... SET MIN_INSTANCES / MAX_INSTANCES issued
    NONE = "none"  # nothing to do


_NOT_OK = frozenset({Outcome.REFUSED, Outcome.FAILED, Outcome.UNKNOWN_SERVICE, Outcome.ERROR})


class ControlCode(StrEnum):
    """Codes of the control plane's own refusals and errors (``errors.ErrorCode`` otherwise)."""

    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    BACKLOG = "BACKLOG"
    BACKLOG_UNKNOWN = "BACKLOG_UNKNOWN"
    ON_DEMAND_IN_FLIGHT = "ON_DEMAND_IN_FLIGHT"
    RESUME_IN_PROGRESS = "RESUME_IN_PROGRESS"
    SERVICE_FAILED = "SERVICE_FAILED"
    INVALID_REQUEST = "INVALID_REQUEST"
    # The action is not allowed through the alias it came in on (routers may only ensure_ready).
    ACTION_NOT_ALLOWED = "ACTION_NOT_ALLOWED"
    # A manual scale outside the registry's min_instances..max_instances.
    OUT_OF_RANGE = "OUT_OF_RANGE"


class SuspendTrigger(StrEnum):
    """``ControlResult.reason`` of an operator's suspend (a reconcile's is a lifecycle Reason)."""

    MANUAL = "manual"
    FORCED = "forced"


class UnknownServiceError(KeyError):
    """``status(names)`` was asked about names the registry does not hold."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)
        self.code = ControlCode.UNKNOWN_SERVICE


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ControlResult:
    service: str  # logical name
    outcome: Outcome
    status: str | None = None  # last observed Snowflake status
    ready: bool = False
    resumed: bool = False  # this call issued ALTER SERVICE ... RESUME
    reason: str | None = None  # lifecycle.Reason (or SuspendTrigger) behind the outcome
    code: str | None = None  # refusal / error code
    # scale: the range now set (None for the other actions)
    min_instances: int | None = None
    max_instances: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome not in _NOT_OK

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ok": self.ok,
            "service": self.service,
            "outcome": self.outcome.value,
            "status": self.status,
            "ready": self.ready,
            "resumed": self.resumed,
            "reason": self.reason,
            "code": self.code,
        }
        if self.min_instances is not None:
            answer["min_instances"] = self.min_instances
            answer["max_instances"] = self.max_instances
        return answer


@dataclass(frozen=True)
class ServiceOverview:
    """One row of ``spcs-gateway status`` / the API's status answer: the Snowflake status, the
    service's record and its backlog, with the idle countdown the policy gives them."""

    name: str
    service: str  # DB.SCHEMA.SERVICE
    compute_pool: str
    status: str  # Snowflake status, UNKNOWN when it could not be observed
    ready: bool
    last_activity: datetime | None
    idle_countdown_s: float | None  # seconds until eligible for suspension; None: not counting
    idle_reason: str  # lifecycle.Reason: why (not) counting down
    resumes_today: int
    suspends_today: int
    mappings_paused: bool
    lease_held: bool
    backlog: int | None  # messages waiting (visible + in flight + delayed); None: unknown
    on_demand: int
    code: str | None = None  # set when the service could not be observed
    # Instances: running (READY or loading), READY, and the range set on the service
    # (SHOW SERVICES min_instances / max_instances; None when not reported).
    instances: int = 0
    instances_ready: int = 0
    min_instances: int | None = None
    max_instances: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "compute_pool": self.compute_pool,
            "status": self.status,
            "ready": self.ready,
            "last_activity": _iso(self.last_activity),
            "idle_countdown_s": self.idle_countdown_s,
            "idle_reason": self.idle_reason,
            "resumes_today": self.resumes_today,
            "suspends_today": self.suspends_today,
            "mappings_paused": self.mappings_paused,
            "lease_held": self.lease_held,
            "backlog": self.backlog,
            "on_demand": self.on_demand,
            "code": self.code,
            "instances": self.instances,
            "instances_ready": self.instances_ready,
            "min_instances": self.min_instances,
            "max_instances": self.max_instances,
        }


@dataclass(frozen=True)
class ServiceRound:
    """What one reconcile did about one service."""

    name: str
    status: str
    ready: bool
    action: str  # lifecycle.Action, or "" when the service could not be observed
    reason: str
    outcome: Outcome
    code: str | None = None
    # Scaling this round (scaling.py): the count set, or the count kept when nothing changed.
    instances: int | None = None
    scale_action: str = ""  # scaling.ScaleAction, "" when not consulted
    scale_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "ready": self.ready,
            "action": self.action,
            "reason": self.reason,
            "outcome": self.outcome.value,
            "code": self.code,
            "instances": self.instances,
            "scale_action": self.scale_action,
            "scale_reason": self.scale_reason,
        }


@dataclass(frozen=True)
class PoolRound:
    name: str
    status: str
    action: str  # lifecycle.PoolAction, or "" when the pool could not be observed
    reason: str
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ReconcileReport:
    at: datetime
    services: tuple[ServiceRound, ...] = ()
    pools: tuple[PoolRound, ...] = ()

    @property
    def errors(self) -> int:
        return sum(1 for s in self.services if s.code) + sum(1 for p in self.pools if p.code)

    def service(self, name: str) -> ServiceRound:
        return next(s for s in self.services if s.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "services": [s.as_dict() for s in self.services],
            "pools": [p.as_dict() for p in self.pools],
            "errors": self.errors,
        }
