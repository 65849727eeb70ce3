"""Semantic search over clinical notes through the Cortex Search REST API.

``POST <account_url>/api/v2/databases/<db>/schemas/<schema>/cortex-search-services/<name>:query``
with a bearer token (PAT, or key-pair JWT plus ``X-Snowflake-Authorization-Token-Type``) and
``{"query", "columns", "filter", "limit"}``; the answer holds ``results``
(docs/SNOWFLAKE_FACTS.md). The service is named by ``CORTEX_SEARCH_SERVICE``
(``DB.SCHEMA.NAME``). Errors carry the status and a fixed text: never the query, the filter or
the response body.

Every query names its columns: without ``columns`` Cortex Search returns the search column
itself, here the note text (PHI). A caller that names none gets ``DEFAULT_SEARCH_COLUMNS``
(ids and attributes); the note text comes back only to a caller who asks for it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from spcs_gateway.errors import (
    ConfigurationError,
    ErrorCode,
    GatewayError,
    PoisonError,
    ThrottledError,
    TransientError,
)
from spcs_gateway.spcs_attempt import parse_retry_after

CORTEX_SEARCH_SERVICE_ENV = "CORTEX_SEARCH_SERVICE"
DEFAULT_SEARCH_SERVICE = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
_PART = r"[A-Za-z_][A-Za-z0-9_$]*"
_FQN = re.compile(rf"^({_PART})\.({_PART})\.({_PART})$")


class RestAuth(Protocol):
    def rest_auth_headers(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class SearchService:
    database: str
    schema: str
    name: str

    @classmethod
    def parse(cls, fqn: str) -> SearchService:
        match = _FQN.match(fqn.strip())
        if match is None:
            raise ConfigurationError(
                ErrorCode.CONFIGURATION_ERROR,
                f"{CORTEX_SEARCH_SERVICE_ENV} must be DATABASE.SCHEMA.SERVICE",
            )
        return cls(*(part.upper() for part in match.groups()))

    def query_path(self) -> str:
        return (
            f"/api/v2/databases/{self.database}/schemas/{self.schema}"
            f"/cortex-search-services/{self.name}:query"
        )


# What a search answers when the caller names no columns: ids and attributes, not NOTE_TEXT.
DEFAULT_SEARCH_COLUMNS: tuple[str, ...] = (
    "NOTE_ID",
    "PATIENT_ID",
    "NOTE_TYPE",
    "DEPARTMENT",
    "NOTE_DATE",
)


def _search_error(status: int, retry_after: float | None) -> GatewayError:
    if status in (400, 422):
        return PoisonError(
            ErrorCode.INVALID_EVENT, f"search rejected (HTTP {status})", status=status
        )
    if status in (401, 403):
        code = ErrorCode.PRIVILEGE_MISSING if status == 403 else ErrorCode.AUTH_FAILED
        return ConfigurationError(code, f"search refused (HTTP {status})", status=status)
    if status == 404:
        return ConfigurationError(
            ErrorCode.ENDPOINT_NOT_FOUND, "search service not found (HTTP 404)", status=status
        )
    if status == 429:
        return ThrottledError(
            ErrorCode.THROTTLED,
            "search throttled (HTTP 429)",
            status=status,
            retry_after=retry_after,
        )
    return TransientError(
        ErrorCode.DEPENDENCY_ERROR, f"search failed (HTTP {status})", status=status
    )


class CortexSearchClient:
    def __init__(
        self,
        account_url: str,
        auth: RestAuth,
        http: httpx.Client,
        service: SearchService,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = account_url.rstrip("/") + service.query_path()
        self._auth = auth
        self._http = http
        self._timeout = timeout
        self._clock = clock
        self.service = service

    @property
    def url(self) -> str:
        return self._url

    def query(
        self,
        query: str,
        *,
        columns: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Rows (the requested columns) and Snowflake's request id. Raises ``GatewayError``."""
        body: dict[str, Any] = {
            "query": query,
            "columns": list(columns or DEFAULT_SEARCH_COLUMNS),
            "limit": limit,
        }
        if filter:
            body["filter"] = filter
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self._auth.rest_auth_headers(),
        }
        try:
            response = self._http.post(
                self._url, content=json.dumps(body), headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"search failed ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
            raise _search_error(response.status_code, retry_after)
        try:
            document = response.json()
        except ValueError:
            raise TransientError(ErrorCode.BAD_RESPONSE, "search answer is not JSON") from None
        results = document.get("results") if isinstance(document, dict) else None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise TransientError(ErrorCode.BAD_RESPONSE, "search answer has no results list")
        request_id = document.get("request_id")
        return results, request_id if isinstance(request_id, str) else None
