"""The emulated account: SPCS services and compute pools, their lifecycle, usage history.

Lifecycle model (facts in ../shared/SNOWFLAKE.md; what is simplified is said here):

- Service: RUNNING -> (SUSPEND) -> SUSPENDED -> (RESUME) -> PENDING for ``resume_seconds``
  -> RUNNING. Suspension is immediate (no visible SUSPENDING). AUTO_SUSPEND_SECS > 0
  suspends a RUNNING service that has had no ingress request (nor resume / ALTER) for that
  long. An ingress request to a SUSPENDED service with AUTO_RESUME starts a resume.
- Compute pool: STARTING -> ACTIVE (some service not suspended) / IDLE (all suspended);
  an IDLE pool with AUTO_SUSPEND_SECS > 0 is SUSPENDED after that long. Suspending a pool
  suspends its services. Resuming a service on a SUSPENDED pool starts the pool first when
  the pool has AUTO_RESUME, else it is an error. The pool start runs in parallel with the
  service start, so a cold resume still takes ``resume_seconds``.
- Every transition is stored with its timestamp (table ``_emu_transitions``); usage history
  bills the pool's ACTIVE and IDLE seconds (Snowflake bills IDLE/ACTIVE/STOPPING/RESIZING,
  not STARTING/SUSPENDED) at an assumed per-node-hour rate of its instance family.

Time-based transitions are applied lazily (``tick()``, also called by every public method)
at the exact instant they were due, in order, so the stored history is the same whether
somebody looked in between or not.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .clock import Clock
from .store import Store

__all__ = [
    "CREDITS_PER_NODE_HOUR",
    "Account",
    "ContainerRow",
    "GateDecision",
    "InvalidPropertyError",
    "LifecycleError",
    "PoolRow",
    "PoolSuspendedError",
    "ServiceRow",
    "ServiceSpec",
    "Store",
    "TransitionRow",
    "UsageRow",
    "split_identifier",
]

# Assumed credits per node-hour by instance family (order of magnitude of Snowflake's service
# consumption table; the emulator's numbers are for relative cost reports, not billing).
CREDITS_PER_NODE_HOUR: dict[str, float] = {
    "CPU_X64_XS": 0.06,
    "CPU_X64_S": 0.11,
    "CPU_X64_M": 0.22,
    "CPU_X64_L": 0.83,
    "HIGHMEM_X64_S": 0.28,
    "GPU_NV_XS": 0.25,
    "GPU_NV_S": 0.57,
    "GPU_NV_M": 2.68,
    "GPU_NV_L": 14.12,
}
DEFAULT_INSTANCE_FAMILY = "GPU_NV_S"
BILLED_POOL_STATES = frozenset({"ACTIVE", "IDLE"})

RUNNING, PENDING, SUSPENDED = "RUNNING", "PENDING", "SUSPENDED"
STARTING, ACTIVE, IDLE = "STARTING", "ACTIVE", "IDLE"
CONTAINER_NAME = "model-inference"
OWNER_ROLE = "ACCOUNTADMIN"


class LifecycleError(Exception):
    """A lifecycle request Snowflake would refuse; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PoolSuspendedError(LifecycleError):
    pass


class InvalidPropertyError(LifecycleError):
    pass


@dataclass(frozen=True)
class ServiceSpec:
    """What server.py passes in for each emulated service."""

    fqn: str  # e.g. "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
    compute_pool: str  # "ML_INFERENCE_POOL"
    model_name: str  # "BIOBERT_NER"
    model_version: str  # "V1"
    task: str  # "token-classification" | "zero-shot-image-classification"
    method: str = "__call__"
    endpoint_name: str = "inference"


@dataclass(frozen=True)
class GateDecision:
    ready: bool
    status: str  # Snowflake status string, e.g. "RUNNING", "PENDING", "SUSPENDED"
    retry_after: float | None  # seconds, for 503 Retry-After


@dataclass(frozen=True)
class ContainerRow:
    instance_id: str
    instance_status: str  # PENDING | READY
    container_name: str
    status: str  # container status: PENDING | READY
    message: str
    image_name: str
    restart_count: int
    start_time: float | None


