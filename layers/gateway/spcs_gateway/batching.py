"""Split rows into requests by row count and by bytes. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BatchPlan:
    batches: list[list[int]] = field(default_factory=list)  # row indices per request, in order
    oversize: list[int] = field(default_factory=list)  # rows too large for any request


def plan_batches(
    row_sizes: Sequence[int], *, max_rows: int, max_bytes: int, overhead: int
) -> BatchPlan:
    """Group row indices in order so each group has at most ``max_rows`` rows and
    ``overhead + sum(sizes) <= max_bytes``. A row that cannot fit even alone is left out of
    every batch and listed in ``oversize`` (the caller fails it as REQUEST_TOO_LARGE)."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    if overhead < 0 or max_bytes <= overhead:
        raise ValueError("max_bytes must exceed the envelope overhead")
    plan = BatchPlan()
    current: list[int] = []
    used = overhead
    for index, size in enumerate(row_sizes):
        if size < 0:
            raise ValueError("row sizes must not be negative")
        if overhead + size > max_bytes:
            plan.oversize.append(index)
            continue
        if current and (len(current) >= max_rows or used + size > max_bytes):
            plan.batches.append(current)
            current, used = [], overhead
        current.append(index)
        used += size
    if current:
        plan.batches.append(current)
    return plan
