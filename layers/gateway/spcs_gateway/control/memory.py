"""In-memory adapters for every port of the control plane, and a clock you can move.

One set of stand-ins, used by the tests, the idle-cost simulator (``bench/idle_cost.py``, which
drives the real ``ControlPlane`` on a simulated clock) and ``spcs-gateway --dry-run``:

- ``ManualClock``: ``now`` / ``sleep`` (advances it) / ``advance`` / ``set``;
- ``MemoryStateStore``: the service-state table with DynamoDB's conditional-write semantics
  (``service_state.ServiceStateStore``), atomic per call;
- ``MemorySpcsServices`` (``memory_spcs.py``): SPCS services and compute pools with the
  emulator's lifecycle, on the given clock;
- ``MemoryQueues``: queue depths by logical name; an unknown queue raises ``KeyError`` (as
  ``queues.QueueMonitor`` does for a queue it has no URL for);
- ``MemoryMappings``: the event source mappings of each queue, enabled or paused.

tests/control/test_ctl_ports_contract.py runs the same scenarios against these and the
production adapters (moto, the emulator), so a test passing here means the same there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from spcs_gateway import adaptive
from spcs_gateway.control.memory_spcs import MemorySpcsServices
from spcs_gateway.queues import MappingState, QueueDepth, clamp_concurrency
from spcs_gateway.service_record import ServiceRecord, can_take_lease, counter_day
from spcs_gateway.service_state import DEFAULT_ON_DEMAND_TTL
from spcs_gateway.status import Observation, ServiceStatus

__all__ = [
    "ManualClock",
    "MemoryMappings",
    "MemoryQueues",
    "MemorySpcsServices",
    "MemoryStateStore",
]


class ManualClock:
    """A clock that moves only when told (``sleep`` moves it too). Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = at


class MemoryStateStore:
    """The service-state table in memory: every method is one atomic step with the same
    condition as the DynamoDB update it stands for."""

    def __init__(self, records: Iterable[ServiceRecord] = ()) -> None:
        self._records: dict[str, ServiceRecord] = {}
        self._observed: set[str] = set()  # names whose status attribute exists
        self._lock = threading.Lock()
        for record in records:
            self.put(record)

    def put(self, record: ServiceRecord) -> None:
        """Store ``record`` as is (seeding: the simulator's start, the dry run's snapshot)."""
        with self._lock:
            self._records[record.name] = record
            if record.status is not ServiceStatus.UNKNOWN:
                self._observed.add(record.name)

    def records(self) -> dict[str, ServiceRecord]:
        """Every record written so far (DynamoDB: every item)."""
        with self._lock:
            return dict(self._records)

    # -- reads ----------------------------------------------------------------------------

    def get(self, name: str) -> ServiceRecord:
        with self._lock:
            return self._records.get(name) or ServiceRecord(name=name)

    def get_all(self, names: Iterable[str]) -> dict[str, ServiceRecord]:
        with self._lock:
            return {n: self._records.get(n) or ServiceRecord(name=n) for n in dict.fromkeys(names)}

    # -- writes ---------------------------------------------------------------------------

    def _write(self, name: str, **changes: object) -> None:
        record = self._records.get(name) or ServiceRecord(name=name)
        self._records[name] = replace(record, **changes)  # type: ignore[arg-type]

    def record_activity(self, name: str, now: datetime) -> bool:
        with self._lock:
            last = self._records.get(name, ServiceRecord(name)).last_activity
            if last is not None and last >= now:
                return False
            self._write(name, last_activity=now)
            return True

    def try_acquire_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        with self._lock:
            if not can_take_lease(self._records.get(name, ServiceRecord(name)), owner, now):
                return False
            self._write(name, lease_owner=owner, lease_expires_at=now + ttl)
            return True

    def release_lease(self, name: str, owner: str) -> bool:
        with self._lock:
            if self._records.get(name, ServiceRecord(name)).lease_owner != owner:
                return False
            self._write(name, lease_owner=None, lease_expires_at=None)
            return True

    def record_observation(self, name: str, observation: Observation, now: datetime) -> bool:
        status = ServiceStatus.parse(observation.status)
        with self._lock:
            record = self._records.get(name, ServiceRecord(name))
            if name in self._observed and record.status is status:
                self._write(name, observed_at=now, ready=observation.ready)
                return False
            self._observed.add(name)
            self._write(
                name,
                status=status,
                ready=observation.ready,
                observed_at=now,
                last_transition_at=now,
            )
            return True

    def record_resume(self, name: str, now: datetime) -> None:
        self._count(name, now, resumed=True)

    def record_suspend(self, name: str, now: datetime) -> None:
        self._count(name, now, resumed=False)

    def _count(self, name: str, now: datetime, *, resumed: bool) -> None:
        day = counter_day(now)
        with self._lock:
            r = self._records.get(name, ServiceRecord(name))
            same_day = r.counter_day is not None and r.counter_day >= day
            resumes_today = r.resumes_today if same_day else 0
            suspends_today = r.suspends_today if same_day else 0
            if resumed:
                self._write(
                    name,
                    resumed_at=now,
                    resumes=r.resumes + 1,
                    resumes_today=resumes_today + 1,
                    suspends_today=suspends_today,
                    counter_day=r.counter_day if same_day else day,
                )
            else:
                self._write(
                    name,
                    suspended_at=now,
                    suspends=r.suspends + 1,
                    suspends_today=suspends_today + 1,
                    resumes_today=resumes_today,
                    counter_day=r.counter_day if same_day else day,
                )

    def set_mappings_paused(self, name: str, paused: bool) -> None:
        with self._lock:
            self._write(name, mappings_paused=paused)

    def begin_on_demand(
        self, name: str, now: datetime, ttl: timedelta = DEFAULT_ON_DEMAND_TTL
    ) -> None:
        with self._lock:
            r = self._records.get(name, ServiceRecord(name))
            live = r.on_demand_expires_at is not None and r.on_demand_expires_at > now
            count = r.on_demand_in_flight + 1 if live else 1
            self._write(name, on_demand_in_flight=count, on_demand_expires_at=now + ttl)

    def save_idle_model(
        self, name: str, model: adaptive.IdleModel, previous: adaptive.IdleModel | None
    ) -> bool:
        with self._lock:
            current = self._records.get(name, ServiceRecord(name)).idle_model
            stored = None if current is None else adaptive.encode(current)
            if stored != (None if previous is None else adaptive.encode(previous)):
                return False
            # Stored as DynamoDB would return it (the encoded form, read back).
            self._write(name, idle_model=adaptive.decode(adaptive.encode(model)))
            return True

    def end_on_demand(self, name: str) -> bool:
        with self._lock:
            r = self._records.get(name, ServiceRecord(name))
            if r.on_demand_in_flight <= 0:
                return False
            self._write(name, on_demand_in_flight=r.on_demand_in_flight - 1)
            return True

    def record_scale(self, name: str, instances: int, reason: str, now: datetime) -> None:
        with self._lock:
            self._write(name, instances=instances, scaled_at=now, scale_reason=reason)

    def set_manual_range(self, name: str, low: int | None, high: int | None) -> None:
        with self._lock:
            if low is None or high is None:
                low = high = None
            self._write(name, manual_min=low, manual_max=high)

    def record_backlog(self, name: str, backlog: int, rate: float | None, now: datetime) -> None:
        with self._lock:
            changes: dict[str, object] = {"backlog": backlog, "backlog_at": now}
            if rate is not None:
                changes["rate"] = round(rate, 6)  # as DynamoDB stores it
            self._write(name, **changes)


