"""A service resumed behind the control plane's back: a service-function call from the
reference route (AUTO_RESUME), or another operator. Each round reads the status from Snowflake,
so the plane records it RUNNING, never resumes it a second time, keeps it up while routers
record activity, and suspends it once idle, exactly once. Both worlds (memory, AWS on moto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ctl_control_support import CLIP, NER, World, any_world

from spcs_gateway.service_activity import ActivityRecorder


@pytest.fixture(params=["memory", "aws"])
def both(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from any_world(request.param, monkeypatch, {NER: "SUSPENDED", CLIP: "SUSPENDED"})


def test_ctl_external_auto_resume_is_tracked_then_suspended_once_idle(both: World) -> None:
    world = both
    control = world.control()
    assert control.reconcile().service("biobert_ner").status == "SUSPENDED"

    # A service-function call wakes the service (AUTO_RESUME) while the route records work.
    world.services.set_status(NER, "PENDING")
    activity = ActivityRecorder(world.store, clock=world.clock.now)
    assert activity.record("biobert_ner")
    round_ = control.reconcile().service("biobert_ner")
    assert (round_.status, round_.action) == ("PENDING", "WAIT")
    world.clock.advance(20)
    world.services.set_status(NER, "RUNNING")

    kept = control.reconcile().service("biobert_ner")
    assert kept.status == "RUNNING"
    assert kept.reason == "idle_window_pending"  # the work that woke it counts
    record = world.store.get("biobert_ner")
    assert record.status.value == "RUNNING"
    assert record.lease_owner is None

    for _ in range(4):
        world.clock.advance(30)
        control.reconcile()
    assert world.services.count("resume", NER) == 0  # never resumed by the plane
    assert world.services.count("suspend", NER) == 1  # suspended once, when idle
    assert world.store.get("biobert_ner").suspends == 1
