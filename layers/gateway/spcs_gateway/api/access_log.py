"""The API's access log: a Powertools handler middleware around ``app.resolve``.

::

    @access_log(logger=logger, metrics=metrics)
    def lambda_handler(event, context):
        return app.resolve(event, context)

For every request it

* binds the request id (API Gateway's ``requestContext.requestId`` when it looks like one, else
  a new UUID) for the error bodies built meanwhile, and returns it as ``X-Request-Id``;
* answers 500 ``INTERNAL_ERROR`` (JSON) when the resolver itself fails, e.g. on an event that is
  not an API Gateway proxy event;
* writes one line, ``api request``, with the method, the route, the status, the latency and
  the request id, and emits ``ApiRequests``, ``ApiLatency`` and, for 5xx, ``ApiErrors``.

The route is the event's ``resource``, API Gateway's template such as ``/v1/services/{name}``,
when it is one of this API's routes, else ``<unmatched>``; never the path, which the caller
chooses. Bodies are never logged: they carry PHI.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
from aws_lambda_powertools.utilities.typing import LambdaContext

from spcs_gateway.api.problems import ApiCode, ApiError, error_body, request_id_bound
from spcs_gateway.api.routes import ROUTES
from spcs_gateway.api.routes.common import REQUEST_ID_HEADER

UNMATCHED = "<unmatched>"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Handler = Callable[[Mapping[str, Any], LambdaContext], dict[str, Any]]


def request_id_of(event: Mapping[str, Any]) -> str:
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    value = context.get("requestId") if isinstance(context, Mapping) else None
    if isinstance(value, str) and _REQUEST_ID.match(value):
        return value
    return str(uuid.uuid4())


def route_of(event: Mapping[str, Any], routes: Collection[tuple[str, str]] = ROUTES) -> str:
    method, resource = event.get("httpMethod"), event.get("resource")
    known = isinstance(method, str) and isinstance(resource, str)
    return str(resource) if known and (str(method).upper(), resource) in routes else UNMATCHED


def internal_error() -> dict[str, Any]:
    """The proxy answer when the resolver could not answer at all."""
    return {
        "statusCode": 500,
        "body": json.dumps(
            error_body(ApiError(500, ApiCode.INTERNAL_ERROR)), separators=(",", ":")
        ),
        "isBase64Encoded": False,
        "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
    }


def set_header(response: dict[str, Any], name: str, value: str) -> None:
    if isinstance(response.get("multiValueHeaders"), dict):
        response["multiValueHeaders"][name] = [value]
    else:
        headers = response.setdefault("headers", {})
        if isinstance(headers, dict):
            headers[name] = value


def _access_log(
    handler: Handler,
    event: Mapping[str, Any],
    context: LambdaContext,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    routes: Collection[tuple[str, str]] = ROUTES,
) -> dict[str, Any]:
    request_id = request_id_of(event)
    started = time.perf_counter()
    with request_id_bound(request_id):
        try:
            response = handler(event, context)
        except Exception:
            if logger is not None:
                logger.exception("request could not be resolved")
            response = internal_error()
    set_header(response, REQUEST_ID_HEADER, request_id)
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    status = int(response.get("statusCode") or 0)
    method = event.get("httpMethod") if isinstance(event, Mapping) else None
    if logger is not None:
        logger.info(
            "api request",
            extra={
                "http_method": str(method or "").upper()[:10],
                "route": route_of(event, routes) if isinstance(event, Mapping) else UNMATCHED,
                "status_code": status,
                "latency_ms": elapsed_ms,
                "request_id": request_id,
            },
        )
    if metrics is not None:
        metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ApiLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
        if status >= 500:
            metrics.add_metric(name="ApiErrors", unit=MetricUnit.Count, value=1)
    return response


access_log = lambda_handler_decorator(_access_log)
