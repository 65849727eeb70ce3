"""Semantic search over clinical notes (Cortex Search, ``api/search.py`` is the client).

A query Cortex Search refuses (HTTP 400/422: an unknown column, a filter outside its grammar)
answers 400 ``SEARCH_REJECTED``; other failures keep their code.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from spcs_gateway.api.dependencies import CurrentApi
from spcs_gateway.api.models import SearchRequest, SearchResponse
from spcs_gateway.api.problems import ApiCode, ApiError, from_gateway_error
from spcs_gateway.api.routes.common import new_router, responses
from spcs_gateway.errors import FailureKind, GatewayError

NOTES_SEARCH = "/v1/notes/search"
ROUTES = frozenset({("POST", NOTES_SEARCH)})

router = new_router()


@router.post(
    NOTES_SEARCH,
    summary="Semantic search over clinical notes (Cortex Search)",
    tags=["search"],
    operation_id="searchNotes",
    responses=responses(200, "Matching notes, best first.", 400, 415, 429, 502),
)
def search_notes(request: Annotated[SearchRequest, Body()], api: CurrentApi) -> SearchResponse:
    try:
        rows, snowflake_id = api.deps.search.query(
            request.query, columns=request.columns, filter=request.filter, limit=request.limit
        )
    except GatewayError as error:
        api.warn("search failed", error_code=str(error.code), http_status=error.status)
        if error.kind is FailureKind.POISON:
            raise ApiError(400, ApiCode.SEARCH_REJECTED) from None
        raise from_gateway_error(error) from None
    return SearchResponse(results=rows, request_id=snowflake_id)
