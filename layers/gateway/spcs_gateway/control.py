"""Control plane: carries out the lifecycle policy's decisions for the managed SPCS services.

``lifecycle.py`` decides (resume, suspend, finish a resume, wait); this module only observes,
asks the policy and executes: Snowflake through ``ServiceController``, state in DynamoDB through
``ServiceStateStore``, backlog through ``QueueMonitor`` and the SQS event source mappings
through ``EventSourceMappings``. Only services named in the registry are ever touched.

Resume protocol (``ensure_ready``, and ``reconcile`` without waiting), ordered so a crash at any
point is healed by the next ``reconcile`` (``decide_service`` sees the leftovers):

1. take the resume lease with a conditional write (of concurrent callers exactly one wins; the
   others return ``in_progress``) and observe again under it, so a resume that finished in the
   meantime is not repeated;
2. resume the compute pool if it is suspended;
3. set ``mappings_paused`` in the state item, then pause the mappings of the service's queues
   (waiting messages burn no receive counts while containers start);
4. ``ALTER SERVICE ... RESUME`` and count it (``record_resume``);
5. poll ``observe()`` until READY within the caller's budget; then re-enable the mappings,
   clear ``mappings_paused``, record the observation and release the lease. Out of budget, the
   lease and the paused mappings stay: ``reconcile`` sees RUNNING + READY + paused and finishes
   (``FINISH_RESUME``), whoever holds the lease.

Environment contract of ``build_control_plane`` (the control function and the operator CLI):

=================================  ==========================================================
``SPCS_GATEWAY_REGISTRY[_FILE|_PARAM]``  the service registry (``registry.load_registry``)
``SERVICE_STATE_TABLE``            DynamoDB table of per-service state (``service_state.py``)
``QUEUE_URLS``                     JSON ``{"<logical queue>": "<queue URL>"}``: backlog of the
                                   queues named in ``ServiceConfig.queues``
``QUEUE_ARNS``                     JSON ``{"<logical queue>": "<queue ARN>"}``: the event source
                                   mappings to pause; optional, read from the queues when unset
``SUSPEND_IDLE_POOLS``             ``true`` (default) or ``false``: suspend a compute pool once
                                   all its services are suspended
``CONTROL_POLL_SECONDS``           readiness poll interval (default 5)
``CONTROL_LEASE_SECONDS``          resume lease TTL (default 300)
``CONTROL_BUDGET_MARGIN_SECONDS``  ``ensure_ready`` stops polling this long before the Lambda
                                   timeout (default 10)
``LIFECYCLE_MIN_UPTIME_SECONDS``   ``LifecyclePolicy.min_uptime`` (default 300)
``LIFECYCLE_WARM_LEAD_SECONDS``    ``LifecyclePolicy.warm_lead`` (default 900)
``CONTROL_OWNER_ID``               lease owner prefix (default: Lambda log stream, or host:pid)
=================================  ==========================================================

Results, reports, logs and metrics carry names, statuses, reason codes, counts and timings;
metric dimensions are ``service`` and ``outcome`` only. No PHI ever reaches this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spcs_gateway.errors import GatewayError
from spcs_gateway.lifecycle import (
    DEFAULT_POLICY,
    Action,
    Backlog,
    Decision,
    LifecyclePolicy,
    Observed,
    PoolAction,
    Reason,
    ServiceState,
    ServiceStatus,
    decide_pool,
    decide_service,
    idle_countdown,
)
from spcs_gateway.queues import EventSourceMappings, QueueDepth, QueueMonitor
from spcs_gateway.registry import Registry, ServiceConfig
from spcs_gateway.service_control import ServiceController, ServiceObservation
from spcs_gateway.service_state import DEFAULT_LEASE_TTL, ServiceStateStore

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_lambda import LambdaClient
    from types_boto3_sqs import SQSClient

    from spcs_gateway.service_control import QueryRunner

QUEUE_URLS_ENV = "QUEUE_URLS"
QUEUE_ARNS_ENV = "QUEUE_ARNS"
SUSPEND_IDLE_POOLS_ENV = "SUSPEND_IDLE_POOLS"
POLL_SECONDS_ENV = "CONTROL_POLL_SECONDS"
LEASE_SECONDS_ENV = "CONTROL_LEASE_SECONDS"
BUDGET_MARGIN_ENV = "CONTROL_BUDGET_MARGIN_SECONDS"
MIN_UPTIME_ENV = "LIFECYCLE_MIN_UPTIME_SECONDS"
WARM_LEAD_ENV = "LIFECYCLE_WARM_LEAD_SECONDS"
OWNER_ID_ENV = "CONTROL_OWNER_ID"

DEFAULT_POLL_SECONDS = 5.0
DEFAULT_BUDGET_MARGIN_S = 10.0
# A reconcile gap longer than this is not counted as running time (the schedule was off).
MAX_RUNNING_INTERVAL = timedelta(minutes=5)

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    READY = "ready"  # RUNNING, every container READY; mappings enabled
    RESUMING = "resuming"  # our RESUME was issued; not READY within the budget (reconcile ends it)
    IN_PROGRESS = "in_progress"  # another caller holds the resume lease
    STARTING = "starting"  # starting without a resume of ours (PENDING, SUSPENDING, ...)
    SUSPENDED = "suspended"  # SUSPEND issued
    ALREADY_SUSPENDED = "already_suspended"
    REFUSED = "refused"  # suspend refused: work waits (see code)
    FAILED = "failed"  # FAILED / gone / unknown status: nothing done
    UNKNOWN_SERVICE = "unknown_service"  # not in the registry: nothing touched
    ERROR = "error"  # a Snowflake or AWS call failed (see code)


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


# idle_countdown reasons that make a manual suspend refuse (without --force).
_SUSPEND_BLOCKERS: dict[Reason, ControlCode] = {
    Reason.LEASE_HELD: ControlCode.RESUME_IN_PROGRESS,
    Reason.BACKLOG_UNKNOWN: ControlCode.BACKLOG_UNKNOWN,
    Reason.BACKLOG: ControlCode.BACKLOG,
    Reason.IN_FLIGHT_ON_DEMAND: ControlCode.ON_DEMAND_IN_FLIGHT,
}


class UnknownServiceError(KeyError):
    """``status(names)`` was asked about names the registry does not hold."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)
        self.code = ControlCode.UNKNOWN_SERVICE


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return str(exc.code)
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


