"""Batch planning by row count and by bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spcs_gateway.batching import BatchPlan, plan_batches


def test_by_rows() -> None:
    plan = plan_batches([10] * 10, max_rows=4, max_bytes=10_000, overhead=11)
    assert plan == BatchPlan(batches=[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], oversize=[])


def test_by_bytes_including_overhead() -> None:
    # overhead 10 + 3 rows of 30 = 100 fits exactly; a fourth does not.
    plan = plan_batches([30, 30, 30, 30, 30], max_rows=100, max_bytes=100, overhead=10)
    assert plan.batches == [[0, 1, 2], [3, 4]]
    assert plan.oversize == []


def test_oversize_rows_are_set_apart_and_order_kept() -> None:
    plan = plan_batches([40, 95, 40, 91, 40], max_rows=2, max_bytes=100, overhead=10)
    assert plan.oversize == [1, 3]
    assert plan.batches == [[0, 2], [4]]


def test_row_that_exactly_fits_alone() -> None:
    plan = plan_batches([5, 90, 5], max_rows=10, max_bytes=100, overhead=10)
    assert plan.batches == [[0], [1], [2]]


def test_empty() -> None:
    assert plan_batches([], max_rows=3, max_bytes=100, overhead=10) == BatchPlan()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_rows": 0, "max_bytes": 100, "overhead": 10},
        {"max_rows": 1, "max_bytes": 10, "overhead": 10},
        {"max_rows": 1, "max_bytes": 100, "overhead": -1},
    ],
)
def test_invalid_limits(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        plan_batches([1], **kwargs)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 120), max_size=40),
    max_rows=st.integers(1, 6),
    max_bytes=st.integers(20, 300),
)
def test_plan_invariants(sizes: list[int], max_rows: int, max_bytes: int) -> None:
    overhead = 11
    plan = plan_batches(sizes, max_rows=max_rows, max_bytes=max_bytes, overhead=overhead)
    flat = [i for batch in plan.batches for i in batch]
    assert flat == sorted(flat)
    assert sorted(flat + plan.oversize) == list(range(len(sizes)))
    for batch in plan.batches:
        assert 1 <= len(batch) <= max_rows
        assert overhead + sum(sizes[i] for i in batch) <= max_bytes
    assert all(overhead + sizes[i] > max_bytes for i in plan.oversize)
    # Greedy: a batch closes only because the next row would not fit.
    for current, following in zip(plan.batches, plan.batches[1:], strict=False):
        nxt = sizes[following[0]]
        full = len(current) == max_rows
        assert full or overhead + sum(sizes[i] for i in current) + nxt > max_bytes
