"""``ondemand``: wait budget, backoff, Retry-After, and the call bracket with plain fakes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from api_support import FakeClock, FakeControl, FakeState
from botocore.exceptions import ClientError

from spcs_gateway.api.ondemand import (
    OnDemandInference,
    ServiceNotReadyError,
    backoff_delay,
    retry_after_seconds,
    wait_budget,
)
from spcs_gateway.errors import ErrorCode, PoisonError, ServiceUnavailableError
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import ServiceConfig, Task
from spcs_gateway.spcs_client import InferenceInput, RowResult

SERVICE = ServiceConfig(
    name="biobert_ner",
    service="DB.S.NER",
    compute_pool="POOL",
    url="https://ner.example.snowflakecomputing.app",
    task=Task.TOKEN_CLASSIFICATION,
)
NOW = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)


def unavailable(key: str) -> RowResult:
    return RowResult(
        key, None, ServiceUnavailableError(ErrorCode.SERVICE_UNAVAILABLE, "HTTP 503"), 1
    )


class ScriptedSpcs:
    """Answers rows unavailable for the first ``down`` calls; row "bad" is always rejected."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.calls: list[list[str]] = []

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        keys = [i.key for i in inputs]
        self.calls.append(keys)
        if len(self.calls) <= self.down:
            return [unavailable(k) for k in keys]
        return [
            RowResult(k, None, PoisonError(ErrorCode.MODEL_REJECTED_INPUT, "HTTP 400"), 1)
            if k == "bad"
            else RowResult(k, [k], None, 1)
            for k in keys
        ]


def runner(
    spcs: ScriptedSpcs, state: FakeState, control: FakeControl, clock: FakeClock
) -> OnDemandInference:
    return OnDemandInference(
        spcs, control, state, sleep=clock.sleep, monotonic=clock.monotonic, now=lambda: NOW
    )


INPUTS = [InferenceInput("a", ("x",)), InferenceInput("bad", ("y",)), InferenceInput("c", ("z",))]


@pytest.mark.parametrize(
    ("requested", "remaining", "expected"),
    [
        (None, None, 0.0),
        (0, 30.0, 0.0),
        (10, None, 10.0),
        (10, 30.0, 10.0),
        (60, None, 25.0),  # capped below API Gateway's 29 s
        (25, 20.0, 17.0),  # Lambda time left minus the reserve
        (25, 2.0, 0.0),
        (-5, 30.0, 0.0),
    ],
)
def test_api_wait_budget(requested: float | None, remaining: float | None, expected: float) -> None:
    assert wait_budget(requested, remaining) == pytest.approx(expected)


def test_api_backoff_and_retry_after() -> None:
    assert [backoff_delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert backoff_delay(10_000) == 2.0
    assert retry_after_seconds(ServiceStatus.SUSPENDED) == 60
    assert retry_after_seconds(ServiceStatus.PENDING) == 15
    assert retry_after_seconds(ServiceStatus.UNKNOWN) == 30


def test_api_ondemand_retries_only_unavailable_rows_and_keeps_order() -> None:
    spcs, state, control, clock = ScriptedSpcs(down=1), FakeState(), FakeControl(), FakeClock()
    results = runner(spcs, state, control, clock).infer(SERVICE, INPUTS, budget=5)

    assert [r.key for r in results] == ["a", "bad", "c"]
    assert [r.output for r in results] == [["a"], None, ["c"]]
    assert results[1].error is not None
    assert results[1].error.code is ErrorCode.MODEL_REJECTED_INPUT
    assert spcs.calls == [["a", "bad", "c"], ["a", "bad", "c"]]
    assert control.ensure_calls == ["biobert_ner"]
    assert clock.sleeps == [0.5]
    assert state.begins == state.ends == ["biobert_ner"]


def test_api_ondemand_no_wait_when_ready() -> None:
    spcs, state, control, clock = ScriptedSpcs(down=0), FakeState(), FakeControl(), FakeClock()
    runner(spcs, state, control, clock).infer(SERVICE, INPUTS[:1], budget=5)
    assert control.ensure_calls == []
    assert clock.sleeps == []


def test_api_ondemand_gives_up_at_the_budget() -> None:
    spcs, state, control, clock = ScriptedSpcs(down=99), FakeState(), FakeControl(), FakeClock()
    with pytest.raises(ServiceNotReadyError) as caught:
        runner(spcs, state, control, clock).infer(SERVICE, INPUTS, budget=4.2)

    assert caught.value.waited_seconds == pytest.approx(4.2)
    assert clock.sleeps == [0.5, 1.0, 2.0, pytest.approx(0.7)]
    assert len(spcs.calls) == 5  # the first call and one after each sleep
    assert state.ends == ["biobert_ner"]  # released on the error path too


def test_api_ondemand_state_store_failures_never_fail_the_call() -> None:
    class BrokenState(FakeState):
        def begin_on_demand(self, *args: object, **kwargs: object) -> None:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem"
            )

        def record_activity(self, name: str, now: datetime) -> bool:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "UpdateItem")

    spcs, state, control, clock = ScriptedSpcs(down=0), BrokenState(), FakeControl(), FakeClock()
    results = runner(spcs, state, control, clock).infer(SERVICE, INPUTS[:1], budget=0)

    assert results[0].ok
    assert state.ends == []  # nothing to end: the begin was not recorded
