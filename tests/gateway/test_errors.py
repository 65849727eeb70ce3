"""Error classes (docs/ARCHITECTURE.md): which SPCS answers are poison, retried or resumed."""

from __future__ import annotations

import pytest

from spcs_gateway.errors import (
    POISON_CODES,
    ConfigurationError,
    ErrorCode,
    FailureKind,
    PoisonError,
    ServiceUnavailableError,
    ThrottledError,
    TransientError,
    classify_status,
    error_for_status,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (400, FailureKind.POISON),
        (422, FailureKind.POISON),
        (401, FailureKind.CONFIGURATION),
        (403, FailureKind.CONFIGURATION),
        (404, FailureKind.CONFIGURATION),
        (429, FailureKind.THROTTLED),
        (500, FailureKind.TRANSIENT),
        (502, FailureKind.UNAVAILABLE),
        (503, FailureKind.UNAVAILABLE),
        (504, FailureKind.UNAVAILABLE),
    ],
)
def test_classify_status(status: int, kind: FailureKind | None) -> None:
    assert classify_status(status) is kind


def test_error_for_status_maps_to_classes_and_codes() -> None:
    bad = error_for_status(400)
    assert isinstance(bad, PoisonError)
    assert bad.code is ErrorCode.MODEL_REJECTED_INPUT
    assert error_for_status(404).code is ErrorCode.ENDPOINT_NOT_FOUND
    assert isinstance(error_for_status(401), ConfigurationError)
    throttled = error_for_status(429, retry_after=7.0)
    assert isinstance(throttled, ThrottledError)
    assert throttled.retry_after == 7.0
    assert isinstance(error_for_status(503), ServiceUnavailableError)
    assert isinstance(error_for_status(500), TransientError)


def test_message_is_code_and_fixed_detail_only() -> None:
    err = PoisonError(ErrorCode.INVALID_EVENT, "text: string_too_long")
    assert str(err) == "INVALID_EVENT: text: string_too_long"
    assert err.kind is FailureKind.POISON


def test_poison_codes_are_exactly_the_non_retryable_input_errors() -> None:
    assert ErrorCode.MODEL_REJECTED_INPUT in POISON_CODES
    assert ErrorCode.SERVICE_UNAVAILABLE not in POISON_CODES
    assert ErrorCode.RESULTS_WRITE_FAILED not in POISON_CODES
