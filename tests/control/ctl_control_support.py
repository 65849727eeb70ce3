"""Fakes and a moto world for the control-plane tests (imported by test_ctl_control*.py and
test_ctl_cli.py; tests/control is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws
from moto_support import (
    REGION,
    create_function,
    create_queues,
    create_state_table,
    fake_credentials,
)

from spcs_gateway.control import ControlPlane
from spcs_gateway.lifecycle import LifecyclePolicy
from spcs_gateway.queues import EventSourceMappings, QueueMonitor
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.service_control import ServiceController
from spcs_gateway.service_state import ServiceStateStore

TABLE = "spcs-gateway-service-state"
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
NER = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
CLIP = "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"
POOL = "ML_INFERENCE_POOL"


def registry_doc(idle_seconds: int = 60, **ner_extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "snowflake": {
            "account": "acme-test",
            "user": "GATEWAY_SVC",
            "secret": {"file": "/nonexistent/key.pem"},
        },
        "services": [
            {
                "name": "biobert_ner",
                "service": NER,
                "compute_pool": POOL,
                "url": "https://ner-acme.snowflakecomputing.app",
                "task": "token-classification",
                "idle_seconds": idle_seconds,
                "queues": ["notes"],
                **ner_extra,
            },
            {
                "name": "biomedclip",
                "service": CLIP,
                "compute_pool": POOL,
                "url": "https://clip-acme.snowflakecomputing.app",
                "task": "zero-shot-image-classification",
                "idle_seconds": idle_seconds,
                "queues": ["images"],
            },
        ],
    }


def make_registry(**kwargs: Any) -> Registry:
    return parse_registry(registry_doc(**kwargs))


class FakeClock:
    """Shared fake time; ``sleep`` advances it (thread-safe)."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


@dataclass
class _Svc:
    status: str
    pool: str
    pending_left: int = 0  # SHOW SERVICES calls until PENDING -> RUNNING
    starting_left: int = 0  # SHOW SERVICE CONTAINERS calls until containers READY


class Crash(BaseException):
    """Simulates the process dying (not an Exception: nothing in the code under test eats it)."""


@dataclass
class FakeSnowflake:
    """A ``QueryRunner`` that answers the SQL ``ServiceController`` issues, with SPCS statuses:
    RESUME -> PENDING for ``pending_polls`` observations -> RUNNING with containers PENDING for
    ``starting_polls`` container checks -> READY. Records every statement."""

    services: dict[str, _Svc] = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)
    pending_polls: int = 2
    starting_polls: int = 1
    statements: list[str] = field(default_factory=list)
    crash_on: Callable[[str], bool] | None = None
    fail_on: Callable[[str], bool] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def with_services(
        cls, statuses: dict[str, str], pool_state: str = "ACTIVE", **kwargs: Any
    ) -> FakeSnowflake:
        fake = cls(**kwargs)
        for fqn, status in statuses.items():
            fake.services[fqn] = _Svc(status, POOL)
        fake.pools[POOL] = pool_state
        return fake

    def set_status(self, fqn: str, status: str) -> None:
        with self._lock:
            self.services[fqn] = _Svc(status, self.services[fqn].pool)

    def status(self, fqn: str) -> str:
        return self.services[fqn].status

    def count(self, pattern: str) -> int:
        return sum(1 for s in self.statements if re.search(pattern, s))

    def index(self, pattern: str) -> int:
        return next(i for i, s in enumerate(self.statements) if re.search(pattern, s))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.crash_on is not None and self.crash_on(sql):
            raise Crash()
        if self.fail_on is not None and self.fail_on(sql):
            from spcs_gateway.errors import ErrorCode, TransientError

            raise TransientError(ErrorCode.DEPENDENCY_ERROR, "Snowflake statement failed")
        with self._lock:
            self.statements.append(sql)
            return self._answer(sql)

    def _answer(self, sql: str) -> list[dict[str, Any]]:
        m = re.fullmatch(r"SHOW SERVICES LIKE '(\w+)'(?: IN SCHEMA (\w+)\.(\w+))?", sql)
        if m:
            fqn = f"{m.group(2)}.{m.group(3)}.{m.group(1)}"
            svc = self.services.get(fqn)
            if svc is None:
                return []
            if svc.status == "PENDING":
                if svc.pending_left <= 0:
                    svc.status, svc.starting_left = "RUNNING", self.starting_polls
                else:
                    svc.pending_left -= 1
            return [{"name": m.group(1), "status": svc.status, "compute_pool": svc.pool}]
        m = re.fullmatch(r"SHOW SERVICE CONTAINERS IN SERVICE ([\w.]+)", sql)
        if m:
            svc = self.services[m.group(1)]
            ready = svc.starting_left <= 0
            svc.starting_left -= 1
            return [{"instance_id": "0", "status": "READY" if ready else "PENDING"}]
        m = re.fullmatch(r"ALTER SERVICE ([\w.]+) (RESUME|SUSPEND)", sql)
        if m:
            svc = self.services[m.group(1)]
            if m.group(2) == "RESUME" and svc.status == "SUSPENDED":
                svc.status, svc.pending_left = "PENDING", self.pending_polls
                if self.pools.get(svc.pool) == "SUSPENDED":  # AUTO_RESUME of the pool
                    self.pools[svc.pool] = "ACTIVE"
            elif m.group(2) == "SUSPEND":
                svc.status = "SUSPENDED"
            return [{"status": "Statement executed successfully."}]
        m = re.fullmatch(r"SHOW COMPUTE POOLS LIKE '(\w+)'", sql)
        if m:
            state = self.pools.get(m.group(1))
            # num_services: services (and jobs) running on the pool, every owner's.
            running = sum(
                1
                for svc in self.services.values()
                if svc.pool == m.group(1) and svc.status not in {"SUSPENDED", "DONE"}
            )
            if state is None:
                return []
            return [{"name": m.group(1), "state": state, "num_services": running}]
        m = re.fullmatch(r"ALTER COMPUTE POOL (\w+) (RESUME|SUSPEND)", sql)
        if m:
            if m.group(2) == "RESUME":
                self.pools[m.group(1)] = "ACTIVE"
            else:
                self.pools[m.group(1)] = "SUSPENDED"
                for svc in self.services.values():
                    if svc.pool == m.group(1):
                        svc.status = "SUSPENDED"
            return [{"status": "Statement executed successfully."}]
        raise AssertionError(f"unexpected SQL: {sql}")


