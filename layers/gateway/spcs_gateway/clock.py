"""Time, written once: the UTC clock every module defaults to, and the types it is injected as.

Code that decides on time takes a ``Clock`` (and, when it waits, a ``Sleep``) so tests, the
idle-cost simulator and the CLI's dry run can run it on a clock of their own
(``control.memory.ManualClock``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]  # timezone-aware "now"
Sleep = Callable[[float], None]  # wait this many seconds


def utc_now() -> datetime:
    return datetime.now(UTC)


def elapsed_ms(start: float) -> int:
    """Whole milliseconds since ``start``, a ``time.perf_counter()`` reading."""
    return round((time.perf_counter() - start) * 1000)
