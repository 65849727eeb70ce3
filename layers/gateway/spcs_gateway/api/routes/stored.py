"""Stored notes by reference: the note stays in Snowflake (``api/stored.py``).

* ``POST /v1/notes/stored/entities``: the entities of one note named by an allow-listed table,
  its key and optionally its version. The model runs inside Snowflake; only its output comes
  back. A service that is not ready is waited for within the caller's budget, as for inline
  calls (``OnDemandInference``), then answered 503 with Retry-After.
* ``POST /v1/notes/stored/search``: Cortex Search over the notes, answered as references
  (table and key) and never as text: pass one to the entities route.

The caller sees model output and keys only; nothing of the request or the answer is logged.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from spcs_gateway.api.dependencies import ApiContext, CurrentApi, TimeLeft
from spcs_gateway.api.filters import SEARCH_FILTER_SCHEMA_TYPE
from spcs_gateway.api.models import MAX_SEARCH_LIMIT, MAX_SEARCH_QUERY_CHARS, MAX_WAIT_SECONDS
from spcs_gateway.api.ondemand import (
    OnDemandInference,
    ServiceNotReadyError,
    retry_after_seconds,
    wait_budget,
)
from spcs_gateway.api.problems import ApiCode, ApiError, from_gateway_error
from spcs_gateway.api.routes.common import new_router, responses
from spcs_gateway.api.stored import token_spans
from spcs_gateway.errors import ErrorCode, FailureKind, GatewayError
from spcs_gateway.events import TableRowRef
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.spcs_client import InferenceInput

STORED_ENTITIES = "/v1/notes/stored/entities"
STORED_SEARCH = "/v1/notes/stored/search"
ROUTES = frozenset({("POST", STORED_ENTITIES), ("POST", STORED_SEARCH)})

router = new_router()


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class StoredEntitiesRequest(_Request):
    note: TableRowRef = Field(description="An allow-listed note table, the note's key, version.")
    wait_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for a service that is not ready (default: as inline).",
    )


class StoredEntity(_Response):
    """A span of the model's tokens: offsets into the stored note, the model's words."""

    label: str = Field(description="Entity type without the B-/I- prefix, e.g. DISEASE.")
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float


class StoredEntitiesResponse(_Response):
    service: str
    model_version: str | None = None
    note: TableRowRef
    entities: list[StoredEntity]


class StoredSearchRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_SEARCH_QUERY_CHARS, repr=False)
    filter: Annotated[
        dict[str, Any] | None,
        BeforeValidator(lambda value: value, json_schema_input_type=SEARCH_FILTER_SCHEMA_TYPE),
    ] = Field(default=None, repr=False, description="A Cortex Search filter, as /v1/notes/search.")
    limit: int = Field(default=10, ge=1, le=MAX_SEARCH_LIMIT)


class StoredNoteHit(_Response):
    note: TableRowRef


class StoredSearchResponse(_Response):
    results: list[StoredNoteHit]
    request_id: str | None = Field(default=None, description="Snowflake's id of the query.")


def _stored(api: ApiContext) -> Any:
    if api.deps.stored is None:
        raise ApiError(502, ErrorCode.CONFIGURATION_ERROR)
    return api.deps.stored


def _failure(api: ApiContext, error: GatewayError) -> ApiError:
    api.warn("stored note failed", error_code=str(error.code), failure_kind=error.kind.value)
    if error.code is ErrorCode.REFERENCE_NOT_FOUND:
        return ApiError(404, error.code)
    return from_gateway_error(error)


@router.post(
    STORED_ENTITIES,
    summary="Entities of a note stored in Snowflake, by reference",
    description="The model runs inside Snowflake on the stored note (its service function); "
    "the note text never leaves Snowflake. Spans follow the model's tokens.",
    tags=["stored notes"],
    operation_id="storedNoteEntities",
    responses=responses(200, "Entities of the note.", 400, 403, 404, 415, 429, 502, 503),
)
def stored_entities(
    request: Annotated[StoredEntitiesRequest, Body()], api: CurrentApi, time_left: TimeLeft
) -> StoredEntitiesResponse:
    stored = _stored(api)
    service = api.deps.ner_service
    if service is None:
        raise ApiError(502, ErrorCode.CONFIGURATION_ERROR)
    ref = request.note
    version = None if ref.version is None else str(ref.version)
    ondemand = OnDemandInference(stored, api.deps.control, api.deps.state, logger=api.logger)
    inputs = [InferenceInput(key="0", values=(ref.table, ref.key, version))]
    try:
        [result] = ondemand.infer(
            service, inputs, budget=wait_budget(request.wait_seconds, time_left)
        )
    except ServiceNotReadyError:
        status = api.brief(service)
        raise ApiError(
            503,
            ErrorCode.SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(retry_after_seconds(ServiceStatus.parse(status.status)))},
            service=status,
        ) from None
    if result.error is not None:
        raise _failure(api, result.error)
    return StoredEntitiesResponse(
        service=service.name,
        model_version=service.model_version,
        note=ref,
        entities=[
            StoredEntity(label=s.label, text=s.text, start=s.start, end=s.end, score=s.score)
            for s in token_spans(result.output)
        ],
    )


@router.post(
    STORED_SEARCH,
    summary="Semantic search over stored notes, answered as references",
    description="Cortex Search over the allow-listed search table; each hit is the note's "
    "reference (table and key), never its text.",
    tags=["stored notes"],
    operation_id="searchStoredNotes",
    responses=responses(200, "Matching notes, best first.", 400, 404, 415, 429, 502),
)
def search_stored(
    request: Annotated[StoredSearchRequest, Body()], api: CurrentApi
) -> StoredSearchResponse:
    table = _stored(api).search_table
    if table is None:
        # An optional feature this deployment did not set up (references.search_table).
        raise ApiError(404, ApiCode.STORED_SEARCH_NOT_CONFIGURED)
    try:
        rows, snowflake_id = api.deps.search.query(
            request.query, columns=[table.key_column], filter=request.filter, limit=request.limit
        )
    except GatewayError as error:
        api.warn("stored search failed", error_code=str(error.code), http_status=error.status)
        if error.kind is FailureKind.POISON:
            raise ApiError(400, ApiCode.SEARCH_REJECTED) from None
        raise from_gateway_error(error) from None
    hits: list[StoredNoteHit] = []
    wanted = table.key_column.upper()
    for row in rows:
        key = next((v for k, v in row.items() if str(k).upper() == wanted), None)
        if key is None:
            continue
        try:
            hits.append(StoredNoteHit(note=TableRowRef(table=table.table, key=str(key))))
        except ValueError:
            continue  # a key outside the reference id charset cannot be referenced back
    return StoredSearchResponse(results=hits, request_id=snowflake_id)