@dataclass(frozen=True)
class ServiceRow:
    fqn: str
    database_name: str
    schema_name: str
    name: str
    status: str
    compute_pool: str
    dns_name: str
    current_instances: int
    target_instances: int
    min_ready_instances: int
    min_instances: int
    max_instances: int
    auto_resume: bool
    auto_suspend_secs: int
    created_on: float
    updated_on: float
    resumed_on: float | None
    suspended_on: float | None
    comment: str | None
    owner: str
    spec_digest: str
    ingress_url: str | None  # "127.0.0.1:PORT" once server.py has set it
    endpoint_name: str
    method: str
    model_name: str
    model_version: str
    task: str
    ready_at: float | None  # when a PENDING service becomes RUNNING
    last_request_at: float | None
    containers: tuple[ContainerRow, ...]


@dataclass(frozen=True)
class PoolRow:
    name: str
    state: str
    min_nodes: int
    max_nodes: int
    instance_family: str
    num_services: int  # services not suspended
    auto_suspend_secs: int
    auto_resume: bool
    active_nodes: int
    idle_nodes: int
    target_nodes: int
    created_on: float
    resumed_on: float | None
    updated_on: float
    owner: str
    comment: str | None


@dataclass(frozen=True)
class UsageRow:
    start_time: float  # hour bucket start (epoch seconds)
    end_time: float
    compute_pool_name: str
    credits_used: float


@dataclass(frozen=True)
class TransitionRow:
    ts: float
    kind: str  # "service" | "pool"
    name: str
    from_state: str | None
    to_state: str
    reason: str


@dataclass
class _Service:
    spec: ServiceSpec
    status: str
    created_on: float
    updated_on: float
    min_instances: int = 1
    max_instances: int = 1
    auto_suspend_secs: int = 0
    auto_resume: bool = True
    resumed_on: float | None = None
    suspended_on: float | None = None
    pending_until: float | None = None
    running_since: float | None = None
    last_request_at: float | None = None
    comment: str | None = None
    ingress: str | None = None

    @property
    def idle_deadline(self) -> float | None:
        if self.status != RUNNING or self.auto_suspend_secs <= 0:
            return None
        marks = [t for t in (self.running_since, self.last_request_at, self.updated_on) if t]
        return max(marks) + self.auto_suspend_secs


@dataclass
class _Pool:
    name: str
    state: str
    created_on: float
    updated_on: float
    min_nodes: int = 1
    max_nodes: int = 1
    instance_family: str = DEFAULT_INSTANCE_FAMILY
    auto_resume: bool = True
    auto_suspend_secs: int = 3600
    resumed_on: float | None = None
    starting_until: float | None = None
    idle_since: float | None = None
    comment: str | None = None
    services: list[str] = field(default_factory=list)

    @property
    def idle_deadline(self) -> float | None:
        if self.state != IDLE or self.auto_suspend_secs <= 0 or self.idle_since is None:
            return None
        return max(self.idle_since, self.updated_on) + self.auto_suspend_secs


_SCHEMA = """
CREATE TABLE IF NOT EXISTS _emu_services (
  fqn TEXT PRIMARY KEY, status TEXT NOT NULL, min_instances INTEGER, max_instances INTEGER,
  auto_suspend_secs INTEGER, auto_resume INTEGER, created_on REAL, updated_on REAL,
  resumed_on REAL, suspended_on REAL, pending_until REAL, running_since REAL,
  last_request_at REAL, comment TEXT);
CREATE TABLE IF NOT EXISTS _emu_pools (
  name TEXT PRIMARY KEY, state TEXT NOT NULL, min_nodes INTEGER, max_nodes INTEGER,
  instance_family TEXT, auto_resume INTEGER, auto_suspend_secs INTEGER, created_on REAL,
  updated_on REAL, resumed_on REAL, starting_until REAL, idle_since REAL, comment TEXT);
CREATE TABLE IF NOT EXISTS _emu_transitions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
  name TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, reason TEXT NOT NULL);
"""

