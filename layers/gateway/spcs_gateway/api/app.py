"""The on-demand API: a Powertools ``APIGatewayRestResolver`` with request/response validation.

Routes (the committed ``openapi.json`` is generated from them, see ``openapi.py``):

* ``POST /v1/notes/entities``          token classification, whole-word spans, optional persist
* ``POST /v1/images/classifications``  zero-shot image classification, ranked labels
* ``POST /v1/notes/search``            Cortex Search over clinical notes
* ``GET  /v1/services``, ``GET /v1/services/{name}``  status from the control plane
* ``POST /v1/services/{name}/resume``  ask the control plane for readiness (202)
* ``POST /v1/services/{name}/suspend`` suspend now; refused while work is queued unless ``force``

PHI rules: request bodies and responses are never logged (one access line per request holds the
method, the route template, the status, the latency and the request id); error bodies hold a
stable code and a fixed message; validation errors list field locations and error types only.
Every response carries ``X-Request-Id`` (API Gateway's request id, or a generated one).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseHeader,
)
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from spcs_gateway.api.entities import group_entities
from spcs_gateway.api.models import (
    MAX_WAIT_SECONDS,
    ClassificationRequest,
    ClassificationResponse,
    EntitiesRequest,
    EntitiesResponse,
    Entity,
    ErrorDetail,
    ErrorResponse,
    LabelScore,
    PersistedRow,
    ResumeAccepted,
    SearchRequest,
    SearchResponse,
    ServiceBrief,
    ServicesResponse,
    ServiceStatusView,
    SuspendResult,
    TextEntities,
)
from spcs_gateway.api.ondemand import (
    OnDemandInference,
    ServiceNotReadyError,
    retry_after_seconds,
    wait_budget,
)
from spcs_gateway.api.ports import ApiDeps
from spcs_gateway.api.problems import ApiCode, ApiError, field_errors, from_gateway_error
from spcs_gateway.errors import ErrorCode, FailureKind, GatewayError
from spcs_gateway.images import resolve_labels
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import InferenceInput, RowResult

REQUEST_ID_HEADER = "X-Request-Id"
SWAGGER_ENV = "API_ENABLE_SWAGGER"
_EVENT_HANDLER_LOGGER = "aws_lambda_powertools.event_handler"
KIND_NOTE = "clinical-note"
_SERVICE_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_request_id: ContextVar[str] = ContextVar("spcs_gateway_api_request_id", default="")

# -- OpenAPI response declarations --------------------------------------------------------------

_REQUEST_ID_DOC: dict[str, OpenAPIResponseHeader] = {
    REQUEST_ID_HEADER: {
        "description": "Request id (API Gateway's, or generated).",
        "schema": {"type": "string"},
    }
}
_ERROR_TEXT = {
    400: "The input is not acceptable (code says why).",
    404: "Unknown service or route.",
    409: "The suspend was refused (reason says why).",
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


def _responses(success: int, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
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


# -- helpers ------------------------------------------------------------------------------------


def quiet_event_handler_logger() -> None:
    """Powertools' event handler logs the route's arguments and unmatched paths at DEBUG:
    hold its logger at WARNING even when the root logger is set to DEBUG."""
    handler_logger = logging.getLogger(_EVENT_HANDLER_LOGGER)
    if handler_logger.level == logging.NOTSET or handler_logger.level < logging.WARNING:
        handler_logger.setLevel(logging.WARNING)


def current_request_id() -> str:
    return _request_id.get() or "-"


def _request_id_of(event: Mapping[str, Any]) -> str:
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    value = context.get("requestId") if isinstance(context, Mapping) else None
    if isinstance(value, str) and _REQUEST_ID.match(value):
        return value
    return str(uuid.uuid4())


def error_response(error: ApiError) -> Response[dict[str, Any]]:
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
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump(mode="json", exclude_none=True),
        headers=error.headers,
    )


def _set_header(response: dict[str, Any], name: str, value: str) -> None:
    if isinstance(response.get("multiValueHeaders"), dict):
        response["multiValueHeaders"][name] = [value]
    else:
        headers = response.setdefault("headers", {})
        if isinstance(headers, dict):
            headers[name] = value


def _first_failure(results: Sequence[RowResult]) -> GatewayError | None:
    return next((r.error for r in results if r.error is not None), None)


def _ranked(output: Any) -> list[LabelScore]:
    try:
        scored = [LabelScore.model_validate(item) for item in output]
    except (TypeError, ValidationError):
        raise from_gateway_error(
            GatewayError(ErrorCode.BAD_RESPONSE, "labels are not [{label, score}]")
        ) from None
    return sorted(scored, key=lambda s: -s.score)


def _safe_code(value: Any) -> str | None:
    """A code from another component, passed on only if it looks like one."""
    return value if isinstance(value, str) and _CODE.match(value) else None


def _status_view(raw: Mapping[str, Any]) -> ServiceStatusView | None:
    try:
        return ServiceStatusView.model_validate(dict(raw))
    except ValidationError:
        return None


# -- the resolver -------------------------------------------------------------------------------


class ApiResolver(APIGatewayRestResolver):
    """Adds the request id header and one PHI-free access log line to every answer."""

    def __init__(self, *, logger: Logger | None = None, metrics: Metrics | None = None) -> None:
        # debug=False whatever POWERTOOLS_DEV says: debug mode prints every event (PHI).
        super().__init__(enable_validation=True, debug=False)
        quiet_event_handler_logger()
        self._access_logger = logger
        self._access_metrics = metrics

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        request_id = _request_id_of(event)
        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            try:
                response = super().resolve(event, context)
            except Exception:
                if self._access_logger is not None:
                    self._access_logger.exception("request could not be resolved")
                error = error_response(ApiError(500, ApiCode.INTERNAL_ERROR))
                response = {
                    "statusCode": error.status_code,
                    "body": ErrorResponse.model_validate(error.body).model_dump_json(
                        exclude_none=True
                    ),
                    "isBase64Encoded": False,
                    "multiValueHeaders": {"Content-Type": [content_types.APPLICATION_JSON]},
                }
            _set_header(response, REQUEST_ID_HEADER, request_id)
            self._record(event, response, started, request_id)
            return response
        finally:
            _request_id.reset(token)

    def _route_template(self, method: str, path: Any) -> str:
        """The matched route's template (never the raw path: it is caller-controlled)."""
        if isinstance(path, str):
            for route in self._static_routes + self._dynamic_routes:
                if route.method == method and route.rule.match(path):
                    return str(route.openapi_path)
        return "<unmatched>"

    def _record(
        self, event: Mapping[str, Any], response: Mapping[str, Any], started: float, rid: str
    ) -> None:
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        status = int(response.get("statusCode") or 0)
        method = str(event.get("httpMethod", "")).upper()
        if self._access_logger is not None:
            self._access_logger.info(
                "api request",
                extra={
                    "http_method": method[:10],
                    "route": self._route_template(method, event.get("path")),
                    "status_code": status,
                    "latency_ms": elapsed_ms,
                    "request_id": rid,
                },
            )
        if self._access_metrics is not None:
            self._access_metrics.add_metric(name="ApiRequests", unit=MetricUnit.Count, value=1)
            self._access_metrics.add_metric(
                name="ApiLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms
            )
            if status >= 500:
                self._access_metrics.add_metric(name="ApiErrors", unit=MetricUnit.Count, value=1)


