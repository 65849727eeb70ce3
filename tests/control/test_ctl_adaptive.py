"""Adaptive scale-to-zero policy (adaptive.py through lifecycle.decide_service), on a fake clock:
learning, the learned resume cost, break-even fallback, pre-resume, long-gap fallback, bounds,
the hard rules, DST, and a cold service with no history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from spcs_gateway import adaptive
from spcs_gateway.lifecycle import (
    Action,
    Backlog,
    LifecyclePolicy,
    Observed,
    Reason,
    ServiceRecord,
    ServiceStatus,
    decide_service,
    idle_countdown,
    keep_alive_bounds,
)
from spcs_gateway.queues import QueueDepth
from spcs_gateway.registry import ServiceConfig, WarmWindow

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
RUNNING = Observed("RUNNING", ready=True)
SUSPENDED = Observed("SUSPENDED")
EMPTY = Backlog({"notes": QueueDepth(0, 0, 0)})
POLICY = LifecyclePolicy()
BOUNDS = adaptive.Bounds(0.0, 900.0)


def svc(**overrides: Any) -> ServiceConfig:
    base: dict[str, Any] = {
        "name": "ner",
        "service": "ML.SERVING.NER",
        "compute_pool": "GPU_POOL",
        "url": "https://ner.example.snowflakecomputing.app",
        "task": "token-classification",
        "queues": ["notes"],
    }
    base.update(overrides)
    return ServiceConfig.model_validate(base)


def learned(gaps: list[float], resumes: tuple[int, ...] = (180,)) -> adaptive.IdleModel:
    model = adaptive.IdleModel(resumes=resumes)
    for gap in gaps:
        model = adaptive.add_gap(model, gap)
    return adaptive.replan(model, BOUNDS, force=True)


def record(model: adaptive.IdleModel | None, last: datetime = T0, **kw: Any) -> ServiceRecord:
    if model is not None:
        model = replace(model, last=last.timestamp())
    return ServiceRecord(
        "ner", status=ServiceStatus.RUNNING, last_activity=last, idle_model=model, **kw
    )


def decide(rec: ServiceRecord, now: datetime, obs: Observed = RUNNING, **kw: Any) -> Any:
    backlog = kw.pop("backlog", EMPTY)
    return decide_service(kw.pop("config", svc()), rec, obs, backlog, now, POLICY)


# -- defaults and registry ---------------------------------------------------------------------


def test_adaptive_is_the_default_and_bounds_come_from_the_registry() -> None:
    assert svc().policy == "adaptive"
    assert keep_alive_bounds(svc()) == adaptive.Bounds(0, 900)
    assert keep_alive_bounds(svc(idle_seconds=600, keep_alive_min_seconds=30)) == (
        adaptive.Bounds(30, 600)
    )
    assert keep_alive_bounds(svc(keep_alive_max_seconds=3600)).max_s == 3600


# -- cold service: break-even ------------------------------------------------------------------


def test_cold_service_keeps_alive_for_break_even_then_suspends() -> None:
    rec = record(None)  # never learned anything
    assert decide(rec, T0 + timedelta(seconds=179)).reason is Reason.KEEP_ALIVE
    assert decide(rec, T0 + timedelta(seconds=180)).action is Action.SUSPEND
    # and it is never pre-resumed: there is nothing to predict
    down = replace(rec, status=ServiceStatus.SUSPENDED)
    assert decide(down, T0 + timedelta(hours=3), SUSPENDED).action is Action.NONE


def test_no_record_at_all_decides_from_the_records_idle_start() -> None:
    rec = ServiceRecord("ner", status=ServiceStatus.RUNNING, last_transition_at=T0)
    assert decide(rec, T0 + timedelta(seconds=100)).action is Action.NONE
    assert decide(rec, T0 + timedelta(seconds=200)).action is Action.SUSPEND


def test_too_few_gaps_scale_break_even_with_the_learned_r_by_what_was_seen() -> None:
    # No gap yet: break-even with the learned R (the median resume time), no window.
    assert adaptive.current_plan(learned([], resumes=(40, 60, 50)), BOUNDS) == adaptive.Plan(50.0)
    # Three irregular gaps, all far longer than R: R / (3 + 2) less the half round the suspend
    # lands late; no window (no pattern).
    model = learned([3600.0, 5000.0, 7000.0], resumes=(400, 600, 500))
    plan = adaptive.current_plan(model, BOUNDS)
    assert plan.keep_alive == pytest.approx(500.0 / 5 - adaptive.ROUND_S / 2)
    assert plan.windows == ()


# -- learning ----------------------------------------------------------------------------------


def test_learning_counts_gaps_in_minute_bins_and_long_gaps_exactly() -> None:
    model = learned([90.0, 150.0, 5 * 3600.0])
    assert model.hist[1] == 1
    assert model.hist[2] == 1
    assert model.hist[adaptive.BINS] == 1
    assert model.long == (18_000,)
    assert model.samples == 3


def test_sub_round_pauses_are_continuations_capped_per_busy_period() -> None:
    model = adaptive.IdleModel()
    for _ in range(10):
        model = adaptive.add_gap(model, 10.0)
    assert model.hist[0] == 3
    assert model.samples == 0
    model = adaptive.add_gap(model, 600.0)  # a real gap ends the busy period
    model = adaptive.add_gap(model, 10.0)
    assert model.hist[0] == 4


def test_histogram_stays_bounded_and_fades_old_traffic() -> None:
    model = learned([120.0] * 1000)
    assert sum(model.hist) <= adaptive.HIST_CAP
    model = learned([120.0] * 300 + [3000.0] * 300)
    assert model.hist[50] > model.hist[2]


def test_round_observations_measure_the_quiet_stretch_seen() -> None:
    t = T0.timestamp()
    model = adaptive.observe_activity(adaptive.IdleModel(), t, None)
    # Next round 60 s later: nothing new. Then activity, first seen by the round at t + 600.
    model = adaptive.observe_activity(model, t, t + 60)
    assert model.samples == 0
    model = adaptive.observe_activity(model, t + 590, t + 540)
    assert model.samples == 1
    assert model.hist[9] == 1
    # Activity again at the next round, quiet seen < a round: a continuation.
    model = adaptive.observe_activity(model, t + 640, t + 600)
    assert model.samples == 1
    assert model.hist[0] == 1


def test_a_caller_finding_it_asleep_is_an_exact_arrival_and_idle_starts_after_r() -> None:
    t = T0.timestamp()
    model = adaptive.IdleModel(last=t, resumes=(100,))
    model = adaptive.observe_arrival(model, t + 4000)
    assert model.hist[66] == 1
    assert model.last == t + 4100


def test_resume_cost_is_the_median_of_the_last_resumes() -> None:
    model = adaptive.IdleModel()
    assert model.resume_s() == adaptive.DEFAULT_RESUME_S
    for seconds in (100, 400, 120, 110, 130, 90):
        model = adaptive.observe_resume(model, seconds)
    assert len(model.resumes) == adaptive.RESUME_SAMPLES
    assert model.resume_s() == 120


# -- choosing ----------------------------------------------------------------------------------


def test_gaps_far_longer_than_r_suspend_right_after_work() -> None:
    gaps = [3 * 3600.0, 2 * 3600.0, 5000.0, 9000.0, 4000.0, 7000.0, 6500.0, 8000.0, 12000.0]
    plan = adaptive.current_plan(learned(gaps), BOUNDS)
    assert plan.keep_alive == 0
    assert plan.windows == ()


def test_short_gaps_are_kept_alive_through() -> None:
    plan = adaptive.current_plan(learned([120.0, 150.0, 200.0, 240.0] * 5), BOUNDS)
    assert 240 <= plan.keep_alive <= 300


def test_regular_gaps_pre_resume_ahead_of_the_predicted_arrival() -> None:
    model = learned([3540.0, 3545.0, 3550.0, 3548.0] * 4)
    plan = adaptive.current_plan(model, BOUNDS)
    assert plan.keep_alive < 300
    ((start, end),) = plan.windows
    assert start + 180 + adaptive.ROUND_S <= 3540 < 3550 <= end


def test_bounds_clamp_the_keep_alive_and_the_hold() -> None:
    short = learned([120.0, 150.0, 200.0, 240.0] * 5)
    assert adaptive.current_plan(short, adaptive.Bounds(0, 60)).keep_alive == 60
    far = learned([3 * 3600.0] * 10)
    assert adaptive.current_plan(far, adaptive.Bounds(600, 900)).keep_alive == 600
    assert adaptive.Bounds(500, 100).clamp(0) == 500  # min wins over a max below it


def test_nightly_gaps_beyond_the_histogram_use_the_time_series_fallback() -> None:
    day = 86_400.0
    model = learned([day - 60, day + 20, day - 10])
    ((start, end),) = adaptive.current_plan(model, BOUNDS).windows
    assert start < day - 60 - 180
    assert end > day + 20
    # Irregular long gaps: no window, break-even
    irregular = learned([5 * 3600.0, 9 * 3600.0, 20 * 3600.0])
    assert adaptive.current_plan(irregular, BOUNDS).windows == ()


# -- deciding ----------------------------------------------------------------------------------


def hourly() -> adaptive.IdleModel:
    return learned([3540.0, 3545.0, 3550.0, 3548.0] * 4)


def test_pre_resume_once_inside_the_window_then_hold_then_suspend() -> None:
    model = hourly()
    ((start, end),) = adaptive.current_plan(model, BOUNDS).windows
    rec = record(model)
    # suspended after the keep-alive
    assert decide(rec, T0 + timedelta(seconds=400)).action is Action.SUSPEND
    down = replace(rec, status=ServiceStatus.SUSPENDED)
    assert decide(down, T0 + timedelta(seconds=start - 1), SUSPENDED).action is Action.NONE
    opened = T0 + timedelta(seconds=start + 1)
    assert decide(down, opened, SUSPENDED).reason is Reason.PREDICTED_ARRIVAL
    # once per window: after our resume, not again
    resumed = replace(down, resumed_at=opened)
    assert decide(resumed, opened + timedelta(seconds=30), SUSPENDED).action is Action.NONE
    # up and idle inside the window: held; after it: suspended
    up = replace(resumed, status=ServiceStatus.RUNNING)
    inside = decide(up, T0 + timedelta(seconds=end - 1))
    assert (inside.action, inside.reason) == (Action.NONE, Reason.PREDICTED_ARRIVAL)
    assert decide(up, T0 + timedelta(seconds=end)).action is Action.SUSPEND


def test_countdown_shows_when_the_adaptive_plan_lets_it_go() -> None:
    rec = record(None)
    c = idle_countdown(svc(), rec, RUNNING, EMPTY, T0 + timedelta(seconds=80), POLICY)
    assert c.reason is Reason.KEEP_ALIVE
    assert c.seconds == pytest.approx(100)


@pytest.mark.parametrize(
    ("backlog", "reason"),
    [
        (Backlog({"notes": QueueDepth(1, 0, 0)}), Reason.BACKLOG),
        (Backlog({"notes": QueueDepth(0, 1, 0)}), Reason.BACKLOG),
        (Backlog({}), Reason.BACKLOG_UNKNOWN),
        (Backlog({"notes": QueueDepth(0, 0, 0)}, 1), Reason.IN_FLIGHT_ON_DEMAND),
    ],
)
def test_hard_rules_still_win_over_a_plan_that_would_suspend(
    backlog: Backlog, reason: Reason
) -> None:
    rec = record(learned([3 * 3600.0] * 10))  # plan: suspend right after work
    assert decide(rec, T0 + timedelta(hours=1)).action is Action.SUSPEND
    assert decide(rec, T0 + timedelta(hours=1), backlog=backlog).reason is reason


def test_a_lease_and_a_warm_window_still_win() -> None:
    rec = record(learned([3 * 3600.0] * 10))
    leased = replace(rec, lease_owner="x", lease_expires_at=T0 + timedelta(hours=2))
    assert decide(leased, T0 + timedelta(hours=1)).reason is Reason.LEASE_HELD
    warm = svc(warm_windows=[WarmWindow(cron="0 12 * * *", duration_minutes=120)])
    assert decide(rec, T0 + timedelta(hours=1), config=warm).reason is Reason.WARM_WINDOW


def test_explicit_min_uptime_applies_to_adaptive_too() -> None:
    rec = record(learned([3 * 3600.0] * 10), resumed_at=T0)
    assert decide(rec, T0 + timedelta(seconds=30)).action is Action.SUSPEND
    held = decide(rec, T0 + timedelta(seconds=30), config=svc(min_uptime_seconds=120))
    assert held.reason is Reason.HYSTERESIS


def test_the_fixed_policy_ignores_the_learned_plan() -> None:
    rec = record(learned([3 * 3600.0] * 10))
    fixed = svc(policy="fixed", idle_seconds=900)
    assert decide(rec, T0 + timedelta(seconds=600), config=fixed).action is Action.NONE


# -- DST ---------------------------------------------------------------------------------------


def test_dst_gaps_are_elapsed_time_whatever_the_zone() -> None:
    ny = ZoneInfo("America/New_York")
    before = datetime(2025, 3, 8, 5, 0, tzinfo=ny)  # 05:00 local, the day before DST starts
    after = datetime(2025, 3, 9, 5, 0, tzinfo=ny)  # 05:00 local, 23 h later
    model = adaptive.observe_arrival(adaptive.IdleModel(resumes=(1,)), before.timestamp() - 1)
    model = adaptive.observe_arrival(model, after.timestamp())
    assert model.long == (23 * 3600,)


def test_a_local_time_job_keeps_its_prediction_across_a_dst_change() -> None:
    day = 86_400.0
    model = learned([day, day, day, day - 3600, day])  # the 23-hour day once
    ((start, end),) = adaptive.current_plan(model, BOUNDS).windows
    assert start < day - 180 < day < end


def test_warm_windows_still_win_under_adaptive_on_a_dst_day() -> None:
    zone = "America/Chicago"
    warm = svc(warm_windows=[WarmWindow(cron="45 6 * * *", duration_minutes=60, timezone=zone)])
    seven = datetime(2025, 3, 9, 7, 0, tzinfo=ZoneInfo(zone))  # DST started at 02:00
    rec = record(learned([3 * 3600.0] * 10), last=seven - timedelta(hours=2))
    assert decide(rec, seven, config=warm).reason is Reason.WARM_WINDOW
    down = replace(rec, status=ServiceStatus.SUSPENDED)
    assert decide(down, seven, SUSPENDED, config=warm).action is Action.RESUME


# -- the stored form ---------------------------------------------------------------------------


def test_encoding_round_trips_and_stays_small() -> None:
    model = learned([60.0 * i + 5 for i in range(1, 241)] * 2 + [90_000.0] * 8)
    model = replace(model, last=T0.timestamp() + 0.123456, streak=2)
    for r in (170, 185, 190, 200, 175):
        model = adaptive.observe_resume(model, r)
    text = adaptive.encode(model)
    assert len(text.encode()) < 4096
    again = adaptive.decode(text)
    assert again is not None
    assert adaptive.encode(again) == text
    assert again.hist == model.hist
    assert again.plan == model.plan
    assert adaptive.decode("not json") is None
    assert adaptive.decode(None) is None


def test_the_first_resume_moves_an_arrival_anchor_back_to_the_real_ready_instant() -> None:
    # A caller finds a never-seen service asleep: the next idle period is anchored at
    # "arrival + R" with the default R. Once the resume is seen ready after 2 s, the anchor is
    # the ready instant, or the service would be held up for the default R after every call.
    at = 1_000_000.0
    model = adaptive.observe_arrival(adaptive.IdleModel(), at)
    assert model.last == at + adaptive.DEFAULT_RESUME_S
    model = adaptive.observe_resume(model, 2.0, at + 2.0)
    assert model.last == at + 2.0
    assert model.resume_s() == 2.0
    # Once R is learned, an arrival's anchor uses it and a later resume leaves it alone.
    again = adaptive.observe_arrival(model, at + 3_600.0)
    assert again.last == at + 3_602.0
    assert adaptive.observe_resume(again, 5.0, at + 3_601.0).last == at + 3_602.0


def test_a_guessed_anchor_in_the_future_gives_way_to_what_happened() -> None:
    # An arrival anchored the idle period at "arrival + default R" (180 s) but the service was
    # ready after 2 s and worked once: the keep-alive counts from that work, not the guess.
    model = adaptive.observe_arrival(adaptive.IdleModel(resumes=(3,)), T0.timestamp() + 500)
    assert model.last == T0.timestamp() + 503
    rec = ServiceRecord(
        "ner",
        status=ServiceStatus.RUNNING,
        resumed_at=T0,
        last_activity=T0 + timedelta(seconds=2),
        idle_model=replace(model, last=T0.timestamp() + 180),
    )
    config = svc(idle_seconds=3)  # keep-alive bounded at 3 s
    assert decide(rec, T0 + timedelta(seconds=4), config=config).reason is Reason.KEEP_ALIVE
    assert decide(rec, T0 + timedelta(seconds=6), config=config).action is Action.SUSPEND
