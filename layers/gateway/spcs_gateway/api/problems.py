"""API error codes, their fixed messages, the mapping from the gateway's error classes, and the
error answer itself.

An error body is ``{"error": {"code", "message", "request_id"}}``: the code is stable and
machine-readable, the message is a fixed sentence chosen here. Nothing from the request, the
model's answer or an exception message ever reaches it. ``request_id`` is the id of the request
being answered, bound by the access log (``access_log.py``) for the duration of the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from spcs_gateway.api.models import ErrorDetail, ErrorResponse, FieldError, ServiceBrief
from spcs_gateway.errors import ErrorCode, FailureKind, GatewayError


class ApiCode(StrEnum):
    """Codes the API adds to ``errors.ErrorCode`` (whose values are used as they are)."""

    VALIDATION_FAILED = "VALIDATION_FAILED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    SEARCH_REJECTED = "SEARCH_REJECTED"
    SUSPEND_REFUSED = "SUSPEND_REFUSED"
    CONTROL_UNAVAILABLE = "CONTROL_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    INVALID_BODY_ENCODING = "INVALID_BODY_ENCODING"
    SCALE_OUT_OF_RANGE = "SCALE_OUT_OF_RANGE"
    SCALE_REFUSED = "SCALE_REFUSED"
    STORED_SEARCH_NOT_CONFIGURED = "STORED_SEARCH_NOT_CONFIGURED"


class BodyProblem(StrEnum):
    """``reason`` of an ``INVALID_BODY_ENCODING`` answer."""

    NOT_BASE64 = "NOT_BASE64"  # isBase64Encoded, but the body is not base64
    NOT_UTF8 = "NOT_UTF8"  # the body's bytes are not UTF-8 (JSON is UTF-8)


MESSAGES: dict[str, str] = {
    ApiCode.VALIDATION_FAILED: "The request does not match the schema.",
    ApiCode.UNSUPPORTED_MEDIA_TYPE: "Send the request body as application/json.",
    ApiCode.NOT_FOUND: "No such route.",
    ApiCode.UNKNOWN_SERVICE: "The service is not in the service registry.",
    ApiCode.SEARCH_REJECTED: "The search service rejected the query.",
    ApiCode.SUSPEND_REFUSED: "The service was not suspended; see reason, or retry with force.",
    ApiCode.CONTROL_UNAVAILABLE: "The control plane could not be reached.",
    ApiCode.INTERNAL_ERROR: "An internal error occurred.",
    ApiCode.INVALID_BODY_ENCODING: "The request body cannot be decoded; reason says why.",
    ApiCode.SCALE_OUT_OF_RANGE: "The range is outside the service's allowed instance range.",
    ApiCode.SCALE_REFUSED: "The control plane did not set the range; see reason.",
    ApiCode.STORED_SEARCH_NOT_CONFIGURED: "This deployment names no searchable note table.",
    ErrorCode.SERVICE_UNAVAILABLE: "The model service is not ready; retry after Retry-After.",
    ErrorCode.THROTTLED: "The service is busy; retry after Retry-After.",
    ErrorCode.MODEL_REJECTED_INPUT: "The model service rejected the input.",
    ErrorCode.INVALID_IMAGE: "The image cannot be decoded as the declared type.",
    ErrorCode.IMAGE_TOO_LARGE: "The image exceeds the size or pixel limit.",
    ErrorCode.UNKNOWN_LABEL_SET: "The label set is not in the service registry.",
    ErrorCode.REQUEST_TOO_LARGE: "The input exceeds the service's request size limit.",
    ErrorCode.INVALID_EVENT: "The request is not acceptable.",
    ErrorCode.REFERENCE_NOT_ALLOWED: "The table is not on the registry's allow-list.",
    ErrorCode.REFERENCE_NOT_FOUND: "No stored note has that key (and version).",
    ErrorCode.RESULTS_WRITE_FAILED: "The result row could not be written; the call may be retried.",
    ErrorCode.AUTH_FAILED: "Snowflake refused the gateway's credentials.",
    ErrorCode.ENDPOINT_NOT_FOUND: "A Snowflake endpoint is misconfigured.",
    ErrorCode.CONFIGURATION_ERROR: "The gateway is misconfigured.",
    ErrorCode.PRIVILEGE_MISSING: "The gateway's Snowflake role lacks a grant; run doctor.",
    ErrorCode.SIGNATURE_MISMATCH: "The model service refuses the gateway's calls; run doctor.",
    ErrorCode.BAD_RESPONSE: "A Snowflake service answered with an unexpected response.",
    ErrorCode.SERVICE_ERROR: "The model service failed.",
    ErrorCode.DEPENDENCY_ERROR: "A dependency failed; the call may be retried.",
}
_DEFAULT_MESSAGE = "The request failed."

_STATUS_BY_CODE: dict[str, int] = {
    ErrorCode.IMAGE_TOO_LARGE: 413,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    # The gateway may not read that table for anyone: the caller is refused, not mistaken.
    ErrorCode.REFERENCE_NOT_ALLOWED: 403,
}
_STATUS_BY_KIND: dict[FailureKind, int] = {
    FailureKind.POISON: 400,
    FailureKind.THROTTLED: 429,
    FailureKind.UNAVAILABLE: 503,
    FailureKind.CONFIGURATION: 502,
    FailureKind.TRANSIENT: 502,
}


class ApiError(Exception):
    """An error answer. ``str()`` is the code only."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        headers: Mapping[str, str] | None = None,
        service: ServiceBrief | None = None,
        errors: list[FieldError] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = MESSAGES.get(code, _DEFAULT_MESSAGE)
        self.headers = dict(headers or {})
        self.service = service
        self.errors = errors
        self.reason = reason


