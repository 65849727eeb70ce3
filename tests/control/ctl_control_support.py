"""Worlds for the control-plane tests (imported by test_ctl_*.py; tests/control is on sys.path
under pytest's default import mode).

``memory_world``: every port in memory (``spcs_gateway.control.memory``). ``aws_world``: the
production AWS adapters on moto (state table, queues, event source mappings) with Snowflake in
memory. Both have the same surface, so a scenario can run in either.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
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

from spcs_gateway.control import ControlPlane, ControlSettings
from spcs_gateway.control.memory import (
    ManualClock,
    MemoryMappings,
    MemoryQueues,
    MemorySpcsServices,
    MemoryStateStore,
)
from spcs_gateway.control.ports import MappingSwitch, QueueBacklog, StateStore
from spcs_gateway.lifecycle import LifecyclePolicy
from spcs_gateway.queues import EventSourceMappings, QueueMonitor
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.service_state import ServiceStateStore

TABLE = "spcs-gateway-service-state"
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
NER = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
CLIP = "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"
POOL = "ML_INFERENCE_POOL"
QUEUES = ("notes", "images")


def registry_doc(idle_seconds: int = 60, policy: str = "fixed", **ner_extra: Any) -> dict[str, Any]:
    """Two services; ``policy`` fixed by default (these tests pin the idle-window rules; the
    adaptive policy has its own tests in test_ctl_adaptive*.py)."""
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
                "policy": policy,
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
                "policy": policy,
                "queues": ["images"],
            },
        ],
    }


def make_registry(**kwargs: Any) -> Registry:
    return parse_registry(registry_doc(**kwargs))


class Crash(BaseException):
    """Simulates the process dying (not an Exception: nothing in the code under test eats it)."""


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


def snowflake(
    clock: ManualClock,
    statuses: dict[str, str] | None = None,
    *,
    resume_seconds: float = 10.0,
    start_seconds: float = 5.0,
) -> MemorySpcsServices:
    """Both managed services on one pool. A resume is PENDING for ``resume_seconds``, then
    RUNNING with containers READY ``start_seconds`` later; a RUNNING service starts READY."""
    services = MemorySpcsServices(
        clock.now, resume_seconds=resume_seconds, start_seconds=start_seconds
    )
    services.add_pool(POOL)
    for fqn, status in (statuses or {NER: "SUSPENDED", CLIP: "SUSPENDED"}).items():
        services.add_service(fqn, POOL, status)
    return services


class World:
    """The ports of one control plane, a clock and recorded metrics. Queue and mapping helpers
    are overridden by ``AwsWorld``."""

    def __init__(
        self,
        services: MemorySpcsServices,
        store: StateStore,
        backlog: QueueBacklog,
        mappings: MappingSwitch,
        clock: ManualClock,
    ) -> None:
        self.services = services
        self.store = store
        self.backlog = backlog
        self.mappings = mappings
        self.clock = clock
        self.metrics = RecordingMetrics()

    def control(self, registry: Registry | None = None, **settings: Any) -> ControlPlane:
        options: dict[str, Any] = {
            "owner_id": "test",
            "policy": LifecyclePolicy(min_uptime=timedelta(0)),
            "poll_interval_s": 5.0,
            **settings,
        }
        return ControlPlane(
            registry or make_registry(),
            self.services,
            self.store,
            self.backlog,
            self.mappings,
            settings=ControlSettings(**options),
            clock=self.clock.now,
            sleep=self.clock.sleep,
            metrics=self.metrics,
        )

    @property
    def memory_queues(self) -> MemoryQueues:
        assert isinstance(self.backlog, MemoryQueues)
        return self.backlog

    @property
    def memory_mappings(self) -> MemoryMappings:
        assert isinstance(self.mappings, MemoryMappings)
        return self.mappings

    def mapping_enabled(self, queue: str) -> bool:
        return self.memory_mappings.enabled(queue)

    def set_mapping(self, queue: str, enabled: bool) -> None:
        self.memory_mappings.set_enabled([queue], enabled)

    def send(self, queue: str, count: int) -> None:
        self.memory_queues.send(queue, count)

    def drain(self, queue: str) -> None:
        self.memory_queues.drain(queue)

    def items(self) -> list[Any]:
        assert isinstance(self.store, MemoryStateStore)
        return list(self.store.records().values())


def memory_world(statuses: dict[str, str] | None = None, **lifecycle: float) -> World:
    clock = ManualClock(T0)
    return World(
        snowflake(clock, statuses, **lifecycle),
        MemoryStateStore(),
        MemoryQueues(QUEUES),
        MemoryMappings(QUEUES),
        clock,
    )


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


class AwsWorld(World):
    """The production AWS adapters on moto: ServiceStateStore, QueueMonitor, EventSourceMappings."""

    def __init__(self, services: MemorySpcsServices, clock: ManualClock) -> None:
        self.dynamodb = SerializedClient(boto3.client("dynamodb", region_name=REGION))
        create_state_table(self.dynamodb, TABLE)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.lam = boto3.client("lambda", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        self.urls, self.arns = create_queues(self.sqs, QUEUES, suffix="-queue")
        self.mapping_uuids: dict[str, str] = {}
        for queue, function in (("notes", "note-router"), ("images", "image-router")):
            create_function(self.lam, iam, function)
            self.mapping_uuids[queue] = self.lam.create_event_source_mapping(
                EventSourceArn=self.arns[queue], FunctionName=function, BatchSize=10
            )["UUID"]
        super().__init__(
            services,
            ServiceStateStore(TABLE, self.dynamodb),
            QueueMonitor(self.sqs, self.urls),
            EventSourceMappings(self.lam, self.arns),
            clock,
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

    def items(self) -> list[Any]:
        return list(self.dynamodb.scan(TableName=TABLE)["Items"])


def aws_world(
    monkeypatch: Any, statuses: dict[str, str] | None = None, **lifecycle: float
) -> Iterator[AwsWorld]:
    """Generator body for a fixture: ``yield from aws_world(monkeypatch, ...)``."""
    fake_credentials(monkeypatch)
    with mock_aws():
        clock = ManualClock(T0)
        yield AwsWorld(snowflake(clock, statuses, **lifecycle), clock)


def any_world(
    kind: str, monkeypatch: Any, statuses: dict[str, str] | None = None, **lifecycle: float
) -> Iterator[World]:
    """``memory`` or ``aws`` (for a fixture parametrised over both)."""
    if kind == "memory":
        yield memory_world(statuses, **lifecycle)
    else:
        yield from aws_world(monkeypatch, statuses, **lifecycle)
