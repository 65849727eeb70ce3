"""Service-state store against moto DynamoDB, and the activity throttle."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto_support import REGION, create_state_table, fake_credentials

from spcs_gateway.lifecycle import Observed, ServiceStatus, can_take_lease
from spcs_gateway.service_activity import ActivityRecorder, ActivityThrottle
from spcs_gateway.service_state import KEY_ATTRIBUTE, SERVICE_STATE_TABLE_ENV, ServiceStateStore

TABLE = "spcs-gateway-service-state"
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)
# Everything an item may hold: names, statuses, timestamps, counters, lease owner ids.
ALLOWED_ATTRIBUTES = {
    KEY_ATTRIBUTE,
    "status",
    "ready",
    "observed_at",
    "last_transition_at",
    "last_activity",
    "resumed_at",
    "suspended_at",
    "lease_owner",
    "lease_expires_at",
    "mappings_paused",
    "on_demand",
    "on_demand_expires_at",
    "resumes",
    "suspends",
    "counter_day",
    "resumes_today",
    "suspends_today",
}


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_state_table(client, TABLE, KEY_ATTRIBUTE)
        yield client


@pytest.fixture
def store(ddb: Any) -> ServiceStateStore:
    return ServiceStateStore(TABLE, ddb)


def raw_item(ddb: Any, name: str) -> dict[str, Any]:
    item: dict[str, Any] = ddb.get_item(TableName=TABLE, Key={KEY_ATTRIBUTE: {"S": name}})["Item"]
    return item


def test_missing_item_reads_as_empty_state(store: ServiceStateStore) -> None:
    state = store.get("ner")
    assert state.name == "ner"
    assert state.status is ServiceStatus.UNKNOWN
    assert state.last_activity is None
    assert state.lease_owner is None
    assert state.resumes == 0


def test_from_env(ddb: Any) -> None:
    assert ServiceStateStore.from_env(ddb, {SERVICE_STATE_TABLE_ENV: TABLE}).table_name == TABLE
    with pytest.raises(ValueError, match=SERVICE_STATE_TABLE_ENV):
        ServiceStateStore.from_env(ddb, {})


def test_record_activity_only_moves_forward(store: ServiceStateStore) -> None:
    assert store.record_activity("ner", T0)
    assert store.record_activity("ner", T0 + timedelta(seconds=5))
    assert not store.record_activity("ner", T0 + timedelta(seconds=1))  # late writer
    assert not store.record_activity("ner", T0 + timedelta(seconds=5))
    assert store.get("ner").last_activity == T0 + timedelta(seconds=5)


def test_record_observation_tracks_transitions(store: ServiceStateStore) -> None:
    assert store.record_observation("ner", Observed("RUNNING", ready=True), T0)  # first seen
    later = T0 + timedelta(minutes=1)
    assert not store.record_observation("ner", Observed("running", ready=True), later)
    state = store.get("ner")
    assert (state.status, state.ready) == (ServiceStatus.RUNNING, True)
    assert state.observed_at == later
    assert state.last_transition_at == T0
    at = T0 + timedelta(minutes=2)
    assert store.record_observation("ner", Observed("SUSPENDING"), at)
    state = store.get("ner")
    assert (state.status, state.ready, state.last_transition_at) == (
        ServiceStatus.SUSPENDING,
        False,
        at,
    )


def test_resume_and_suspend_counters_roll_over_by_utc_day(store: ServiceStateStore) -> None:
    store.record_resume("ner", T0)
    store.record_suspend("ner", T0 + timedelta(hours=1))
    store.record_resume("ner", T0 + timedelta(hours=2))
    state = store.get("ner")
    assert (state.resumes, state.suspends) == (2, 1)
    assert state.daily_counts(T0) == (2, 1)
    assert state.resumed_at == T0 + timedelta(hours=2)
    assert state.suspended_at == T0 + timedelta(hours=1)
    next_day = datetime(2025, 1, 16, 0, 0, 1, tzinfo=UTC)
    assert state.daily_counts(next_day) == (0, 0)  # nothing counted yet that day
    store.record_suspend("ner", next_day)
    state = store.get("ner")
    assert (state.resumes, state.suspends) == (2, 2)
    assert state.counter_day == "2025-01-16"
    assert state.daily_counts(next_day) == (0, 1)


def test_concurrent_counts_are_not_lost(store: ServiceStateStore) -> None:
    threads = [
        threading.Thread(target=store.record_resume, args=("ner", T0 + timedelta(seconds=i)))
        for i in range(10)
    ]
    with _serialized_moto():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    state = store.get("ner")
    assert (state.resumes, state.resumes_today) == (10, 10)


def test_on_demand_counter_never_negative_and_expires(store: ServiceStateStore) -> None:
    store.begin_on_demand("ner", T0, TTL)
    store.begin_on_demand("ner", T0 + timedelta(seconds=1), TTL)
    state = store.get("ner")
    assert state.active_on_demand(T0 + timedelta(seconds=2)) == 2
    assert store.end_on_demand("ner")
    assert store.end_on_demand("ner")
    assert not store.end_on_demand("ner")  # already zero: stays zero
    assert store.get("ner").on_demand_in_flight == 0
    # A caller crashes after begin: the counter stops counting after the expiry...
    store.begin_on_demand("ner", T0, TTL)
    leaked = store.get("ner")
    assert leaked.active_on_demand(T0 + TTL - timedelta(seconds=1)) == 1
    assert leaked.active_on_demand(T0 + TTL + timedelta(seconds=1)) == 0
    # ...and the next begin after it restarts the count instead of adding to the leak.
    store.begin_on_demand("ner", T0 + timedelta(hours=1), TTL)
    state = store.get("ner")
    assert state.on_demand_in_flight == 1
    assert state.on_demand_expires_at == T0 + timedelta(hours=1) + TTL


def test_end_without_begin_is_refused(store: ServiceStateStore) -> None:
    assert not store.end_on_demand("ner")


def test_mappings_paused_round_trip(store: ServiceStateStore) -> None:
    store.set_mappings_paused("ner", True)
    assert store.get("ner").mappings_paused
    store.set_mappings_paused("ner", False)
    assert not store.get("ner").mappings_paused


def test_get_all_reads_more_than_one_batch(store: ServiceStateStore) -> None:
    names = [f"svc-{i:03d}" for i in range(130)]
    for i, name in enumerate(names[:120]):
        store.record_activity(name, T0 + timedelta(seconds=i))
    states = store.get_all([*names, "svc-000"])
    assert list(states) == names
    assert states["svc-119"].last_activity == T0 + timedelta(seconds=119)
    assert states["svc-125"].last_activity is None


def test_items_hold_only_ids_statuses_times_and_counters(
    store: ServiceStateStore, ddb: Any
) -> None:
    store.record_observation("ner", Observed("RUNNING", ready=True), T0)
    store.record_activity("ner", T0)
    store.try_acquire_lease("ner", "ctl-1", T0, TTL)
    store.record_resume("ner", T0)
    store.record_suspend("ner", T0)
    store.set_mappings_paused("ner", True)
    store.begin_on_demand("ner", T0)
    assert set(raw_item(ddb, "ner")) <= ALLOWED_ATTRIBUTES


# -- lease (DynamoDB conditional write) --------------------------------------------------------


def test_lease_round_trip(store: ServiceStateStore) -> None:
    assert store.try_acquire_lease("ner", "a", T0, TTL)
    assert not store.try_acquire_lease("ner", "b", T0 + timedelta(minutes=1), TTL)
    assert store.try_acquire_lease("ner", "a", T0 + timedelta(minutes=1), TTL)  # renew
    state = store.get("ner")
    assert (state.lease_owner, state.lease_expires_at) == ("a", T0 + timedelta(minutes=6))
    assert not store.release_lease("ner", "b")
    assert store.get("ner").lease_owner == "a"
    assert store.release_lease("ner", "a")
    assert store.get("ner").lease_owner is None
    assert store.try_acquire_lease("ner", "b", T0 + timedelta(minutes=2), TTL)


def test_expired_lease_is_taken_over(store: ServiceStateStore) -> None:
    assert store.try_acquire_lease("ner", "crashed", T0, TTL)
    assert not store.try_acquire_lease("ner", "next", T0 + TTL - timedelta(seconds=1), TTL)
    assert store.try_acquire_lease("ner", "next", T0 + TTL, TTL)
    assert store.get("ner").lease_owner == "next"
    assert not store.release_lease("ner", "crashed")  # the old holder cannot drop it


def test_store_lease_mirrors_the_pure_rule(store: ServiceStateStore) -> None:
    cases = [("a", T0), ("b", T0 + timedelta(minutes=1)), ("a", T0 + timedelta(minutes=2))]
    cases += [("b", T0 + timedelta(minutes=7)), ("c", T0 + timedelta(minutes=11, seconds=59))]
    cases += [("c", T0 + timedelta(minutes=12))]
    for owner, now in cases:
        expected = can_take_lease(store.get("ner"), owner, now)
        assert store.try_acquire_lease("ner", owner, now, TTL) is expected, (owner, now)


class _serialized_moto:  # noqa: N801 - used as a context manager like a function
    """moto's in-process DynamoDB backend is not thread-safe: two threads can both pass a
    condition before either writes. Real DynamoDB applies conditional writes to one item
    atomically; serializing moto's UpdateItem restores exactly that guarantee (the condition
    expression still decides who wins)."""

    def __enter__(self) -> None:
        self._original: Callable[..., Any] = DynamoDBBackend.update_item
        lock = threading.Lock()
        original = self._original

        def update_item(backend: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(backend, *args, **kwargs)

        DynamoDBBackend.update_item = update_item  # type: ignore[method-assign,assignment]

    def __exit__(self, *exc: object) -> None:
        DynamoDBBackend.update_item = self._original  # type: ignore[method-assign]


def _race_for_lease(store: ServiceStateStore, name: str, owners: int) -> dict[str, bool]:
    barrier = threading.Barrier(owners)
    results: dict[str, bool] = {}

    def attempt(owner: str) -> None:
        barrier.wait()
        results[owner] = store.try_acquire_lease(name, owner, T0, TTL)

    threads = [threading.Thread(target=attempt, args=(f"owner-{i}",)) for i in range(owners)]
    with _serialized_moto():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results


def test_twenty_concurrent_acquirers_exactly_one_wins(store: ServiceStateStore) -> None:
    for round_ in range(3):
        name = f"svc-{round_}"
        results = _race_for_lease(store, name, 20)
        winners = [o for o, ok in results.items() if ok]
        assert len(results) == 20
        assert len(winners) == 1
        assert store.get(name).lease_owner == winners[0]


def test_store_errors_other_than_condition_failures_propagate(ddb: Any) -> None:
    missing = ServiceStateStore("no-such-table", ddb)
    with pytest.raises(ClientError):
        missing.try_acquire_lease("ner", "a", T0, TTL)


# -- activity throttle -------------------------------------------------------------------------


def test_throttle_allows_one_write_per_interval_per_name() -> None:
    throttle = ActivityThrottle(timedelta(seconds=5))
    allowed = [s for s in range(0, 13) if throttle.should_write("ner", T0 + timedelta(seconds=s))]
    assert allowed == [0, 5, 10]
    assert throttle.should_write("clip", T0 + timedelta(seconds=1))  # independent per name
    # A clock that steps back does not silence the recorder.
    assert throttle.should_write("ner", T0 - timedelta(minutes=1))


class _CountingSink:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, datetime]] = []
        self.fail = fail

    def record_activity(self, name: str, now: datetime) -> bool:
        self.calls.append((name, now))
        if self.fail:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "X")
        return True


def test_recorder_writes_at_most_once_per_interval() -> None:
    sink = _CountingSink()
    now = [T0]
    recorder = ActivityRecorder(sink, timedelta(seconds=5), clock=lambda: now[0])
    for _ in range(100):  # 100 batches over 12 s
        recorder.record("ner")
        now[0] += timedelta(seconds=0.12)
    assert [t for _, t in sink.calls] == [
        T0,
        T0 + timedelta(seconds=0.12 * 42),
        T0 + timedelta(seconds=0.12 * 84),
    ]


def test_recorder_swallows_store_failures() -> None:
    sink = _CountingSink(fail=True)
    recorder = ActivityRecorder(sink, timedelta(seconds=5))
    assert not recorder.record("ner", T0)
    assert not recorder.record("ner", T0 + timedelta(seconds=1))  # throttled, no retry storm
    assert len(sink.calls) == 1


def test_recorder_against_dynamodb(store: ServiceStateStore) -> None:
    recorder = ActivityRecorder(store, timedelta(seconds=5))
    assert recorder.record("ner", T0)
    assert not recorder.record("ner", T0 + timedelta(seconds=4))
    assert recorder.record("ner", T0 + timedelta(seconds=5))
    assert store.get("ner").last_activity == T0 + timedelta(seconds=5)


# -- resume window (a 401 while starting is not an auth failure) --------------------------------


def test_resume_window_answers_from_the_state_item_and_caches() -> None:
    from spcs_gateway.lifecycle import ServiceRecord as _State
    from spcs_gateway.lifecycle import ServiceStatus as _Status
    from spcs_gateway.registry import ServiceConfig
    from spcs_gateway.service_activity import ResumeWindow

    _td = timedelta
    now = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    states = {"svc": _State(name="svc", status=_Status.RUNNING, ready=True)}
    reads: list[str] = []

    class Store:
        def get(self, name: str) -> _State:
            reads.append(name)
            return states[name]

    clock = [now]
    window = ResumeWindow(
        Store(), grace=_td(minutes=5), cache=_td(seconds=5), clock=lambda: clock[0]
    )
    svc = ServiceConfig.model_validate(
        {
            "name": "svc",
            "service": "DB.S.SVC",
            "compute_pool": "P",
            "url": "https://x.snowflakecomputing.app",
            "task": "token-classification",
        }
    )
    assert window.starting(svc) is False  # ready, never resumed by us
    states["svc"] = _State(name="svc", status=_Status.RUNNING, ready=True, resumed_at=now)
    assert window.starting(svc) is False  # cached for 5 s
    clock[0] = now + _td(seconds=6)
    assert window.starting(svc) is True  # resumed 6 s ago
    clock[0] = now + _td(minutes=6)
    assert window.starting(svc) is False  # grace over
    states["svc"] = _State(name="svc", status=_Status.PENDING)
    clock[0] = now + _td(minutes=7)
    assert window.starting(svc) is True
    assert len(reads) == 4