_CALL_ERRORS = (GatewayError, ClientError, BotoCoreError)


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlResult:
    service: str  # logical name
    outcome: Outcome
    status: str | None = None  # last observed Snowflake status
    ready: bool = False
    resumed: bool = False  # this call issued ALTER SERVICE ... RESUME
    reason: str | None = None  # lifecycle.Reason behind the outcome
    code: str | None = None  # refusal / error code

    @property
    def ok(self) -> bool:
        return self.outcome not in _NOT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "service": self.service,
            "outcome": self.outcome.value,
            "status": self.status,
            "ready": self.ready,
            "resumed": self.resumed,
            "reason": self.reason,
            "code": self.code,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ServiceStatusView:
    """One row of ``spcs-gateway status`` / the API's status answer."""

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
        }


@dataclass(frozen=True)
class ServiceRound:
    """What one reconcile did about one service."""

    name: str
    status: str
    ready: bool
    action: str  # lifecycle.Action, or "" when the service could not be observed
    reason: str
    outcome: str  # resumed, suspended, finished, in_progress, none, error, ...
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PoolRound:
    name: str
    status: str
    action: str
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


# -- metrics -------------------------------------------------------------------------------------


class ControlMetrics(Protocol):
    def emit(
        self, name: str, value: float, unit: MetricUnit, *, service: str, outcome: str | None = None
    ) -> None: ...


class NullMetrics:
    def emit(
        self, name: str, value: float, unit: MetricUnit, *, service: str, outcome: str | None = None
    ) -> None:
        return None


class EmfMetrics:
    """One EMF blob per data point, dimensions ``service`` (+ ``outcome``) only."""

    def __init__(self, namespace: str | None = None) -> None:
        from spcs_gateway.observability import DEFAULT_NAMESPACE, NAMESPACE_ENV

        self._namespace = namespace or os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE

    def emit(
        self, name: str, value: float, unit: MetricUnit, *, service: str, outcome: str | None = None
    ) -> None:
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=self._namespace,
            default_dimensions={"service": service},
        ) as metric:
            if outcome:
                metric.add_dimension(name="outcome", value=outcome)


