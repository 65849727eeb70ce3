"""The scaling policy (spcs_gateway.scaling): plain values, a fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from spcs_gateway.scaling import (
    ScaleAction,
    ScaleInputs,
    ScaleReason,
    ScalingPolicy,
    decide_scale,
    instances_needed,
    learn_rate,
)

NOW = datetime(2025, 3, 3, 7, 0, tzinfo=UTC)
POLICY = ScalingPolicy(prior_rate=2.0)


def inputs(**changes: object) -> ScaleInputs:
    base = ScaleInputs(
        running=True,
        current=1,
        ready=1,
        low=1,
        high=5,
        backlog=0,
        in_flight=0,
        per_instance_in_flight=10,
        rate=2.0,
        load_s=120.0,
        drain_target_s=900.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_a_burst_scales_out_at_once_to_what_clears_it_within_the_target() -> None:
    # 1 instance clears 1800 rows in 900 s; each new one 2 * (900 - 120) = 1560 once loaded.
    d = decide_scale(inputs(backlog=6000), NOW, POLICY)
    assert d.action is ScaleAction.SCALE_OUT
    assert d.reason is ScaleReason.BACKLOG
    assert d.instances == 4 == d.need  # 1800 + 3 * 1560 = 6480 >= 6000 > 1800 + 2 * 1560


def test_scale_out_stops_at_the_range_maximum() -> None:
    d = decide_scale(inputs(backlog=20_000), NOW, POLICY)
    assert (d.action, d.instances) == (ScaleAction.SCALE_OUT, 5)
    assert d.need > 5
    held = decide_scale(inputs(backlog=20_000, current=5, ready=5), NOW, POLICY)
    assert (held.action, held.reason, held.instances) == (ScaleAction.NONE, ScaleReason.AT_MAX, 5)


def test_a_backlog_one_instance_clears_in_time_does_not_scale() -> None:
    d = decide_scale(inputs(backlog=1700), NOW, POLICY)
    assert (d.action, d.reason, d.instances) == (ScaleAction.NONE, ScaleReason.AT_NEED, 1)


def test_a_rising_backlog_counts_its_trend_over_the_target() -> None:
    flat = decide_scale(inputs(backlog=1500), NOW, POLICY)
    rising = decide_scale(inputs(backlog=1500, trend_per_s=2.0), NOW, POLICY)
    assert flat.action is ScaleAction.NONE
    # 1500 + 2 * 900 = 3300 > 1800: one more instance (1560 once loaded) clears it.
    assert rising.action is ScaleAction.SCALE_OUT
    assert rising.instances == 2


def test_the_model_load_time_makes_new_instances_worth_less() -> None:
    quick = decide_scale(inputs(backlog=6000, load_s=0.0), NOW, POLICY)
    slow = decide_scale(inputs(backlog=6000, load_s=600.0), NOW, POLICY)
    assert quick.instances < slow.instances
    # A load longer than the target still leaves a new instance a quarter of the target.
    assert instances_needed(6000, 2.0, 900, 5000, 1) == 1 + 10  # ceil(4200 / 450)


def test_scale_out_waits_out_a_short_cooldown_after_a_change() -> None:
    d = decide_scale(inputs(backlog=6000, last_change_at=ago(30)), NOW, POLICY)
    assert (d.action, d.reason) == (ScaleAction.NONE, ScaleReason.OUT_COOLDOWN)
    d = decide_scale(inputs(backlog=6000, last_change_at=ago(61)), NOW, POLICY)
    assert d.action is ScaleAction.SCALE_OUT


def test_scale_in_waits_out_the_long_cooldown_then_goes_to_what_is_left() -> None:
    idle = inputs(current=4, ready=4, backlog=0)
    assert decide_scale(replace(idle, last_change_at=ago(120)), NOW, POLICY).reason is (
        ScaleReason.IN_COOLDOWN
    )
    d = decide_scale(replace(idle, last_change_at=ago(301)), NOW, POLICY)
    assert (d.action, d.reason, d.instances) == (
        ScaleAction.SCALE_IN,
        ScaleReason.BACKLOG_FALLING,
        1,
    )
    # 3000 left: 3 instances clear 3000 x 1.5 within the target (1800 rows each), 2 do not.
    part = decide_scale(replace(idle, backlog=3000, last_change_at=ago(301)), NOW, POLICY)
    assert (part.action, part.instances) == (ScaleAction.SCALE_IN, 3)


def test_scale_in_keeps_headroom_so_it_does_not_flap() -> None:
    # 3 instances; 2 would clear 3400 rows (3600 capacity) but not 3400 * 1.5: hold.
    d = decide_scale(inputs(current=3, ready=3, backlog=3400, last_change_at=ago(600)), NOW)
    assert (d.action, d.reason, d.instances) == (ScaleAction.NONE, ScaleReason.HYSTERESIS, 3)
    d = decide_scale(inputs(current=3, ready=3, backlog=2000, last_change_at=ago(600)), NOW)
    assert (d.action, d.instances) == (ScaleAction.SCALE_IN, 2)  # 3000 <= 3600


def test_never_scales_below_what_in_flight_work_needs() -> None:
    busy = inputs(current=3, ready=3, backlog=25, in_flight=25, last_change_at=ago(600))
    d = decide_scale(busy, NOW, POLICY)
    assert (d.action, d.reason) == (ScaleAction.NONE, ScaleReason.IN_FLIGHT)
    d = decide_scale(replace(busy, in_flight=20, backlog=20), NOW, POLICY)
    assert (d.action, d.instances) == (ScaleAction.SCALE_IN, 2)


def test_does_not_scale_in_while_instances_still_load() -> None:
    d = decide_scale(inputs(current=3, ready=1, backlog=0, last_change_at=ago(600)), NOW)
    assert (d.action, d.reason) == (ScaleAction.NONE, ScaleReason.LOADING)


def test_never_below_the_range_minimum() -> None:
    d = decide_scale(inputs(current=2, ready=2, low=2, backlog=0, last_change_at=ago(9999)), NOW)
    assert (d.action, d.reason, d.instances) == (ScaleAction.NONE, ScaleReason.AT_NEED, 2)


@pytest.mark.parametrize(("current", "expected"), [(7, 5), (1, 2)])
def test_a_count_outside_the_range_is_brought_back(current: int, expected: int) -> None:
    d = decide_scale(inputs(current=current, ready=current, low=2, high=5), NOW, POLICY)
    assert (d.reason, d.instances) == (ScaleReason.OUT_OF_RANGE, expected)


def test_scale_in_before_suspend_skips_the_cooldown_and_goes_to_the_minimum() -> None:
    d = decide_scale(
        inputs(current=4, ready=4, low=1, suspending=True, last_change_at=ago(10)), NOW, POLICY
    )
    assert (d.action, d.reason, d.instances) == (
        ScaleAction.SCALE_IN,
        ScaleReason.BEFORE_SUSPEND,
        1,
    )
    at_min = decide_scale(inputs(suspending=True), NOW, POLICY)
    assert at_min.action is ScaleAction.NONE


@pytest.mark.parametrize("backlog", [0, 50_000])
def test_a_service_that_is_not_running_keeps_its_count(backlog: int) -> None:
    d = decide_scale(inputs(running=False, current=3, ready=0, backlog=backlog), NOW, POLICY)
    assert (d.action, d.reason, d.instances) == (ScaleAction.NONE, ScaleReason.NOT_RUNNING, 3)


def test_the_prior_rate_applies_until_one_is_learned() -> None:
    slow = ScalingPolicy(prior_rate=0.5)
    assert decide_scale(inputs(rate=None, backlog=1000), NOW, slow).instances > 1
    assert decide_scale(inputs(rate=None, backlog=1000), NOW, POLICY).instances == 1


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        decide_scale(inputs(), datetime(2025, 1, 1), POLICY)


def test_rate_is_learned_only_from_busy_falling_intervals() -> None:
    assert learn_rate(None, 1000, 880, 60.0, 1) == pytest.approx(2.0)
    assert learn_rate(None, 1000, 880, 60.0, 2) == pytest.approx(1.0)
    assert learn_rate(1.5, 1000, 1100, 60.0, 1) == 1.5  # rising: arrivals outran it
    assert learn_rate(1.5, 1000, 10, 60.0, 1) == 1.5  # emptied: not busy throughout
    assert learn_rate(1.5, 1000, 880, 60.0, 0) == 1.5  # nothing ready
    up = learn_rate(1.0, 1000, 700, 60.0, 1)  # sample 5.0
    down = learn_rate(5.0, 1000, 940, 60.0, 1)  # sample 1.0
    assert up == pytest.approx(1.0 + 0.3 * 4.0)
    assert down == pytest.approx(5.0 - 0.1 * 4.0)
