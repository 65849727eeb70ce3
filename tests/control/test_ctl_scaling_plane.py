"""Backlog-driven and manual scaling through the control plane, in memory and on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ctl_control_support import CLIP, NER, AwsWorld, World, any_world, make_registry

from spcs_gateway.control import Outcome
from spcs_gateway.control.handler import handle_control_event
from spcs_gateway.control.memory import MemorySpcsServices

SCALABLE = {"min_instances": 1, "max_instances": 3, "drain_target_seconds": 200}


@pytest.fixture(params=["memory", "aws"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from any_world(request.param, monkeypatch, {NER: "RUNNING", CLIP: "RUNNING"})


def scalable(world: World, **extra: Any) -> Any:
    return world.control(make_registry(**{**SCALABLE, **extra}))


def concurrency(world: World, queue: str) -> int | None:
    if isinstance(world, AwsWorld):
        conf = world.lam.get_event_source_mapping(UUID=world.mapping_uuids[queue])
        value = conf.get("ScalingConfig", {}).get("MaximumConcurrency")
        return None if value is None else int(value)
    return world.memory_mappings.concurrency[queue]


def record(world: World) -> Any:
    return world.store.get("biobert_ner")


def test_a_burst_scales_out_then_concurrency_follows_the_ready_instances(world: World) -> None:
    control = scalable(world)
    world.send("notes", 700)
    report = control.reconcile()
    ner = report.service("biobert_ner")
    assert (ner.scale_action, ner.scale_reason, ner.instances) == ("SCALE_OUT", "backlog", 3)
    assert world.services.calls.count(("scale", NER)) == 1
    assert (record(world).instances, record(world).scale_reason) == (3, "backlog")
    assert [p[3] for p in world.metrics.named("ScaleOut")] == ["backlog"]
    assert concurrency(world, "notes") == 2  # one READY instance yet: 1 x 2
    # The new instances load the model (resume + start: 15 s), then carry requests too.
    world.clock.advance(60)
    control.reconcile()
    assert concurrency(world, "notes") == 6
    assert world.services.calls.count(("scale", NER)) == 1  # no flapping while it drains
    # A 1..1 service is never scaled and its mappings keep their own setting.
    assert world.services.count("scale", CLIP) == 0
    assert concurrency(world, "images") is None


def test_scale_in_waits_for_the_cooldown_then_drops_to_what_is_left(world: World) -> None:
    control = scalable(world, idle_seconds=3600)
    world.send("notes", 700)
    control.reconcile()
    world.drain("notes")
    world.clock.advance(60)
    control.reconcile()
    assert record(world).instances == 3  # inside the scale-in cooldown
    world.clock.advance(300)
    report = control.reconcile()
    ner = report.service("biobert_ner")
    assert (ner.scale_action, ner.scale_reason, ner.instances) == (
        "SCALE_IN",
        "backlog_falling",
        1,
    )
    assert record(world).instances == 1
    assert [p[3] for p in world.metrics.named("ScaleIn")] == ["backlog_falling"]
    assert world.services.observe(NER).instances_total == 1


def test_a_suspend_is_preceded_by_the_scale_in_to_the_minimum(world: World) -> None:
    control = scalable(world, idle_seconds=60)
    world.send("notes", 700)
    control.reconcile()
    world.drain("notes")
    world.clock.advance(120)  # idle window over, still inside the scale-in cooldown
    report = control.reconcile()
    ner = report.service("biobert_ner")
    assert (ner.action, ner.outcome) == ("SUSPEND", Outcome.SUSPENDED)
    assert (ner.scale_action, ner.scale_reason, ner.instances) == (
        "SCALE_IN",
        "before_suspend",
        1,
    )
    calls = world.services.calls
    last_scale = len(calls) - 1 - calls[::-1].index(("scale", NER))
    assert last_scale < calls.index(("suspend", NER))
    assert record(world).instances == 1
    assert [p[3] for p in world.metrics.named("ScaleIn")] == ["before_suspend"]


def test_manual_scale_sets_the_range_and_bounds_the_policy(world: World) -> None:
    control = scalable(world)
    result = control.scale("biobert_ner", min_instances=2, max_instances=2)
    assert (result.outcome, result.min_instances, result.max_instances) == (Outcome.SCALED, 2, 2)
    assert (record(world).manual_min, record(world).manual_max) == (2, 2)
    row = control.status(["biobert_ner"])[0]
    assert (row.min_instances, row.max_instances, row.instances) == (2, 2, 2)
    world.send("notes", 700)
    world.clock.advance(120)
    control.reconcile()
    assert record(world).instances == 2  # the operator's maximum holds the policy
    assert control.scale("biobert_ner", min_instances=1, max_instances=3).ok
    # The registry's whole range hands the count back to the policy: no operator range kept.
    assert (record(world).manual_min, record(world).manual_max) == (None, None)
    world.clock.advance(120)
    control.reconcile()
    assert record(world).instances == 3


@pytest.mark.parametrize(("low", "high"), [(0, 2), (2, 1), (1, 4)])
def test_manual_scale_outside_the_registry_range_is_refused(
    world: World, low: int, high: int
) -> None:
    result = scalable(world).scale("biobert_ner", min_instances=low, max_instances=high)
    assert (result.outcome, result.code) == (Outcome.REFUSED, "OUT_OF_RANGE")
    assert world.services.count("scale") == 0


def test_manual_scale_of_an_unknown_service_touches_nothing(world: World) -> None:
    result = scalable(world).scale("nope", min_instances=1, max_instances=1)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN_SERVICE, "UNKNOWN_SERVICE")
    assert world.services.count("scale") == 0


def test_the_control_function_serves_scale(world: World) -> None:
    control = scalable(world)
    answer = handle_control_event(
        control,
        {"action": "scale", "service": "biobert_ner", "min_instances": 1, "max_instances": 2},
    )
    assert answer["ok"]
    assert answer["outcome"] == "scaled"
    assert (answer["min_instances"], answer["max_instances"]) == (1, 2)
    missing = handle_control_event(control, {"action": "scale", "service": "biobert_ner"})
    assert missing == {
        "ok": False,
        "code": "INVALID_REQUEST",
        "fields": ["min_instances", "max_instances"],
    }


def test_a_failed_scale_is_reported_and_the_round_goes_on(world: World) -> None:
    control = scalable(world)
    world.send("notes", 700)
    world.services.fail_on = lambda op, name: op == "scale"
    report = control.reconcile()
    ner = report.service("biobert_ner")
    assert ner.code == "DEPENDENCY_ERROR"
    assert ner.outcome is Outcome.NONE
    assert record(world).instances is None


def test_every_instance_is_billed_from_start_to_stop() -> None:
    from datetime import timedelta

    from spcs_gateway.control.memory import ManualClock

    clock = ManualClock()
    spcs = MemorySpcsServices(clock.now, resume_seconds=10, start_seconds=5)
    spcs.add_service("DB.S.SVC", "POOL", "RUNNING")
    start = clock.now()
    clock.advance(100)
    spcs.scale("DB.S.SVC", 3, 3)
    assert spcs.observe("DB.S.SVC").instances_ready == 1  # the two new ones load for 15 s
    clock.advance(15)
    assert spcs.observe("DB.S.SVC").instances_ready == 3
    clock.advance(85)
    spcs.scale("DB.S.SVC", 1, 1)
    clock.advance(100)
    spcs.suspend("DB.S.SVC")
    clock.advance(100)
    end = clock.now()
    assert spcs.instance_seconds("DB.S.SVC", start, end) == pytest.approx(100 + 3 * 100 + 100)
    assert spcs.up_seconds("DB.S.SVC", start, end) == pytest.approx(300)
    assert spcs.instance_seconds("DB.S.SVC", start + timedelta(seconds=150), end) == (
        pytest.approx(3 * 50 + 100)
    )


def test_mapping_concurrency_never_exceeds_the_routers_reserved_concurrency(world: World) -> None:
    # 3 ready instances x 2 would be 6; the notes router may run only 5 at once, and a mapping
    # allowed more is throttled (each throttle spends a receive on the way to the DLQ).
    control = world.control(make_registry(**SCALABLE), queue_max_concurrency={"notes": 5})
    world.send("notes", 700)
    control.reconcile()
    world.clock.advance(60)
    control.reconcile()
    assert record(world).instances == 3
    assert concurrency(world, "notes") == 5


def test_a_suspend_sets_the_mappings_back_to_the_minimums_share(world: World) -> None:
    control = scalable(world, idle_seconds=60)
    world.send("notes", 700)
    control.reconcile()
    world.clock.advance(60)
    control.reconcile()
    assert concurrency(world, "notes") == 6
    world.drain("notes")
    world.clock.advance(120)
    report = control.reconcile()
    assert report.service("biobert_ner").outcome is Outcome.SUSPENDED
    # The next resume starts one instance: its mappings must not come back at 3 x 2.
    assert concurrency(world, "notes") == 2


def test_the_first_scale_in_counts_as_a_scale_in(world: World) -> None:
    # Snowflake runs 3 (set outside the gateway) and no scale is recorded yet: going to 1 is a
    # scale-in, whatever rule asks for it.
    world.services.scale(NER, 3, 3)
    control = scalable(world, idle_seconds=60)
    world.clock.advance(120)
    control.reconcile()
    assert record(world).instances == 1
    assert len(world.metrics.named("ScaleIn")) == 1
    assert world.metrics.named("ScaleOut") == []
