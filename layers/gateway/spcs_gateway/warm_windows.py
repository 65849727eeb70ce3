"""Warm windows: keep a service up inside ``[cron start, + duration)`` in a time zone.

Pure. cronsim follows Debian cron across DST: ticks are local wall times, a tick in the skipped
hour runs at the first valid minute after it, and a tick in the repeated hour runs once; the
window's duration is elapsed time (also across a DST change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim

from spcs_gateway.registry import WarmWindow, validate_cron
from spcs_gateway.service_record import as_utc


@dataclass(frozen=True, slots=True)
class WarmSpan:
    start: datetime  # the cron tick, in the window's time zone
    end: datetime  # start + duration, in UTC (elapsed time, also across a DST change)


@lru_cache(maxsize=4096)
def _latest_start(cron: str, zone: str, minute_epoch: int) -> datetime | None:
    """Latest cron tick at or before ``minute_epoch`` (a whole minute), in local wall time.

    5-field ticks fall on whole minutes, so the answer depends only on the minute; caching on
    it keeps decide_service cheap in a tight loop. cronsim follows Debian cron across DST:
    ticks are local wall times, a tick in the skipped hour runs at the first valid minute
    after it, and a tick in the repeated hour runs once (the first occurrence).
    """
    validate_cron(cron)
    at = datetime.fromtimestamp(minute_epoch, tz=ZoneInfo(zone))
    # A datetime with microseconds makes cronsim's reverse iteration include ``at`` itself.
    start = next(CronSim(cron, at + timedelta(microseconds=1), reverse=True))
    return start if start.astimezone(UTC) <= at.astimezone(UTC) else None


def active_warm_window(
    windows: Sequence[WarmWindow], now: datetime, lead: timedelta = timedelta(0)
) -> WarmSpan | None:
    """The open window (``start - lead <= now < end``) that ends last, or None."""
    now = as_utc(now)
    if not windows:
        return None
    horizon = int((now + lead).timestamp()) // 60 * 60
    best: WarmSpan | None = None
    for window in windows:
        start = _latest_start(window.cron, window.timezone, horizon)
        if start is None:
            continue
        end = start.astimezone(UTC) + timedelta(minutes=window.duration_minutes)
        if now < end and (best is None or end > best.end):
            best = WarmSpan(start, end)
    return best


def in_warm_window(
    windows: Sequence[WarmWindow], now: datetime, lead: timedelta = timedelta(0)
) -> bool:
    return active_warm_window(windows, now, lead) is not None
