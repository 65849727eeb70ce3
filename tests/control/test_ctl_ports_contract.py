"""The in-memory adapters behave as the production ones: every scenario here runs against both
(``MemoryStateStore`` vs ``ServiceStateStore`` on moto DynamoDB, ``MemoryQueues`` vs
``QueueMonitor`` on moto SQS, ``MemoryMappings`` vs ``EventSourceMappings`` on moto Lambda).
The Snowflake side (``MemorySpcsServices`` vs ``SqlSpcsServices``) is held to the emulator in
tests/emulator/test_ctl_control_emulator.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from ctl_control_support import SerializedClient
from moto import mock_aws
from moto_support import (
    REGION,
    create_function,
    create_queues,
    create_state_table,
    fake_credentials,
)

from spcs_gateway.control.memory import MemoryMappings, MemoryQueues, MemoryStateStore
from spcs_gateway.control.ports import MappingSwitch, QueueBacklog, StateStore
from spcs_gateway.queues import EventSourceMappings, QueueMonitor
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.service_state import ServiceStateStore
from spcs_gateway.status import Observed, ServiceStatus

T0 = datetime(2025, 1, 15, 23, 59, tzinfo=UTC)  # a minute before a new UTC day
TTL = timedelta(minutes=5)
KINDS = ["memory", "aws"]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_state_table(client, "state")
        yield ServiceStateStore("state", SerializedClient(client))


# -- StateStore ----------------------------------------------------------------------------------


def test_contract_store_reads_of_unknown_services_are_empty_records(store: StateStore) -> None:
    assert store.get("ner") == ServiceRecord(name="ner")
    assert store.get_all(["a", "b", "a"]) == {"a": ServiceRecord("a"), "b": ServiceRecord("b")}


def test_contract_store_activity_only_moves_forward(store: Any) -> None:
    assert store.record_activity("ner", at(10))
    assert not store.record_activity("ner", at(10))
    assert not store.record_activity("ner", at(5))
    assert store.record_activity("ner", at(11))
    assert store.get("ner").last_activity == at(11)


def test_contract_store_lease(store: StateStore) -> None:
    assert store.try_acquire_lease("ner", "a", at(0), TTL)
    assert not store.try_acquire_lease("ner", "b", at(1), TTL)
    assert store.try_acquire_lease("ner", "a", at(2), TTL)  # renewal
    assert store.get("ner").lease_expires_at == at(2) + TTL
    assert not store.release_lease("ner", "b")
    assert store.try_acquire_lease("ner", "b", at(2) + TTL, TTL)  # expired: taken over
    assert not store.release_lease("ner", "a")
    assert store.release_lease("ner", "b")
    record = store.get("ner")
    assert (record.lease_owner, record.lease_expires_at) == (None, None)


def test_contract_store_one_of_concurrent_lease_takers_wins(store: StateStore) -> None:
    wins: list[str] = []
    barrier = threading.Barrier(10)

    def take(owner: str) -> None:
        barrier.wait()
        if store.try_acquire_lease("ner", owner, at(0), TTL):
            wins.append(owner)

    threads = [threading.Thread(target=take, args=(f"o{i}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(wins) == 1
    assert store.get("ner").lease_owner == wins[0]


def test_contract_store_observations_record_transitions(store: Any) -> None:
    store.record_activity("ner", at(0))  # an item without a status: the first one counts
    assert store.record_observation("ner", Observed("SUSPENDED"), at(1))
    assert not store.record_observation("ner", Observed("suspended"), at(2))
    record = store.get("ner")
    assert (record.status, record.observed_at, record.last_transition_at) == (
        ServiceStatus.SUSPENDED,
        at(2),
        at(1),
    )
    assert store.record_observation("ner", Observed("RUNNING", ready=True), at(3))
    assert not store.record_observation("ner", Observed("RUNNING", ready=False), at(4))
    record = store.get("ner")
    assert (record.status, record.ready, record.last_transition_at) == ("RUNNING", False, at(3))
    assert store.record_observation("clip", Observed("?"), at(5))  # UNKNOWN, first time


def test_contract_store_counters_roll_over_with_the_utc_day(store: StateStore) -> None:
    store.record_resume("ner", at(0))
    store.record_suspend("ner", at(30))
    store.record_resume("ner", at(40))
    record = store.get("ner")
    assert (record.resumes, record.suspends) == (2, 1)
    assert (record.resumes_today, record.suspends_today, record.counter_day) == (
        2,
        1,
        "2025-01-15",
    )
    assert (record.resumed_at, record.suspended_at) == (at(40), at(30))
    store.record_suspend("ner", at(90))  # the next UTC day
    record = store.get("ner")
    assert (record.resumes, record.suspends) == (2, 2)
    assert (record.resumes_today, record.suspends_today, record.counter_day) == (
        0,
        1,
        "2025-01-16",
    )


def test_contract_store_mappings_flag_and_on_demand_counter(store: Any) -> None:
    store.set_mappings_paused("ner", True)
    assert store.get("ner").mappings_paused
    store.set_mappings_paused("ner", False)
    assert not store.get("ner").mappings_paused
    store.begin_on_demand("ner", at(0), TTL)
    store.begin_on_demand("ner", at(1), TTL)
    record = store.get("ner")
    assert (record.on_demand_in_flight, record.on_demand_expires_at) == (2, at(1) + TTL)
    assert store.end_on_demand("ner")
    assert store.end_on_demand("ner")
    assert not store.end_on_demand("ner")
    store.begin_on_demand("ner", at(10), TTL)
    store.begin_on_demand("ner", at(10) + TTL, TTL)  # the first expired: restart at 1
    assert store.get("ner").on_demand_in_flight == 1


# -- QueueBacklog and MappingSwitch ---------------------------------------------------------------


@dataclass
class Queues:
    backlog: QueueBacklog
    mappings: MappingSwitch
    send: Callable[[str, int], None]
    receive: Callable[[str, int], None]


@pytest.fixture(params=KINDS)
def queues(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queues]:
    if request.param == "memory":
        memory = MemoryQueues(["notes"])

        def take(queue: str, count: int) -> None:
            d = memory.depth(queue)
            memory.set(queue, d.visible - count, d.in_flight + count, d.delayed)

        yield Queues(memory, MemoryMappings(["notes"]), memory.send, take)
        return
    fake_credentials(monkeypatch)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        lam = boto3.client("lambda", region_name=REGION)
        urls, arns = create_queues(sqs, ("notes",))

        def send(queue: str, count: int) -> None:
            for i in range(count):
                sqs.send_message(QueueUrl=urls[queue], MessageBody=str(i))

        def receive(queue: str, count: int) -> None:
            sqs.receive_message(QueueUrl=urls[queue], MaxNumberOfMessages=count)

        create_function(lam, boto3.client("iam", region_name=REGION), "router")
        yield Queues(QueueMonitor(sqs, urls), EventSourceMappings(lam, arns), send, receive)


def test_contract_queue_depth_counts_visible_and_in_flight(queues: Queues) -> None:
    assert queues.backlog.depth("notes").total == 0
    queues.send("notes", 3)
    queues.receive("notes", 1)
    depth = queues.backlog.depth("notes")
    assert (depth.visible, depth.in_flight, depth.delayed, depth.total) == (2, 1, 0, 3)
    with pytest.raises(KeyError):
        queues.backlog.depth("images")  # no address for it: unknown


def test_contract_mappings_pause_and_resume(queues: Queues) -> None:
    if isinstance(queues.mappings, EventSourceMappings):  # one mapping on the notes queue
        lam = queues.mappings._lambda
        arn = queues.mappings._arns["notes"]
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="router", BatchSize=10)
    mappings = queues.mappings
    assert [(m.queue, m.enabled) for m in mappings.states(["notes", "images"])] == [("notes", True)]
    assert mappings.pause(["notes", "images"]) == 1
    assert mappings.pause(["notes"]) == 0
    assert [m.enabled for m in mappings.states(["notes"])] == [False]
    assert mappings.resume(["notes"]) == 1
    assert mappings.resume(["notes"]) == 0
    assert [m.state for m in mappings.states(["notes"])] == ["Enabled"]