# -- the control plane ---------------------------------------------------------------------------


class ControlPlane:
    def __init__(
        self,
        registry: Registry,
        controller: ServiceController,
        store: ServiceStateStore,
        monitor: QueueMonitor,
        mappings: EventSourceMappings,
        *,
        clock: Clock = _utc_now,
        sleep: Sleep = time.sleep,
        owner_id: str | None = None,
        policy: LifecyclePolicy = DEFAULT_POLICY,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        suspend_idle_pools: bool = True,
        budget_margin_s: float = DEFAULT_BUDGET_MARGIN_S,
        metrics: ControlMetrics | None = None,
        logger: Logger | logging.Logger | None = None,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.registry = registry
        self._controller = controller
        self._store = store
        self._monitor = monitor
        self._mappings = mappings
        self._clock = clock
        self._sleep = sleep
        self._owner = owner_id or _default_owner()
        self._policy = policy
        self._lease_ttl = lease_ttl
        self._poll = poll_interval
        self._suspend_pools = suspend_idle_pools
        self.budget_margin_s = budget_margin_s
        self._metrics: ControlMetrics = metrics or NullMetrics()
        self._log = logger or logging.getLogger(__name__)

    def now(self) -> datetime:
        """The control plane's clock (the CLI shows ages against it)."""
        return self._clock()

    # -- helpers -----------------------------------------------------------------------------

    def _config(self, name: str) -> ServiceConfig | None:
        try:
            return self.registry.service(name)
        except KeyError:
            return None

    def _new_owner(self) -> str:
        # One owner per resume attempt: an owner may renew its own lease, so sharing one id
        # between concurrent calls in a process (threads, the CLI) would let both resume.
        return f"{self._owner}:{uuid.uuid4().hex[:12]}"

    def _backlog(self, config: ServiceConfig, state: ServiceState, now: datetime) -> Backlog:
        depths: dict[str, QueueDepth] = {}
        for queue in config.queues:
            try:
                depths[queue] = self._monitor.depth(queue)
            except (KeyError, ClientError, BotoCoreError):
                continue  # unreadable or unconfigured: counts as unknown, so never suspend
        return Backlog(depths, state.active_on_demand(now))

    def _emit(self, name: str, value: float, service: str, outcome: str | None = None) -> None:
        unit = MetricUnit.Seconds if name.endswith("Seconds") else MetricUnit.Count
        try:
            self._metrics.emit(name, value, unit, service=service, outcome=outcome)
        except Exception:  # noqa: BLE001 - metrics must never break control
            self._log.warning("metric emit failed", extra={"metric": name})

    def _info(self, message: str, **fields: Any) -> None:
        self._log.info(message, extra=fields)

    # -- resume --------------------------------------------------------------------------------

    def _start_resume(self, config: ServiceConfig, owner: str, reason: str) -> bool | None:
        """Steps 1-4 of the resume protocol. None: another caller holds the lease. False: the
        service was no longer SUSPENDED under the lease (nothing issued, lease released)."""
        name = config.name
        now = self._clock()
        if not self._store.try_acquire_lease(name, owner, now, self._lease_ttl):
            return None
        try:
            again = self._controller.observe(config.service)
            if ServiceStatus.parse(again.status) is not ServiceStatus.SUSPENDED:
                self._store.release_lease(name, owner)
                return False
            pool = self._controller.pool(config.compute_pool)
            if decide_pool(pool.state, [], now, resume_requested=True).action is PoolAction.RESUME:
                self._controller.resume_pool(config.compute_pool)
                self._emit("PoolResumes", 1, config.compute_pool, reason)
            self._store.set_mappings_paused(name, True)
            self._mappings.pause(config.queues)
            self._controller.resume(config.service)
        except BaseException:
            # Nothing was resumed: undo what we can; what we cannot, reconcile heals (a stale
            # pause on a SUSPENDED service is re-enabled; a backlog gets a new resume).
            with contextlib.suppress(Exception):
                self._mappings.resume(config.queues)
                self._store.set_mappings_paused(name, False)
                self._store.release_lease(name, owner)
            raise
        self._store.record_resume(name, now)
        self._emit("Resumes", 1, name, reason)
        self._info("service resume issued", service_name=name, reason=reason)
        return True

    def _finish(
        self,
        config: ServiceConfig,
        state: ServiceState,
        *,
        owner: str | None = None,
        observation: ServiceObservation | None = None,
    ) -> None:
        """Re-enable the mappings, clear the flag, record READY, release the lease. Idempotent,
        and in this order so a crash half-way repeats it at the next reconcile."""
        name = config.name
        self._mappings.resume(config.queues)
        if state.mappings_paused:
            self._store.set_mappings_paused(name, False)
        if observation is not None:
            self._store.record_observation(name, observation, self._clock())
        holders = {owner} if owner else set()
        if state.mappings_paused and state.lease_owner:
            holders.add(state.lease_owner)  # a finished resume is completed by whoever sees it
        for holder in holders:
            self._store.release_lease(name, holder)

    def ensure_ready(self, name: str, *, budget_s: float) -> ControlResult:
        """Make ``name`` READY: resume it (once, whoever else asks) and wait up to ``budget_s``
        (0: issue the resume and return; ``reconcile`` finishes it)."""
        config = self._config(name)
        if config is None:
            return ControlResult(name, Outcome.UNKNOWN_SERVICE, code=ControlCode.UNKNOWN_SERVICE)
        result = self._ensure_ready(config, budget_s)
        self._emit("EnsureReady", 1, name, result.outcome)
        return result

    def _ensure_ready(self, config: ServiceConfig, budget_s: float) -> ControlResult:
        name = config.name
        deadline = self._clock() + timedelta(seconds=max(budget_s, 0.0))
        # The caller waiting for the service is demand, as an on-demand call is.
        demand = Backlog(on_demand_in_flight=1)
        owner: str | None = None
        resumed = False
        renewed_at = self._clock()
        obs: ServiceObservation | None = None
        decision: Decision | None = None
        try:
            while True:
                now = self._clock()
                obs = self._controller.observe(config.service)
                state = self._store.get(name)
                decision = decide_service(config, state, obs, demand, now, self._policy)
                if obs.ready:
                    self._finish(config, state, owner=owner, observation=obs)
                    return self._result(name, Outcome.READY, obs, decision, resumed)
                if decision.action is Action.RESUME:
                    owner = self._new_owner()
                    started = self._start_resume(config, owner, decision.reason)
                    if started is None:
                        return self._result(name, Outcome.IN_PROGRESS, obs, decision, resumed)
                    if started:
                        resumed, renewed_at = True, now
                    else:
                        owner = None
                elif decision.action is Action.WAIT:
                    theirs = state.lease_active(now) and state.lease_owner != owner
                    if decision.reason is Reason.RESUME_IN_PROGRESS and theirs:
                        return self._result(name, Outcome.IN_PROGRESS, obs, decision, resumed)
                elif decision.action is Action.NONE:
                    # Failed, gone or unknown status: left alone (no resume loop).
                    return self._result(
                        name, Outcome.FAILED, obs, decision, resumed, ControlCode.SERVICE_FAILED
                    )
                now = self._clock()
                if (deadline - now).total_seconds() < self._poll:
                    outcome = Outcome.RESUMING if owner else Outcome.STARTING
                    return self._result(name, outcome, obs, decision, resumed)
                if owner and now - renewed_at >= self._lease_ttl / 2:
                    # Polling may outlast the lease; renew it so nobody takes over a live resume.
                    self._store.try_acquire_lease(name, owner, now, self._lease_ttl)
                    renewed_at = now
                self._sleep(self._poll)
        except _CALL_ERRORS as exc:
            code = _error_code(exc)
            self._log.warning(
                "ensure_ready failed", extra={"service_name": name, "error_code": code}
            )
            return self._result(name, Outcome.ERROR, obs, decision, resumed, code)

    @staticmethod
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

    # -- suspend ---------------------------------------------------------------------------------

    def suspend(self, name: str, *, force: bool = False) -> ControlResult:
        """Operator suspend. Refused while work waits (backlog, unknown backlog, on-demand call,
        resume under way) unless ``force``; the idle window is the operator's call."""
        config = self._config(name)
        if config is None:
            return ControlResult(name, Outcome.UNKNOWN_SERVICE, code=ControlCode.UNKNOWN_SERVICE)
        obs: ServiceObservation | None = None
        try:
            now = self._clock()
            obs = self._controller.observe(config.service)
            status = ServiceStatus.parse(obs.status)
            if status in (ServiceStatus.SUSPENDED, ServiceStatus.SUSPENDING):
                return ControlResult(name, Outcome.ALREADY_SUSPENDED, obs.status, obs.ready)
            if not force:
                state = self._store.get(name)
                backlog = self._backlog(config, state, now)
                # The policy's own suspend gate, asked as if the service were running: work
                # that blocks an idle suspension also blocks a manual one.
                gate = idle_countdown(
                    config, state, Observed(ServiceStatus.RUNNING, True), backlog, now, self._policy
                )
                if gate.reason in _SUSPEND_BLOCKERS:
                    return ControlResult(
                        name,
                        Outcome.REFUSED,
                        obs.status,
                        obs.ready,
                        reason=gate.reason.value,
                        code=_SUSPEND_BLOCKERS[gate.reason],
                    )
            self._controller.suspend(config.service)
            self._store.record_suspend(name, now)
        except _CALL_ERRORS as exc:
            return ControlResult(
                name,
                Outcome.ERROR,
                obs.status if obs else None,
                bool(obs and obs.ready),
                code=_error_code(exc),
            )
        outcome = "forced" if force else "manual"
        self._emit("Suspends", 1, name, outcome)
        self._info("service suspend issued", service_name=name, reason=outcome)
        return ControlResult(name, Outcome.SUSPENDED, obs.status, obs.ready, reason=outcome)

    # -- reconcile -------------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """One control round over every registry service, then every registry compute pool."""
        now = self._clock()
        services = list(self.registry.services)
        names = [s.name for s in services]
        rounds: dict[str, ServiceRound] = {}
        observations: dict[str, ServiceObservation] = {}
        before = self._store.get_all(names)
        for config in services:
            try:
                obs = self._controller.observe(config.service)
                self._store.record_observation(config.name, obs, now)
            except _CALL_ERRORS as exc:
                rounds[config.name] = self._failed_round(config.name, exc)
                continue
            observations[config.name] = obs
            self._observe_metrics(config.name, before[config.name], obs, now)
        states = self._store.get_all(names)  # with this round's observations (transitions)
        decisions: dict[str, Decision] = {}
        for config in services:
            obs_or_none = observations.get(config.name)
            if obs_or_none is None:
                continue
            obs = obs_or_none
            state = states[config.name]
            backlog = self._backlog(config, state, now)
            decision = decide_service(config, state, obs, backlog, now, self._policy)
            decisions[config.name] = decision
            try:
                outcome = self._execute(config, obs, state, decision)
                code = None
            except _CALL_ERRORS as exc:
                outcome, code = "error", _error_code(exc)
                self._emit("ReconcileErrors", 1, config.name, code)
            rounds[config.name] = ServiceRound(
                config.name,
                obs.status,
                obs.ready,
                decision.action.value,
                decision.reason.value,
                outcome,
                code,
            )
            if outcome != "none":
                self._info(
                    "reconcile action",
                    service_name=config.name,
                    action=decision.action.value,
                    reason=decision.reason.value,
                    outcome=outcome,
                    error_code=code,
                )
        pools = self._reconcile_pools(services, observations, states, decisions, now)
        return ReconcileReport(now, tuple(rounds[n] for n in names), tuple(pools))

    def _failed_round(self, name: str, exc: BaseException) -> ServiceRound:
        code = _error_code(exc)
        self._log.warning("observe failed", extra={"service_name": name, "error_code": code})
        self._emit("ReconcileErrors", 1, name, code)
        return ServiceRound(name, ServiceStatus.UNKNOWN.value, False, "", "", "error", code)

    def _observe_metrics(
        self, name: str, before: ServiceState, obs: ServiceObservation, now: datetime
    ) -> None:
        status = ServiceStatus.parse(obs.status)
        self._emit("ServiceStatus", 1, name, status.value)
        self._emit("ServiceReady", 1 if obs.ready else 0, name)
        # Running time since the previous round, when running at both ends (a billing proxy:
        # Sum over a period ~ seconds the service ran in it).
        if (
            status is ServiceStatus.RUNNING
            and before.status is ServiceStatus.RUNNING
            and before.observed_at is not None
            and timedelta(0) < now - before.observed_at <= MAX_RUNNING_INTERVAL
        ):
            self._emit("RunningSeconds", (now - before.observed_at).total_seconds(), name)

    def _execute(
        self,
        config: ServiceConfig,
        obs: ServiceObservation,
        state: ServiceState,
        decision: Decision,
    ) -> str:
        if decision.action is Action.RESUME:
            started = self._start_resume(config, self._new_owner(), decision.reason)
            if started is None:
                return "in_progress"
            return "resumed" if started else "skipped"
        if decision.action is Action.SUSPEND:
            self._controller.suspend(config.service)
            self._store.record_suspend(config.name, self._clock())
            self._emit("Suspends", 1, config.name, decision.reason)
            return "suspended"
        if decision.action is Action.FINISH_RESUME:
            self._finish(config, state, observation=obs if obs.ready else None)
            return "finished"
        return "none" if decision.action is Action.NONE else "waiting"

    def _reconcile_pools(
        self,
        services: Sequence[ServiceConfig],
        observations: Mapping[str, ServiceObservation],
        states: Mapping[str, ServiceState],
        decisions: Mapping[str, Decision],
        now: datetime,
    ) -> list[PoolRound]:
        by_pool: dict[str, list[ServiceConfig]] = {}
        for config in services:
            by_pool.setdefault(config.compute_pool.upper(), []).append(config)
        rounds: list[PoolRound] = []
        for pool, members in sorted(by_pool.items()):
            try:
                rounds.append(self._reconcile_pool(pool, members, observations, states, decisions))
            except _CALL_ERRORS as exc:
                code = _error_code(exc)
                self._emit("ReconcileErrors", 1, pool, code)
                rounds.append(PoolRound(pool, "UNKNOWN", "", "", code))
        return rounds

    def _reconcile_pool(
        self,
        pool: str,
        members: Sequence[ServiceConfig],
        observations: Mapping[str, ServiceObservation],
        states: Mapping[str, ServiceState],
        decisions: Mapping[str, Decision],
    ) -> PoolRound:
        now = self._clock()
        observed = self._controller.pool(pool)
        if any(m.name not in observations for m in members):
            # A member we could not observe might be running: never suspend on a guess.
            return PoolRound(
                pool, observed.state, PoolAction.NONE.value, Reason.STATUS_UNKNOWN.value
            )
        pairs = [(observations[m.name], states[m.name]) for m in members]
        wanted = any(decisions[m.name].action is Action.RESUME for m in members)
        decision = decide_pool(
            observed.state,
            pairs,
            now,
            resume_requested=wanted,
            running_on_pool=observed.running,
            suspend_when_idle=self._suspend_pools,
        )
        if decision.action is PoolAction.SUSPEND:
            self._controller.suspend_pool(pool)
            self._emit("PoolSuspends", 1, pool, decision.reason)
            self._info("compute pool suspend issued", pool=pool, reason=decision.reason.value)
        elif decision.action is PoolAction.RESUME:
            self._controller.resume_pool(pool)
            self._emit("PoolResumes", 1, pool, decision.reason)
        return PoolRound(pool, observed.state, decision.action.value, decision.reason.value)

    # -- status ----------------------------------------------------------------------------------

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatusView]:
        configs = list(self.registry.services)
        if names is not None:
            wanted = list(dict.fromkeys(names))
            unknown = [n for n in wanted if self._config(n) is None]
            if unknown:
                raise UnknownServiceError(unknown)
            configs = [c for c in configs if c.name in wanted]
        now = self._clock()
        states = self._store.get_all([c.name for c in configs])
        views: list[ServiceStatusView] = []
        for config in configs:
            state = states[config.name]
            code: str | None = None
            obs: ServiceObservation | Observed
            try:
                obs = self._controller.observe(config.service)
            except _CALL_ERRORS as exc:
                obs, code = Observed(ServiceStatus.UNKNOWN.value), _error_code(exc)
            backlog = self._backlog(config, state, now)
            countdown = idle_countdown(config, state, obs, backlog, now, self._policy)
            resumes_today, suspends_today = state.daily_counts(now)
            known = not backlog.unknown(config.queues)
            views.append(
                ServiceStatusView(
                    name=config.name,
                    service=config.service,
                    compute_pool=config.compute_pool,
                    status=str(ServiceStatus.parse(obs.status).value),
                    ready=obs.ready,
                    last_activity=state.last_activity,
                    idle_countdown_s=countdown.seconds,
                    idle_reason=countdown.reason.value,
                    resumes_today=resumes_today,
                    suspends_today=suspends_today,
                    mappings_paused=state.mappings_paused,
                    lease_held=state.lease_active(now),
                    backlog=backlog.messages if known else None,
                    on_demand=backlog.on_demand_in_flight,
                    code=code,
                )
            )
        return views


