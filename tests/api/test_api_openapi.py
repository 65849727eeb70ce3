"""The committed openapi.json is what the code generates; Swagger UI is off by default."""

from __future__ import annotations

import json
import subprocess
import sys

from api_support import REPO, Api, api_event, body_of

from spcs_gateway.api import create_api
from spcs_gateway.api.openapi import openapi_document

ROUTES = {
    ("post", "/v1/notes/entities"),
    ("post", "/v1/images/classifications"),
    ("post", "/v1/notes/search"),
    ("get", "/v1/services"),
    ("get", "/v1/services/{name}"),
    ("post", "/v1/services/{name}/resume"),
    ("post", "/v1/services/{name}/suspend"),
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
    enabled = create_api(None, enable_swagger=True)
    assert any(route.path == "/swagger" for route in enabled._static_routes)