class MemoryQueues:
    """Queue depths by logical queue name."""

    def __init__(self, queues: Iterable[str] | Mapping[str, QueueDepth] = ()) -> None:
        self._depths: dict[str, QueueDepth] = (
            dict(queues) if isinstance(queues, Mapping) else dict.fromkeys(queues, _EMPTY)
        )
        self._lock = threading.Lock()

    @property
    def queue_names(self) -> list[str]:
        with self._lock:
            return sorted(self._depths)

    def depth(self, queue: str) -> QueueDepth:
        with self._lock:
            return self._depths[queue]

    def set(self, queue: str, visible: int = 0, in_flight: int = 0, delayed: int = 0) -> None:
        with self._lock:
            self._depths[queue] = QueueDepth(visible, in_flight, delayed)

    def send(self, queue: str, count: int = 1) -> None:
        with self._lock:
            d = self._depths[queue]
            self._depths[queue] = QueueDepth(d.visible + count, d.in_flight, d.delayed)

    def drain(self, queue: str) -> None:
        self.set(queue)

    def forget(self, queue: str) -> None:
        """The queue's address is unknown from now on (its backlog cannot be read)."""
        with self._lock:
            self._depths.pop(queue, None)


_EMPTY = QueueDepth(0, 0, 0)


class MemoryMappings:
    """One event source mapping per known queue; ``calls`` lists every pause/resume asked,
    ``concurrency`` each queue's ``ScalingConfig.MaximumConcurrency`` (None: unset)."""

    def __init__(
        self, queues: Iterable[str] | Mapping[str, bool] = (), *, enabled: bool = True
    ) -> None:
        self._enabled: dict[str, bool] = (
            dict(queues) if isinstance(queues, Mapping) else dict.fromkeys(queues, enabled)
        )
        self.calls: list[tuple[str, tuple[str, ...]]] = []  # every pause / resume asked
        self.changes: list[tuple[str, tuple[str, ...]]] = []  # those that switched a mapping
        self.concurrency: dict[str, int | None] = dict.fromkeys(self._enabled)
        self._lock = threading.Lock()

    def enabled(self, queue: str) -> bool:
        with self._lock:
            return self._enabled[queue]

    def states(self, queues: Iterable[str]) -> list[MappingState]:
        with self._lock:
            return [
                MappingState(f"memory-{q}", q, self._enabled[q], self._state(q))
                for q in queues
                if q in self._enabled
            ]

    def _state(self, queue: str) -> str:
        return "Enabled" if self._enabled[queue] else "Disabled"

    def set_enabled(self, queues: Iterable[str], enabled: bool) -> int:
        names = tuple(queues)
        with self._lock:
            self.calls.append(("resume" if enabled else "pause", names))
            switched = tuple(q for q in names if q in self._enabled and self._enabled[q] != enabled)
            for queue in switched:
                self._enabled[queue] = enabled
            if switched:
                self.changes.append(("resume" if enabled else "pause", switched))
        return len(switched)

    def pause(self, queues: Iterable[str]) -> int:
        return self.set_enabled(queues, False)

    def resume(self, queues: Iterable[str]) -> int:
        return self.set_enabled(queues, True)

    def set_concurrency(self, queues: Iterable[str], maximum: int) -> int:
        value = clamp_concurrency(maximum)
        with self._lock:
            changed = [q for q in queues if q in self._enabled and self.concurrency[q] != value]
            for queue in changed:
                self.concurrency[queue] = value
        return len(changed)