def from_gateway_error(error: GatewayError) -> ApiError:
    """The answer for a failure of the model service, Snowflake or the results table."""
    status = _STATUS_BY_CODE.get(error.code, _STATUS_BY_KIND.get(error.kind, 502))
    headers: dict[str, str] = {}
    if error.kind is FailureKind.THROTTLED:
        headers["Retry-After"] = str(max(1, round(error.retry_after or 1)))
    return ApiError(status, error.code, headers=headers)


_SAFE_LOC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_EXTRA_TYPES = frozenset({"extra_forbidden"})


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Validation failures as locations and types only. Unknown keys a client sent are named
    ``<extra>``: a key is client data too."""
    out: list[FieldError] = []
    for err in errors:
        loc = list(err.get("loc") or ())
        if str(err.get("type")) in _EXTRA_TYPES and loc:
            loc[-1] = "<extra>"
        safe: list[str | int] = [
            p if isinstance(p, int) and not isinstance(p, bool) else str(p) for p in loc
        ]
        safe = [
            p if isinstance(p, int) or p == "<extra>" or _SAFE_LOC.match(p) else "<key>"
            for p in safe
        ]
        kind = str(err.get("type", "invalid"))
        out.append(FieldError(loc=safe, type=kind if _SAFE_LOC.match(kind) else "invalid"))
    return out


# -- the answer --------------------------------------------------------------------------------

_request_id: ContextVar[str] = ContextVar("spcs_gateway_api_request_id", default="")


@contextmanager
def request_id_bound(request_id: str) -> Iterator[None]:
    """Error bodies built inside the block carry ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def current_request_id() -> str:
    return _request_id.get() or "-"


def error_body(error: ApiError) -> dict[str, Any]:
    body = ErrorResponse(
        error=ErrorDetail(
            code=error.code,
            message=error.message,
            request_id=current_request_id(),
            errors=error.errors,
            reason=error.reason,
        ),
        service=error.service,
    )
    return body.model_dump(mode="json", exclude_none=True)


def error_response(error: ApiError) -> Response[dict[str, Any]]:
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(error),
        headers=error.headers,
    )
