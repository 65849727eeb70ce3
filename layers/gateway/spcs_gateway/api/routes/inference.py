"""On-demand inference: entities in clinical notes and zero-shot image classification.

Both call the model service through ``OnDemandInference`` (the service is marked busy for the
control plane, and a service that is not ready is waited for within the caller's budget, then
answered 503 with Retry-After and the service's state). A row the service fails is answered
with the failure's code (``problems.from_gateway_error``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import ValidationError

from spcs_gateway.api.dependencies import ApiContext, CurrentApi, TimeLeft
from spcs_gateway.api.entities import group_entities
from spcs_gateway.api.models import (
    MAX_WAIT_SECONDS,
    ClassificationRequest,
    ClassificationResponse,
    EntitiesRequest,
    EntitiesResponse,
    Entity,
    LabelScore,
    PersistedRow,
    TextEntities,
)
from spcs_gateway.api.ondemand import ServiceNotReadyError, retry_after_seconds, wait_budget
from spcs_gateway.api.problems import ApiError, from_gateway_error
from spcs_gateway.api.routes.common import new_router, responses
from spcs_gateway.errors import ErrorCode, GatewayError
from spcs_gateway.images import resolve_labels
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import InferenceInput, RowResult

ENTITIES = "/v1/notes/entities"
CLASSIFICATIONS = "/v1/images/classifications"
ROUTES = frozenset({("POST", ENTITIES), ("POST", CLASSIFICATIONS)})
KIND_NOTE = "clinical-note"

router = new_router()

WaitQuery = Annotated[float | None, Query(ge=0, le=MAX_WAIT_SECONDS)]


def _configured(service: ServiceConfig | None) -> ServiceConfig:
    if service is None:
        raise ApiError(502, ErrorCode.CONFIGURATION_ERROR)
    return service


def _first_failure(results: Sequence[RowResult]) -> GatewayError | None:
    return next((r.error for r in results if r.error is not None), None)


def _infer(
    api: ApiContext, service: ServiceConfig, inputs: list[InferenceInput], wait: float
) -> list[RowResult]:
    try:
        results = api.ondemand.infer(service, inputs, budget=wait)
    except ServiceNotReadyError:
        status = api.brief(service)
        retry = retry_after_seconds(ServiceStatus.parse(status.status))
        raise ApiError(
            503,
            ErrorCode.SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(retry)},
            service=status,
        ) from None
    failure = _first_failure(results)
    if failure is not None:
        api.warn(
            "inference failed",
            service_name=service.name,
            error_code=str(failure.code),
            failure_kind=failure.kind.value,
            http_status=failure.status,
        )
        raise from_gateway_error(failure)
    return results


def _ranked(output: Any) -> list[LabelScore]:
    try:
        scored = [LabelScore.model_validate(item) for item in output]
    except (TypeError, ValidationError):
        raise from_gateway_error(
            GatewayError(ErrorCode.BAD_RESPONSE, "labels are not [{label, score}]")
        ) from None
    return sorted(scored, key=lambda s: -s.score)


@router.post(
    ENTITIES,
    summary="Entities in clinical notes (token classification)",
    description="Drug, disease and other mentions as whole-word spans with offsets into "
    "each input text. With `persist`, the result row is also written to the results "
    "table (idempotent on event_id).",
    tags=["inference"],
    operation_id="extractEntities",
    responses=responses(200, "Entities per text.", 400, 413, 415, 429, 502, 503),
)
def extract_entities(
    request: Annotated[EntitiesRequest, Body()],
    api: CurrentApi,
    time_left: TimeLeft,
    wait_seconds: WaitQuery = None,
) -> EntitiesResponse:
    service = _configured(api.deps.ner_service)
    texts = request.all_texts
    inputs = [InferenceInput(key=str(i), values=(text,)) for i, text in enumerate(texts)]
    requested = request.wait_seconds if request.wait_seconds is not None else wait_seconds
    results = _infer(api, service, inputs, wait_budget(requested, time_left))
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
            api.deps.sink.merge([row])
        except GatewayError as error:
            api.warn("persist failed", error_code=str(error.code))
            raise ApiError(502, ErrorCode.RESULTS_WRITE_FAILED) from None
        persisted = PersistedRow(
            event_id=target.event_id, note_id=target.note_id, table=api.deps.sink.table
        )
    return EntitiesResponse(
        service=service.name,
        model_version=service.model_version,
        results=grouped,
        persisted=persisted,
    )


@router.post(
    CLASSIFICATIONS,
    summary="Zero-shot classification of a medical image",
    description="A base64 PNG or JPEG (checked as the image router checks it) and either "
    "candidate_labels or a registry label_set; answers the labels ranked by score.",
    tags=["inference"],
    operation_id="classifyImage",
    responses=responses(200, "Ranked labels.", 400, 413, 415, 429, 502, 503),
)
def classify_image(
    request: Annotated[ClassificationRequest, Body()],
    api: CurrentApi,
    time_left: TimeLeft,
    wait_seconds: WaitQuery = None,
) -> ClassificationResponse:
    service = _configured(api.deps.image_service)
    labels = resolve_labels(request, service)
    image = api.deps.images.load(request.image)
    inputs = [InferenceInput(key="0", values=(image.data, labels))]
    requested = request.wait_seconds if request.wait_seconds is not None else wait_seconds
    results = _infer(api, service, inputs, wait_budget(requested, time_left))
    return ClassificationResponse(
        service=service.name,
        model_version=service.model_version,
        labels=_ranked(results[0].output),
    )