_SERVICE_COLS = [
    "status",
    "min_instances",
    "max_instances",
    "auto_suspend_secs",
    "auto_resume",
    "created_on",
    "updated_on",
    "resumed_on",
    "suspended_on",
    "pending_until",
    "running_since",
    "last_request_at",
    "comment",
]
_POOL_COLS = [
    "state",
    "min_nodes",
    "max_nodes",
    "instance_family",
    "auto_resume",
    "auto_suspend_secs",
    "created_on",
    "updated_on",
    "resumed_on",
    "starting_until",
    "idle_since",
    "comment",
]

_UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def split_identifier(name: str) -> list[str]:
    """Split ``db.schema."Name"`` into parts with Snowflake case rules.

    Unquoted parts are upper-cased; quoted parts keep their case (``""`` unescapes to ``"``).
    Raises ValueError on malformed input.
    """
    parts: list[str] = []
    i, n = 0, len(name.strip())
    text = name.strip()
    while i < n:
        if text[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise ValueError("unterminated quoted identifier")
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
        else:
            m = _UNQUOTED.match(text, i)
            if not m:
                raise ValueError("invalid identifier")
            parts.append(m.group(0).upper())
            i = m.end()
        if i < n:
            if text[i] != ".":
                raise ValueError("invalid identifier")
            i += 1
            if i == n:
                raise ValueError("invalid identifier")
    if not parts or len(parts) > 3:
        raise ValueError("invalid identifier")
    return parts


def _to_int(value: Any, prop: str, minimum: int) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise InvalidPropertyError(f"invalid value [{value!r}] for parameter '{prop}'") from None
    if number < minimum:
        raise InvalidPropertyError(f"invalid value [{number}] for parameter '{prop}'")
    return number


def _to_bool(value: Any, prop: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text in {"TRUE", "1", "YES", "ON"}:
        return True
    if text in {"FALSE", "0", "NO", "OFF"}:
        return False
    raise InvalidPropertyError(f"invalid value [{value!r}] for parameter '{prop}'")


def _to_comment(value: Any, prop: str) -> str | None:
    return None if value is None else str(value)


# ALTER ... SET properties: property -> (attribute, parser); plus the (min, max) pair checked.
_Parser = Callable[[Any, str], Any]
_SERVICE_PROPS: dict[str, tuple[str, _Parser]] = {
    "MIN_INSTANCES": ("min_instances", lambda v, p: _to_int(v, p, 0)),
    "MAX_INSTANCES": ("max_instances", lambda v, p: _to_int(v, p, 1)),
    "AUTO_SUSPEND_SECS": ("auto_suspend_secs", lambda v, p: _to_int(v, p, 0)),
    "AUTO_RESUME": ("auto_resume", _to_bool),
    "COMMENT": ("comment", _to_comment),
}
_POOL_PROPS: dict[str, tuple[str, _Parser]] = {
    "MIN_NODES": ("min_nodes", lambda v, p: _to_int(v, p, 1)),
    "MAX_NODES": ("max_nodes", lambda v, p: _to_int(v, p, 1)),
    "AUTO_SUSPEND_SECS": ("auto_suspend_secs", lambda v, p: _to_int(v, p, 0)),
    "AUTO_RESUME": ("auto_resume", _to_bool),
    "COMMENT": ("comment", _to_comment),
}


def _apply_props(
    target: _Service | _Pool,
    props: dict[str, Any],
    known: dict[str, tuple[str, _Parser]],
    object_type: str,
    bounds: tuple[str, str],
) -> None:
    """Validate every property first, then set them all (an invalid one changes nothing)."""
    new = {attr: getattr(target, attr) for attr, _ in known.values()}
    for key, value in props.items():
        prop = key.upper()
        if prop not in known:
            raise InvalidPropertyError(f"invalid property '{prop}' for '{object_type}'")
        attr, parse = known[prop]
        new[attr] = parse(value, prop)
    low, high = bounds
    if int(new[low]) > int(new[high]):
        raise InvalidPropertyError(f"{low.upper()} must be less than or equal to {high.upper()}")
    for attr, value in new.items():
        setattr(target, attr, value)


class Account:
    """Services and compute pools of the emulated account; thread-safe, persisted in SQLite."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        specs: Sequence[ServiceSpec],
        *,
        resume_seconds: float = 5.0,
        auto_resume: bool = True,
        start_suspended: bool = False,
        account_name: str = "LOCALTEST",
    ) -> None:
        if resume_seconds < 0:
            raise ValueError("resume_seconds must be >= 0")
        self._store = store
        self._clock = clock
        self._lock = store.lock  # one lock for the account and its SQLite connection
        self.resume_seconds = float(resume_seconds)
        self.account_name = account_name.upper()
        self._services: dict[str, _Service] = {}
        self._pools: dict[str, _Pool] = {}
        now = clock.now()
        with store.connection() as conn:
            # statement by statement: executescript() would commit the open transaction
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(stmt)
            for spec in specs:
                fqn = ".".join(split_identifier(spec.fqn))
                if len(fqn.split(".")) != 3:
                    raise ValueError(f"service name must be fully qualified: {spec.fqn}")
                if fqn in self._services:
                    raise ValueError(f"duplicate service {fqn}")
                pool_name = ".".join(split_identifier(spec.compute_pool))
                spec = replace(spec, fqn=fqn, compute_pool=pool_name)
                pool = self._pools.get(pool_name) or self._load_or_create_pool(pool_name, now)
                self._pools[pool_name] = pool
                svc = self._load_or_create_service(spec, fqn, auto_resume, now)
                self._services[fqn] = svc
                pool.services.append(fqn)
            if start_suspended:
                for svc in self._services.values():
                    if svc.status != SUSPENDED:
                        self._suspend(svc, now, "emulator started suspended")
            self._advance(now)

    # -- loading ----------------------------------------------------------------------------
    def _load(self, table: str, key_col: str, key: str, cols: list[str]) -> dict[str, Any] | None:
        with self._store.connection() as conn:
            row = conn.execute(f"SELECT * FROM {table} WHERE {key_col} = ?", (key,)).fetchone()
        if row is None:
            return None
        values = {c: row[c] for c in cols}
        values["auto_resume"] = bool(values["auto_resume"])
        return values

    def _load_or_create_pool(self, name: str, now: float) -> _Pool:
        values = self._load("_emu_pools", "name", name, _POOL_COLS)
        if values is not None:
            return _Pool(name=name, **values)
        pool = _Pool(name=name, state=ACTIVE, created_on=now, updated_on=now, resumed_on=now)
        self._save_pool(pool)
        self._record(now, "pool", name, None, ACTIVE, "created")
        return pool

    def _load_or_create_service(
        self, spec: ServiceSpec, fqn: str, auto_resume: bool, now: float
    ) -> _Service:
        values = self._load("_emu_services", "fqn", fqn, _SERVICE_COLS)
        if values is not None:
            return _Service(spec=spec, **values)
        svc = _Service(
            spec=spec,
            status=RUNNING,
            created_on=now,
            updated_on=now,
            auto_resume=auto_resume,
            resumed_on=now,
            running_since=now,
        )
        self._save_service(svc)
        self._record(now, "service", fqn, None, RUNNING, "created")
        return svc

    # -- persistence ------------------------------------------------------------------------
    def _save(
        self, table: str, key_col: str, key: str, cols: list[str], obj: _Service | _Pool
    ) -> None:
        names = ", ".join([key_col, *cols])
        marks = ", ".join("?" * (len(cols) + 1))
        with self._store.connection() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})",
                [key, *(getattr(obj, c) for c in cols)],
            )

    def _save_service(self, svc: _Service) -> None:
        self._save("_emu_services", "fqn", self._fqn_of(svc), _SERVICE_COLS, svc)

    def _save_pool(self, pool: _Pool) -> None:
        self._save("_emu_pools", "name", pool.name, _POOL_COLS, pool)

    def _record(
        self, ts: float, kind: str, name: str, before: str | None, after: str, reason: str
    ) -> None:
        with self._store.connection() as conn:
            conn.execute(
                "INSERT INTO _emu_transitions (ts, kind, name, from_state, to_state, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ts, kind, name, before, after, reason),
            )

    @staticmethod
    def _fqn_of(svc: _Service) -> str:
        return svc.spec.fqn  # canonical: normalised in __init__

    # -- name resolution --------------------------------------------------------------------
    def resolve(self, name: str, *, database: str | None = None, schema: str | None = None) -> str:
        """Service name (unqualified, qualified, quoted) -> canonical FQN; unknown -> KeyError.

        Missing leading parts come from ``database``/``schema`` when given; otherwise a
        unique match on the given trailing parts is accepted.
        """
        try:
            parts = split_identifier(name)
        except ValueError:
            raise KeyError(name) from None
        with self._lock:
            if len(parts) == 3:
                fqn = ".".join(parts)
                if fqn in self._services:
                    return fqn
                raise KeyError(name)
            context = [database, schema][: 3 - len(parts)]
            matches = []
            for fqn in self._services:
                have = fqn.split(".")
                if have[3 - len(parts) :] != parts:
                    continue
                ok = all(
                    want is None or split_identifier(want)[-1] == have[i]
                    for i, want in enumerate(context)
                )
                if ok:
                    matches.append(fqn)
            if len(matches) == 1:
                return matches[0]
            raise KeyError(name)

    def resolve_pool(self, name: str) -> str:
        try:
            parts = split_identifier(name)
        except ValueError:
            raise KeyError(name) from None
        if len(parts) != 1 or parts[0] not in self._pools:
            raise KeyError(name)
        return parts[0]

    def _svc(self, fqn: str) -> _Service:
        svc = self._services.get(fqn)
        return svc if svc is not None else self._services[self.resolve(fqn)]

    def _pool(self, name: str) -> _Pool:
        pool = self._pools.get(name)
        return pool if pool is not None else self._pools[self.resolve_pool(name)]

    @contextmanager
    def _settled(self) -> Iterator[float]:
        """Lock, one transaction, due transitions applied; yields now."""
        with self._lock, self._store.connection():
            now = self._clock.now()
            self._advance(now)
            yield now

    # -- public lifecycle API ---------------------------------------------------------------
    def set_ingress_url(self, fqn: str, host_port: str) -> None:
        with self._lock:
            self._svc(fqn).ingress = host_port

    def ingress_gate(self, fqn: str) -> GateDecision:
        """Called on every ingress request: records it, auto-resumes a suspended service."""
        with self._settled() as now:
            svc = self._svc(fqn)
            svc.last_request_at = now
            self._save_service(svc)
            if svc.status == SUSPENDED and svc.auto_resume:
                try:
                    self._resume(svc, now, "auto-resume on ingress request")
                except PoolSuspendedError:
                    return GateDecision(False, SUSPENDED, None)
                self._advance(now)  # resume_seconds == 0 is ready at once
            if svc.status == RUNNING:
                return GateDecision(True, RUNNING, None)
            if svc.status == PENDING and svc.pending_until is not None:
                return GateDecision(False, PENDING, max(svc.pending_until - now, 0.0))
            return GateDecision(False, svc.status, None)

    def resume_service(self, fqn: str) -> None:
        with self._settled() as now:
            self._resume(self._svc(fqn), now, "ALTER SERVICE RESUME")
            self._advance(now)

    def suspend_service(self, fqn: str) -> None:
        with self._settled() as now:
            svc = self._svc(fqn)
            if svc.status != SUSPENDED:
                self._suspend(svc, now, "ALTER SERVICE SUSPEND")
            self._advance(now)

    def alter_service(self, fqn: str, **props: Any) -> None:
        """Set MIN_INSTANCES, MAX_INSTANCES, AUTO_SUSPEND_SECS, AUTO_RESUME or COMMENT."""
        with self._settled() as now:
            svc = self._svc(fqn)
            _apply_props(svc, props, _SERVICE_PROPS, "SERVICE", ("min_instances", "max_instances"))
            svc.updated_on = now
            self._save_service(svc)
            self._advance(now)

    def resume_pool(self, name: str) -> None:
        with self._settled() as now:
            pool = self._pool(name)
            if pool.state == SUSPENDED:
                self._start_pool(pool, now, "ALTER COMPUTE POOL RESUME")
            self._advance(now)

    def suspend_pool(self, name: str) -> None:
        with self._settled() as now:
            pool = self._pool(name)
            if pool.state != SUSPENDED:
                for fqn in pool.services:
                    svc = self._services[fqn]
                    if svc.status != SUSPENDED:
                        self._suspend(svc, now, "compute pool suspended", update_pool=False)
                self._set_pool(pool, SUSPENDED, now, "ALTER COMPUTE POOL SUSPEND")
                pool.starting_until = None
                pool.idle_since = None
                self._save_pool(pool)

    def alter_pool(self, name: str, **props: Any) -> None:
        """Set AUTO_RESUME, AUTO_SUSPEND_SECS, MIN_NODES, MAX_NODES or COMMENT of a pool."""
        with self._settled() as now:
            pool = self._pool(name)
            _apply_props(pool, props, _POOL_PROPS, "COMPUTE_POOL", ("min_nodes", "max_nodes"))
            pool.updated_on = now
            self._save_pool(pool)
            self._advance(now)

    def tick(self) -> None:
        with self._settled():
            pass

    # -- reads ------------------------------------------------------------------------------
    def services(self) -> list[ServiceRow]:
        with self._settled():
            return [self._service_row(self._services[f]) for f in sorted(self._services)]

    def service(self, fqn: str) -> ServiceRow:
        with self._settled():
            return self._service_row(self._svc(fqn))

    def pools(self) -> list[PoolRow]:
        with self._settled():
            return [self._pool_row(self._pools[n]) for n in sorted(self._pools)]

    def pool(self, name: str) -> PoolRow:
        with self._settled():
            return self._pool_row(self._pool(name))

    def now(self) -> float:
        return self._clock.now()

    def transitions(self, name: str | None = None) -> list[TransitionRow]:
        with self._settled(), self._store.connection() as conn:
            sql = "SELECT ts, kind, name, from_state, to_state, reason FROM _emu_transitions"
            args: tuple[Any, ...] = ()
            if name is not None:
                sql += " WHERE name = ?"
                args = (name,)
            rows = conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [TransitionRow(*tuple(r)) for r in rows]

    def usage_history(self, pool: str | None, start: float, end: float) -> list[UsageRow]:
        """Hourly credits per pool from its billed (ACTIVE/IDLE) time within [start, end)."""
        with self._settled() as now, self._store.connection() as conn:
            names = [self._pool(pool).name] if pool is not None else sorted(self._pools)
            end = min(end, now)
            out: list[UsageRow] = []
            for name in names:
                p = self._pools[name]
                rate = CREDITS_PER_NODE_HOUR.get(p.instance_family, 1.0) * p.min_nodes
                rows = conn.execute(
                    "SELECT ts, to_state FROM _emu_transitions WHERE kind = 'pool' AND name = ? "
                    "ORDER BY seq",
                    (name,),
                ).fetchall()
                buckets: dict[float, float] = {}
                for i, row in enumerate(rows):
                    if row["to_state"] not in BILLED_POOL_STATES:
                        continue
                    seg_end = rows[i + 1]["ts"] if i + 1 < len(rows) else now
                    lo, hi = max(row["ts"], start), min(seg_end, end)
                    while lo < hi:
                        bucket = math.floor(lo / 3600) * 3600.0
                        cut = min(hi, bucket + 3600)
                        buckets[bucket] = buckets.get(bucket, 0.0) + (cut - lo)
                        lo = cut
                for bucket in sorted(buckets):
                    seconds = buckets[bucket]
                    if seconds > 0:
                        out.append(UsageRow(bucket, bucket + 3600, name, seconds / 3600 * rate))
            return out

    def snapshot(self) -> dict[str, Any]:
        """JSON-able status for the admin API."""
        services = self.services()
        pools = self.pools()
        return {
            "account": self.account_name,
            "now": self._clock.now(),
            "resume_seconds": self.resume_seconds,
            "services": [
                {
                    "name": s.fqn,
                    "status": s.status,
                    "compute_pool": s.compute_pool,
                    "min_instances": s.min_instances,
                    "max_instances": s.max_instances,
                    "auto_resume": s.auto_resume,
                    "auto_suspend_secs": s.auto_suspend_secs,
                    "current_instances": s.current_instances,
                    "ingress_url": s.ingress_url,
                    "ready_at": s.ready_at,
                    "resumed_on": s.resumed_on,
                    "suspended_on": s.suspended_on,
                    "last_request_at": s.last_request_at,
                    "model": f"{s.model_name}/{s.model_version}",
                    "task": s.task,
                }
                for s in services
            ],
            "compute_pools": [
                {
                    "name": p.name,
                    "state": p.state,
                    "instance_family": p.instance_family,
                    "num_services": p.num_services,
                    "auto_resume": p.auto_resume,
                    "auto_suspend_secs": p.auto_suspend_secs,
                }
                for p in pools
            ],
        }

    # -- transitions (lock held) ------------------------------------------------------------
    def _resume(self, svc: _Service, now: float, reason: str) -> None:
        if svc.status in (RUNNING, PENDING):
            return
        pool = self._pools[svc.spec.compute_pool]
        if pool.state == SUSPENDED:
            if not pool.auto_resume:
                raise PoolSuspendedError(
                    f"Compute pool '{pool.name}' is suspended and AUTO_RESUME is FALSE; "
                    "resume the compute pool first."
                )
            self._start_pool(pool, now, f"auto-resume for service {self._fqn_of(svc)}")
        ready = now + self.resume_seconds
        if pool.state == STARTING and pool.starting_until is not None:
            ready = max(ready, pool.starting_until)
        self._set_service(
            svc, PENDING, now, reason, pending_until=ready, resumed_on=now, running_since=None
        )
        if pool.state == IDLE:
            self._set_pool(pool, ACTIVE, now, "service resumed")

    def _suspend(self, svc: _Service, now: float, reason: str, *, update_pool: bool = True) -> None:
        self._set_service(
            svc, SUSPENDED, now, reason, suspended_on=now, pending_until=None, running_since=None
        )
        pool = self._pools[svc.spec.compute_pool]
        if update_pool and pool.state == ACTIVE and self._all_suspended(pool):
            self._set_pool(pool, IDLE, now, "all services suspended")

    def _set_service(
        self, svc: _Service, status: str, now: float, reason: str, **fields: float | None
    ) -> None:
        before = svc.status
        svc.status, svc.updated_on = status, now
        for attr, value in fields.items():
            setattr(svc, attr, value)
        self._save_service(svc)
        self._record(now, "service", self._fqn_of(svc), before, status, reason)

    def _start_pool(self, pool: _Pool, now: float, reason: str) -> None:
        pool.starting_until = now + self.resume_seconds
        pool.resumed_on = now
        self._set_pool(pool, STARTING, now, reason)

    def _set_pool(self, pool: _Pool, state: str, now: float, reason: str) -> None:
        before = pool.state
        pool.state = state
        pool.updated_on = now
        if state == IDLE:
            pool.idle_since = now
        elif state != SUSPENDED:
            pool.idle_since = None
        if state != STARTING:
            pool.starting_until = None
        self._save_pool(pool)
        self._record(now, "pool", pool.name, before, state, reason)

    def _all_suspended(self, pool: _Pool) -> bool:
        return all(self._services[f].status == SUSPENDED for f in pool.services)

    def _advance(self, now: float) -> None:
        """Apply every time-based transition due by ``now``, earliest first, at its due time."""
        for _ in range(10_000):
            due: tuple[float, int, str, str] | None = None

            def offer(t: float | None, prio: int, kind: str, key: str) -> None:
                nonlocal due
                if t is not None and t <= now and (due is None or (t, prio) < due[:2]):
                    due = (t, prio, kind, key)

            for name, pool in self._pools.items():
                offer(pool.starting_until if pool.state == STARTING else None, 0, "started", name)
                offer(pool.idle_deadline, 3, "pool_idle", name)
            for fqn, svc in self._services.items():
                offer(svc.pending_until if svc.status == PENDING else None, 1, "ready", fqn)
                offer(svc.idle_deadline, 2, "svc_idle", fqn)
            if due is None:
                return
            at, _, kind, key = due
            if kind == "started":
                pool = self._pools[key]
                target = IDLE if self._all_suspended(pool) else ACTIVE
                self._set_pool(pool, target, at, "compute pool started")
            elif kind == "pool_idle":
                self._set_pool(self._pools[key], SUSPENDED, at, "AUTO_SUSPEND_SECS elapsed")
            elif kind == "ready":
                self._set_service(
                    self._services[key],
                    RUNNING,
                    at,
                    "containers ready",
                    pending_until=None,
                    running_since=at,
                )
            else:
                self._suspend(self._services[key], at, "AUTO_SUSPEND_SECS elapsed")
        raise RuntimeError("lifecycle transitions did not settle")  # a bug, not a user error

    # -- rows -------------------------------------------------------------------------------
    def _service_row(self, svc: _Service) -> ServiceRow:
        fqn = self._fqn_of(svc)
        db, schema, name = fqn.split(".")
        instances = max(svc.min_instances, 1)
        current = instances if svc.status == RUNNING else 0
        target = 0 if svc.status == SUSPENDED else instances
        spec = svc.spec
        image = f"/spcs-local/images/{spec.model_name.lower()}:{spec.model_version.lower()}"
        containers: tuple[ContainerRow, ...] = ()
        if svc.status in (RUNNING, PENDING):
            state = "READY" if svc.status == RUNNING else "PENDING"
            message = "Running" if svc.status == RUNNING else "Pending scheduling"
            containers = tuple(
                ContainerRow(
                    instance_id=str(i),
                    instance_status=state,
                    container_name=CONTAINER_NAME,
                    status=state,
                    message=message,
                    image_name=image,
                    restart_count=0,
                    start_time=svc.running_since,
                )
                for i in range(instances)
            )
        digest = hashlib.sha256(
            f"{fqn}|{spec.model_name}|{spec.model_version}|{spec.task}".encode()
        ).hexdigest()
        dns = ".".join(p.lower().replace("_", "-") for p in (name, schema, db))
        return ServiceRow(
            fqn=fqn,
            database_name=db,
            schema_name=schema,
            name=name,
            status=svc.status,
            compute_pool=spec.compute_pool,
            dns_name=f"{dns}.svc.spcs.internal",
            current_instances=current,
            target_instances=target,
            min_ready_instances=max(svc.min_instances, 1),
            min_instances=svc.min_instances,
            max_instances=svc.max_instances,
            auto_resume=svc.auto_resume,
            auto_suspend_secs=svc.auto_suspend_secs,
            created_on=svc.created_on,
            updated_on=svc.updated_on,
            resumed_on=svc.resumed_on,
            suspended_on=svc.suspended_on,
            comment=svc.comment,
            owner=OWNER_ROLE,
            spec_digest=digest,
            ingress_url=svc.ingress,
            endpoint_name=spec.endpoint_name,
            method=spec.method,
            model_name=spec.model_name,
            model_version=spec.model_version,
            task=spec.task,
            ready_at=svc.pending_until,
            last_request_at=svc.last_request_at,
            containers=containers,
        )

    def _pool_row(self, pool: _Pool) -> PoolRow:
        running = [f for f in pool.services if self._services[f].status != SUSPENDED]
        nodes = pool.min_nodes if pool.state in (ACTIVE, IDLE) else 0
        return PoolRow(
            name=pool.name,
            state=pool.state,
            min_nodes=pool.min_nodes,
            max_nodes=pool.max_nodes,
            instance_family=pool.instance_family,
            num_services=len(running),
            auto_suspend_secs=pool.auto_suspend_secs,
            auto_resume=pool.auto_resume,
            active_nodes=nodes if running else 0,
            idle_nodes=0 if running else nodes,
            target_nodes=0 if pool.state == SUSPENDED else pool.min_nodes,
            created_on=pool.created_on,
            resumed_on=pool.resumed_on,
            updated_on=pool.updated_on,
            owner=OWNER_ROLE,
            comment=pool.comment,
        )
