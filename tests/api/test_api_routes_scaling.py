"""POST /v1/services/{name}/scale through the Lambda handler (fake control client)."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api, api_event, body_of

SCALE = "/v1/services/{name}/scale"


def scale(api: Api, name: str, body: Any) -> dict[str, Any]:
    return api.invoke(api_event("POST", SCALE, path_params={"name": name}, body=body))


def test_api_scale_sets_the_range_through_the_control_function(api: Api) -> None:
    response = scale(api, "biobert_ner", {"min_instances": 2, "max_instances": 3})
    assert response["statusCode"] == 200
    assert body_of(response) == {
        "name": "biobert_ner",
        "outcome": "scaled",
        "min_instances": 2,
        "max_instances": 3,
        "status": "RUNNING",
    }
    assert api.control.scale_calls == [("biobert_ner", 2, 3)]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("biobert_ner", {"min_instances": 1, "max_instances": 4}),  # above the registry's 3
        ("biobert_ner", {"min_instances": 3, "max_instances": 2}),  # min above max
        ("biomedclip", {"min_instances": 1, "max_instances": 2}),  # a 1..1 service
    ],
)
def test_api_scale_outside_the_registry_range_is_409(api: Api, name: str, body: Any) -> None:
    response = scale(api, name, body)
    assert response["statusCode"] == 409
    assert body_of(response)["error"]["code"] == "SCALE_OUT_OF_RANGE"
    assert api.control.scale_calls == []


def test_api_scale_of_an_unknown_service_is_404(api: Api) -> None:
    response = scale(api, "nope", {"min_instances": 1, "max_instances": 1})
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "UNKNOWN_SERVICE"
    assert api.control.scale_calls == []


@pytest.mark.parametrize(
    "body",
    [{"min_instances": 0, "max_instances": 1}, {"min_instances": 1}, {"min_instances": "x"}],
)
def test_api_scale_validates_the_body(api: Api, body: Any) -> None:
    response = scale(api, "biobert_ner", body)
    assert response["statusCode"] == 422
    assert api.control.scale_calls == []


def test_api_scale_refused_by_the_control_plane_is_409(api: Api) -> None:
    api.control.scale_answer = {"ok": False, "outcome": "refused", "code": "OUT_OF_RANGE"}
    response = scale(api, "biobert_ner", {"min_instances": 1, "max_instances": 2})
    assert response["statusCode"] == 409
    problem = body_of(response)["error"]
    assert (problem["code"], problem.get("reason")) == ("SCALE_REFUSED", "OUT_OF_RANGE")


def test_api_scale_without_the_control_function_is_502(api: Api) -> None:
    api.control.fail = True
    response = scale(api, "biobert_ner", {"min_instances": 1, "max_instances": 2})
    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "CONTROL_UNAVAILABLE"
