"""What the routers share: route templates and the OpenAPI declaration of their answers.

Routes are written as API Gateway writes its resources (``/v1/services/{name}``): ``rule``
turns one into a Powertools rule, and the access log compares an event's ``resource`` with the
templates in ``ROUTES`` (``routes/__init__.py``).
"""

from __future__ import annotations

import re

from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseHeader,
)

from spcs_gateway.api.models import ErrorResponse

REQUEST_ID_HEADER = "X-Request-Id"

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def new_router() -> Router:
    """A Powertools ``Router`` (its ``__init__`` carries no annotations)."""
    return Router()  # type: ignore[no-untyped-call]


def rule(template: str) -> str:
    """``/v1/services/{name}`` -> ``/v1/services/<name>`` (Powertools' rule syntax)."""
    return _PARAMETER.sub(r"<\1>", template)


_REQUEST_ID_DOC: dict[str, OpenAPIResponseHeader] = {
    REQUEST_ID_HEADER: {
        "description": "Request id (API Gateway's, or generated).",
        "schema": {"type": "string"},
    }
}
_ERROR_TEXT = {
    400: "The input is not acceptable (code says why).",
    403: "The table is not on the registry's allow-list (REFERENCE_NOT_ALLOWED).",
    404: "Unknown service, route or stored note, or a feature this deployment did not set up.",
    409: "The suspend or scale was refused (code and reason say why).",
    413: "The input exceeds a size limit.",
    415: "The body is not JSON.",
    422: "The request does not match the schema (locations and types only, never values).",
    429: "Throttled; retry after Retry-After.",
    500: "Internal error.",
    502: "Snowflake, the model service, the control plane or the results table failed.",
    503: "The model service is not ready; ensure_ready was requested. Retry after Retry-After.",
}
_RETRY_AFTER_DOC: dict[str, OpenAPIResponseHeader] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


def responses(success: int, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """The success answer and the error answers of a route (422 and 500 always)."""
    out: dict[int, OpenAPIResponse] = {
        success: {"description": description, "headers": dict(_REQUEST_ID_DOC)}
    }
    for status in sorted({*errors, 422, 500}):
        headers = dict(_REQUEST_ID_DOC)
        if status in (429, 503):
            headers.update(_RETRY_AFTER_DOC)
        out[status] = {
            "description": _ERROR_TEXT[status],
            "headers": headers,
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
        }
    return out
