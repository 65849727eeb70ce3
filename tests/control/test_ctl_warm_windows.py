"""Warm windows: cron in local wall time, DST, lead time, and their effect on decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spcs_gateway.lifecycle import (
    Action,
    Backlog,
    Decision,
    LifecyclePolicy,
    Observed,
    Reason,
    ServiceRecord,
    WarmSpan,
    active_warm_window,
    decide_service,
    in_warm_window,
    validate_cron,
)
from spcs_gateway.queues import QueueDepth
from spcs_gateway.registry import ServiceConfig, WarmWindow

CHICAGO = "America/Chicago"
DAILY = WarmWindow(cron="45 6 * * *", duration_minutes=60, timezone=CHICAGO)
WEEKDAYS = WarmWindow(cron="45 6 * * 1-5", duration_minutes=600, timezone=CHICAGO)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "opens_utc"),
    [
        # 2025 spring forward: Sunday 9 March, 02:00 CST -> 03:00 CDT.
        ((2025, 3, 8), (12, 45)),  # Saturday, CST (UTC-6)
        ((2025, 3, 9), (11, 45)),  # the change day itself, CDT (UTC-5)
        ((2025, 3, 10), (11, 45)),
        # 2025 fall back: Sunday 2 November, 02:00 CDT -> 01:00 CST.
        ((2025, 11, 1), (11, 45)),  # Saturday, CDT
        ((2025, 11, 2), (12, 45)),  # the change day itself, CST
        ((2025, 11, 3), (12, 45)),
    ],
)
def test_window_follows_local_wall_time_across_dst(
    day: tuple[int, int, int], opens_utc: tuple[int, int]
) -> None:
    opens = utc(*day, *opens_utc)
    assert not in_warm_window([DAILY], opens - timedelta(seconds=1))
    assert in_warm_window([DAILY], opens)
    assert in_warm_window([DAILY], opens + timedelta(minutes=59, seconds=59))
    assert not in_warm_window([DAILY], opens + timedelta(minutes=60))
    span = active_warm_window([DAILY], opens)
    assert span is not None
    assert (span.start.hour, span.start.minute) == (6, 45)  # local wall time
    assert span.start == opens


def test_now_in_any_time_zone_is_the_same_instant() -> None:
    local = utc(2025, 11, 2, 12, 45).astimezone(ZoneInfo(CHICAGO))  # 06:45 CST
    assert in_warm_window([DAILY], local)
    assert not in_warm_window([DAILY], local - timedelta(seconds=1))
    assert not in_warm_window([DAILY], local + timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        in_warm_window([DAILY], datetime(2025, 11, 2, 12, 45))


def test_weekday_window_in_winter_and_summer() -> None:
    # 06:45 America/Chicago is 12:45 UTC in winter and 11:45 UTC in summer.
    assert in_warm_window([WEEKDAYS], utc(2025, 1, 15, 12, 45))
    assert not in_warm_window([WEEKDAYS], utc(2025, 1, 15, 11, 45))
    assert in_warm_window([WEEKDAYS], utc(2025, 7, 16, 11, 45))
    assert not in_warm_window([WEEKDAYS], utc(2025, 7, 16, 11, 44))
    # Saturday: no window at all.
    assert not in_warm_window([WEEKDAYS], utc(2025, 1, 18, 15, 0))


def test_lead_time_opens_the_window_early() -> None:
    lead = timedelta(minutes=15)
    opens = utc(2025, 3, 10, 11, 45)  # CDT
    assert in_warm_window([DAILY], opens - lead, lead)
    assert not in_warm_window([DAILY], opens - lead - timedelta(seconds=1), lead)
    assert not in_warm_window([DAILY], opens - lead)  # no lead asked
    # The lead does not extend the end.
    assert not in_warm_window([DAILY], opens + timedelta(minutes=60), lead)
    # Lead across the spring-forward change: winter yesterday, summer today.
    assert in_warm_window([DAILY], utc(2025, 3, 9, 11, 30), lead)
    assert not in_warm_window([DAILY], utc(2025, 3, 9, 11, 29), lead)


def test_duration_is_elapsed_time_across_the_fall_back_hour() -> None:
    # Starts 00:30 CDT (05:30 UTC) on 2 Nov 2025; 3 hours later it is 02:30 CST (08:30 UTC).
    night = WarmWindow(cron="30 0 * * *", duration_minutes=180, timezone=CHICAGO)
    assert in_warm_window([night], utc(2025, 11, 2, 8, 29))
    assert not in_warm_window([night], utc(2025, 11, 2, 8, 30))


def test_start_in_the_skipped_hour_runs_at_the_first_valid_minute() -> None:
    # 02:30 does not exist on 9 Mar 2025 in Chicago; like Debian cron, the window opens at
    # 03:00 CDT (08:00 UTC).
    odd = WarmWindow(cron="30 2 * * *", duration_minutes=30, timezone=CHICAGO)
    assert not in_warm_window([odd], utc(2025, 3, 9, 7, 59))
    assert in_warm_window([odd], utc(2025, 3, 9, 8, 0))
    assert not in_warm_window([odd], utc(2025, 3, 9, 8, 30))


def test_window_across_midnight_and_the_longest_open_window_wins() -> None:
    late = WarmWindow(cron="0 22 * * *", duration_minutes=240)
    assert in_warm_window([late], utc(2025, 1, 16, 1, 59))
    assert not in_warm_window([late], utc(2025, 1, 16, 2, 0))
    short = WarmWindow(cron="0 1 * * *", duration_minutes=30)
    span = active_warm_window([short, late], utc(2025, 1, 16, 1, 10))
    assert span == WarmSpan(utc(2025, 1, 15, 22, 0), utc(2025, 1, 16, 2, 0))
    assert active_warm_window([], utc(2025, 1, 16, 1, 10)) is None


def test_validate_cron() -> None:
    validate_cron("45 6 * * 1-5")
    for bad in ("45 6 * *", "0 45 6 * * 1-5", "61 6 * * *", "0 0 30 2 *", "nonsense x y z w"):
        with pytest.raises(ValueError, match="cron"):
            validate_cron(bad)
    with pytest.raises(ValueError, match="cron"):
        in_warm_window([WarmWindow(cron="99 99 * * *", duration_minutes=5)], utc(2025, 1, 1))


def _config(window: WarmWindow) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "name": "ner",
            "service": "ML.SERVING.NER",
            "compute_pool": "GPU_POOL",
            "url": "https://ner.example.snowflakecomputing.app",
            "task": "token-classification",
            "queues": ["notes"],
            "warm_windows": [window.model_dump()],
        }
    )


def test_suspended_service_is_pre_resumed_before_clinic_hours_in_both_seasons() -> None:
    config = _config(WEEKDAYS)
    policy = LifecyclePolicy(warm_lead=timedelta(minutes=15))
    empty = Backlog({"notes": QueueDepth(0, 0, 0)})
    state = ServiceRecord(name="ner")
    suspended = Observed("SUSPENDED")
    for opens in (utc(2025, 3, 7, 12, 45), utc(2025, 3, 10, 11, 45)):  # Fri CST, Mon CDT
        early = opens - timedelta(minutes=16)
        lead = opens - timedelta(minutes=15)
        assert decide_service(config, state, suspended, empty, early, policy) == Decision(
            Action.NONE, Reason.SUSPENDED_IDLE
        )
        assert decide_service(config, state, suspended, empty, lead, policy) == Decision(
            Action.RESUME, Reason.WARM_WINDOW
        )