class SerializedClient:
    """DynamoDB applies each (conditional) write atomically; moto does not lock its backend, so
    concurrent tests serialise single calls (never our logic) to get DynamoDB's guarantee."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class RecordingMetrics:
    def __init__(self) -> None:
        self.points: list[tuple[str, float, str, str | None]] = []
        self._lock = threading.Lock()

    def emit(
        self, name: str, value: float, unit: Any, *, service: str, outcome: str | None = None
    ) -> None:
        with self._lock:
            self.points.append((name, value, service, outcome))

    def named(self, name: str) -> list[tuple[str, float, str, str | None]]:
        return [p for p in self.points if p[0] == name]


@dataclass
class World:
    """moto AWS (state table, queues, router functions + mappings) plus a fake Snowflake."""

    dynamodb: Any
    sqs: Any
    lam: Any
    urls: dict[str, str]
    arns: dict[str, str]
    mapping_uuids: dict[str, str]
    snowflake: FakeSnowflake
    clock: FakeClock
    metrics: RecordingMetrics

    @property
    def store(self) -> ServiceStateStore:
        return ServiceStateStore(TABLE, self.dynamodb)

    def control(self, registry: Registry | None = None, **kwargs: Any) -> ControlPlane:
        options: dict[str, Any] = {
            "clock": self.clock.now,
            "sleep": self.clock.sleep,
            "owner_id": "test",
            "policy": LifecyclePolicy(min_uptime=timedelta(seconds=0)),
            "poll_interval": 5.0,
            "metrics": self.metrics,
        }
        options.update(kwargs)
        return ControlPlane(
            registry or make_registry(),
            ServiceController(self.snowflake),
            self.store,
            QueueMonitor(self.sqs, self.urls),
            EventSourceMappings(self.lam, self.arns),
            **options,
        )

    def mapping_enabled(self, queue: str) -> bool:
        state = self.lam.get_event_source_mapping(UUID=self.mapping_uuids[queue])["State"]
        return bool(state == "Enabled")

    def set_mapping(self, queue: str, enabled: bool) -> None:
        self.lam.update_event_source_mapping(UUID=self.mapping_uuids[queue], Enabled=enabled)

    def send(self, queue: str, count: int) -> None:
        """moto invokes the function (needs Docker) on a send to a queue whose mapping is
        enabled, so the mapping is disabled for the send and restored after."""
        was = self.mapping_enabled(queue)
        if was:
            self.set_mapping(queue, False)
        for i in range(count):
            self.sqs.send_message(QueueUrl=self.urls[queue], MessageBody=json.dumps({"n": i}))
        if was:
            self.set_mapping(queue, True)

    def drain(self, queue: str) -> None:
        self.sqs.purge_queue(QueueUrl=self.urls[queue])

    def items(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=TABLE)["Items"])


def aws_world(
    monkeypatch: Any, statuses: dict[str, str] | None = None, **fake_kwargs: Any
) -> Iterator[World]:
    """Generator body for a fixture: ``yield from aws_world(monkeypatch, ...)``."""
    fake_credentials(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_state_table(dynamodb, TABLE)
        sqs = boto3.client("sqs", region_name=REGION)
        lam = boto3.client("lambda", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        urls, arns = create_queues(sqs, ("notes", "images"), suffix="-queue")
        uuids: dict[str, str] = {}
        for queue, function in (("notes", "note-router"), ("images", "image-router")):
            create_function(lam, iam, function)
            uuids[queue] = lam.create_event_source_mapping(
                EventSourceArn=arns[queue], FunctionName=function, BatchSize=10
            )["UUID"]
        snowflake = FakeSnowflake.with_services(
            statuses or {NER: "SUSPENDED", CLIP: "SUSPENDED"}, **fake_kwargs
        )
        yield World(
            SerializedClient(dynamodb),
            sqs,
            lam,
            urls,
            arns,
            uuids,
            snowflake,
            FakeClock(),
            RecordingMetrics(),
        )
