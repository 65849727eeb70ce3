"""One SPCS request's result, and how its failure is classified (``spcs_client.SpcsClient``).

Pure helpers: a request's ``Attempt``, the ``Retry-After`` header, transport errors as the
error classes of ``errors.py``, and which failures are worth one retry inside the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from spcs_gateway.errors import (
    ErrorCode,
    FailureKind,
    GatewayError,
    ServiceUnavailableError,
    TransientError,
)

# Statuses that mean "some row in this request is unacceptable": split to find it.
SPLIT_STATUSES = frozenset({400, 413, 422})
# Statuses after which the ingress token is refreshed once.
REFRESH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class Attempt:
    outputs: dict[int, Any] | None  # input index -> output
    error: GatewayError | None
    latency_ms: int


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent
    or unparseable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def transport_error(exc: httpx.HTTPError) -> GatewayError:
    name = type(exc).__name__
    if isinstance(exc, httpx.PoolTimeout):
        # Our own connection pool is exhausted: nothing says the service is down.
        return TransientError(ErrorCode.SERVICE_ERROR, f"connection pool exhausted ({name})")
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        # Refused/reset connections and timeouts: the service may be suspended or starting.
        return ServiceUnavailableError(ErrorCode.SERVICE_UNAVAILABLE, f"transport error ({name})")
    return TransientError(ErrorCode.SERVICE_ERROR, f"transport error ({name})")


# Longest Retry-After honoured inside a call; longer ones go back to the queue as THROTTLED.
MAX_IN_CALL_RETRY_AFTER_S = 1.0


def retry_in_call(error: GatewayError) -> bool:
    """Whether a failed request is worth one immediate retry before the caller sees it."""
    if error.kind is FailureKind.TRANSIENT:
        return (error.status or 0) >= 500
    if error.kind is FailureKind.UNAVAILABLE:
        return True
    if error.kind is FailureKind.THROTTLED:
        return error.retry_after is None or error.retry_after <= MAX_IN_CALL_RETRY_AFTER_S
    return False


def is_refusal(error: GatewayError | None) -> bool:
    """The model refused the request's content (400/422), as opposed to its size or a fault."""
    return error is not None and error.code is ErrorCode.MODEL_REJECTED_INPUT
