"""Adaptive policy: the rules that decide while little is known and for jobs started by a
clock, on a fake clock (plain epoch seconds and lifecycle.decide_service): the learning-augmented
keep-alive, the quiet stretch before a service's first call, continuations, the long-gap
samples, start-to-start periods (job length, DST, bounds) and their stored form."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ctl_control_support import make_registry

from spcs_gateway import adaptive
from spcs_gateway.control import ControlPlane, ControlSettings
from spcs_gateway.control.memory import (
    ManualClock,
    MemoryMappings,
    MemoryQueues,
    MemorySpcsServices,
    MemoryStateStore,
)
from spcs_gateway.lifecycle import (
    Action,
    Backlog,
    LifecyclePolicy,
    Observed,
    Reason,
    ServiceRecord,
    ServiceStatus,
    decide_service,
)
from spcs_gateway.queues import QueueDepth
from spcs_gateway.registry import ServiceConfig

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
BOUNDS = adaptive.Bounds(0.0, 900.0)
EMPTY = Backlog({"notes": QueueDepth(0, 0, 0)})
R = 180.0
HOUR = 3600.0


HALF_ROUND = adaptive.ROUND_S / 2  # a suspend lands half a round late on average


def gaps(values: list[float], model: adaptive.IdleModel | None = None) -> adaptive.IdleModel:
    model = model or adaptive.IdleModel(resumes=(int(R),))
    for gap in values:
        model = adaptive.add_gap(model, gap)
    return adaptive.replan(model, BOUNDS, force=True)


def config(**kw: object) -> ServiceConfig:
    base: dict[str, object] = {
        "name": "ner",
        "service": "ML.SERVING.NER",
        "compute_pool": "GPU_POOL",
        "url": "https://ner.example.snowflakecomputing.app",
        "task": "token-classification",
        "queues": ["notes"],
    }
    return ServiceConfig.model_validate({**base, **kw})


# -- while few gaps are known ------------------------------------------------------------------


def test_each_long_gap_seen_shortens_the_keep_alive_from_break_even() -> None:
    slow = adaptive.IdleModel(resumes=(600,))  # R = 600 s
    keeps = [adaptive.learning_keep_alive(gaps([6 * HOUR] * n, slow), BOUNDS) for n in range(8)]
    assert keeps[0] == 600  # nothing seen: break-even, 2-competitive
    assert keeps[1:] == pytest.approx([600 / (n + 2) - HALF_ROUND for n in range(1, 8)])
    assert keeps == sorted(keeps, reverse=True)
    # never shorter than half a round: a job still running at a round is not cut
    fast = [adaptive.learning_keep_alive(gaps([6 * HOUR] * n), BOUNDS) for n in range(1, 8)]
    assert fast == [adaptive.BIN_S / 2] * 7


def test_short_gaps_seen_keep_it_near_break_even() -> None:
    short = adaptive.learning_keep_alive(gaps([120.0] * 4), BOUNDS)
    assert short == pytest.approx(R * 5 / 6 - HALF_ROUND)
    mixed = adaptive.learning_keep_alive(gaps([120.0, 6 * HOUR, 150.0, 5 * HOUR]), BOUNDS)
    assert mixed == pytest.approx(R * 3 / 6 - HALF_ROUND)


def test_operator_bounds_clamp_the_learning_keep_alive() -> None:
    model = gaps([6 * HOUR] * 5)
    assert adaptive.learning_keep_alive(model, adaptive.Bounds(120, 900)) == 120
    assert adaptive.learning_keep_alive(gaps([]), adaptive.Bounds(0, 60)) == 60


def test_the_histogram_takes_over_once_enough_gaps_are_known() -> None:
    # irregular gaps beyond R (no long-gap pattern either)
    spread = [5 * HOUR, 7 * HOUR, 6 * HOUR, 9 * HOUR, 8 * HOUR, 10 * HOUR, 4 * HOUR, 11 * HOUR]
    few = adaptive.current_plan(gaps(spread[:-1]), BOUNDS)
    enough = adaptive.current_plan(gaps(spread), BOUNDS)
    assert few == adaptive.Plan(adaptive.BIN_S / 2, (), "break_even")
    assert enough == adaptive.Plan(0.0, (), "histogram")


def test_the_quiet_stretch_before_a_first_call_counts_as_a_gap() -> None:
    t = T0.timestamp()
    first = adaptive.observe_arrival(adaptive.IdleModel(), t, quiet_since=t - 5 * HOUR)
    assert first.samples == 1
    assert first.long == (5 * 3600,)
    assert adaptive.learning_keep_alive(first, BOUNDS) == pytest.approx(R / 3 - HALF_ROUND)
    # a stretch shorter than a round says nothing; without one the call only anchors
    assert adaptive.observe_arrival(adaptive.IdleModel(), t, quiet_since=t - 30).samples == 0
    assert adaptive.observe_arrival(adaptive.IdleModel(), t).samples == 0


def test_a_suspended_services_first_caller_teaches_the_quiet_since_its_suspension() -> None:
    clock = ManualClock(T0)
    services = MemorySpcsServices(clock.now, resume_seconds=240, start_seconds=0)
    registry = make_registry(idle_seconds=900, policy="adaptive")
    for cfg in registry.services:
        services.add_service(cfg.service, cfg.compute_pool, ServiceStatus.SUSPENDED)
    name = registry.services[0].name
    store = MemoryStateStore(
        [ServiceRecord(name, status=ServiceStatus.SUSPENDED, last_transition_at=T0)]
    )
    plane = ControlPlane(
        registry,
        services,
        store,
        MemoryQueues(["notes", "images"]),
        MemoryMappings(["notes", "images"]),
        settings=ControlSettings(poll_interval_s=5, owner_id="t"),
        clock=clock.now,
        sleep=clock.sleep,
    )
    clock.advance(3 * HOUR)
    plane.ensure_ready(name, budget_s=290)
    model = store.get(name).idle_model
    assert model is not None
    assert model.samples == 1
    assert model.hist[180] == 1
    assert model.resume_s() == pytest.approx(240, abs=5)
    keep = adaptive.current_plan(model, BOUNDS).keep_alive
    assert keep == pytest.approx(model.resume_s() / 3 - HALF_ROUND)


# -- continuations and long gaps ---------------------------------------------------------------


def test_work_that_goes_on_across_rounds_is_never_cut_by_the_keep_alive() -> None:
    # while learning: no shorter than the pauses inside work
    learning = gaps([10.0, 6 * HOUR, 10.0, 7 * HOUR, 10.0, 5 * HOUR, 10.0, 9 * HOUR])
    assert adaptive.current_plan(learning, BOUNDS).keep_alive == adaptive.BIN_S / 2
    # with a histogram: the continuations weigh in the choice
    model = adaptive.IdleModel(resumes=(int(R),))
    for _ in range(20):  # jobs spanning a round, far apart
        model = adaptive.add_gap(adaptive.add_gap(model, 10.0), 6 * HOUR)
    plan = adaptive.current_plan(adaptive.replan(model, BOUNDS, force=True), BOUNDS)
    assert plan.keep_alive >= adaptive.BIN_S / 2


def test_lone_long_gaps_never_become_a_pre_resume_window() -> None:
    # Gaps beyond the histogram are kept exactly but stand for the whole tail: a Poisson
    # service called once a day must not pre-resume at one of them.
    irregular = [7 * HOUR, 30 * HOUR, 11 * HOUR, 52 * HOUR, 19 * HOUR, 26 * HOUR] * 3
    plan = adaptive.current_plan(gaps(irregular), BOUNDS)
    assert plan == adaptive.Plan(0.0, (), "histogram")


def test_gaps_seen_by_a_round_count_the_middle_of_what_it_cannot_see() -> None:
    t = T0.timestamp()
    model = adaptive.IdleModel(last=t)
    model = adaptive.observe_activity(model, t + 700, t + 600)  # ended in (600, 700]
    assert model.hist[10] == 1  # 650 s
    assert model.began == t + 650


# -- jobs started by a clock: start-to-start periods -------------------------------------------


def hourly_job(lengths: list[float], start: float = 0.0) -> adaptive.IdleModel:
    """Hourly runs of varying length, each seen to start exactly (a caller woke it)."""
    model = adaptive.IdleModel(resumes=(int(R),))
    for i, length in enumerate(lengths):
        at = start + i * HOUR
        model = adaptive.observe_arrival(model, at)
        model = replace(model, last=at + length)
    return adaptive.replan(model, BOUNDS, force=True)


def test_the_start_to_start_period_is_learned_whatever_each_run_lasts() -> None:
    model = hourly_job([40.0, 120.0, 60.0, 100.0, 80.0])
    assert model.periods == (3600, 3600, 3600, 3600)
    assert model.began == 4 * HOUR


@pytest.mark.parametrize("length", [30.0, 150.0])
def test_a_periodic_job_is_pre_resumed_for_its_next_start_not_after_its_end(
    length: float,
) -> None:
    model = hourly_job([40.0, 120.0, 60.0, 100.0, length])
    plan = adaptive.current_plan(model, BOUNDS)
    assert plan.basis == "period"
    ((start, end),) = plan.windows
    anchor = 4 * HOUR + length  # the end of this run
    ready_by = anchor + start + R + adaptive.ROUND_S
    assert 5 * HOUR - adaptive.ROUND_S <= ready_by <= 5 * HOUR  # ready before the next start
    assert anchor + end > 5 * HOUR


def test_the_period_window_drives_lifecycle_on_a_fake_clock() -> None:
    base = T0.timestamp()
    model = hourly_job([40.0, 120.0, 60.0, 100.0, 70.0], start=base)
    last = datetime.fromtimestamp(model.last or 0.0, tz=UTC)
    rec = ServiceRecord("ner", status=ServiceStatus.SUSPENDED, last_activity=last, idle_model=model)
    due = datetime.fromtimestamp(base + 5 * HOUR - R - adaptive.ROUND_S, tz=UTC)

    def decide(now: datetime) -> tuple[Action, Reason]:
        d = decide_service(config(), rec, Observed("SUSPENDED"), EMPTY, now, LifecyclePolicy())
        return d.action, d.reason

    assert decide(due - timedelta(seconds=5)) == (Action.NONE, Reason.SUSPENDED_IDLE)
    assert decide(due + timedelta(seconds=5)) == (Action.RESUME, Reason.PREDICTED_ARRIVAL)


def test_irregular_starts_give_no_period_window() -> None:
    model = adaptive.IdleModel(resumes=(int(R),))
    for at in (0.0, 3000.0, 7400.0, 9000.0, 14000.0):
        model = replace(adaptive.observe_arrival(model, at), last=at + 60)
    assert adaptive._period_window(model, 0.0, BOUNDS) is None


def test_one_dst_shift_keeps_a_daily_jobs_period() -> None:
    zone = ZoneInfo("Europe/Berlin")  # DST starts 2025-03-30
    starts = [datetime(2025, 3, d, 1, 30, tzinfo=zone).timestamp() for d in range(27, 32)]
    model = adaptive.IdleModel(resumes=(int(R),))
    for at in starts:
        model = replace(adaptive.observe_arrival(model, at), last=at + 120)
    assert model.periods == (86_400, 86_400, 86_400, 82_800)  # 01:30 after the 23-hour night
    window = adaptive._period_window(model, 0.0, adaptive.Bounds(0, 900))
    assert window is not None
    start, end = window
    assert start + R + adaptive.ROUND_S <= 86_400 - 120 < end


def test_the_operator_maximum_bounds_the_period_hold() -> None:
    model = hourly_job([40.0, 120.0, 60.0, 100.0, 80.0])
    assert adaptive._period_window(model, 0.0, adaptive.Bounds(0, 30)) is None


def test_began_and_periods_survive_the_stored_form() -> None:
    model = hourly_job([40.0, 120.0, 60.0, 100.0, 80.0], start=T0.timestamp())
    again = adaptive.decode(adaptive.encode(model))
    assert again is not None
    assert (again.began, again.periods) == (model.began, model.periods)
    assert adaptive.current_plan(again, BOUNDS) == adaptive.current_plan(model, BOUNDS)
