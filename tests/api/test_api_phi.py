"""PHI discipline: no canary in any log line or metric the API emits, nor in any error body;
request ids on every answer; sample events valid and served."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import CANARY, Api, api_event, body_of, header, load_event, png_base64

from spcs_gateway.api.models import (
    ClassificationRequest,
    EntitiesRequest,
    SearchRequest,
)

Lines = Callable[[], list[str]]


@pytest.fixture
def log_lines(
    api: Api, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[Lines]:
    """Every line the API logs (its JSON log lines through the production formatter, any
    other logger's records at DEBUG) plus what it prints (EMF metrics)."""
    logger = api.module.logger
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    level = logger.log_level
    logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG)
    printed: list[str] = []

    def lines() -> list[str]:
        printed.extend(capsys.readouterr().out.splitlines())
        others = [
            f"{r.name} {r.getMessage()} {r.__dict__!r} {r.exc_text or ''}"
            for r in caplog.records
            if r.name != logger.name
        ]
        return buffer.getvalue().splitlines() + others + printed

    try:
        yield lines
    finally:
        logger._logger.removeHandler(handler)
        logger.setLevel(level)


def note(extra: str = "") -> str:
    return f"Patient {CANARY} seen for acute otitis media. {extra}".strip()


def image(**extra: Any) -> dict[str, Any]:
    return {"image": {"base64": png_base64(), "content_type": "image/png"}, **extra}


def test_api_phi_canary_never_logged_nor_in_error_bodies(api: Api, log_lines: Lines) -> None:
    post = "POST"
    requests: list[dict[str, Any]] = [
        # successes: the caller gets PHI back, the logs do not
        api_event(post, "/v1/notes/entities", body={"text": note()}),
        api_event(
            post,
            "/v1/notes/entities",
            body={"text": note(), "persist": {"event_id": "e-1", "note_id": "n-1"}},
        ),
        api_event(post, "/v1/images/classifications", body=image(candidate_labels=[CANARY])),
        api_event(
            post, "/v1/notes/search", body={"query": CANARY, "filter": {"@eq": {"X": CANARY}}}
        ),
        # validation failures
        api_event(post, "/v1/notes/entities", body={"text": note(), "texts": [CANARY]}),
        api_event(post, "/v1/notes/entities", body={"text": note(), CANARY: CANARY}),
        api_event(
            post, "/v1/notes/entities", body={"text": 12345, "persist": {"event_id": CANARY}}
        ),
        api_event(post, "/v1/notes/entities", raw_body='{"text": "' + CANARY),
        api_event(post, "/v1/images/classifications", body=image(label_set=CANARY)),
        api_event(post, "/v1/images/classifications", body={"image": {"base64": CANARY}}),
        api_event(post, "/v1/notes/search", body={"query": CANARY, "limit": CANARY}),
        api_event("GET", f"/v1/{CANARY}"),
        api_event("GET", "/v1/services/{name}", path_params={"name": CANARY}),
        api_event(post, "/v1/notes/entities", raw_body=CANARY, content_type="text/plain"),
    ]
    responses = [api.invoke(event) for event in requests]

    # failures further down: the model rejects, the service is not ready, the search rejects
    api.snowflake.status["ner"] = 400
    responses.append(api.invoke(api_event(post, "/v1/notes/entities", body={"text": note()})))
    api.snowflake.status["ner"] = 503
    responses.append(
        api.invoke(api_event(post, "/v1/notes/entities", body={"text": note(), "wait_seconds": 3}))
    )
    api.snowflake.search_status = 400
    responses.append(api.invoke(api_event(post, "/v1/notes/search", body={"query": CANARY})))

    statuses = [r["statusCode"] for r in responses]
    assert statuses[:4] == [200, 200, 200, 200]
    assert all(s >= 400 for s in statuses[4:])
    for response in responses:
        assert header(response, "X-Request-Id")
        if response["statusCode"] >= 400:
            assert CANARY not in response["body"]
            assert set(body_of(response)) <= {"error", "service"}

    lines = log_lines()
    access = [line for line in lines if '"message":"api request"' in line]
    assert len(access) == len(responses)  # one access line per request, nothing skipped
    routes = [json.loads(line)["route"] for line in access]
    assert routes.count("/v1/notes/entities") == 9
    assert routes.count("<unmatched>") == 1  # the caller-chosen path is not logged
    assert "/v1/services/{name}" in routes
    offending = [line for line in lines if CANARY in line]
    assert offending == []


def test_api_unexpected_exception_text_is_withheld(
    api: Api, log_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spcs_gateway.api import search as search_module

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"driver said: {CANARY}")

    monkeypatch.setattr(search_module.CortexSearchClient, "query", explode)
    response = api.invoke(api_event("POST", "/v1/notes/search", body={"query": "otitis"}))

    assert response["statusCode"] == 500
    assert body_of(response)["error"]["code"] == "INTERNAL_ERROR"
    lines = log_lines()
    assert any("RuntimeError (message withheld)" in line for line in lines)
    assert [line for line in lines if CANARY in line] == []


def test_api_generates_request_id_when_gateway_gives_none(api: Api) -> None:
    event = api_event("GET", "/v1/services", request_id=None)
    first, second = api.invoke(event), api.invoke(event)
    assert header(first, "X-Request-Id") != header(second, "X-Request-Id")
    assert len(header(first, "X-Request-Id") or "") == 36


def test_api_malformed_event_still_answers_json_with_request_id(api: Api, log_lines: Lines) -> None:
    response = api.invoke({"requestContext": {"requestId": "r-1"}, "body": CANARY})
    assert response["statusCode"] in (404, 500)
    assert header(response, "X-Request-Id") == "r-1"
    assert CANARY not in response["body"]
    assert [line for line in log_lines() if CANARY in line] == []


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("api_entities.json", EntitiesRequest),
        ("api_classify.json", ClassificationRequest),
        ("api_search.json", SearchRequest),
        ("api_services.json", None),
        ("api_service_resume.json", None),
    ],
)
def test_api_sample_events_are_valid_and_served(api: Api, name: str, model: Any) -> None:
    event = load_event(name)
    if model is not None:
        model.model_validate_json(event["body"])
    else:
        assert event["body"] is None
    response = api.invoke(event)
    assert response["statusCode"] in (200, 202), body_of(response)
    assert header(response, "X-Request-Id") == event["requestContext"]["requestId"]
    assert json.loads(response["body"])
