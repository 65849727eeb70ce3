"""POST /v1/notes/search: Cortex Search REST through the Lambda handler (respx)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import SEARCH_URL, Api, api_event, body_of, header

from spcs_gateway.api.problems import MESSAGES
from spcs_gateway.api.search import SearchService
from spcs_gateway.errors import ConfigurationError


def search(api: Api, body: Any) -> dict[str, Any]:
    return api.invoke(api_event("POST", "/v1/notes/search", body=body))


def test_api_search_passes_query_and_returns_rows(api: Api) -> None:
    body = {
        "query": "wheezing after viral infection",
        "columns": ["NOTE_ID", "DEPARTMENT"],
        "filter": {"@eq": {"DEPARTMENT": "cardiology"}},
        "limit": 5,
    }
    response = search(api, body)

    assert response["statusCode"] == 200
    assert header(response, "X-Request-Id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert body_of(response) == {
        "results": [{"NOTE_ID": "N-1", "DEPARTMENT": "cardiology"}],
        "request_id": "sf-q-1",
    }
    [(headers, sent)] = api.snowflake.search_requests
    assert sent == body
    assert headers["authorization"].startswith("Bearer ey")  # the key-pair JWT
    assert headers["x-snowflake-authorization-token-type"] == "KEYPAIR_JWT"
    assert api.snowflake.ingress_calls == []


def test_api_search_defaults_limit_and_names_columns_without_the_note_text(api: Api) -> None:
    # Without columns Cortex Search returns the search column itself: the note text (PHI).
    assert search(api, {"query": "otitis"})["statusCode"] == 200
    [(_, sent)] = api.snowflake.search_requests
    assert sent == {
        "query": "otitis",
        "columns": ["NOTE_ID", "PATIENT_ID", "NOTE_TYPE", "DEPARTMENT", "NOTE_DATE"],
        "limit": 10,
    }
    assert "NOTE_TEXT" not in sent["columns"]


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (400, 400, "SEARCH_REJECTED"),
        (401, 502, "AUTH_FAILED"),
        (403, 502, "PRIVILEGE_MISSING"),
        (404, 502, "ENDPOINT_NOT_FOUND"),
        (429, 429, "THROTTLED"),
        (500, 502, "DEPENDENCY_ERROR"),
    ],
)
def test_api_search_failures_map_to_stable_codes(
    api: Api, status: int, expected: int, code: str
) -> None:
    api.snowflake.search_status = status
    response = search(api, {"query": "otitis"})

    assert response["statusCode"] == expected
    assert body_of(response)["error"]["code"] == code
    assert body_of(response)["error"]["message"] == MESSAGES[code]  # fixed text, not upstream


def test_api_search_unreadable_answer_is_502(api: Api) -> None:
    assert api.snowflake.router is not None
    api.snowflake.router.post(SEARCH_URL).mock(return_value=httpx.Response(200, text="<html>"))
    response = search(api, {"query": "otitis"})

    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "BAD_RESPONSE"


def test_api_search_connection_failure_is_502(api: Api) -> None:
    assert api.snowflake.router is not None
    api.snowflake.router.post(SEARCH_URL).mock(side_effect=httpx.ConnectError("refused"))
    response = search(api, {"query": "otitis"})

    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "DEPENDENCY_ERROR"


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "limit": 1001},
        {"query": "x", "limit": 0},
        {"query": ""},
        {"query": "x", "columns": ["NOTE_ID; DROP TABLE"]},
        {"query": "x", "filter": ["not", "an", "object"]},
        {"query": "x", "scoring": {}},
    ],
)
def test_api_search_invalid_requests_are_422(api: Api, body: dict[str, Any]) -> None:
    response = search(api, body)

    assert response["statusCode"] == 422
    assert api.snowflake.search_requests == []


def test_api_search_service_name_parsing() -> None:
    parsed = SearchService.parse("pediatric_ml.clinical_data.notes_search")
    assert parsed.query_path() == (
        "/api/v2/databases/PEDIATRIC_ML/schemas/CLINICAL_DATA"
        "/cortex-search-services/NOTES_SEARCH:query"
    )
    for bad in ("NOTES_SEARCH", "A.B", "A.B.C/../D", "A.B.C:query"):
        with pytest.raises(ConfigurationError):
            SearchService.parse(bad)
