"""Service status and control routes through the Lambda handler (fake control client)."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api, api_event, body_of, header, load_event

from spcs_gateway.lifecycle import ServiceStatus


def view(name: str, service: str, **extra: Any) -> dict[str, Any]:
    """A ``control.ServiceOverview.as_dict()`` document."""
    doc: dict[str, Any] = {
        "name": name,
        "service": service,
        "compute_pool": "CPU_POOL",
        "status": "RUNNING",
        "ready": True,
        "last_activity": "2025-01-15T09:30:00+00:00",
        "idle_countdown_s": 412.5,
        "idle_reason": "idle_window_pending",
        "resumes_today": 2,
        "suspends_today": 1,
        "mappings_paused": False,
        "lease_held": False,
        "backlog": 0,
        "on_demand": 0,
        "code": None,
    }
    doc.update(extra)
    return doc


@pytest.fixture
def views(api: Api) -> list[dict[str, Any]]:
    api.control.views = [
        view("biobert_ner", "PEDIATRIC_ML.MODELS.BIOBERT_NER"),
        view(
            "biomedclip",
            "PEDIATRIC_ML.MODELS.BIOMEDCLIP",
            status="SUSPENDED",
            ready=False,
            idle_countdown_s=None,
            idle_reason="not_running",
            backlog=None,
        ),
        view("not_in_registry", "X.Y.Z"),
    ]
    return api.control.views


def path_event(method: str, resource: str, name: str, **kwargs: Any) -> dict[str, Any]:
    return api_event(method, resource, path_params={"name": name}, **kwargs)


def test_api_list_services(api: Api, views: list[dict[str, Any]]) -> None:
    response = api.invoke(load_event("api_services.json"))

    assert response["statusCode"] == 200
    assert header(response, "X-Request-Id") == "5b1f0a3e-1c2d-4e5f-8a9b-000000000004"
    services = body_of(response)["services"]
    assert [s["name"] for s in services] == ["biobert_ner", "biomedclip"]  # registry only
    first = services[0]
    assert first["idle_countdown_s"] == 412.5
    assert first["resumes_today"] == 2
    assert first["last_activity"].startswith("2025-01-15T09:30:00")
    assert services[1]["status"] == "SUSPENDED"
    assert services[1]["backlog"] is None


def test_api_get_one_service(api: Api, views: list[dict[str, Any]]) -> None:
    response = api.invoke(path_event("GET", "/v1/services/{name}", "biomedclip"))

    assert response["statusCode"] == 200
    body = body_of(response)
    assert (body["name"], body["status"], body["idle_reason"]) == (
        "biomedclip",
        "SUSPENDED",
        "not_running",
    )


def test_api_unknown_service_is_404_and_bad_name_is_422(api: Api) -> None:
    unknown = api.invoke(path_event("GET", "/v1/services/{name}", "nope"))
    assert unknown["statusCode"] == 404
    assert body_of(unknown)["error"]["code"] == "UNKNOWN_SERVICE"

    bad = api.invoke(path_event("POST", "/v1/services/{name}/resume", "Bad.Name"))
    assert bad["statusCode"] == 422
    assert api.control.ensure_calls == []


def test_api_control_unreachable_is_502(api: Api, views: list[dict[str, Any]]) -> None:
    api.control.fail = True
    for event in (
        api_event("GET", "/v1/services"),
        path_event("GET", "/v1/services/{name}", "biobert_ner"),
        path_event("POST", "/v1/services/{name}/resume", "biobert_ner"),
        path_event("POST", "/v1/services/{name}/suspend", "biobert_ner"),
    ):
        response = api.invoke(event)
        assert response["statusCode"] == 502
        assert body_of(response)["error"]["code"] == "CONTROL_UNAVAILABLE"


def test_api_resume_is_accepted_with_current_status(api: Api) -> None:
    api.state.set("biobert_ner", ServiceStatus.SUSPENDED)
    response = api.invoke(load_event("api_service_resume.json"))

    assert response["statusCode"] == 202
    assert body_of(response) == {
        "name": "biobert_ner",
        "accepted": True,
        "service": {"name": "biobert_ner", "status": "SUSPENDED", "ready": False},
    }
    assert api.control.ensure_calls == ["biobert_ner"]


def test_api_suspend_success(api: Api) -> None:
    api.control.suspend_answer = {
        "ok": True,
        "service": "biobert_ner",
        "outcome": "suspended",
        "status": "RUNNING",
        "ready": True,
        "reason": "manual",
    }
    response = api.invoke(path_event("POST", "/v1/services/{name}/suspend", "biobert_ner"))

    assert response["statusCode"] == 200
    assert body_of(response) == {"name": "biobert_ner", "outcome": "suspended", "status": "RUNNING"}
    assert api.control.suspend_calls == [("biobert_ner", False)]


def test_api_suspend_refused_while_work_is_queued_unless_forced(api: Api) -> None:
    api.control.suspend_answer = {
        "ok": False,
        "service": "biobert_ner",
        "outcome": "refused",
        "status": "RUNNING",
        "reason": "backlog",
        "code": "BACKLOG",
    }
    refused = api.invoke(path_event("POST", "/v1/services/{name}/suspend", "biobert_ner"))

    assert refused["statusCode"] == 409
    error = body_of(refused)["error"]
    assert (error["code"], error["reason"]) == ("SUSPEND_REFUSED", "BACKLOG")

    api.control.suspend_answer = {"ok": True, "outcome": "suspended", "status": "RUNNING"}
    forced = api.invoke(
        path_event("POST", "/v1/services/{name}/suspend", "biobert_ner", query={"force": "true"})
    )
    assert forced["statusCode"] == 200
    assert api.control.suspend_calls == [("biobert_ner", False), ("biobert_ner", True)]


def test_api_suspend_control_error_is_502(api: Api) -> None:
    api.control.suspend_answer = {"ok": False, "outcome": "error", "code": "DEPENDENCY_ERROR"}
    response = api.invoke(path_event("POST", "/v1/services/{name}/suspend", "biomedclip"))

    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "CONTROL_UNAVAILABLE"
