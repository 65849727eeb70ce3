"""Control plane scenarios on the in-memory adapters and a manual clock; the ones marked
``both`` run again with the production AWS adapters on moto (Snowflake in memory)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from ctl_control_support import (
    CLIP,
    NER,
    POOL,
    Crash,
    World,
    any_world,
    memory_world,
    registry_doc,
)

from spcs_gateway.control import ControlCode, Outcome, UnknownServiceError
from spcs_gateway.registry import parse_registry

BOTH = ["memory", "aws"]


@pytest.fixture(params=BOTH)
def both(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from any_world(request.param, monkeypatch)


@pytest.fixture(params=BOTH)
def both_slow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from any_world(request.param, monkeypatch, resume_seconds=1000)


@pytest.fixture(params=BOTH)
def both_running(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    yield from any_world(request.param, monkeypatch, {NER: "RUNNING", CLIP: "RUNNING"})


@pytest.fixture
def world() -> World:
    return memory_world()


@pytest.fixture
def running() -> World:
    return memory_world({NER: "RUNNING", CLIP: "RUNNING"})


# -- ensure_ready ------------------------------------------------------------------------------


def test_ctl_control_20_concurrent_ensure_ready_issue_one_resume(both: World) -> None:
    world = both
    world.send("notes", 3)
    control = world.control()
    barrier = threading.Barrier(20)
    results: list[Any] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        result = control.ensure_ready("biobert_ner", budget_s=120)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 20
    assert world.services.count("resume", NER) == 1
    assert sum(r.resumed for r in results) == 1
    assert {r.outcome for r in results} <= {Outcome.READY, Outcome.IN_PROGRESS}
    winner = next(r for r in results if r.resumed)
    assert winner.outcome is Outcome.READY
    assert winner.ready
    state = world.store.get("biobert_ner")
    assert (state.resumes, state.lease_owner, state.mappings_paused) == (1, None, False)
    assert world.mapping_enabled("notes")


def test_ctl_control_ensure_ready_pauses_mappings_until_ready(world: World) -> None:
    world.send("notes", 5)
    control = world.control()
    seen: list[bool] = []

    def look(operation: str, name: str) -> None:
        if operation == "observe" and world.services.status(NER) == "RUNNING":
            seen.append(world.mapping_enabled("notes"))  # polling while the service starts

    world.services.hook = look
    result = control.ensure_ready("biobert_ner", budget_s=120)
    assert result.outcome is Outcome.READY
    assert result.resumed
    assert world.services.count("resume", NER) == 1
    assert [call[0] for call in world.memory_mappings.calls] == ["pause", "resume"]
    assert seen
    assert not any(seen)
    assert world.mapping_enabled("notes")
    state = world.store.get("biobert_ner")
    assert state.status == "RUNNING"
    assert state.ready
    assert not state.mappings_paused
    assert state.lease_owner is None
    assert state.resumes_today == 1
    # The other service's queue was never touched.
    assert world.mapping_enabled("images")
    assert world.services.status(CLIP) == "SUSPENDED"


def test_ctl_control_ensure_ready_resumes_a_suspended_pool_first(world: World) -> None:
    world.services.set_pool(POOL, "SUSPENDED")
    result = world.control().ensure_ready("biobert_ner", budget_s=60)
    assert result.outcome is Outcome.READY
    assert world.services.index("resume_pool", POOL) < world.services.index("resume", NER)


def test_ctl_control_ready_service_gets_mappings_back_without_resume(running: World) -> None:
    running.set_mapping("notes", False)
    running.store.set_mappings_paused("biobert_ner", True)
    result = running.control().ensure_ready("biobert_ner", budget_s=60)
    assert result.outcome is Outcome.READY
    assert not result.resumed
    assert running.services.changes == []
    assert running.mapping_enabled("notes")
    assert not running.store.get("biobert_ner").mappings_paused


def test_ctl_control_budget_spent_leaves_lease_and_pause_for_reconcile(both_slow: World) -> None:
    world = both_slow
    control = world.control()
    result = control.ensure_ready("biobert_ner", budget_s=12)
    assert result.outcome is Outcome.RESUMING
    assert result.resumed
    assert result.ok
    state = world.store.get("biobert_ner")
    assert state.lease_active(world.clock.now())
    assert state.mappings_paused
    assert not world.mapping_enabled("notes")
    # Reconcile rounds wait while PENDING, then finish: no second RESUME.
    outcomes = []
    for _ in range(25):
        world.clock.advance(60)
        outcomes.append(control.reconcile().service("biobert_ner").outcome)
        if outcomes[-1] == "finished":
            break
    assert outcomes[-1] == "finished"
    assert set(outcomes[:-1]) == {"waiting"}
    assert world.services.count("resume", NER) == 1
    assert world.mapping_enabled("notes")
    state = world.store.get("biobert_ner")
    assert state.lease_owner is None
    assert not state.mappings_paused


def test_ctl_control_failed_service_is_left_alone(world: World) -> None:
    world.services.set_status(NER, "FAILED")
    result = world.control().ensure_ready("biobert_ner", budget_s=60)
    assert result.outcome is Outcome.FAILED
    assert result.code == ControlCode.SERVICE_FAILED
    assert world.services.changes == []
    assert world.mapping_enabled("notes")


def test_ctl_control_snowflake_error_is_a_coded_result(both: World) -> None:
    world = both
    world.services.fail_on = lambda operation, name: operation == "resume"
    result = world.control().ensure_ready("biobert_ner", budget_s=60)
    assert result.outcome is Outcome.ERROR
    assert result.code == "DEPENDENCY_ERROR"
    # Nothing was resumed: the pause and the lease were undone.
    state = world.store.get("biobert_ner")
    assert state.lease_owner is None
    assert not state.mappings_paused
    assert world.mapping_enabled("notes")


def test_ctl_control_unknown_service_touches_nothing(world: World) -> None:
    control = world.control()
    for result in (
        control.ensure_ready("not_managed", budget_s=60),
        control.suspend("not_managed", force=True),
    ):
        assert result.outcome is Outcome.UNKNOWN_SERVICE
        assert result.code == ControlCode.UNKNOWN_SERVICE
        assert not result.ok
    with pytest.raises(UnknownServiceError):
        control.status(["biobert_ner", "not_managed"])
    assert world.services.calls == []
    assert world.items() == []
    assert world.mapping_enabled("notes")
    assert world.mapping_enabled("images")


# -- reconcile ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BOTH)
def test_ctl_control_reconcile_resumes_a_backlog_once_and_finishes(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PENDING for 150 s, containers READY 60 s after RUNNING: with a round every 60 s, two
    # rounds see PENDING, one RUNNING with containers starting, the fourth READY.
    for world in any_world(kind, monkeypatch, resume_seconds=150, start_seconds=60):
        world.send("notes", 4)
        control = world.control()
        first = control.reconcile()
        assert first.service("biobert_ner").outcome == "resumed"
        assert first.service("biobert_ner").reason == "backlog"
        assert first.service("biomedclip").outcome == "none"  # no work: stays suspended
        assert not world.mapping_enabled("notes")
        assert world.store.get("biobert_ner").mappings_paused
        rounds = []
        for _ in range(6):
            world.clock.advance(60)
            rounds.append(control.reconcile().service("biobert_ner").outcome)
        # Then nothing to do: the backlog keeps it up.
        assert rounds == ["waiting", "waiting", "waiting", "finished", "none", "none"]
        assert world.services.count("resume", NER) == 1
        assert world.services.count("resume", CLIP) == 0
        assert world.mapping_enabled("notes")
        state = world.store.get("biobert_ner")
        assert state.lease_owner is None
        assert not state.mappings_paused
        assert state.resumes == 1


def test_ctl_control_idle_service_suspended_once_busy_one_kept(both_running: World) -> None:
    running = both_running
    running.send("images", 3)  # biomedclip has a backlog, biobert_ner has none
    control = running.control()
    first = control.reconcile()  # first observation: the idle window starts now
    assert {s.outcome for s in first.services} == {"none"}
    running.clock.advance(59)
    assert control.reconcile().service("biobert_ner").reason == "idle_window_pending"
    running.clock.advance(2)
    report = control.reconcile()
    assert report.service("biobert_ner").outcome == "suspended"
    assert report.service("biomedclip").reason == "backlog"
    for _ in range(3):
        running.clock.advance(60)
        control.reconcile()
    assert running.services.count("suspend", NER) == 1
    assert running.services.count("suspend", CLIP) == 0
    assert running.store.get("biobert_ner").suspends == 1
    assert running.metrics.named("Suspends") == [
        ("Suspends", 1, "biobert_ner", "idle_window_elapsed")
    ]


def test_ctl_control_activity_and_on_demand_block_suspension(running: World) -> None:
    control = running.control()
    control.reconcile()
    running.clock.advance(50)
    running.store.record_activity("biobert_ner", running.clock.now())
    running.store.begin_on_demand("biomedclip", running.clock.now())
    running.clock.advance(30)  # 80 s after the first observation, 30 s after the activity
    report = control.reconcile()
    assert report.service("biobert_ner").reason == "idle_window_pending"
    assert report.service("biomedclip").reason == "in_flight_on_demand"
    assert running.services.count("suspend") == 0


def test_ctl_control_unreadable_queue_means_never_suspend(running: World) -> None:
    control = running.control()
    running.memory_queues.forget("notes")
    control.reconcile()
    running.clock.advance(120)
    report = control.reconcile()
    assert report.service("biobert_ner").reason == "backlog_unknown"
    assert report.service("biomedclip").outcome == "suspended"
    assert running.services.count("suspend", NER) == 0


def test_ctl_control_pool_suspended_only_after_all_its_services(running: World) -> None:
    running.send("images", 2)
    control = running.control()
    control.reconcile()
    running.clock.advance(61)
    report = control.reconcile()
    assert report.service("biobert_ner").outcome == "suspended"
    assert report.pools[0].reason == "services_running"
    running.clock.advance(60)
    assert control.reconcile().pools[0].reason == "services_running"  # biomedclip is busy
    assert running.services.count("suspend_pool") + running.services.count("resume_pool") == 0
    running.drain("images")
    running.clock.advance(61)
    report = control.reconcile()
    assert report.service("biomedclip").outcome == "suspended"
    assert report.pools[0].action == "NONE"  # observed RUNNING this round
    running.clock.advance(60)
    report = control.reconcile()
    assert (report.pools[0].action, report.pools[0].reason) == (
        "SUSPEND",
        "all_services_suspended",
    )
    pool_suspend = running.services.index("suspend_pool", POOL)
    assert pool_suspend > running.services.index("suspend", CLIP)
    assert pool_suspend > running.services.index("suspend", NER)
    running.clock.advance(60)
    control.reconcile()
    assert running.services.count("suspend_pool") + running.services.count("resume_pool") == 1


def test_ctl_control_unmanaged_service_keeps_the_pool_up(world: World) -> None:
    world.services.add_service("OTHER_DB.APP.DASHBOARD_SERVICE", POOL, "RUNNING")
    report = world.control().reconcile()
    assert report.pools[0].reason == "pool_runs_other_work"
    assert world.services.changes == []
    assert world.services.status("OTHER_DB.APP.DASHBOARD_SERVICE") == "RUNNING"


def test_ctl_control_pool_suspension_can_be_switched_off(world: World) -> None:
    report = world.control(suspend_idle_pools=False).reconcile()
    assert report.pools[0].reason == "pool_suspend_disabled"
    assert world.services.changes == []


@pytest.mark.parametrize(
    ("global_switch", "pool_setting", "reason"),
    [
        (True, False, "pool_suspend_disabled"),
        (False, True, "all_services_suspended"),
        (False, None, "pool_suspend_disabled"),
        (True, None, "all_services_suspended"),
    ],
)
def test_ctl_control_pool_setting_in_the_registry_overrides_the_switch(
    world: World, global_switch: bool, pool_setting: bool | None, reason: str
) -> None:
    doc = registry_doc()
    doc["pools"] = [{"name": POOL.lower(), "suspend_when_idle": pool_setting}]
    control = world.control(parse_registry(doc), suspend_idle_pools=global_switch)
    assert control.reconcile().pools[0].reason == reason
    assert world.services.count("suspend_pool") == (reason == "all_services_suspended")


def test_ctl_control_crash_after_resume_is_healed_by_next_reconcile(both: World) -> None:
    world = both
    world.send("notes", 3)
    # The process dies while polling, after RESUME and the pause, before re-enabling.
    polls = {"n": 0}

    def crash(operation: str, name: str) -> None:
        if operation == "observe" and name == NER and world.services.count("resume", NER):
            polls["n"] += 1
            if polls["n"] >= 2:
                raise Crash()

    world.services.hook = crash
    with pytest.raises(Crash):
        world.control().ensure_ready("biobert_ner", budget_s=600)
    world.services.hook = None
    state = world.store.get("biobert_ner")
    assert state.mappings_paused
    assert state.lease_active(world.clock.now())
    assert not world.mapping_enabled("notes")
    # A new container (another owner) reconciles while the dead holder's lease is still live.
    control = world.control(owner_id="next-container")
    outcomes = []
    for _ in range(4):
        world.clock.advance(20)
        outcomes.append(control.reconcile().service("biobert_ner").outcome)
    assert "finished" in outcomes
    assert world.services.count("resume", NER) == 1
    assert world.mapping_enabled("notes")
    state = world.store.get("biobert_ner")
    assert state.lease_owner is None
    assert not state.mappings_paused


def test_ctl_control_crash_before_resume_waits_for_lease_then_resumes(world: World) -> None:
    world.send("notes", 2)
    # Died after pausing, before ALTER SERVICE ... RESUME (lease live, flag set).
    store = world.store
    assert store.try_acquire_lease("biobert_ner", "dead", world.clock.now(), timedelta(minutes=5))
    store.set_mappings_paused("biobert_ner", True)
    world.set_mapping("notes", False)
    control = world.control()
    world.clock.advance(60)
    assert control.reconcile().service("biobert_ner").reason == "resume_in_progress"
    assert world.services.count("resume", NER) == 0
    world.clock.advance(241)  # lease expired
    assert control.reconcile().service("biobert_ner").outcome == "resumed"
    assert world.services.count("resume", NER) == 1


def test_ctl_control_stale_pause_without_work_is_undone(world: World) -> None:
    world.store.set_mappings_paused("biomedclip", True)
    world.set_mapping("images", False)
    report = world.control().reconcile()
    assert (report.service("biomedclip").reason, report.service("biomedclip").outcome) == (
        "stale_pause",
        "finished",
    )
    assert world.mapping_enabled("images")
    assert world.services.count("resume") + world.services.count("suspend") == 0


def test_ctl_control_reconcile_reports_observe_errors_and_keeps_going(world: World) -> None:
    world.send("images", 1)
    world.services.fail_on = lambda operation, name: "BIOBERT" in name
    report = world.control().reconcile()
    assert report.service("biobert_ner").code == "DEPENDENCY_ERROR"
    assert report.service("biomedclip").outcome == "resumed"
    assert report.pools[0].reason == "status_unknown"  # a member could not be observed
    assert report.errors == 1


def test_ctl_control_reconcile_metrics_have_service_and_outcome_only(running: World) -> None:
    control = running.control()
    control.reconcile()
    running.clock.advance(30)
    control.reconcile()
    names = {p[0] for p in running.metrics.points}
    assert {"ServiceStatus", "ServiceReady", "RunningSeconds"} <= names
    assert ("RunningSeconds", 30.0, "biobert_ner", None) in running.metrics.points
    assert ("ServiceStatus", 1, "biobert_ner", "RUNNING") in running.metrics.points
    assert {p[2] for p in running.metrics.points} <= {"biobert_ner", "biomedclip", POOL}


def test_ctl_control_results_speak_one_outcome_vocabulary(world: World) -> None:
    world.send("notes", 1)
    control = world.control()
    report = control.reconcile()
    assert report.service("biobert_ner").outcome is Outcome.RESUMED
    assert report.as_dict()["services"][0]["outcome"] == "resumed"
    assert control.suspend("biomedclip").outcome is Outcome.ALREADY_SUSPENDED


# -- suspend and status ------------------------------------------------------------------------


def test_ctl_control_suspend_refused_with_backlog_unless_forced(running: World) -> None:
    running.send("notes", 2)
    control = running.control()
    refused = control.suspend("biobert_ner")
    assert refused.outcome is Outcome.REFUSED
    assert refused.code == ControlCode.BACKLOG
    assert running.services.count("suspend") == 0
    forced = control.suspend("biobert_ner", force=True)
    assert forced.outcome is Outcome.SUSPENDED
    assert forced.ok
    assert running.services.count("suspend", NER) == 1
    assert control.suspend("biobert_ner").outcome is Outcome.ALREADY_SUSPENDED
    assert running.store.get("biobert_ner").suspends == 1


def test_ctl_control_suspend_refused_with_on_demand_call(running: World) -> None:
    running.store.begin_on_demand("biomedclip", running.clock.now())
    result = running.control().suspend("biomedclip")
    assert result.code == ControlCode.ON_DEMAND_IN_FLIGHT
    running.store.end_on_demand("biomedclip")
    assert running.control().suspend("biomedclip").outcome is Outcome.SUSPENDED


def test_ctl_control_status_shows_countdown_activity_and_counters(running: World) -> None:
    running.send("images", 1)
    control = running.control()
    control.reconcile()
    running.clock.advance(20)
    running.store.record_activity("biobert_ner", running.clock.now())
    running.clock.advance(15)
    views = {v.name: v for v in control.status()}
    ner, clip = views["biobert_ner"], views["biomedclip"]
    assert (ner.status, ner.ready, ner.backlog) == ("RUNNING", True, 0)
    assert ner.last_activity == running.clock.now() - timedelta(seconds=15)
    assert ner.idle_countdown_s == 45.0
    assert ner.idle_reason == "idle_window_pending"
    assert clip.idle_countdown_s is None
    assert clip.idle_reason == "backlog"
    assert clip.backlog == 1
    assert clip.last_activity is None
    control.suspend("biobert_ner")
    ner = control.status(["biobert_ner"])[0]
    assert (ner.status, ner.suspends_today, ner.idle_reason) == ("SUSPENDED", 1, "not_running")
    assert ner.as_dict()["last_activity"].startswith("2025-01-15T12:00:20")
