"""The API's exception handlers: every failure becomes an ``ErrorResponse`` with a stable code.

Powertools picks the handler of the most specific class in the exception's MRO:

=====================================  =====================================================
``ApiError``                           its status and code (raised by the routes)
``RequestValidationError``             422 ``VALIDATION_FAILED`` with locations and types
                                       only; a response that fails its own schema is 500
``RequestUnsupportedContentType``      415 ``UNSUPPORTED_MEDIA_TYPE``
``GatewayError``                       the failure's status and code (``from_gateway_error``)
``NotFoundError``                      404 ``NOT_FOUND`` (no such route)
``RecursionError``                     422: JSON nested past the interpreter's limit
``ValueError``                         a body Powertools could not decode: 400
                                       ``INVALID_BODY_ENCODING`` with a reason (``body.py``),
                                       or 415 for a non-JSON body its parsers refuse;
                                       anything else is ours: 500
``Exception``                          500 ``INTERNAL_ERROR``, logged with its type only
=====================================  =====================================================
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from spcs_gateway.api.body import body_problem, is_json
from spcs_gateway.api.problems import (
    ApiCode,
    ApiError,
    current_request_id,
    error_response,
    field_errors,
    from_gateway_error,
)
from spcs_gateway.errors import GatewayError

Answer = Response[dict[str, Any]]


class ExceptionHandlers:
    def __init__(self, app: APIGatewayRestResolver, logger: Logger | None = None) -> None:
        self._app = app
        self._logger = logger

    def register(self) -> None:
        table: list[tuple[type[Exception], Any]] = [
            (ApiError, self.api_error),
            (RequestValidationError, self.validation),
            (RequestUnsupportedContentType, self.content_type),
            (GatewayError, self.gateway_error),
            (NotFoundError, self.not_found),
            (RecursionError, self.too_deep),
            (ValueError, self.unreadable_body),
            (Exception, self.unexpected),
        ]
        for exc_class, handler in table:
            self._app.exception_handler(exc_class)(handler)

    def _warn(self, message: str, **extra: Any) -> None:
        if self._logger is not None:
            self._logger.warning(message, extra={"request_id": current_request_id(), **extra})

    def api_error(self, error: ApiError) -> Answer:
        return error_response(error)

    def validation(self, error: RequestValidationError) -> Answer:
        errors = error.errors()
        if any(tuple(e.get("loc") or ())[:1] == ("response",) for e in errors):
            # Our answer failed its own schema: a bug, not the caller's fault.
            self._warn("response failed validation", errors=len(errors))
            return error_response(ApiError(500, ApiCode.INTERNAL_ERROR))
        return error_response(ApiError(422, ApiCode.VALIDATION_FAILED, errors=field_errors(errors)))

    def content_type(self, _: RequestUnsupportedContentType) -> Answer:
        return error_response(ApiError(415, ApiCode.UNSUPPORTED_MEDIA_TYPE))

    def gateway_error(self, error: GatewayError) -> Answer:
        self._warn("request failed", error_code=str(error.code), failure_kind=error.kind.value)
        return error_response(from_gateway_error(error))

    def not_found(self, _: NotFoundError) -> Answer:
        return error_response(ApiError(404, ApiCode.NOT_FOUND))

    def too_deep(self, _: RecursionError) -> Answer:
        # JSON nested past the interpreter's recursion limit: the caller's body, not our bug.
        return error_response(ApiError(422, ApiCode.VALIDATION_FAILED))

    def unreadable_body(self, error: ValueError) -> Answer:
        event = self._app.current_event
        problem = body_problem(event)
        if problem is not None:
            self._warn("request body not decodable", reason=problem.value)
            return error_response(ApiError(400, ApiCode.INVALID_BODY_ENCODING, reason=problem))
        if event.body and not is_json(event):
            # Powertools' form and multipart readers raise ValueError on what they cannot
            # parse: this API reads JSON only.
            return error_response(ApiError(415, ApiCode.UNSUPPORTED_MEDIA_TYPE))
        return self.unexpected(error)

    def unexpected(self, _: Exception) -> Answer:
        if self._logger is not None:
            self._logger.exception("unexpected error", extra={"request_id": current_request_id()})
        return error_response(ApiError(500, ApiCode.INTERNAL_ERROR))
