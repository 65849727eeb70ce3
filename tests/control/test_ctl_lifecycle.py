"""Lifecycle policy: every service rule, with plain values and a fake clock."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from spcs_gateway.lifecycle import (
    Action,
    Backlog,
    Decision,
    LifecyclePolicy,
    Observed,
    Reason,
    ServiceRecord,
    ServiceStatus,
    decide_service,
    idle_countdown,
)
from spcs_gateway.queues import QueueDepth
from spcs_gateway.registry import ServiceConfig, WarmWindow
from spcs_gateway.status import ServiceObservation

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # a Wednesday
IDLE = 900
RUNNING = Observed("RUNNING", ready=True)
SUSPENDED = Observed("SUSPENDED")
EMPTY = Backlog({"notes": QueueDepth(0, 0, 0)})
POLICY = LifecyclePolicy(min_uptime=timedelta(minutes=5), warm_lead=timedelta(minutes=15))


def svc(**overrides: Any) -> ServiceConfig:
    base: dict[str, Any] = {
        "name": "ner",
        "service": "ML.SERVING.NER",
        "compute_pool": "GPU_POOL",
        "url": "https://ner.example.snowflakecomputing.app",
        "task": "token-classification",
        "idle_seconds": IDLE,
        "policy": "fixed",  # the idle-window rules (adaptive: test_ctl_adaptive*.py)
        "queues": ["notes"],
    }
    base.update(overrides)
    return ServiceConfig.model_validate(base)


CONFIG = svc()


def decide(
    state: ServiceRecord,
    now: datetime,
    observation: Observed = RUNNING,
    backlog: Backlog = EMPTY,
    config: ServiceConfig = CONFIG,
) -> Decision:
    return decide_service(config, state, observation, backlog, now, POLICY)


def idle_state(last_activity: datetime = T0, **kw: Any) -> ServiceRecord:
    return ServiceRecord(
        name="ner", status=ServiceStatus.RUNNING, last_activity=last_activity, **kw
    )


# -- suspension --------------------------------------------------------------------------------


def test_suspends_exactly_when_idle_window_has_passed() -> None:
    state = idle_state()
    assert decide(state, T0 + timedelta(seconds=IDLE - 1)) == Decision(
        Action.NONE, Reason.IDLE_WINDOW_PENDING
    )
    assert decide(state, T0 + timedelta(seconds=IDLE - 0.001)).action is Action.NONE
    assert decide(state, T0 + timedelta(seconds=IDLE)) == Decision(
        Action.SUSPEND, Reason.IDLE_WINDOW_ELAPSED
    )
    assert decide(state, T0 + timedelta(hours=5)).action is Action.SUSPEND


def test_idle_window_is_per_service() -> None:
    state = idle_state()
    short = svc(idle_seconds=60)
    assert decide(state, T0 + timedelta(seconds=60), config=short).action is Action.SUSPEND
    assert decide(state, T0 + timedelta(seconds=60)).action is Action.NONE


@pytest.mark.parametrize(
    "depth",
    [QueueDepth(1, 0, 0), QueueDepth(0, 1, 0), QueueDepth(0, 0, 1), QueueDepth(500, 20, 3)],
    ids=["visible", "in_flight", "delayed", "all"],
)
def test_never_suspends_with_a_backlog(depth: QueueDepth) -> None:
    backlog = Backlog({"notes": depth})
    for hours in (1, 24, 24 * 30):
        assert decide(idle_state(), T0 + timedelta(hours=hours), backlog=backlog) == Decision(
            Action.NONE, Reason.BACKLOG
        )


def test_backlog_on_any_feeding_queue_blocks_suspension() -> None:
    config = svc(queues=["notes", "notes-priority"])
    backlog = Backlog({"notes": QueueDepth(0, 0, 0), "notes-priority": QueueDepth(0, 2, 0)})
    assert decide(idle_state(), T0 + timedelta(days=1), backlog=backlog, config=config).reason is (
        Reason.BACKLOG
    )


def test_never_suspends_when_backlog_is_unknown() -> None:
    config = svc(queues=["notes", "notes-priority"])
    partial = Backlog({"notes": QueueDepth(0, 0, 0)})
    assert decide(idle_state(), T0 + timedelta(days=1), backlog=partial, config=config) == Decision(
        Action.NONE, Reason.BACKLOG_UNKNOWN
    )


def test_never_suspends_with_an_in_flight_on_demand_call() -> None:
    backlog = Backlog({"notes": QueueDepth(0, 0, 0)}, on_demand_in_flight=1)
    assert decide(idle_state(), T0 + timedelta(hours=3), backlog=backlog) == Decision(
        Action.NONE, Reason.IN_FLIGHT_ON_DEMAND
    )


def test_leaked_on_demand_counter_stops_blocking_after_its_expiry() -> None:
    state = idle_state(on_demand_in_flight=1, on_demand_expires_at=T0 + timedelta(hours=1))
    before = T0 + timedelta(minutes=30)
    after = T0 + timedelta(hours=1)
    assert state.active_on_demand(before) == 1
    assert state.active_on_demand(after) == 0
    blocked = Backlog(EMPTY.queues, on_demand_in_flight=state.active_on_demand(before))
    freed = Backlog(EMPTY.queues, on_demand_in_flight=state.active_on_demand(after))
    assert decide(state, before, backlog=blocked).reason is Reason.IN_FLIGHT_ON_DEMAND
    assert decide(state, after, backlog=freed).action is Action.SUSPEND


def test_active_lease_blocks_suspension() -> None:
    state = idle_state(lease_owner="ctl-1", lease_expires_at=T0 + timedelta(hours=2))
    assert decide(state, T0 + timedelta(hours=1)) == Decision(Action.NONE, Reason.LEASE_HELD)
    assert decide(state, T0 + timedelta(hours=2)).action is Action.SUSPEND


def test_no_activity_record_counts_from_last_status_change() -> None:
    state = ServiceRecord(name="ner", status=ServiceStatus.RUNNING, last_transition_at=T0)
    assert decide(state, T0 + timedelta(seconds=IDLE - 1)).action is Action.NONE
    assert decide(state, T0 + timedelta(seconds=IDLE)).action is Action.SUSPEND
    # Nothing recorded at all: the window starts now, never an immediate suspend.
    assert decide(ServiceRecord(name="ner"), T0).reason is Reason.IDLE_WINDOW_PENDING


def test_hysteresis_keeps_a_resumed_service_up_for_min_uptime() -> None:
    policy = LifecyclePolicy(min_uptime=timedelta(minutes=30))
    state = idle_state(last_activity=T0, resumed_at=T0)
    at_window = T0 + timedelta(seconds=IDLE)
    assert decide_service(CONFIG, state, RUNNING, EMPTY, at_window, policy) == Decision(
        Action.NONE, Reason.HYSTERESIS
    )
    at_uptime = T0 + timedelta(minutes=30)
    assert decide_service(CONFIG, state, RUNNING, EMPTY, at_uptime, policy).action is Action.SUSPEND


def test_per_service_min_uptime_overrides_the_policy_default() -> None:
    # A 60 s idle window resumed at T0: the service's own minimum uptime decides when it may go.
    policy = LifecyclePolicy(min_uptime=timedelta(minutes=30))
    state = idle_state(last_activity=T0, resumed_at=T0)
    after_window = T0 + timedelta(minutes=2)

    def at(config: ServiceConfig, now: datetime) -> Decision:
        return decide_service(config, state, RUNNING, EMPTY, now, policy)

    shorter = svc(idle_seconds=60, min_uptime_seconds=60)  # below the policy's 30 min
    assert at(shorter, after_window) == Decision(Action.SUSPEND, Reason.IDLE_WINDOW_ELAPSED)
    longer = svc(idle_seconds=60, min_uptime_seconds=3_600)  # above it
    assert at(longer, T0 + timedelta(minutes=59)) == Decision(Action.NONE, Reason.HYSTERESIS)
    assert at(longer, T0 + timedelta(minutes=60)).action is Action.SUSPEND
    zero = svc(idle_seconds=60, min_uptime_seconds=0)  # 0 is a value, not "unset"
    assert at(zero, T0 + timedelta(seconds=60)).action is Action.SUSPEND
    unset = svc(idle_seconds=60)  # None: the policy's 30 min apply
    assert unset.min_uptime_seconds is None
    assert at(unset, after_window) == Decision(Action.NONE, Reason.HYSTERESIS)
    assert at(unset, T0 + timedelta(minutes=30)).action is Action.SUSPEND


def test_idle_countdown_uses_the_per_service_min_uptime() -> None:
    policy = LifecyclePolicy(min_uptime=timedelta(minutes=40), warm_lead=timedelta(0))
    state = idle_state(resumed_at=T0)
    now = T0 + timedelta(minutes=20)
    own = idle_countdown(svc(min_uptime_seconds=3_600), state, RUNNING, EMPTY, now, policy)
    assert (own.reason, own.eligible_at) == (Reason.HYSTERESIS, T0 + timedelta(hours=1))
    short = idle_countdown(svc(min_uptime_seconds=60), state, RUNNING, EMPTY, now, policy)
    # Hysteresis is over; the 900 s idle window (from the resume) is what remains.
    assert (short.reason, short.seconds) == (Reason.IDLE_WINDOW_ELAPSED, 0.0)
    default = idle_countdown(svc(), state, RUNNING, EMPTY, now, policy)
    assert (default.reason, default.seconds) == (Reason.HYSTERESIS, 20 * 60)


@pytest.mark.parametrize("value", [-1, 86_401])
def test_min_uptime_seconds_is_bounded(value: int) -> None:
    with pytest.raises(ValidationError):
        svc(min_uptime_seconds=value)


def test_resume_restarts_the_idle_window() -> None:
    # Last activity long ago, but we resumed it recently (resume counts as activity).
    state = idle_state(last_activity=T0 - timedelta(days=1), resumed_at=T0)
    assert decide(state, T0 + timedelta(seconds=IDLE - 1)).reason is Reason.IDLE_WINDOW_PENDING
    assert decide(state, T0 + timedelta(seconds=IDLE)).action is Action.SUSPEND


def test_activity_just_after_the_window_keeps_it_running() -> None:
    # Traffic lands one second after the window elapsed but before the reconcile tick: the
    # tick sees fresh activity and leaves the service up for another full window.
    late = T0 + timedelta(seconds=IDLE + 1)
    state = idle_state(last_activity=late)
    tick = T0 + timedelta(seconds=IDLE + 30)
    assert decide(state, tick).reason is Reason.IDLE_WINDOW_PENDING
    assert decide(state, late + timedelta(seconds=IDLE - 1)).action is Action.NONE
    assert decide(state, late + timedelta(seconds=IDLE)).action is Action.SUSPEND


def test_running_inside_a_warm_window_is_not_suspended() -> None:
    config = svc(warm_windows=[{"cron": "0 12 * * *", "duration_minutes": 120}])
    state = idle_state(last_activity=T0 - timedelta(hours=5))
    assert decide(state, T0 + timedelta(minutes=90), config=config) == Decision(
        Action.NONE, Reason.WARM_WINDOW
    )
    assert decide(state, T0 + timedelta(minutes=120), config=config).action is Action.SUSPEND
    # Within the lead time before the next window: also kept up.
    assert decide(state, T0 + timedelta(hours=23, minutes=50), config=config).reason is (
        Reason.WARM_WINDOW
    )


def test_running_but_not_ready_waits_unless_idle() -> None:
    starting = Observed("RUNNING", ready=False)
    busy = Backlog({"notes": QueueDepth(3, 0, 0)})
    assert decide(idle_state(), T0 + timedelta(hours=1), starting, busy) == Decision(
        Action.WAIT, Reason.STARTING
    )
    # An unready service with no work past its window still costs money: suspend it.
    assert decide(idle_state(), T0 + timedelta(hours=1), starting).action is Action.SUSPEND


# -- resume and transitions --------------------------------------------------------------------


def test_suspended_with_backlog_resumes() -> None:
    backlog = Backlog({"notes": QueueDepth(500, 0, 0)})
    state = ServiceRecord(name="ner", status=ServiceStatus.SUSPENDED)
    assert decide(state, T0, SUSPENDED, backlog) == Decision(Action.RESUME, Reason.BACKLOG)


def test_suspended_with_in_flight_messages_resumes() -> None:
    backlog = Backlog({"notes": QueueDepth(0, 7, 0)})
    assert decide(ServiceRecord(name="ner"), T0, SUSPENDED, backlog).action is Action.RESUME


def test_suspended_with_on_demand_call_resumes() -> None:
    backlog = Backlog(EMPTY.queues, on_demand_in_flight=1)
    assert decide(ServiceRecord(name="ner"), T0, SUSPENDED, backlog) == Decision(
        Action.RESUME, Reason.IN_FLIGHT_ON_DEMAND
    )


def test_suspended_without_work_stays_suspended() -> None:
    assert decide(ServiceRecord(name="ner"), T0, SUSPENDED) == Decision(
        Action.NONE, Reason.SUSPENDED_IDLE
    )


def test_suspended_under_an_active_lease_waits_for_the_holder() -> None:
    state = ServiceRecord(name="ner", lease_owner="a", lease_expires_at=T0 + timedelta(minutes=5))
    backlog = Backlog({"notes": QueueDepth(10, 0, 0)})
    assert decide(state, T0, SUSPENDED, backlog) == Decision(Action.WAIT, Reason.RESUME_IN_PROGRESS)
    # The holder crashed before RESUME: once the lease expires, the next reconcile resumes.
    later = T0 + timedelta(minutes=5)
    assert decide(state, later, SUSPENDED, backlog) == Decision(Action.RESUME, Reason.BACKLOG)


def test_resume_right_after_suspend_is_never_delayed() -> None:
    state = ServiceRecord(name="ner", suspended_at=T0, status=ServiceStatus.SUSPENDED)
    backlog = Backlog({"notes": QueueDepth(1, 0, 0)})
    assert decide(state, T0 + timedelta(seconds=1), SUSPENDED, backlog).action is Action.RESUME


def test_pending_is_never_fought() -> None:
    pending = Observed("PENDING")
    backlog = Backlog({"notes": QueueDepth(10, 0, 0)})
    held = ServiceRecord(name="ner", lease_owner="a", lease_expires_at=T0 + timedelta(minutes=1))
    assert decide(held, T0, pending, backlog) == Decision(Action.WAIT, Reason.RESUME_IN_PROGRESS)
    expired = replace(held, lease_expires_at=T0)
    assert decide(expired, T0, pending, backlog) == Decision(Action.WAIT, Reason.RESUME_UNOWNED)


def test_ready_with_paused_mappings_finishes_the_resume_lease_or_not() -> None:
    state = ServiceRecord(name="ner", mappings_paused=True, resumed_at=T0)
    backlog = Backlog({"notes": QueueDepth(500, 0, 0)})
    expired = replace(state, lease_owner="crashed", lease_expires_at=T0 + timedelta(minutes=5))
    held = replace(expired, lease_expires_at=T0 + timedelta(hours=1))
    for s in (state, expired, held):
        assert decide(s, T0 + timedelta(minutes=10), RUNNING, backlog) == Decision(
            Action.FINISH_RESUME, Reason.RESUME_COMPLETE
        )
    # Not ready yet: wait, whatever the lease says.
    not_ready = Observed("RUNNING", ready=False)
    assert decide(expired, T0 + timedelta(minutes=10), not_ready, backlog).action is Action.WAIT


def test_stale_pause_on_a_suspended_idle_service_is_cleared() -> None:
    state = ServiceRecord(name="ner", mappings_paused=True)
    assert decide(state, T0, SUSPENDED) == Decision(Action.FINISH_RESUME, Reason.STALE_PAUSE)
    backlog = Backlog({"notes": QueueDepth(2, 0, 0)})
    assert decide(state, T0, SUSPENDED, backlog).action is Action.RESUME


def test_suspending_waits_even_with_backlog() -> None:
    backlog = Backlog({"notes": QueueDepth(5, 0, 0)})
    assert decide(ServiceRecord(name="ner"), T0, Observed("SUSPENDING"), backlog) == Decision(
        Action.WAIT, Reason.SUSPENDING
    )


@pytest.mark.parametrize("status", ["FAILED", "INTERNAL_ERROR", "failed"])
def test_failed_is_reported_never_resumed(status: str) -> None:
    backlog = Backlog({"notes": QueueDepth(500, 0, 0)})
    state = ServiceRecord(name="ner", mappings_paused=True)
    for minutes in (0, 10, 600):
        assert decide(state, T0 + timedelta(minutes=minutes), Observed(status), backlog) == (
            Decision(Action.NONE, Reason.SERVICE_FAILED)
        )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("DELETED", Reason.SERVICE_GONE),
        ("DELETING", Reason.SERVICE_GONE),
        ("DONE", Reason.SERVICE_GONE),
        ("SOMETHING_NEW", Reason.STATUS_UNKNOWN),
        ("", Reason.STATUS_UNKNOWN),
    ],
)
def test_gone_or_unknown_status_is_left_alone(status: str, reason: Reason) -> None:
    backlog = Backlog({"notes": QueueDepth(5, 0, 0)})
    assert decide(ServiceRecord(name="ner"), T0, Observed(status), backlog) == Decision(
        Action.NONE, reason
    )


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(idle_state(), datetime(2025, 1, 1))


def test_service_control_observation_is_accepted() -> None:
    obs = ServiceObservation("ML.SERVING.NER", "RUNNING", "GPU_POOL", 2, 2)
    assert decide_service(CONFIG, idle_state(), obs, EMPTY, T0 + timedelta(hours=1)).action is (
        Action.SUSPEND
    )
    starting = ServiceObservation("ML.SERVING.NER", "RUNNING", "GPU_POOL", 1, 2)
    paused = idle_state(mappings_paused=True)
    assert decide_service(CONFIG, paused, starting, EMPTY, T0).action is Action.WAIT


def test_observed_of_container_statuses() -> None:
    assert Observed.of("running", ["READY", "ready"]) == Observed(ServiceStatus.RUNNING, True)
    assert not Observed.of("RUNNING", ["READY", "PENDING"]).ready
    assert not Observed.of("RUNNING", []).ready
    assert not Observed.of("SUSPENDED", ["READY"]).ready
    assert Observed.of(None).status is ServiceStatus.UNKNOWN


# -- no flapping -------------------------------------------------------------------------------


def test_no_flapping_when_traffic_arrives_just_after_each_suspension() -> None:
    """Fake-clock loop: reconcile every 60 s; a resume takes 3 minutes; 5 s after every
    suspension one late note arrives. The late note is served at once (resume on the next
    tick), and the service is not suspended again until a full idle window has passed after
    its last activity and min uptime after the resume: one cycle per note, no loop."""
    config = svc(idle_seconds=600)
    policy = LifecyclePolicy(min_uptime=timedelta(minutes=15))
    now = T0
    state = ServiceRecord(name="ner", last_activity=T0, last_transition_at=T0)
    status, ready_at, queued = "RUNNING", T0, 0
    late_note_at: datetime | None = None
    events: list[tuple[Action, datetime, ServiceRecord]] = []
    while now < T0 + timedelta(hours=6):
        now += timedelta(seconds=60)
        if status == "PENDING" and now >= ready_at:
            status = "RUNNING"
        if late_note_at is not None and now >= late_note_at:
            queued, late_note_at = 1, None
        if status == "RUNNING" and queued:
            queued = 0  # routers drain the queue and record activity
            state = replace(state, last_activity=now)
        obs = Observed(status, ready=status == "RUNNING")
        backlog = Backlog({"notes": QueueDepth(queued, 0, 0)})
        decision = decide_service(config, state, obs, backlog, now, policy)
        if decision.action is Action.SUSPEND:
            events.append((decision.action, now, state))
            status, late_note_at = "SUSPENDED", now + timedelta(seconds=5)
            state = replace(state, suspended_at=now, last_transition_at=now)
        elif decision.action is Action.RESUME:
            assert decision.reason is Reason.BACKLOG
            events.append((decision.action, now, state))
            status, ready_at = "PENDING", now + timedelta(minutes=3)
            state = replace(state, resumed_at=now, last_transition_at=now)
    actions = [a for a, _, _ in events]
    assert actions[0] is Action.SUSPEND
    # Strict alternation: never two suspends (or resumes) in a row.
    assert all(a is not b for a, b in itertools.pairwise(actions))
    for (a, at, _), nxt in itertools.pairwise(events):
        if a is Action.SUSPEND:
            assert nxt[1] - at == timedelta(seconds=60)  # the late note is served next tick
        else:
            suspended_at, seen = nxt[1], nxt[2]
            assert seen.last_activity is not None
            assert seen.resumed_at == at
            assert suspended_at - seen.last_activity >= timedelta(seconds=600)
            assert suspended_at - at >= timedelta(minutes=15)
            # ...and not a tick later than needed.
            due = max(seen.last_activity + timedelta(seconds=600), at + timedelta(minutes=15))
            assert suspended_at - due < timedelta(seconds=60)
    cycle = timedelta(seconds=60) + timedelta(minutes=15)
    assert len([a for a in actions if a is Action.SUSPEND]) <= timedelta(hours=6) / cycle + 1


# -- idle countdown ----------------------------------------------------------------------------


def test_idle_countdown_counts_down_to_the_window() -> None:
    state = idle_state()
    c = idle_countdown(CONFIG, state, RUNNING, EMPTY, T0 + timedelta(seconds=600), POLICY)
    assert c.reason is Reason.IDLE_WINDOW_PENDING
    assert c.eligible_at == T0 + timedelta(seconds=IDLE)
    assert c.seconds == 300
    done = idle_countdown(CONFIG, state, RUNNING, EMPTY, T0 + timedelta(hours=1), POLICY)
    assert (done.reason, done.seconds) == (Reason.IDLE_WINDOW_ELAPSED, 0.0)


def test_idle_countdown_includes_hysteresis_and_warm_window() -> None:
    policy = LifecyclePolicy(min_uptime=timedelta(minutes=40), warm_lead=timedelta(0))
    state = idle_state(resumed_at=T0)
    c = idle_countdown(CONFIG, state, RUNNING, EMPTY, T0 + timedelta(minutes=20), policy)
    assert (c.reason, c.seconds) == (Reason.HYSTERESIS, 20 * 60)
    config = svc(warm_windows=[{"cron": "0 12 * * *", "duration_minutes": 90}])
    w = idle_countdown(config, state, RUNNING, EMPTY, T0 + timedelta(minutes=20), policy)
    assert (w.reason, w.eligible_at) == (Reason.WARM_WINDOW, T0 + timedelta(minutes=90))


def test_idle_countdown_blocked_or_not_running() -> None:
    busy = Backlog({"notes": QueueDepth(1, 0, 0)})
    c = idle_countdown(CONFIG, idle_state(), RUNNING, busy, T0, POLICY)
    assert (c.reason, c.eligible_at, c.seconds) == (Reason.BACKLOG, None, None)
    s = idle_countdown(CONFIG, idle_state(), SUSPENDED, EMPTY, T0, POLICY)
    assert (s.reason, s.seconds) == (Reason.NOT_RUNNING, None)


# -- cost --------------------------------------------------------------------------------------


def test_decide_service_is_cheap_in_a_tight_loop() -> None:
    config = svc(
        warm_windows=[
            WarmWindow(cron="45 6 * * 1-5", duration_minutes=600, timezone="America/Chicago")
        ]
    )
    state = idle_state()
    start = time.perf_counter()
    now = T0
    for _ in range(20_000):
        now += timedelta(seconds=1)
        decide_service(config, state, RUNNING, EMPTY, now)
    assert time.perf_counter() - start < 2.0
