"""Visibility backoff: exponential growth, full jitter, caps, Retry-After. Pure."""

from __future__ import annotations

import random

import pytest

from spcs_gateway.backoff import (
    SQS_MAX_VISIBILITY_S,
    BackoffPolicy,
    unavailable_delay,
    visibility_delay,
)
from spcs_gateway.errors import FailureKind


class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_upper_bound_doubles_with_receive_count_until_cap() -> None:
    top = FixedRng(0.999999)
    uppers = [visibility_delay(n, base=5, cap=300, rng=top) for n in range(1, 9)]
    assert uppers == [5, 10, 20, 40, 80, 160, 300, 300]


def test_full_jitter_spans_one_to_upper() -> None:
    assert visibility_delay(4, base=5, cap=300, rng=FixedRng(0.0)) == 1  # never 0 s
    assert visibility_delay(4, base=5, cap=300, rng=FixedRng(0.5)) == 20
    rng = random.Random(3)
    samples = [visibility_delay(3, base=5, cap=300, rng=rng) for _ in range(500)]
    assert min(samples) <= 3
    assert max(samples) == 20
    assert len(set(samples)) > 10  # spread, not a constant


def test_receive_count_below_one_is_first_attempt() -> None:
    top = FixedRng(0.999999)
    assert visibility_delay(0, base=7, cap=100, rng=top) == 7
    assert visibility_delay(-3, base=7, cap=100, rng=top) == 7


def test_never_beyond_sqs_maximum() -> None:
    top = FixedRng(0.999999)
    assert visibility_delay(10_000, base=60, cap=10**9, rng=top) == SQS_MAX_VISIBILITY_S
    assert unavailable_delay(50, base=60, cap=10**9, rng=top) == SQS_MAX_VISIBILITY_S


@pytest.mark.parametrize("bad", [{"base": 0, "cap": 10}, {"base": 1, "cap": 0}])
def test_rejects_non_positive_parameters(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        visibility_delay(1, rng=FixedRng(0.5), **bad)
    with pytest.raises(ValueError, match="positive"):
        unavailable_delay(1, rng=FixedRng(0.5), **bad)


def test_unavailable_delay_is_equal_jitter() -> None:
    assert unavailable_delay(1, base=30, cap=600, rng=FixedRng(0.0)) == 15
    assert unavailable_delay(1, base=30, cap=600, rng=FixedRng(0.999999)) == 30
    assert unavailable_delay(3, base=30, cap=600, rng=FixedRng(0.0)) == 60
    assert unavailable_delay(1, base=30, cap=600, rng=FixedRng(0.0), retry_after=90) == 90


def test_policy_per_kind() -> None:
    policy = BackoffPolicy(transient_base=5, unavailable_base=30, configuration_base=60)
    low = FixedRng(0.0)
    assert policy.delay(FailureKind.TRANSIENT, 1, low) == 1
    assert policy.delay(FailureKind.UNAVAILABLE, 1, low) == 15
    top = FixedRng(0.999999)
    assert policy.delay(FailureKind.CONFIGURATION, 2, top) == 120
    # Throttling honours Retry-After over a shorter computed delay, never a longer one.
    assert policy.delay(FailureKind.THROTTLED, 1, low, retry_after=42.2) == 43
    assert policy.delay(FailureKind.THROTTLED, 6, top, retry_after=1) == 160
    assert policy.delay(FailureKind.THROTTLED, 1, low, retry_after=10**7) == SQS_MAX_VISIBILITY_S


def test_unavailable_retry_base_comes_from_the_environment() -> None:
    from spcs_gateway.backoff import RETRY_UNAVAILABLE_BASE_ENV, BackoffPolicy

    assert BackoffPolicy.from_env({}).unavailable_base == 30
    assert BackoffPolicy.from_env({RETRY_UNAVAILABLE_BASE_ENV: "3"}).unavailable_base == 3
    for bad in ("0", "abc", "601"):
        with pytest.raises(ValueError, match=RETRY_UNAVAILABLE_BASE_ENV):
            BackoffPolicy.from_env({RETRY_UNAVAILABLE_BASE_ENV: bad})
