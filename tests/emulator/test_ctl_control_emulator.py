"""The control plane against the Snowflake/SPCS emulator through SnowflakeSql and the real
connector (AWS side: moto state table, queue and event source mapping), and the in-memory
Snowflake adapter held to the emulator's lifecycle."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from moto_support import (
    REGION,
    create_function,
    create_queues,
    create_state_table,
    fake_credentials,
)

from spcs_gateway.auth import TokenProvider
from spcs_gateway.control import ControlPlane, ControlSettings, Outcome
from spcs_gateway.control.memory import ManualClock, MemorySpcsServices
from spcs_gateway.control.ports import SpcsServices
from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.queues import EventSourceMappings, QueueMonitor
from spcs_gateway.registry import parse_registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.service_state import ServiceStateStore
from spcs_gateway.spcs_services import SqlSpcsServices
from spcs_gateway.sql import SnowflakeSql, make_connect

pytestmark = pytest.mark.emulator

TABLE = "service-state"


class CountingSql:
    """The real SnowflakeSql, with every statement recorded."""

    def __init__(self, sql: SnowflakeSql) -> None:
        self._sql = sql
        self.statements: list[str] = []
        self._lock = threading.Lock()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            self.statements.append(sql)
        return self._sql.query(sql, params)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fake_credentials(monkeypatch)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_state_table(dynamodb, TABLE)
        sqs = boto3.client("sqs", region_name=REGION)
        lam = boto3.client("lambda", region_name=REGION)
        create_function(lam, boto3.client("iam", region_name=REGION), "note-router")
        urls, arns = create_queues(sqs, ("notes",))
        url, arn = urls["notes"], arns["notes"]
        # Messages first: moto would invoke the function (Docker) on a send to an enabled mapping.
        for i in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
        uuid = lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="note-router", BatchSize=10
        )["UUID"]
        yield {
            "dynamodb": dynamodb,
            "sqs": sqs,
            "lambda": lam,
            "urls": urls,
            "arns": arns,
            "uuid": uuid,
        }


def _status(sql: SnowflakeSql, name: str) -> str:
    rows = sql.query(f"SHOW SERVICES LIKE '{name}' IN SCHEMA PEDIATRIC_ML.MODELS")
    return str(rows[0]["status"])


def _wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_ctl_control_emulator_ensure_ready_resumes_once(
    emulator_factory: Callable[..., Any], aws: dict[str, Any]
) -> None:
    handle = emulator_factory("--resume-seconds", "2")
    registry = parse_registry(handle.config)
    config = registry.service("biobert_ner")
    with httpx.Client() as http:
        tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
        sql = SnowflakeSql(make_connect(tokens))
        try:
            sql.query(f"ALTER SERVICE {config.service} SUSPEND")
            _wait_for(lambda: _status(sql, "BIOBERT_NER_SERVICE") == "SUSPENDED")
            counting = CountingSql(sql)
            lam = aws["lambda"]
            pauses: list[str] = []

            class Mappings(EventSourceMappings):
                def pause(self, queues: Any) -> int:
                    changed = super().pause(queues)
                    pauses.append(lam.get_event_source_mapping(UUID=aws["uuid"])["State"])
                    return changed

            control = ControlPlane(
                registry,
                SqlSpcsServices(counting),
                ServiceStateStore(TABLE, aws["dynamodb"]),
                QueueMonitor(aws["sqs"], aws["urls"]),
                Mappings(lam, aws["arns"]),
                settings=ControlSettings(owner_id="emulator-test", poll_interval_s=0.25),
            )
            started = time.monotonic()
            result = control.ensure_ready("biobert_ner", budget_s=30)
            elapsed = time.monotonic() - started
            assert result.outcome is Outcome.READY
            assert result.resumed
            assert result.ready
            resumes = [s for s in counting.statements if re.search(r"\bRESUME\b", s)]
            assert resumes == [f"ALTER SERVICE {config.service} RESUME"]
            assert elapsed >= 1.5  # the emulator's resume delay (2 s) was waited out
            assert pauses == ["Disabled"]
            assert lam.get_event_source_mapping(UUID=aws["uuid"])["State"] == "Enabled"
            assert _status(sql, "BIOBERT_NER_SERVICE") == "RUNNING"
            state = ServiceStateStore(TABLE, aws["dynamodb"]).get("biobert_ner")
            assert state.status == "RUNNING"
            assert state.ready
            assert state.resumes == 1
            assert state.lease_owner is None
            assert not state.mappings_paused
            # Already ready: a second call resumes nothing.
            again = control.ensure_ready("biobert_ner", budget_s=30)
            assert again.outcome is Outcome.READY
            assert not again.resumed
            assert len([s for s in counting.statements if re.search(r"\bRESUME\b", s)]) == 1
        finally:
            sql.close()


def test_ctl_control_emulator_pool_running_an_invisible_service_is_never_suspended(
    emulator_factory: Callable[..., Any], aws: dict[str, Any]
) -> None:
    """Every managed service sleeps, but another team's service runs on the pool. The gateway's
    role cannot see it (SHOW SERVICES lists only what it holds a privilege on); the pool's own
    num_services counts it, so reconcile leaves the pool up, and suspends it once that service
    stops."""
    handle = emulator_factory()
    other = "PEDIATRIC_ML.MODELS.OTHER_TEAM_SERVICE"
    created = httpx.post(
        f"{handle.admin_url}/services",
        json={"name": other, "owner_role": "OTHER_TEAM_ROLE"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    registry = parse_registry(handle.config)
    pool = registry.services[0].compute_pool
    with httpx.Client() as http:
        tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
        sql = SnowflakeSql(make_connect(tokens))
        try:
            visible = {r["name"] for r in sql.query(f"SHOW SERVICES IN COMPUTE POOL {pool}")}
            assert "OTHER_TEAM_SERVICE" not in visible
            for config in registry.services:
                sql.query(f"ALTER SERVICE {config.service} SUSPEND")
            control = ControlPlane(
                registry,
                SqlSpcsServices(sql),
                ServiceStateStore(TABLE, aws["dynamodb"]),
                QueueMonitor(aws["sqs"], {}),
                EventSourceMappings(aws["lambda"], {}),
                settings=ControlSettings(owner_id="emulator-test"),
            )
            report = control.reconcile()
            [pool_round] = report.pools
            assert (pool_round.action, pool_round.reason) == ("NONE", "pool_runs_other_work")
            [row] = sql.query(f"SHOW COMPUTE POOLS LIKE '{pool}'")
            assert str(row["state"]).upper() != "SUSPENDED"

            handle.admin_post(
                "sql", {"sql": f"ALTER SERVICE {other} SUSPEND", "role": "ACCOUNTADMIN"}
            )
            [pool_round] = control.reconcile().pools
            assert (pool_round.action, pool_round.reason) == ("SUSPEND", "all_services_suspended")
            [row] = sql.query(f"SHOW COMPUTE POOLS LIKE '{pool}'")
            assert str(row["state"]).upper() == "SUSPENDED"
        finally:
            sql.close()


# -- the in-memory Snowflake adapter behaves as the emulator does --------------------------------

RESUME_S = 1.0


def _lifecycle(services: SpcsServices, wait: Callable[[float], None], names: Sequence[str]) -> None:
    """What the control plane relies on, step by step; the same assertions for both adapters."""
    fqn, other, pool = names

    def seen(name: str = fqn) -> tuple[str, bool, int]:
        obs = services.observe(name)
        return obs.status, obs.ready, obs.instances_total

    def pool_seen() -> tuple[str, int | None]:
        observed = services.pool(pool)
        return observed.state, observed.running

    services.suspend(fqn)
    services.suspend(other)
    assert seen() == ("SUSPENDED", False, 0)
    assert pool_seen() == ("IDLE", 0)
    services.resume(fqn)
    services.resume(fqn)  # a second RESUME while PENDING changes nothing
    assert seen() == ("PENDING", False, 0)
    assert pool_seen() == ("ACTIVE", 1)
    wait(RESUME_S + 0.5)
    assert seen() == ("RUNNING", True, 1)
    assert services.observe(fqn).compute_pool == pool
    services.suspend_pool(pool)  # suspends everything on it
    assert seen() == ("SUSPENDED", False, 0)
    assert pool_seen() == ("SUSPENDED", 0)
    services.resume(fqn)  # on a suspended pool: AUTO_RESUME starts the pool with the service
    assert seen()[0] == "PENDING"
    assert pool_seen()[0] == "STARTING"
    wait(RESUME_S + 0.5)
    assert seen() == ("RUNNING", True, 1)
    assert pool_seen() == ("ACTIVE", 1)
    services.suspend(fqn)
    assert pool_seen() == ("IDLE", 0)
    for call in (lambda: services.observe(fqn + "_NOPE"), lambda: services.pool(pool + "_NOPE")):
        with pytest.raises(ConfigurationError) as refused:
            call()
        assert refused.value.code is ErrorCode.PRIVILEGE_MISSING


@pytest.mark.parametrize("kind", ["memory", "emulator"])
def test_ctl_spcs_services_memory_adapter_matches_the_emulator(
    kind: str, emulator_factory: Callable[..., Any]
) -> None:
    if kind == "memory":
        clock = ManualClock()
        memory = MemorySpcsServices(
            clock.now, resume_seconds=RESUME_S, start_seconds=0, pool_start_seconds=RESUME_S
        )
        names = ("DB.MODELS.NER_SERVICE", "DB.MODELS.CLIP_SERVICE", "ML_INFERENCE_POOL")
        memory.add_pool(names[2], "ACTIVE")
        for fqn in names[:2]:
            memory.add_service(fqn, names[2], "RUNNING")
        _lifecycle(memory, clock.advance, names)
        return
    handle = emulator_factory("--resume-seconds", str(RESUME_S))
    registry = parse_registry(handle.config)
    ner, clip = registry.service("biobert_ner"), registry.service("biomedclip")
    assert ner.compute_pool == clip.compute_pool
    with httpx.Client() as http:
        tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
        sql = SnowflakeSql(make_connect(tokens))
        try:
            names = (ner.service.upper(), clip.service.upper(), ner.compute_pool.upper())
            _lifecycle(SqlSpcsServices(sql), time.sleep, names)
        finally:
            sql.close()
