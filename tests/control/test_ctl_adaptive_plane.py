"""The adaptive policy inside the real control plane (memory adapters, fake clock), and its
record in the service-state store (memory and moto DynamoDB): learned, bounded, race-safe."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from ctl_control_support import make_registry
from moto import mock_aws
from moto_support import REGION, create_state_table, fake_credentials

from spcs_gateway import adaptive
from spcs_gateway.control import ControlPlane, ControlSettings
from spcs_gateway.control.memory import (
    ManualClock,
    MemoryMappings,
    MemoryQueues,
    MemorySpcsServices,
    MemoryStateStore,
)
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.service_state import KEY_ATTRIBUTE, ServiceStateStore
from spcs_gateway.status import ServiceStatus

T0 = datetime(2025, 1, 15, 0, 0, tzinfo=UTC)
NER = "biobert_ner"


@pytest.fixture(params=["memory", "aws"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_state_table(client, "state", KEY_ATTRIBUTE)
        yield ServiceStateStore("state", client)


def test_store_saves_the_model_only_over_what_the_caller_read(store: Any) -> None:
    one = adaptive.add_gap(adaptive.IdleModel(last=T0.timestamp()), 600.0)
    two = adaptive.add_gap(one, 900.0)
    assert store.save_idle_model(NER, one, None)
    assert not store.save_idle_model(NER, two, None)  # someone wrote first
    assert store.save_idle_model(NER, two, store.get(NER).idle_model)
    assert not store.save_idle_model(NER, one, one)  # stale read
    assert store.get(NER).idle_model.hist == two.hist


def test_the_stored_form_is_stable_so_the_next_write_matches(store: Any) -> None:
    """A plan made with the registry's int bounds must read back to the same text, or the
    conditional write of the next round would never match again."""
    model = adaptive.replan(adaptive.IdleModel(last=1.5), adaptive.Bounds(0, 10))
    assert store.save_idle_model(NER, model, None)
    for step in range(3):
        read = store.get(NER).idle_model
        nxt = adaptive.replan(adaptive.add_gap(read, 600.0 + step), adaptive.Bounds(0, 10))
        assert store.save_idle_model(NER, nxt, read)


def test_item_stays_bounded_with_a_full_histogram(store: Any) -> None:
    model = adaptive.IdleModel(last=T0.timestamp())
    for i in range(3000):
        model = adaptive.add_gap(model, 60.0 * (i % 241) + 30)
        model = adaptive.observe_resume(model, 150 + i % 50)
    model = adaptive.replan(model, adaptive.Bounds(0, 900), force=True)
    assert store.save_idle_model(NER, model, None)
    back = store.get(NER).idle_model
    assert back is not None
    assert back.plan is not None
    assert len(adaptive.encode(back).encode()) < 4096
    if isinstance(store, ServiceStateStore):
        item = store._get_item(NER)  # the raw DynamoDB item
        assert set(item) <= {KEY_ATTRIBUTE, "idle_model"}
        assert len(item["idle_model"]["S"]) < 4096


class World:
    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        # A 4-minute resume: pre-resuming an hourly job pays (at 2 minutes it is a toss-up,
        # and the policy rightly just resumes on arrival).
        self.services = MemorySpcsServices(self.clock.now, resume_seconds=240, start_seconds=0)
        registry = make_registry(idle_seconds=900, policy="adaptive")
        for s in registry.services:
            self.services.add_service(s.service, s.compute_pool, ServiceStatus.SUSPENDED)
        self.store = MemoryStateStore(
            [ServiceRecord(s.name, status=ServiceStatus.SUSPENDED) for s in registry.services]
        )
        self.queues = MemoryQueues(["notes", "images"])
        self.plane = ControlPlane(
            registry,
            self.services,
            self.store,
            self.queues,
            MemoryMappings(["notes", "images"]),
            settings=ControlSettings(poll_interval_s=5, owner_id="t"),
            clock=self.clock.now,
            sleep=self.clock.sleep,
        )

    def work(self) -> None:
        """A caller arrives: ensure_ready (resume if asleep), then the work is recorded."""
        self.plane.ensure_ready(NER, budget_s=290)
        self.store.record_activity(NER, self.clock.now())

    def minutes(self, n: int) -> None:
        for _ in range(n):
            self.clock.advance(60)
            self.plane.reconcile()


def test_reconcile_learns_gaps_and_resume_time_then_pre_resumes_hourly_work() -> None:
    w = World()
    ner = w.plane.registry.service(NER).service
    waited = []
    for _hour in range(14):
        before = w.services.status(ner)
        w.work()
        waited.append(before != ServiceStatus.RUNNING)
        w.minutes(60)
    model = w.store.get(NER).idle_model
    assert model is not None
    assert model.samples >= 10
    assert 240 <= model.resume_s() <= 250  # polled every 5 s
    assert model.plan is not None
    assert model.plan.windows
    assert waited[:3] == [True, True, True]
    assert not any(waited[-3:])  # the last hours found it up: pre-resumed
    resumes = [c for c in w.services.calls if c[0] == "resume"]
    assert len(resumes) <= 15  # one resume an hour (the last: ahead of the next hour)


def test_fixed_services_learn_nothing() -> None:
    w = World()
    fixed = make_registry(idle_seconds=900, policy="fixed")
    w.plane = ControlPlane(
        fixed,
        w.services,
        w.store,
        w.queues,
        MemoryMappings(["notes", "images"]),
        settings=ControlSettings(poll_interval_s=5, owner_id="t"),
        clock=w.clock.now,
        sleep=w.clock.sleep,
    )
    w.work()
    w.minutes(30)
    assert w.store.get(NER).idle_model is None