def _default_owner() -> str:
    return os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME") or f"{socket.gethostname()}:{os.getpid()}"


# -- the control function's event contract -------------------------------------------------------


class ControlRequest(BaseModel):
    """``{"action": "ensure_ready" | "suspend" | "reconcile" | "status", ...}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["ensure_ready", "suspend", "reconcile", "status"]
    service: str | None = Field(default=None, max_length=63)
    force: bool = False
    services: list[str] | None = Field(default=None, max_length=100)


def is_schedule_event(event: Mapping[str, Any]) -> bool:
    """An EventBridge scheduled-rule event (the reconcile tick)."""
    return event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event"


def _remaining_s(context: Any) -> float | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is None:
        return None
    try:
        return float(getter()) / 1000.0
    except (TypeError, ValueError):
        return None


def handle_control_event(
    control: ControlPlane, event: Mapping[str, Any], context: Any = None
) -> dict[str, Any]:
    """Dispatch one control-function event (contract in ``control_client.py``)."""
    if is_schedule_event(event):
        return {"ok": True, "action": "reconcile", **control.reconcile().as_dict()}
    try:
        request = ControlRequest.model_validate(dict(event))
    except ValidationError as exc:
        fields = sorted(
            ".".join(str(p) for p in e["loc"])
            for e in exc.errors(include_input=False, include_url=False)
        )
        return {"ok": False, "code": ControlCode.INVALID_REQUEST.value, "fields": fields}
    if request.action == "reconcile":
        return {"ok": True, "action": "reconcile", **control.reconcile().as_dict()}
    if request.action == "status":
        try:
            views = control.status(request.services)
        except UnknownServiceError as exc:
            return {"ok": False, "code": exc.code.value, "services": exc.names}
        return {"ok": True, "action": "status", "services": [v.as_dict() for v in views]}
    if not request.service:
        return {"ok": False, "code": ControlCode.INVALID_REQUEST.value, "fields": ["service"]}
    if request.action == "ensure_ready":
        remaining = _remaining_s(context)
        budget = 0.0 if remaining is None else remaining - control.budget_margin_s
        return control.ensure_ready(request.service, budget_s=budget).as_dict()
    return control.suspend(request.service, force=request.force).as_dict()


# -- wiring --------------------------------------------------------------------------------------


def _json_map(environ: Mapping[str, str], key: str) -> dict[str, str] | None:
    raw = environ.get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"{key} is not valid JSON") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{key} must be a JSON object of strings")
    return value


def _float_env(environ: Mapping[str, str], key: str, default: float) -> float:
    raw = environ.get(key)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number") from None


def _queue_arns(sqs: SQSClient, urls: Mapping[str, str]) -> dict[str, str]:
    arns: dict[str, str] = {}
    for name, url in urls.items():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arns[name] = attrs["Attributes"]["QueueArn"]
    return arns


def build_control_plane(
    environ: Mapping[str, str] | None = None,
    *,
    registry: Registry | None = None,
    controller: ServiceController | None = None,
    sql: QueryRunner | None = None,
    store: ServiceStateStore | None = None,
    monitor: QueueMonitor | None = None,
    mappings: EventSourceMappings | None = None,
    dynamodb_client: DynamoDBClient | None = None,
    sqs_client: SQSClient | None = None,
    lambda_client: LambdaClient | None = None,
    queue_urls: Mapping[str, str] | None = None,
    queue_arns: Mapping[str, str] | None = None,
    clock: Clock = _utc_now,
    sleep: Sleep = time.sleep,
    owner_id: str | None = None,
    policy: LifecyclePolicy | None = None,
    lease_ttl: timedelta | None = None,
    poll_interval: float | None = None,
    suspend_idle_pools: bool | None = None,
    budget_margin_s: float | None = None,
    metrics: ControlMetrics | None = None,
    logger: Logger | logging.Logger | None = None,
) -> ControlPlane:
    """The control plane from the environment (contract at the top of this module); every
    collaborator can be passed in instead (tests, the CLI's flags)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if registry is None:
        from spcs_gateway.registry import load_registry

        registry = load_registry(dict(env))
    if controller is None:
        if sql is None:
            from spcs_gateway.auth import TokenProvider
            from spcs_gateway.http import build_http_client
            from spcs_gateway.secrets import CredentialSource
            from spcs_gateway.sql import SnowflakeSql, make_connect

            tokens = TokenProvider(
                registry.snowflake, CredentialSource(registry.snowflake), build_http_client()
            )
            sql = SnowflakeSql(make_connect(tokens))
        controller = ServiceController(sql)
    if store is None:
        if dynamodb_client is None:
            import boto3

            dynamodb_client = boto3.client("dynamodb")
        store = ServiceStateStore.from_env(dynamodb_client, env)
    urls = dict(queue_urls) if queue_urls is not None else _json_map(env, QUEUE_URLS_ENV) or {}
    if monitor is None or mappings is None:
        if sqs_client is None:
            import boto3

            sqs_client = boto3.client("sqs")
        if monitor is None:
            monitor = QueueMonitor(sqs_client, urls)
        if mappings is None:
            arns = dict(queue_arns) if queue_arns is not None else _json_map(env, QUEUE_ARNS_ENV)
            if arns is None:
                arns = _queue_arns(sqs_client, urls)
            if lambda_client is None:
                import boto3

                lambda_client = boto3.client("lambda")
            mappings = EventSourceMappings(lambda_client, arns)
    if policy is None:
        policy = LifecyclePolicy(
            min_uptime=timedelta(
                seconds=_float_env(env, MIN_UPTIME_ENV, DEFAULT_POLICY.min_uptime.total_seconds())
            ),
            warm_lead=timedelta(
                seconds=_float_env(env, WARM_LEAD_ENV, DEFAULT_POLICY.warm_lead.total_seconds())
            ),
        )
    if suspend_idle_pools is None:
        suspend_idle_pools = env.get(SUSPEND_IDLE_POOLS_ENV, "true").strip().lower() not in (
            "false",
            "0",
            "no",
            "off",
        )
    return ControlPlane(
        registry,
        controller,
        store,
        monitor,
        mappings,
        clock=clock,
        sleep=sleep,
        owner_id=owner_id or env.get(OWNER_ID_ENV) or None,
        policy=policy,
        lease_ttl=lease_ttl
        or timedelta(seconds=_float_env(env, LEASE_SECONDS_ENV, DEFAULT_LEASE_TTL.total_seconds())),
        poll_interval=poll_interval or _float_env(env, POLL_SECONDS_ENV, DEFAULT_POLL_SECONDS),
        suspend_idle_pools=suspend_idle_pools,
        budget_margin_s=budget_margin_s
        if budget_margin_s is not None
        else _float_env(env, BUDGET_MARGIN_ENV, DEFAULT_BUDGET_MARGIN_S),
        metrics=metrics,
        logger=logger,
    )