def create_api(
    deps: ApiDeps | None,
    *,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    ondemand: OnDemandInference | None = None,
    enable_swagger: bool | None = None,
) -> ApiResolver:
    """The resolver with every route. ``deps=None`` builds the routes only (for the OpenAPI
    document); calling a route then answers 500."""
    app = ApiResolver(logger=logger, metrics=metrics)
    if deps is not None and ondemand is None:
        ondemand = OnDemandInference(deps.spcs, deps.control, deps.state, logger=logger)

    def need() -> tuple[ApiDeps, OnDemandInference]:
        if deps is None or ondemand is None:
            raise ApiError(500, ApiCode.INTERNAL_ERROR)
        return deps, ondemand

    def log_warning(message: str, **extra: Any) -> None:
        if logger is not None:
            logger.warning(message, extra={"request_id": current_request_id(), **extra})

    def budget(body_wait: float | None, query_wait: float | None) -> float:
        requested = body_wait if body_wait is not None else query_wait
        remaining: float | None = None
        context = getattr(app, "lambda_context", None)
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            try:
                remaining = float(remaining_ms()) / 1000.0
            except (TypeError, ValueError):
                remaining = None
        return wait_budget(requested, remaining)

    def brief(d: ApiDeps, service: ServiceConfig) -> ServiceBrief:
        try:
            state = d.state.get(service.name)
        except Exception:  # noqa: BLE001 - the status is a courtesy; the answer stands without it
            log_warning("service state unreadable", service_name=service.name)
            return ServiceBrief(name=service.name, status=ServiceStatus.UNKNOWN.value, ready=False)
        return ServiceBrief(name=service.name, status=state.status.value, ready=state.ready)

    def infer(
        d: ApiDeps,
        runner: OnDemandInference,
        service: ServiceConfig,
        inputs: list[InferenceInput],
        wait: float,
    ) -> list[RowResult]:
        try:
            results = runner.infer(service, inputs, budget=wait)
        except ServiceNotReadyError:
            status = brief(d, service)
            retry = retry_after_seconds(ServiceStatus.parse(status.status))
            raise ApiError(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(retry)},
                service=status,
            ) from None
        failure = _first_failure(results)
        if failure is not None:
            log_warning(
                "inference failed",
                service_name=service.name,
                error_code=str(failure.code),
                failure_kind=failure.kind.value,
                http_status=failure.status,
            )
            raise from_gateway_error(failure)
        return results

    def registered(d: ApiDeps, name: str) -> ServiceConfig:
        try:
            return d.registry.service(name)
        except KeyError:
            raise ApiError(404, ApiCode.UNKNOWN_SERVICE) from None

    def configured(service: ServiceConfig | None) -> ServiceConfig:
        if service is None:
            raise ApiError(502, ErrorCode.CONFIGURATION_ERROR)
        return service

    # -- error handlers -------------------------------------------------------------------------

    def handle_api_error(error: ApiError) -> Response[dict[str, Any]]:
        return error_response(error)

    def handle_validation(error: RequestValidationError) -> Response[dict[str, Any]]:
        errors = error.errors()
        if any(tuple(e.get("loc") or ())[:1] == ("response",) for e in errors):
            # Our answer failed its own schema: a bug, not the caller's fault.
            log_warning("response failed validation", errors=len(errors))
            return error_response(ApiError(500, ApiCode.INTERNAL_ERROR))
        return error_response(ApiError(422, ApiCode.VALIDATION_FAILED, errors=field_errors(errors)))

    def handle_content_type(_: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
        return error_response(ApiError(415, ApiCode.UNSUPPORTED_MEDIA_TYPE))

    def handle_gateway_error(error: GatewayError) -> Response[dict[str, Any]]:
        log_warning("request failed", error_code=str(error.code), failure_kind=error.kind.value)
        return error_response(from_gateway_error(error))

    def handle_unexpected(_: Exception) -> Response[dict[str, Any]]:
        if logger is not None:
            logger.exception("unexpected error", extra={"request_id": current_request_id()})
        return error_response(ApiError(500, ApiCode.INTERNAL_ERROR))

    def handle_not_found(_: NotFoundError) -> Response[dict[str, Any]]:
        return error_response(ApiError(404, ApiCode.NOT_FOUND))

    def handle_too_deep(_: RecursionError) -> Response[dict[str, Any]]:
        # JSON nested past the interpreter's recursion limit: the caller's body, not our bug.
        return error_response(ApiError(422, ApiCode.VALIDATION_FAILED))

    # Most specific class wins (Powertools walks the exception's MRO).
    handlers: list[tuple[type[Exception], Any]] = [
        (ApiError, handle_api_error),
        (RequestValidationError, handle_validation),
        (RequestUnsupportedContentType, handle_content_type),
        (GatewayError, handle_gateway_error),
        (NotFoundError, handle_not_found),
        (RecursionError, handle_too_deep),
        (Exception, handle_unexpected),
    ]
    for exc_class, handler in handlers:
        app.exception_handler(exc_class)(handler)

    # -- inference ------------------------------------------------------------------------------

    @app.post(
        "/v1/notes/entities",
        summary="Entities in clinical notes (token classification)",
        description="Drug, disease and other mentions as whole-word spans with offsets into "
        "each input text. With `persist`, the result row is also written to the results "
        "table (idempotent on event_id).",
        tags=["inference"],
        operation_id="extractEntities",
        responses=_responses(200, "Entities per text.", 400, 413, 429, 502, 503),
    )
    def extract_entities(
        request: Annotated[EntitiesRequest, Body()],
        wait_seconds: Annotated[float | None, Query(ge=0, le=MAX_WAIT_SECONDS)] = None,
    ) -> EntitiesResponse:
        d, runner = need()
        service = configured(d.ner_service)
        texts = request.all_texts
        inputs = [InferenceInput(key=str(i), values=(text,)) for i, text in enumerate(texts)]
        results = infer(d, runner, service, inputs, budget(request.wait_seconds, wait_seconds))
        grouped = [
            TextEntities(
                index=i,
                entities=[
                    Entity(label=s.label, text=s.text, start=s.start, end=s.end, score=s.score)
                    for s in group_entities(text, result.output)
                ],
            )
            for i, (text, result) in enumerate(zip(texts, results, strict=True))
        ]
        persisted = None
        if request.persist is not None:
            target = request.persist
            row = ResultRow(
                event_id=target.event_id,
                kind=KIND_NOTE,
                subject_id=target.note_id,
                service=service.service,
                model_version=service.model_version,
                output=results[0].output,
                latency_ms=results[0].latency_ms,
                processed_at=datetime.now(UTC),
            )
            try:
                d.sink.merge([row])
            except GatewayError as error:
                log_warning("persist failed", error_code=str(error.code))
                raise ApiError(502, ErrorCode.RESULTS_WRITE_FAILED) from None
            persisted = PersistedRow(
                event_id=target.event_id, note_id=target.note_id, table=d.sink.table
            )
        return EntitiesResponse(
            service=service.name,
            model_version=service.model_version,
            results=grouped,
            persisted=persisted,
        )

    @app.post(
        "/v1/images/classifications",
        summary="Zero-shot classification of a medical image",
        description="A base64 PNG or JPEG (checked as the image router checks it) and either "
        "candidate_labels or a registry label_set; answers the labels ranked by score.",
        tags=["inference"],
        operation_id="classifyImage",
        responses=_responses(200, "Ranked labels.", 400, 413, 429, 502, 503),
    )
    def classify_image(
        request: Annotated[ClassificationRequest, Body()],
        wait_seconds: Annotated[float | None, Query(ge=0, le=MAX_WAIT_SECONDS)] = None,
    ) -> ClassificationResponse:
        d, runner = need()
        service = configured(d.image_service)
        labels = resolve_labels(request, service)
        image = d.images.load(request.image)
        inputs = [InferenceInput(key="0", values=(image.data, labels))]
        results = infer(d, runner, service, inputs, budget(request.wait_seconds, wait_seconds))
        return ClassificationResponse(
            service=service.name,
            model_version=service.model_version,
            labels=_ranked(results[0].output),
        )

    @app.post(
        "/v1/notes/search",
        summary="Semantic search over clinical notes (Cortex Search)",
        tags=["search"],
        operation_id="searchNotes",
        responses=_responses(200, "Matching notes, best first.", 400, 429, 502),
    )
    def search_notes(request: Annotated[SearchRequest, Body()]) -> SearchResponse:
        d, _ = need()
        try:
            rows, snowflake_id = d.search.query(
                request.query, columns=request.columns, filter=request.filter, limit=request.limit
            )
        except GatewayError as error:
            log_warning("search failed", error_code=str(error.code), http_status=error.status)
            if error.kind is FailureKind.POISON:
                raise ApiError(400, ApiCode.SEARCH_REJECTED) from None
            raise from_gateway_error(error) from None
        return SearchResponse(results=rows, request_id=snowflake_id)

    # -- services -------------------------------------------------------------------------------

    def statuses(d: ApiDeps) -> list[ServiceStatusView]:
        try:
            raw = list(d.control.status())
        except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
            log_warning("control status failed")
            raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
        names = {s.name for s in d.registry.services}
        views = [v for v in (_status_view(item) for item in raw) if v is not None]
        return [v for v in views if v.name in names]

    @app.get(
        "/v1/services",
        summary="Status of every managed model service",
        tags=["services"],
        operation_id="listServices",
        responses=_responses(200, "One entry per managed service.", 502),
    )
    def list_services() -> ServicesResponse:
        d, _ = need()
        return ServicesResponse(services=statuses(d))

    @app.get(
        "/v1/services/<name>",
        summary="Status of one managed model service",
        tags=["services"],
        operation_id="getService",
        responses=_responses(200, "The service's status.", 404, 502),
    )
    def get_service(
        name: Annotated[str, Path(pattern=_SERVICE_NAME, max_length=63)],
    ) -> ServiceStatusView:
        d, _ = need()
        service = registered(d, name)
        found = next((v for v in statuses(d) if v.name == service.name), None)
        if found is None:
            raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE)
        return found

    @app.post(
        "/v1/services/<name>/resume",
        summary="Resume a model service (asynchronous)",
        tags=["services"],
        operation_id="resumeService",
        status_code=202,
        responses=_responses(202, "Readiness requested from the control plane.", 404, 502),
    )
    def resume_service(
        name: Annotated[str, Path(pattern=_SERVICE_NAME, max_length=63)],
    ) -> ResumeAccepted:
        d, _ = need()
        service = registered(d, name)
        try:
            d.control.ensure_ready(service.name)
        except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
            log_warning("ensure_ready request failed", service_name=service.name)
            raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
        return ResumeAccepted(name=service.name, service=brief(d, service))

    @app.post(
        "/v1/services/<name>/suspend",
        summary="Suspend a model service now",
        description="Refused (409) while work is queued for it or an on-demand call is in "
        "flight, unless force=true.",
        tags=["services"],
        operation_id="suspendService",
        responses=_responses(200, "The service was suspended.", 404, 409, 502),
    )
    def suspend_service(
        name: Annotated[str, Path(pattern=_SERVICE_NAME, max_length=63)],
        force: Annotated[bool, Query()] = False,
    ) -> SuspendResult:
        d, _ = need()
        service = registered(d, name)
        try:
            answer = dict(d.control.suspend(service.name, force))
        except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
            log_warning("suspend request failed", service_name=service.name)
            raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
        outcome = answer.get("outcome")
        if outcome in ("suspended", "already_suspended"):
            status = answer.get("status")
            return SuspendResult(
                name=service.name,
                outcome=outcome,
                status=str(status) if status is not None else None,
            )
        if outcome in ("refused", "failed"):
            raise ApiError(409, ApiCode.SUSPEND_REFUSED, reason=_safe_code(answer.get("code")))
        log_warning(
            "suspend failed", service_name=service.name, error_code=_safe_code(answer.get("code"))
        )
        raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE)

    swagger = (
        os.environ.get(SWAGGER_ENV, "").lower() in ("1", "true", "yes")
        if enable_swagger is None
        else enable_swagger
    )
    if swagger:
        app.enable_swagger(path="/swagger", title=API_TITLE, version=API_VERSION)
    return app


API_TITLE = "spcs-gateway on-demand API"
API_VERSION = "1.0.0"
