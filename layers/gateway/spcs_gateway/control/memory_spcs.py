"""SPCS services and compute pools in memory, with the emulator's lifecycle on a given clock
(``spcs_local.emulator.state``; the emulator test in tests/emulator holds them to the same
observable behaviour):

- service: SUSPENDED -> (RESUME) -> PENDING for ``resume_seconds`` -> RUNNING, its containers
  READY ``start_seconds`` later; SUSPEND is immediate. RESUME of a RUNNING or PENDING service
  does nothing. ``scale`` (ALTER SERVICE ... SET MIN_INSTANCES / MAX_INSTANCES) runs
  MIN_INSTANCES instances: on a RUNNING service a new instance is READY after the model load
  (``resume_seconds + start_seconds``), a removed one stops at once; otherwise the count
  applies from the next resume;
- compute pool: SUSPENDED -> (RESUME) -> STARTING for ``pool_start_seconds`` -> ACTIVE (some
  service running or starting on it, whoever's) or IDLE. Resuming a service on a SUSPENDED pool
  starts the pool (AUTO_RESUME); suspending a pool suspends everything on it. ``num_services``
  counts every service running or starting on the pool, plus ``other_running`` (services and
  jobs of other owners, which the gateway's role cannot see).

Time-based transitions are applied lazily, at the instant they were due, so ``history`` (every
status change with its time) is the same whoever looked in between: ``up_seconds`` bills from
it, and ``instance_seconds`` bills every instance from ``instance_log``. ``calls`` lists every
port call as ``(operation, name)``; ``fail_on`` makes chosen calls fail as Snowflake would
(``TransientError``), ``hook`` runs before every call (tests use it to look at the world
mid-protocol, or to crash).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from spcs_gateway.clock import Clock, utc_now
from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.spcs_services import checked_identifier, not_visible
from spcs_gateway.status import PoolObservation, PoolStatus, ServiceObservation, ServiceStatus

_UP = frozenset({ServiceStatus.RUNNING, ServiceStatus.PENDING})


@dataclass
class _Service:
    fqn: str
    pool: str
    status: ServiceStatus
    instances: int
    pending_until: datetime | None = None  # PENDING -> RUNNING
    ready_at: datetime | None = None  # RUNNING: containers READY from then on
    max_instances: int = 1
    added: list[datetime] = field(default_factory=list)  # READY times of scaled-out instances


@dataclass
class _Pool:
    name: str
    status: PoolStatus  # SUSPENDED, STARTING or IDLE (shown as ACTIVE when something runs)
    starting_until: datetime | None = None
    other_running: int = 0
    reports_count: bool = True  # SHOW COMPUTE POOLS has num_services


@dataclass(frozen=True)
class Transition:
    at: datetime
    kind: str  # "service" or "pool"
    name: str
    before: str | None
    after: str


class MemorySpcsServices:
    def __init__(
        self,
        clock: Clock = utc_now,
        *,
        resume_seconds: float = 10.0,
        start_seconds: float = 5.0,
        pool_start_seconds: float = 0.0,
    ) -> None:
        self._clock = clock
        self._resume = timedelta(seconds=resume_seconds)
        self._start = timedelta(seconds=start_seconds)
        self._pool_start = timedelta(seconds=pool_start_seconds)
        self._services: dict[str, _Service] = {}
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.RLock()
        self.calls: list[tuple[str, str]] = []
        self.history: list[Transition] = []
        self.instance_log: list[tuple[datetime, str, int]] = []  # (at, fqn, instances up)
        self.fail_on: Callable[[str, str], bool] | None = None
        self.hook: Callable[[str, str], None] | None = None

    # -- set-up and inspection (not port calls: not in ``calls``) -----------------------------

    def add_pool(
        self,
        name: str,
        status: str = PoolStatus.IDLE,
        *,
        other_running: int = 0,
        reports_count: bool = True,
    ) -> None:
        with self._lock:
            pool = _Pool(checked_identifier(name), _stored(status))
            pool.other_running, pool.reports_count = other_running, reports_count
            self._pools[pool.name] = pool
            self._log("pool", pool.name, None, pool.status)

    def add_service(
        self,
        fqn: str,
        pool: str,
        status: str = ServiceStatus.SUSPENDED,
        *,
        instances: int = 1,
        ready: bool = True,
    ) -> None:
        """A service (of the gateway's or anyone's) on ``pool``; a RUNNING one is READY unless
        ``ready`` is False (then its containers never become READY)."""
        with self._lock:
            if checked_identifier(pool) not in self._pools:
                self.add_pool(pool)
            svc = _Service(checked_identifier(fqn), checked_identifier(pool), _UNKNOWN, instances)
            svc.max_instances = instances
            self._services[svc.fqn] = svc
            now = self._clock()
            self._set(svc, ServiceStatus.parse(status), now, ready_at=None if ready else _FAR)

    def set_status(self, fqn: str, status: str) -> None:
        """Change a service's status from outside the control plane (another operator, a
        failure); RUNNING is READY at once."""
        with self._lock:
            self._set(self._service(fqn), ServiceStatus.parse(status), self._clock())

    def set_pool(self, name: str, status: str, *, other_running: int | None = None) -> None:
        with self._lock:
            pool = self._pool(name)
            self._set_pool(pool, _stored(status), self._clock())
            if other_running is not None:
                pool.other_running = other_running

    def status(self, fqn: str) -> str:
        with self._lock:
            return self._service(fqn).status.value

    def pool_status(self, name: str) -> str:
        with self._lock:
            return self._pool_state(self._pool(name))

    def count(self, operation: str, name: str | None = None) -> int:
        wanted = None if name is None else checked_identifier(name)
        return sum(1 for op, n in self.calls if op == operation and wanted in (None, n))

    def index(self, operation: str, name: str) -> int:
        return self.calls.index((operation, checked_identifier(name)))

    @property
    def changes(self) -> list[tuple[str, str]]:
        """The calls that change something (resume / suspend / scale of services and pools)."""
        return [c for c in self.calls if c[0] not in ("observe", "pool")]

    def instance_seconds(self, fqn: str, start: datetime, end: datetime) -> float:
        """Instance-seconds within [start, end): every instance PENDING or RUNNING is billed."""
        name = checked_identifier(fqn)
        with self._lock:
            self._advance(min(end, self._clock()))
            total, since, count = 0.0, start, 0
            for at, who, up in self.instance_log:
                if who != name:
                    continue
                if at > since:
                    total += count * _overlap(since, at, start, end)
                    since = max(at, start)
                count = up
            return total + count * _overlap(since, end, start, end)

    def instances(self, fqn: str) -> int:
        """Instances up now (0 when suspended)."""
        with self._lock:
            svc = self._service(fqn)
            return svc.instances if svc.status in _UP else 0

    def up_seconds(self, fqn: str, start: datetime, end: datetime) -> float:
        """Seconds within [start, end) the service was PENDING or RUNNING (what SPCS bills)."""
        name = checked_identifier(fqn)
        with self._lock:
            self._advance(min(end, self._clock()))
            total, since = 0.0, None
            for t in self.history:
                if t.kind != "service" or t.name != name:
                    continue
                up = t.after in _UP
                if up and since is None:
                    since = t.at
                elif not up and since is not None:
                    total += _overlap(since, t.at, start, end)
                    since = None
            if since is not None:
                total += _overlap(since, end, start, end)
            return total

    # -- the port ---------------------------------------------------------------------------

    def observe(self, fqn: str) -> ServiceObservation:
        svc = self._call("observe", fqn)
        with self._lock:
            if svc is None:
                raise not_visible("managed service")
            now = self._clock()
            total = svc.instances if svc.status is ServiceStatus.RUNNING else 0
            first = total - len(svc.added)
            ready = 0
            if total and svc.ready_at is not None and now >= svc.ready_at:
                ready = first + sum(1 for t in svc.added if t <= now)
            return ServiceObservation(
                svc.fqn, svc.status.value, svc.pool, ready, total, svc.instances, svc.max_instances
            )

    def resume(self, fqn: str) -> None:
        svc = self._require(self._call("resume", fqn))
        with self._lock:
            if svc.status in _UP:
                return
            now = self._clock()
            pool = self._pools[svc.pool]
            if pool.status is PoolStatus.SUSPENDED:
                self._start_pool(pool, now)
            ready = now + self._resume
            if pool.starting_until is not None:
                ready = max(ready, pool.starting_until)
            self._set(svc, ServiceStatus.PENDING, now, pending_until=ready)

    def suspend(self, fqn: str) -> None:
        svc = self._require(self._call("suspend", fqn))
        with self._lock:
            if svc.status is not ServiceStatus.SUSPENDED:
                self._set(svc, ServiceStatus.SUSPENDED, self._clock())

    def scale(self, fqn: str, min_instances: int, max_instances: int) -> None:
        svc = self._require(self._call("scale", fqn))
        with self._lock:
            now = self._clock()
            before, svc.instances, svc.max_instances = svc.instances, min_instances, max_instances
            if svc.status is not ServiceStatus.RUNNING:
                svc.added = []
            elif min_instances > before:
                load = now + self._resume + self._start
                svc.added = svc.added + [load] * (min_instances - before)
            else:
                keep = max(len(svc.added) - (before - min_instances), 0)
                svc.added = svc.added[:keep]
            self._log_instances(svc, now)

    def pool(self, name: str) -> PoolObservation:
        self._call("pool", name)
        with self._lock:
            pool = self._pools.get(checked_identifier(name))
            if pool is None:
                raise not_visible("compute pool")
            running = self._running(pool) if pool.reports_count else None
            return PoolObservation(pool.name, self._pool_state(pool), running)

    def resume_pool(self, name: str) -> None:
        self._call("resume_pool", name)
        with self._lock:
            pool = self._pool(name)
            if pool.status is PoolStatus.SUSPENDED:
                self._start_pool(pool, self._clock())

    def suspend_pool(self, name: str) -> None:
        self._call("suspend_pool", name)
        with self._lock:
            pool = self._pool(name)
            now = self._clock()
            for svc in self._services.values():
                if svc.pool == pool.name and svc.status is not ServiceStatus.SUSPENDED:
                    self._set(svc, ServiceStatus.SUSPENDED, now)
            pool.other_running = 0
            self._set_pool(pool, PoolStatus.SUSPENDED, now)

    # -- internals (lock held where it matters) ------------------------------------------------

    def _call(self, operation: str, name: str) -> _Service | None:
        key = checked_identifier(name)
        if self.hook is not None:
            self.hook(operation, key)
        if self.fail_on is not None and self.fail_on(operation, key):
            raise TransientError(ErrorCode.DEPENDENCY_ERROR, "Snowflake statement failed")
        with self._lock:
            self.calls.append((operation, key))
            self._advance(self._clock())
            return self._services.get(key)

    @staticmethod
    def _require(svc: _Service | None) -> _Service:
        if svc is None:
            raise not_visible("managed service")
        return svc

    def _service(self, fqn: str) -> _Service:
        self._advance(self._clock())
        return self._services[checked_identifier(fqn)]

    def _pool(self, name: str) -> _Pool:
        self._advance(self._clock())
        pool = self._pools.get(checked_identifier(name))
        if pool is None:
            raise not_visible("compute pool")
        return pool

    def _running(self, pool: _Pool) -> int:
        mine = sum(1 for s in self._services.values() if s.pool == pool.name and s.status in _UP)
        return mine + pool.other_running

    def _pool_state(self, pool: _Pool) -> str:
        if pool.status is not PoolStatus.IDLE:
            return pool.status.value
        return (PoolStatus.ACTIVE if self._running(pool) else PoolStatus.IDLE).value

    def _advance(self, now: datetime) -> None:
        """Apply every time-based transition due at or before ``now``, at its own instant."""
        for pool in self._pools.values():
            if pool.starting_until is not None and pool.starting_until <= now:
                self._set_pool(pool, PoolStatus.IDLE, pool.starting_until)
        for svc in self._services.values():
            due = svc.pending_until
            if svc.status is ServiceStatus.PENDING and due is not None and due <= now:
                self._set(svc, ServiceStatus.RUNNING, due, ready_at=due + self._start)

    def _start_pool(self, pool: _Pool, now: datetime) -> None:
        if self._pool_start:
            self._set_pool(pool, PoolStatus.STARTING, now)
            pool.starting_until = now + self._pool_start
        else:
            self._set_pool(pool, PoolStatus.IDLE, now)

    def _set_pool(self, pool: _Pool, status: PoolStatus, at: datetime) -> None:
        before, pool.status, pool.starting_until = pool.status, status, None
        self._log("pool", pool.name, before, status, at)

    def _set(
        self,
        svc: _Service,
        status: ServiceStatus,
        at: datetime,
        *,
        pending_until: datetime | None = None,
        ready_at: datetime | None = None,
    ) -> None:
        before = svc.status
        svc.status, svc.pending_until = status, pending_until
        svc.ready_at = at if status is ServiceStatus.RUNNING and ready_at is None else ready_at
        if before is not ServiceStatus.RUNNING or status is not ServiceStatus.RUNNING:
            svc.added = []
        self._log("service", svc.fqn, None if before is _UNKNOWN else before, status, at)
        self._log_instances(svc, at)

    def _log_instances(self, svc: _Service, at: datetime) -> None:
        up = svc.instances if svc.status in _UP else 0
        last = next((n for _, who, n in reversed(self.instance_log) if who == svc.fqn), None)
        if last != up:
            self.instance_log.append((at, svc.fqn, up))

    def _log(
        self, kind: str, name: str, before: str | None, after: str, at: datetime | None = None
    ) -> None:
        if before != after:
            self.history.append(Transition(at or self._clock(), kind, name, before, after))


_UNKNOWN = ServiceStatus.UNKNOWN
_FAR = datetime.max.replace(tzinfo=UTC)  # containers that never become READY


def _stored(status: str) -> PoolStatus:
    """ACTIVE and IDLE are one stored state: which one is shown depends on what runs."""
    parsed = PoolStatus.parse(status)
    return PoolStatus.IDLE if parsed is PoolStatus.ACTIVE else parsed


def _overlap(a: datetime, b: datetime, start: datetime, end: datetime) -> float:
    return max((min(b, end) - max(a, start)).total_seconds(), 0.0)
