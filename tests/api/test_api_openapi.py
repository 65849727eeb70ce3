"""The committed openapi.json is what the code generates and states what the API accepts;
Swagger UI is off by default."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from api_support import REPO, Api, api_event, body_of
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from spcs_gateway.api import build_resolver
from spcs_gateway.api.models import ClassificationRequest, EntitiesRequest
from spcs_gateway.api.openapi import openapi_document

ROUTES = {
    ("post", "/v1/notes/entities"),
    ("post", "/v1/images/classifications"),
    ("post", "/v1/notes/search"),
    ("get", "/v1/services"),
    ("get", "/v1/services/{name}"),
    ("post", "/v1/services/{name}/resume"),
    ("post", "/v1/services/{name}/suspend"),
    ("post", "/v1/services/{name}/scale"),
    ("post", "/v1/notes/stored/entities"),
    ("post", "/v1/notes/stored/search"),
}


def test_api_openapi_committed_copy_is_current() -> None:
    committed = (REPO / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_document(), (
        "openapi.json is stale: run `make openapi` "
        "(python -m spcs_gateway.api.openapi > openapi.json) and commit it"
    )


def test_api_openapi_script_prints_the_document() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spcs_gateway.api.openapi"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == openapi_document()


def test_api_openapi_describes_every_route_and_error_shape() -> None:
    document = json.loads(openapi_document())
    found = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert found == ROUTES
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # Powertools' default 422 shape is not used
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            assert "422" in responses, (method, path)
            ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorResponse")
            assert all("X-Request-Id" in r["headers"] for r in responses.values())
    entities = document["paths"]["/v1/notes/entities"]["post"]["responses"]
    assert "Retry-After" in entities["503"]["headers"]
    assert schemas["SearchRequest"]["properties"]["limit"]["maximum"] == 1000


def test_api_swagger_ui_is_off_by_default(api: Api) -> None:
    response = api.invoke(api_event("GET", "/swagger"))
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "NOT_FOUND"
    enabled = build_resolver(enable_swagger=True)
    assert any(route.path == "/swagger" for route in enabled._static_routes)


def _schema_accepts(name: str) -> Callable[[Any], bool]:
    document = json.loads(openapi_document())
    root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(root).is_valid


PERSIST = {"event_id": "e-1", "note_id": "n-1"}
IMAGE = {"base64": "iVBORw0KGgo=", "content_type": "image/png"}


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (EntitiesRequest, {"text": "a"}),
        (EntitiesRequest, {"texts": ["a", "b"]}),
        (EntitiesRequest, {"text": "a", "persist": PERSIST}),
        (EntitiesRequest, {"text": None, "texts": ["a"], "persist": None}),
        (EntitiesRequest, {"text": "a", "texts": None, "wait_seconds": 3}),
        (EntitiesRequest, {}),
        (EntitiesRequest, {"persist": PERSIST}),
        (EntitiesRequest, {"text": "a", "texts": ["b"]}),
        (EntitiesRequest, {"text": "a", "texts": ["b"], "persist": PERSIST}),
        (EntitiesRequest, {"texts": ["a"], "persist": PERSIST}),
        (EntitiesRequest, {"text": None, "texts": None}),
        (EntitiesRequest, {"text": "a", "other": 1}),
        (ClassificationRequest, {"image": IMAGE, "candidate_labels": ["x", "y"]}),
        (ClassificationRequest, {"image": IMAGE, "label_set": "chest_xray"}),
        (ClassificationRequest, {"image": IMAGE, "label_set": "s", "candidate_labels": None}),
        (ClassificationRequest, {"image": IMAGE}),
        (ClassificationRequest, {"image": IMAGE, "label_set": "s", "candidate_labels": ["x"]}),
        (ClassificationRequest, {"image": IMAGE, "label_set": None, "candidate_labels": None}),
        (ClassificationRequest, {"candidate_labels": ["x"]}),
    ],
)
def test_api_openapi_states_what_the_models_accept(model: type[BaseModel], body: Any) -> None:
    """Required and either/or fields: the document and the validators agree, both ways."""
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert _schema_accepts(model.__name__)(body) is accepted


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"image": IMAGE, "candidate_labels": ["x", "x"]}, False),  # the model refuses repeats
        ({"image": IMAGE, "candidate_labels": [" \t"]}, False),  # and blank labels
        ({"image": IMAGE, "candidate_labels": ["x", " y "]}, True),
    ],
)
def test_api_openapi_states_what_the_model_service_refuses(body: Any, valid: bool) -> None:
    assert _schema_accepts("ClassificationRequest")(body) is valid


@pytest.mark.parametrize(
    ("search_filter", "valid"),
    [
        (None, True),
        ({}, True),
        ({"@eq": {"DEPARTMENT": "cardiology"}}, True),
        ({"@contains": {"NOTE_TYPE": "progress"}}, True),
        ({"@gte": {"PATIENT_ID": 10}}, True),
        ({"@lte": {"PATIENT_ID": "P-9"}}, True),
        ({"@not": {"@eq": {"DEPARTMENT": "ed"}}}, True),
        (
            {"@and": [{"@eq": {"DEPARTMENT": "ed"}}, {"@or": [{"@eq": {"NOTE_TYPE": "a"}}]}]},
            True,
        ),
        ({"@eq": {"NOTE_TEXT": "x"}}, False),  # not an attribute column
        ({"@eq": {"DEPARTMENT": "a", "NOTE_TYPE": "b"}}, False),  # one column per comparison
        ({"@eq": {}}, False),
        ({"@eq": {"DEPARTMENT": True}}, False),
        ({"@eq": {"DEPARTMENT": ["a"]}}, False),
        ({"@and": []}, False),
        ({"@or": {"@eq": {"DEPARTMENT": "a"}}}, False),
        ({"@ne": {"DEPARTMENT": "a"}}, False),
        ({"@eq": {"DEPARTMENT": "a"}, "@not": {"@eq": {"NOTE_TYPE": "b"}}}, False),
        ({"DEPARTMENT": "a"}, False),
        (["@eq"], False),
    ],
)
def test_api_openapi_states_the_cortex_search_filter_grammar(
    search_filter: Any, valid: bool
) -> None:
    body = {"query": "otitis", "filter": search_filter}
    assert _schema_accepts("SearchRequest")(body) is valid


def test_api_openapi_names_the_search_service_columns() -> None:
    accepts = _schema_accepts("SearchRequest")
    assert accepts({"query": "q", "columns": ["NOTE_ID", "NOTE_TEXT"]})
    assert not accepts({"query": "q", "columns": ["NOTE_ID; DROP TABLE X"]})
    assert not accepts({"query": "q", "columns": ["OTHER"]})
