"""Visibility delays for records handed back to SQS. Pure: no I/O.

SQS redelivers a failed record once its visibility timeout lapses; the router sets that
timeout per record with ChangeMessageVisibility, growing with ``ApproximateReceiveCount``.
Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter") spreads the retries of
one failed batch so they do not return together.

Jitter only spreads retries if every execution environment draws differently. A
``random.Random`` seeded at init is copied into every environment restored from a SnapStart
snapshot, which would then all draw the same delays; ``jitter_rng()`` reads the OS entropy
pool on each draw, so it holds no state a snapshot could copy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from spcs_gateway.errors import FailureKind
from spcs_gateway.settings import env_int

# SQS refuses a visibility timeout above 12 hours.
SQS_MAX_VISIBILITY_S = 43_200

# First retry delay against a suspended/starting service: tune to the expected resume time
# (minutes on SPCS with model load; seconds in the local emulator).
RETRY_UNAVAILABLE_BASE_ENV = "RETRY_UNAVAILABLE_BASE_SECONDS"


class Rng(Protocol):
    def random(self) -> float: ...


def jitter_rng() -> Rng:
    """The generator for retry jitter: no in-process state, so nothing a snapshot could share
    (``random.SystemRandom``, about a microsecond per draw; a handful of draws per batch)."""
    return random.SystemRandom()


def _clamp(seconds: float, cap: int) -> int:
    return max(0, min(math.ceil(seconds), cap, SQS_MAX_VISIBILITY_S))


def _exponential(receive_count: int, base: int, cap: int) -> float:
    attempt = max(1, receive_count) - 1
    # 2**attempt overflows floats only for absurd counts; the cap wins long before that.
    return float(min(cap, base * 2 ** min(attempt, 32)))


def visibility_delay(receive_count: int, *, base: int, cap: int, rng: Rng) -> int:
    """Seconds before a transient failure is retried: uniform in [1, min(cap, base*2^(n-1))].

    ``receive_count`` is the record's ApproximateReceiveCount (1 on first delivery).
    """
    if base < 1 or cap < 1:
        raise ValueError("base and cap must be positive")
    upper = _exponential(receive_count, base, cap)
    return max(1, _clamp(rng.random() * upper, cap))


def unavailable_delay(
    receive_count: int, *, base: int, cap: int, rng: Rng, retry_after: float | None = None
) -> int:
    """Seconds before retrying against a service that is suspended or starting.

    A resume takes minutes and the control plane pauses the event source mapping meanwhile,
    so the delay never drops below half its exponential value ("equal jitter"): retries do
    not arrive while the service is certainly still starting.
    """
    if base < 1 or cap < 1:
        raise ValueError("base and cap must be positive")
    upper = _exponential(receive_count, base, cap)
    delay = upper / 2 + rng.random() * upper / 2
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after)
    return max(1, _clamp(delay, cap))


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay per failure kind. Throttling honours ``Retry-After`` when the server sends one."""

    transient_base: int = 5
    transient_cap: int = 900
    unavailable_base: int = 30
    unavailable_cap: int = 600
    configuration_base: int = 60
    configuration_cap: int = 3_600

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BackoffPolicy:
        base = env_int(environ, RETRY_UNAVAILABLE_BASE_ENV, cls.unavailable_base)
        if not 1 <= base <= cls.unavailable_cap:
            raise ValueError(f"{RETRY_UNAVAILABLE_BASE_ENV} must be 1..{cls.unavailable_cap}")
        return cls(unavailable_base=base)

    def delay(
        self, kind: FailureKind, receive_count: int, rng: Rng, *, retry_after: float | None = None
    ) -> int:
        if kind is FailureKind.UNAVAILABLE:
            return unavailable_delay(
                receive_count,
                base=self.unavailable_base,
                cap=self.unavailable_cap,
                rng=rng,
                retry_after=retry_after,
            )
        if kind is FailureKind.CONFIGURATION:
            return visibility_delay(
                receive_count, base=self.configuration_base, cap=self.configuration_cap, rng=rng
            )
        delay = visibility_delay(
            receive_count, base=self.transient_base, cap=self.transient_cap, rng=rng
        )
        if kind is FailureKind.THROTTLED and retry_after is not None and retry_after > 0:
            delay = max(delay, _clamp(retry_after, SQS_MAX_VISIBILITY_S))
        return delay
