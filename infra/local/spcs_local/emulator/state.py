"""The emulated account: SPCS services and compute pools, their lifecycle, usage history;
the Model Registry's models and versions; roles and grants (``privileges.Catalog``).

Lifecycle model (facts in docs/SNOWFLAKE_FACTS.md; what is simplified is said here):

- Objects come from SQL (``CREATE COMPUTE POOL``, ``CREATE SERVICE``) or from a model
  deployment (``create_model_service``, what ``ModelVersion.create_service`` does). Creation
  is instantaneous: a new service is RUNNING at once (no image pull) and starts its pool at
  once when the pool was suspended with AUTO_RESUME (a pool created without
  INITIALLY_SUSPENDED is IDLE at once).
- Service: RUNNING -> (SUSPEND) -> SUSPENDED -> (RESUME) -> PENDING for ``resume_seconds``
  -> RUNNING. Suspension is immediate (no visible SUSPENDING). A RUNNING service suspends
  itself after its idle time without an ingress request (nor resume / ALTER): AUTO_SUSPEND_SECS
  when > 0, else, for MIN_INSTANCES = 0 (snowflake-ml-python's create_service default),
  Snowflake's own idle timer, ``min_zero_idle_secs`` (default 1800 s; the real value is not
  documented). An ingress request to a SUSPENDED service with AUTO_RESUME starts a resume.
- Job services (``is_job``) run until ``job_seconds`` have passed, then are DONE; they never
  idle-suspend. Suspending their pool ends them (DONE).
- Compute pool: STARTING -> ACTIVE (some service or job running) / IDLE (none); an IDLE pool
  with AUTO_SUSPEND_SECS > 0 is SUSPENDED after that long. Suspending a pool suspends its
  services. Resuming a service on a SUSPENDED pool starts the pool first when the pool has
  AUTO_RESUME, else it is an error. The pool start runs in parallel with the service start,
  so a cold resume still takes ``resume_seconds``. SHOW COMPUTE POOLS counts every service
  and job running on the pool, whoever owns it (``num_services``, ``num_jobs``).
- Instances: a service runs MIN_INSTANCES instances (at least one). ``ALTER SERVICE ... SET
  MIN_INSTANCES`` on a RUNNING service adds instances that are READY after the model load
  (``resume_seconds``, the emulated resume time; PENDING until then) or removes the newest at
  once; on a service that is not running the count applies from its next resume. Each change
  is stored as an ``instances`` transition.
- Every transition is stored with its timestamp (table ``_emu_transitions``); usage history
  bills the pool's ACTIVE and IDLE seconds (Snowflake bills IDLE/ACTIVE/STOPPING/RESIZING,
  not STARTING/SUSPENDED) at an assumed per-node-hour rate of its instance family, for
  ``max(MIN_NODES, the largest instance count up on the pool)`` nodes (an instance of each
  service per node): every instance-second of a scaled-out service is billed.

Time-based transitions are applied lazily (``tick()``, also called by every public method)
at the exact instant they were due, in order, so the stored history is the same whether
somebody looked in between or not.

Privileges are not checked here except in ``create_model_service`` (the deploying role acts);
the SQL engine checks the session's role before calling in.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .clock import Clock
from .privileges import (
    ACCOUNT,
    ACCOUNTADMIN,
    ALL_ENDPOINTS_USAGE,
    COMPUTE_POOL,
    CORTEX_SEARCH_SERVICE,
    MODEL,
    OWNERSHIP,
    SCHEMA,
    SERVICE,
    SERVICE_ROLE,
    AccessError,
    Catalog,
    already_exists,
    insufficient,
    not_found,
)
from .store import Store

if TYPE_CHECKING:
    from spcs_models.spec import ModelDeployment

__all__ = [
    "CREDITS_PER_NODE_HOUR",
    "Account",
    "ContainerRow",
    "GateDecision",
    "InvalidPropertyError",
    "LifecycleError",
    "ModelVersionRow",
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
    "HIGHMEM_X64_M": 1.11,
    "HIGHMEM_X64_L": 4.44,
    "GPU_NV_XS": 0.25,
    "GPU_NV_S": 0.57,
    "GPU_NV_M": 2.68,
    "GPU_NV_L": 14.12,
}
DEFAULT_INSTANCE_FAMILY = "GPU_NV_S"
BILLED_POOL_STATES = frozenset({"ACTIVE", "IDLE"})
DEFAULT_MIN_ZERO_IDLE_SECS = 1800.0

RUNNING, PENDING, SUSPENDED, DONE = "RUNNING", "PENDING", "SUSPENDED", "DONE"
STARTING, ACTIVE, IDLE = "STARTING", "ACTIVE", "IDLE"
CONTAINER_NAME = "model-inference"


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
    """What a service runs: its model version and method (model services), endpoint, kind."""

    fqn: str  # e.g. "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
    compute_pool: str  # "ML_INFERENCE_POOL"
    model_name: str = ""  # "PEDIATRIC_ML.MODELS.BIOBERT_NER" (or a bare name); "" if none
    model_version: str = ""  # "V1"
    task: str = ""  # "token-classification" | "zero-shot-image-classification" | "" (none)
    method: str = "__call__"
    endpoint_name: str = "inference"
    public: bool = True  # a public endpoint (ingress); needs BIND SERVICE ENDPOINT to create
    is_job: bool = False

    @classmethod
    def from_deployment(cls, deployment: ModelDeployment) -> ServiceSpec:
        """The service ``ModelVersion.create_service`` makes for a ``spcs_models`` deployment."""
        return cls(
            fqn=deployment.service,
            compute_pool=deployment.settings.compute_pool,
            model_name=deployment.model_name,
            model_version=deployment.version,
            task=deployment.task,
            method=deployment.method,
            public=bool(deployment.settings.ingress_enabled),
        )


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
    owner: str | None
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
    is_job: bool = False
    public: bool = True


@dataclass(frozen=True)
class PoolRow:
    name: str
    state: str
    min_nodes: int
    max_nodes: int
    instance_family: str
    num_services: int  # services and jobs running (RUNNING or PENDING), every owner
    num_jobs: int  # jobs running
    auto_suspend_secs: int
    auto_resume: bool
    active_nodes: int  # nodes running one or more services/jobs
    idle_nodes: int
    target_nodes: int
    created_on: float
    resumed_on: float | None
    updated_on: float
    owner: str | None
    comment: str | None


@dataclass(frozen=True)
class ModelVersionRow:
    model: str  # DB.SCHEMA.MODEL
    version: str
    created_on: float
    comment: str | None
    is_default: bool
    functions: tuple[str, ...]  # method names, upper-case
    signatures: dict[str, Any]  # method -> signature dict (model_spec "signatures")
    metadata: dict[str, Any]
    user_data: dict[str, Any]
    aliases: tuple[str, ...]


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
    job_until: float | None = None
    # READY times of instances added by ALTER SERVICE ... SET MIN_INSTANCES while RUNNING.
    scaled_ready: list[float] = field(default_factory=list)
    ingress: str | None = None  # not persisted: set by server.py on every start


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
    services: list[str] = field(default_factory=list)  # not persisted: from the services

    @property
    def idle_deadline(self) -> float | None:
        if self.state != IDLE or self.auto_suspend_secs <= 0 or self.idle_since is None:
            return None
        return max(self.idle_since, self.updated_on) + self.auto_suspend_secs


_SCHEMA = """
CREATE TABLE IF NOT EXISTS _emu_services (fqn TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _emu_pools (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _emu_transitions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
  name TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, reason TEXT NOT NULL);
"""
_SERVICE_FIELDS = [f.name for f in fields(_Service) if f.name not in {"spec", "ingress"}]
_POOL_FIELDS = [f.name for f in fields(_Pool) if f.name not in {"name", "services"}]

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


def _signature_dict(signature: Any) -> dict[str, Any]:
    """A signature as the Model Registry stores it (``ModelSignature.to_dict()`` form)."""
    if isinstance(signature, Mapping):
        return dict(json.loads(json.dumps(dict(signature))))
    to_dict = getattr(signature, "to_dict", None)
    if to_dict is None:
        raise ValueError("a signature is a dict or has to_dict()")
    return dict(to_dict())


def service_role_name(fqn: str) -> str:
    """The grant name of a service's default service role."""
    return f"{fqn}!{ALL_ENDPOINTS_USAGE}"


class Account:
    """Services, compute pools and models of the emulated account, with its catalog of roles
    and grants; thread-safe, persisted in SQLite.

    ``specs`` (tests only) creates those services, owned by ACCOUNTADMIN, with their pools,
    when missing; the emulator itself creates everything from the set-up SQL.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        specs: Sequence[ServiceSpec] = (),
        *,
        resume_seconds: float = 5.0,
        auto_resume: bool = True,
        start_suspended: bool = False,
        account_name: str = "LOCALTEST",
        min_zero_idle_secs: float = DEFAULT_MIN_ZERO_IDLE_SECS,
    ) -> None:
        if resume_seconds < 0:
            raise ValueError("resume_seconds must be >= 0")
        if min_zero_idle_secs <= 0:
            raise ValueError("min_zero_idle_secs must be > 0")
        self._store = store
        self._clock = clock
        self._lock = store.lock  # one lock for the account and its SQLite connection
        self.resume_seconds = float(resume_seconds)
        self.min_zero_idle_secs = float(min_zero_idle_secs)
        self.account_name = account_name.upper()
        self._services: dict[str, _Service] = {}
        self._pools: dict[str, _Pool] = {}
        now = clock.now()
        with store.connection() as conn:
            # statement by statement: executescript() would commit the open transaction
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(stmt)
            self.catalog = Catalog(store, clock.now, self.account_name)
            self._load_all(conn)
            for spec in specs:
                fqn = ".".join(split_identifier(spec.fqn))
                if len(fqn.split(".")) != 3:
                    raise ValueError(f"service name must be fully qualified: {spec.fqn}")
                pool_name = ".".join(split_identifier(spec.compute_pool))
                if pool_name not in self._pools:
                    self.create_pool(pool_name, ACCOUNTADMIN)
                if fqn not in self._services:
                    self.create_service(
                        replace(spec, fqn=fqn, compute_pool=pool_name),
                        ACCOUNTADMIN,
                        auto_resume=auto_resume,
                    )
            if start_suspended:
                self.suspend_all("emulator started suspended")
            self._advance(now)

    # -- loading and persistence ------------------------------------------------------------
    def _load_all(self, conn: Any) -> None:
        for row in conn.execute("SELECT name, data FROM _emu_pools ORDER BY name"):
            data = json.loads(row["data"])
            self._pools[row["name"]] = _Pool(name=row["name"], **data)
        for row in conn.execute("SELECT fqn, data FROM _emu_services ORDER BY fqn"):
            data = json.loads(row["data"])
            spec = ServiceSpec(**data.pop("spec"))
            svc = _Service(spec=spec, **data)
            self._services[row["fqn"]] = svc
            pool = self._pools.get(spec.compute_pool)
            if pool is not None:
                pool.services.append(row["fqn"])

    def _save_service(self, svc: _Service) -> None:
        data: dict[str, Any] = {name: getattr(svc, name) for name in _SERVICE_FIELDS}
        data["spec"] = asdict(svc.spec)
        with self._store.connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO _emu_services (fqn, data) VALUES (?, ?)",
                (svc.spec.fqn, json.dumps(data)),
            )

    def _save_pool(self, pool: _Pool) -> None:
        data = {name: getattr(pool, name) for name in _POOL_FIELDS}
        with self._store.connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO _emu_pools (name, data) VALUES (?, ?)",
                (pool.name, json.dumps(data)),
            )

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
        return svc.spec.fqn  # canonical: normalised on creation

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

    def has_pool(self, name: str) -> bool:
        return name in self._pools

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

    # -- creation -----------------------------------------------------------------------------
    def create_pool(
        self,
        name: str,
        owner: str,
        *,
        min_nodes: Any = 1,
        max_nodes: Any = 1,
        instance_family: str = DEFAULT_INSTANCE_FAMILY,
        auto_resume: Any = True,
        auto_suspend_secs: Any = 3600,
        initially_suspended: Any = False,
        comment: str | None = None,
        if_not_exists: bool = False,
    ) -> bool:
        """CREATE COMPUTE POOL; False when it existed and ``if_not_exists`` was given."""
        pool_name = ".".join(split_identifier(name))
        family = str(instance_family).strip().upper()
        if family not in CREDITS_PER_NODE_HOUR:
            raise InvalidPropertyError(f"invalid value [{family}] for parameter 'INSTANCE_FAMILY'")
        with self._settled() as now:
            if pool_name in self._pools:
                if if_not_exists:
                    return False
                raise already_exists(pool_name)
            pool = _Pool(name=pool_name, state=SUSPENDED, created_on=now, updated_on=now)
            pool.instance_family = family
            props = {
                "MIN_NODES": min_nodes,
                "MAX_NODES": max_nodes,
                "AUTO_RESUME": auto_resume,
                "AUTO_SUSPEND_SECS": auto_suspend_secs,
                "COMMENT": comment,
            }
            _apply_props(pool, props, _POOL_PROPS, "COMPUTE_POOL", ("min_nodes", "max_nodes"))
            suspended = _to_bool(initially_suspended, "INITIALLY_SUSPENDED")
            self._pools[pool_name] = pool
            state = SUSPENDED if suspended else IDLE
            pool.state = state
            if state == IDLE:
                pool.idle_since, pool.resumed_on = now, now
            self._save_pool(pool)
            self._record(now, "pool", pool_name, None, state, "created")
            self.catalog.set_owner(COMPUTE_POOL, pool_name, owner)
            return True

    def create_service(
        self,
        spec: ServiceSpec,
        owner: str,
        *,
        min_instances: Any = 1,
        max_instances: Any = 1,
        auto_resume: Any = True,
        auto_suspend_secs: Any = 0,
        comment: str | None = None,
        if_not_exists: bool = False,
        job_seconds: float | None = None,
    ) -> bool:
        """CREATE SERVICE (or EXECUTE JOB SERVICE with ``spec.is_job``): RUNNING at once, on a
        pool started at once. False when it existed and ``if_not_exists`` was given."""
        fqn = ".".join(split_identifier(spec.fqn))
        if len(fqn.split(".")) != 3:
            raise ValueError(f"service name must be fully qualified: {spec.fqn}")
        pool_name = ".".join(split_identifier(spec.compute_pool))
        spec = replace(spec, fqn=fqn, compute_pool=pool_name)
        with self._settled() as now:
            if fqn in self._services:
                if if_not_exists:
                    return False
                raise already_exists(fqn)
            pool = self._pools.get(pool_name)
            if pool is None:
                raise not_found(COMPUTE_POOL, pool_name)
            svc = _Service(spec=spec, status=RUNNING, created_on=now, updated_on=now)
            props = {
                "MIN_INSTANCES": min_instances,
                "MAX_INSTANCES": max_instances,
                "AUTO_RESUME": auto_resume,
                "AUTO_SUSPEND_SECS": auto_suspend_secs,
                "COMMENT": comment,
            }
            _apply_props(svc, props, _SERVICE_PROPS, "SERVICE", ("min_instances", "max_instances"))
            if pool.state == SUSPENDED:
                if not pool.auto_resume:
                    raise PoolSuspendedError(
                        f"Compute pool '{pool.name}' is suspended and AUTO_RESUME is FALSE; "
                        "resume the compute pool first."
                    )
                pool.resumed_on = now
                self._set_pool(pool, ACTIVE, now, f"started for new service {fqn}")
            elif pool.state == IDLE:
                self._set_pool(pool, ACTIVE, now, "service created")
            svc.resumed_on = svc.running_since = now
            if spec.is_job:
                svc.job_until = now + max(0.0, float(job_seconds or 0.0))
            self._services[fqn] = svc
            pool.services.append(fqn)
            self._save_service(svc)
            self._record(now, "service", fqn, None, RUNNING, "created")
            self._record(now, "instances", fqn, None, str(_count(svc)), "created")
            self.catalog.set_owner(SERVICE, fqn, owner)
            self._advance(now)
            return True

    def create_model_service(
        self,
        deployment: ModelDeployment,
        owner_role: str,
        *,
        if_not_exists: bool = False,
    ) -> str:
        """What ``ModelVersion.create_service`` does for a ``spcs_models`` deployment, as
        ``owner_role``: the model and version (its signature stored as the version's
        model_spec) when missing, then the service with the deployment's settings, owned by
        that role. Needs USAGE on the database, CREATE MODEL and CREATE SERVICE on the
        schema(s), USAGE on the compute pool and, for a public endpoint, BIND SERVICE
        ENDPOINT on the account. Answers the service's FQN."""
        role = owner_role.upper()
        if not self.catalog.role_exists(role):
            raise not_found("ROLE", role)
        roles = self.catalog.effective_roles(role)
        model = ".".join(split_identifier(deployment.model_name))
        spec = ServiceSpec.from_deployment(deployment)
        fqn = ".".join(split_identifier(spec.fqn))
        settings = deployment.settings
        for target, needed in ((model, "CREATE MODEL"), (fqn, "CREATE SERVICE")):
            parts = target.split(".")
            if len(parts) != 3:
                raise ValueError(f"names must be fully qualified: {target}")
            schema = f"{parts[0]}.{parts[1]}"
            if not self.catalog.schema_visible(roles, schema):
                raise not_found(SCHEMA, schema)
            if not self.catalog.holds(roles, SCHEMA, schema, (needed,)):
                raise insufficient(SCHEMA, parts[1])
        pool = ".".join(split_identifier(settings.compute_pool))
        if pool not in self._pools or not self.catalog.visible(roles, COMPUTE_POOL, pool):
            raise not_found(COMPUTE_POOL, pool)
        if not self.catalog.holds(roles, COMPUTE_POOL, pool, ("USAGE",)):
            raise insufficient(COMPUTE_POOL, pool)
        if spec.public and not self.catalog.account_privilege(roles, "BIND SERVICE ENDPOINT"):
            raise insufficient(ACCOUNT, self.account_name)
        signature = _signature_dict(deployment.signature)
        with self._settled():
            if fqn in self._services:
                if if_not_exists:
                    return fqn
                raise already_exists(fqn)
            self._ensure_model_version(
                model, deployment.version, deployment.method, signature, role
            )
            self.create_service(
                replace(spec, fqn=fqn, compute_pool=pool, model_name=model),
                role,
                min_instances=settings.min_instances,
                max_instances=settings.max_instances,
                auto_resume=True,
                auto_suspend_secs=0,
            )
        return fqn

    def _ensure_model_version(
        self, model: str, version: str, method: str, signature: dict[str, Any], owner: str
    ) -> None:
        catalog = self.catalog
        found = catalog.get(MODEL, model)
        if found is None:
            catalog.create(MODEL, model, owner, {"default_version": None, "versions": {}})
            found = catalog.get(MODEL, model)
            assert found is not None
        props = dict(found.props)
        versions = dict(props.get("versions") or {})
        name = ".".join(split_identifier(version))
        existing = versions.get(name)
        if existing is not None:
            if existing["signatures"].get(method) != signature:
                raise AccessError(
                    2002,
                    "42710",
                    f"SQL compilation error:\nVersion '{name}' of model '{model}' already exists "
                    "with another signature; log a new version.",
                )
            return
        versions[name] = {
            "created_on": self._clock.now(),
            "comment": None,
            "functions": [method.upper()],
            "signatures": {method: signature},
            "metadata": {},
            "user_data": {},
            "aliases": ["FIRST"] if not versions else [],
        }
        props["versions"] = versions
        if not props.get("default_version"):
            props["default_version"] = name
            versions[name]["aliases"] = ["DEFAULT", *versions[name]["aliases"]]
        catalog.update(MODEL, model, props)

    # -- models -------------------------------------------------------------------------------
    def models(self) -> list[str]:
        return [o.name for o in self.catalog.objects(MODEL)]

    def model_versions(self, model: str) -> list[ModelVersionRow]:
        found = self.catalog.get(MODEL, model)
        if found is None:
            raise KeyError(model)
        default = found.props.get("default_version")
        rows = []
        for name, v in sorted((found.props.get("versions") or {}).items()):
            rows.append(
                ModelVersionRow(
                    model=model,
                    version=name,
                    created_on=float(v["created_on"]),
                    comment=v.get("comment"),
                    is_default=name == default,
                    functions=tuple(v.get("functions") or ()),
                    signatures=dict(v.get("signatures") or {}),
                    metadata=dict(v.get("metadata") or {}),
                    user_data=dict(v.get("user_data") or {}),
                    aliases=tuple(v.get("aliases") or ()),
                )
            )
        return rows

    def service_signature(self, fqn: str) -> dict[str, Any] | None:
        """The signature (``to_dict`` form) of the model method a model service serves."""
        with self._lock:
            spec = self._svc(fqn).spec
        if not spec.model_name:
            return None
        try:
            versions = self.model_versions(spec.model_name)
        except KeyError:
            return None
        for v in versions:
            if v.version == spec.model_version.upper():
                signature = v.signatures.get(spec.method)
                return dict(signature) if signature is not None else None
        return None

    # -- access questions for the ingress and Cortex Search ----------------------------------
    def role_can_use_endpoint(self, role: str, fqn: str) -> bool:
        """Does ``role`` (with the roles it inherits) hold the service role
        ``<fqn>!ALL_ENDPOINTS_USAGE`` or own the service? Unknown roles hold nothing."""
        name = role.upper()
        if not self.catalog.role_exists(name):
            return False
        roles = self.catalog.effective_roles(name)
        service = ".".join(split_identifier(fqn))
        return self.catalog.holds(
            roles, SERVICE_ROLE, service_role_name(service), ("USAGE",)
        ) or self.catalog.holds(roles, SERVICE, service, (OWNERSHIP,))

    def user_default_role(self, user: str) -> str | None:
        """A user's DEFAULT_ROLE when it is granted to them (else None: PUBLIC applies)."""
        return self.catalog.user_default_role(user.upper())

    def role_can_use_search(self, role: str, fqn: str) -> bool:
        """USAGE (or ownership) on a Cortex Search service, with its database and schema."""
        name = role.upper()
        if not self.catalog.role_exists(name):
            return False
        roles = self.catalog.effective_roles(name)
        parts = fqn.split(".")
        service = ".".join(split_identifier(fqn)) if len(parts) == 3 else fqn
        return self.catalog.visible(roles, CORTEX_SEARCH_SERVICE, service) and self.catalog.holds(
            roles, CORTEX_SEARCH_SERVICE, service, ("USAGE",)
        )

    def user_rsa_public_keys(self, user: str) -> list[str]:
        """The base64 bodies set with ALTER USER ... SET RSA_PUBLIC_KEY / RSA_PUBLIC_KEY_2."""
        found = self.catalog.user(user.upper())
        if found is None:
            return []
        keys = [found.props.get("RSA_PUBLIC_KEY"), found.props.get("RSA_PUBLIC_KEY_2")]
        return [k for k in keys if isinstance(k, str) and k]

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
            svc = self._svc(fqn)
            self._not_a_job(svc)
            self._resume(svc, now, "ALTER SERVICE RESUME")
            self._advance(now)

    def suspend_service(self, fqn: str) -> None:
        with self._settled() as now:
            svc = self._svc(fqn)
            self._not_a_job(svc)
            if svc.status != SUSPENDED:
                self._suspend(svc, now, "ALTER SERVICE SUSPEND")
            self._advance(now)

    def suspend_all(self, reason: str) -> None:
        """Suspend every (non-job) service, e.g. for ``--start-suspended``."""
        with self._settled() as now:
            for svc in self._services.values():
                if not svc.spec.is_job and svc.status != SUSPENDED:
                    self._suspend(svc, now, reason)
            self._advance(now)

    @staticmethod
    def _not_a_job(svc: _Service) -> None:
        if svc.spec.is_job:
            raise LifecycleError(f"Service '{svc.spec.fqn}' is a job service.")

    def alter_service(self, fqn: str, **props: Any) -> None:
        """Set MIN_INSTANCES, MAX_INSTANCES, AUTO_SUSPEND_SECS, AUTO_RESUME or COMMENT."""
        with self._settled() as now:
            svc = self._svc(fqn)
            before = _count(svc)
            _apply_props(svc, props, _SERVICE_PROPS, "SERVICE", ("min_instances", "max_instances"))
            svc.updated_on = now
            after = _count(svc)
            if after != before and svc.status == RUNNING:
                if after > before:  # new instances load the model first
                    svc.scaled_ready = svc.scaled_ready + [now + self.resume_seconds] * (
                        after - before
                    )
                else:  # the newest go first
                    keep = max(len(svc.scaled_ready) - (before - after), 0)
                    svc.scaled_ready = svc.scaled_ready[:keep]
            if after != before:
                self._record(now, "instances", fqn, str(before), str(after), "ALTER SERVICE SET")
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
                    if svc.spec.is_job:
                        if svc.status in (RUNNING, PENDING):
                            self._set_service(
                                svc, DONE, now, "compute pool suspended", job_until=None
                            )
                    elif svc.status != SUSPENDED:
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
                rate = CREDITS_PER_NODE_HOUR.get(p.instance_family, 1.0)
                rows = conn.execute(
                    "SELECT ts, to_state FROM _emu_transitions WHERE kind = 'pool' AND name = ? "
                    "ORDER BY seq",
                    (name,),
                ).fetchall()
                nodes = _NodeSteps(conn, p.services, p.min_nodes)
                buckets: dict[float, float] = {}  # node-seconds per hour
                for i, row in enumerate(rows):
                    if row["to_state"] not in BILLED_POOL_STATES:
                        continue
                    seg_end = rows[i + 1]["ts"] if i + 1 < len(rows) else now
                    for lo, hi, count in nodes.between(max(row["ts"], start), min(seg_end, end)):
                        while lo < hi:
                            bucket = math.floor(lo / 3600) * 3600.0
                            cut = min(hi, bucket + 3600)
                            buckets[bucket] = buckets.get(bucket, 0.0) + (cut - lo) * count
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
                    "model": f"{s.model_name}/{s.model_version}" if s.model_name else None,
                    "task": s.task or None,
                    "owner": s.owner,
                    "is_job": s.is_job,
                }
                for s in services
            ],
            "compute_pools": [
                {
                    "name": p.name,
                    "state": p.state,
                    "instance_family": p.instance_family,
                    "num_services": p.num_services,
                    "num_jobs": p.num_jobs,
                    "owner": p.owner,
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
        svc.scaled_ready = []  # a start or stop brings every instance up or down together
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
        """No service or job of the pool is running (or starting)."""
        return not any(self._services[f].status in (RUNNING, PENDING) for f in pool.services)

    def _idle_deadline(self, svc: _Service) -> float | None:
        """When a RUNNING service suspends itself: AUTO_SUSPEND_SECS, else Snowflake's own
        idle timer for MIN_INSTANCES = 0; never for jobs."""
        if svc.status != RUNNING or svc.spec.is_job:
            return None
        seconds = float(svc.auto_suspend_secs)
        if seconds <= 0 and svc.min_instances == 0:
            seconds = self.min_zero_idle_secs
        if seconds <= 0:
            return None
        marks = [t for t in (svc.running_since, svc.last_request_at, svc.updated_on) if t]
        return max(marks) + seconds

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
                offer(self._idle_deadline(svc), 2, "svc_idle", fqn)
                if svc.spec.is_job and svc.status == RUNNING:
                    offer(svc.job_until, 2, "job_done", fqn)
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
            elif kind == "job_done":
                job = self._services[key]
                self._set_service(job, DONE, at, "job finished", job_until=None)
                pool = self._pools[job.spec.compute_pool]
                if pool.state == ACTIVE and self._all_suspended(pool):
                    self._set_pool(pool, IDLE, at, "no service or job running")
            else:
                svc = self._services[key]
                reason = (
                    "AUTO_SUSPEND_SECS elapsed"
                    if svc.auto_suspend_secs > 0
                    else "idle with MIN_INSTANCES = 0"
                )
                self._suspend(svc, at, reason)
        raise RuntimeError("lifecycle transitions did not settle")  # a bug, not a user error

    # -- rows -------------------------------------------------------------------------------
    def _service_row(self, svc: _Service) -> ServiceRow:
        fqn = self._fqn_of(svc)
        db, schema, name = fqn.split(".")
        instances = _count(svc)
        current = instances if svc.status == RUNNING else 0
        target = instances if svc.status in (RUNNING, PENDING) else 0
        spec = svc.spec
        image = _image_name(spec)
        containers: tuple[ContainerRow, ...] = ()
        if svc.status in (RUNNING, PENDING):
            now = self._clock.now()
            first = instances - len(svc.scaled_ready)
            starts: list[float | None] = [svc.running_since] * first + list(svc.scaled_ready)
            ready = [
                svc.status == RUNNING and (i < first or svc.scaled_ready[i - first] <= now)
                for i in range(instances)
            ]
            containers = tuple(
                ContainerRow(
                    instance_id=str(i),
                    instance_status="READY" if ready[i] else "PENDING",
                    container_name=CONTAINER_NAME,
                    status="READY" if ready[i] else "PENDING",
                    message="Running" if ready[i] else "Pending scheduling",
                    image_name=image,
                    restart_count=0,
                    start_time=starts[i] if ready[i] else None,
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
            owner=self.catalog.owner(SERVICE, fqn),
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
            is_job=spec.is_job,
            public=spec.public,
        )

    def _pool_row(self, pool: _Pool) -> PoolRow:
        running = [
            self._services[f]
            for f in pool.services
            if self._services[f].status in (RUNNING, PENDING)
        ]
        demand = sum(1 if s.spec.is_job else max(s.min_instances, 1) for s in running)
        wanted = max(pool.min_nodes, min(pool.max_nodes, demand))
        nodes = wanted if pool.state in (ACTIVE, IDLE) else 0
        active = min(nodes, demand)
        return PoolRow(
            name=pool.name,
            state=pool.state,
            min_nodes=pool.min_nodes,
            max_nodes=pool.max_nodes,
            instance_family=pool.instance_family,
            num_services=len(running),
            num_jobs=sum(1 for s in running if s.spec.is_job),
            auto_suspend_secs=pool.auto_suspend_secs,
            auto_resume=pool.auto_resume,
            active_nodes=active,
            idle_nodes=nodes - active,
            target_nodes=0 if pool.state == SUSPENDED else wanted,
            created_on=pool.created_on,
            resumed_on=pool.resumed_on,
            updated_on=pool.updated_on,
            owner=self.catalog.owner(COMPUTE_POOL, pool.name),
            comment=pool.comment,
        )


def _count(svc: _Service) -> int:
    """Instances a service runs while up: MIN_INSTANCES, at least one."""
    return max(svc.min_instances, 1)


class _NodeSteps:
    """Nodes billed over time, as a step function built from the services' status and
    ``instances`` transitions: ``max(min_nodes, largest instance count up on the pool)`` (one
    instance of each service per node: services share nodes, a service's instances do not)."""

    def __init__(self, conn: Any, services: Sequence[str], min_nodes: int) -> None:
        self._min = min_nodes
        self._steps: list[tuple[float, int]] = []
        if not services:
            return
        marks = ",".join("?" * len(services))
        rows = conn.execute(
            "SELECT ts, kind, name, to_state FROM _emu_transitions "
            f"WHERE kind IN ('service', 'instances') AND name IN ({marks}) ORDER BY seq",
            tuple(services),
        ).fetchall()
        up: dict[str, bool] = {}
        count: dict[str, int] = {}
        for row in rows:
            if row["kind"] == "service":
                up[row["name"]] = row["to_state"] in (RUNNING, PENDING)
            else:
                count[row["name"]] = int(row["to_state"])
            total = max((count.get(n, 1) for n, running in up.items() if running), default=0)
            self._steps.append((float(row["ts"]), total))

    def between(self, lo: float, hi: float) -> Iterator[tuple[float, float, int]]:
        """(start, end, nodes) pieces covering [lo, hi)."""
        if lo >= hi:
            return
        current = 0
        cuts: list[tuple[float, int]] = []
        for ts, total in self._steps:
            if ts <= lo:
                current = total
            elif ts < hi:
                cuts.append((ts, total))
        at = lo
        for ts, total in cuts:
            yield at, ts, max(self._min, current)
            at, current = ts, total
        yield at, hi, max(self._min, current)


def _image_name(spec: ServiceSpec) -> str:
    model = (spec.model_name.rsplit(".", 1)[-1] or spec.fqn.rsplit(".", 1)[-1]).lower()
    return f"/spcs-local/images/{model}:{(spec.model_version or 'latest').lower()}"
