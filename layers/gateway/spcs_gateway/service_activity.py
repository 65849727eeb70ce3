"""What routers and the API write to and read from a service's record on the inference path:
activity (throttled, so a busy stream costs one write per 5 s per container) and whether the
service is starting (the SPCS client's 401-while-starting rule).

Both sit on the inference path, so both fail soft: a failed activity write or state read never
fails a call (activity is a hint for the idle timer; the next write repairs it).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.clock import Clock, utc_now
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import ServiceStatus

DEFAULT_ACTIVITY_INTERVAL = timedelta(seconds=5)


class ActivityThrottle:
    """Pure throttle: allow one write per service name per ``interval`` (thread-safe)."""

    def __init__(self, interval: timedelta = DEFAULT_ACTIVITY_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def should_write(self, name: str, now: datetime) -> bool:
        """True (and remembers ``now``) when the last allowed write is ``interval`` old or
        more, or lies in the future (the clock stepped back)."""
        with self._lock:
            last = self._last.get(name)
            if last is not None and last <= now < last + self._interval:
                return False
            self._last[name] = now
            return True


class ActivitySink(Protocol):
    def record_activity(self, name: str, now: datetime) -> bool: ...


class ActivityRecorder:
    """What routers and the API call per batch/request: one store write per service per
    ``interval`` per container. A failed write is swallowed (returns False): activity is a
    hint for the idle timer and must never fail the inference path; the next write after the
    interval repairs it."""

    def __init__(
        self,
        store: ActivitySink,
        interval: timedelta = DEFAULT_ACTIVITY_INTERVAL,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._throttle = ActivityThrottle(interval)
        self._clock = clock

    def record(self, name: str, now: datetime | None = None) -> bool:
        """True when a write was made now."""
        at = self._clock() if now is None else now
        if not self._throttle.should_write(name, at):
            return False
        try:
            return self._store.record_activity(name, at)
        except (ClientError, BotoCoreError):
            return False


class StateReader(Protocol):
    def get(self, name: str) -> ServiceRecord: ...


class ResumeWindow:
    """Whether a service is starting, from its service-state item: the control plane resumed it
    less than ``grace`` ago, or last saw it PENDING or RUNNING without every instance ready.

    The SPCS client asks only when a 401 survives a token refresh (rare), and the answer is
    cached per service for ``cache`` so a burst of refused requests costs one read.
    """

    def __init__(
        self,
        store: StateReader,
        grace: timedelta = timedelta(minutes=5),
        cache: timedelta = timedelta(seconds=5),
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._grace = grace
        self._cache = cache
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[datetime, bool]] = {}

    def starting(self, service: ServiceConfig) -> bool:
        now = self._clock()
        with self._lock:
            cached = self._answers.get(service.name)
        if cached is not None and now - cached[0] < self._cache:
            return cached[1]
        try:
            state = self._store.get(service.name)
        except (ClientError, BotoCoreError):
            return False
        answer = (state.resumed_at is not None and now - state.resumed_at < self._grace) or (
            state.status is ServiceStatus.PENDING
            or (state.status is ServiceStatus.RUNNING and not state.ready)
        )
        with self._lock:
            self._answers[service.name] = (now, answer)
        return answer
