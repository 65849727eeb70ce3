"""POST /v1/notes/entities and /v1/images/classifications through the Lambda handler."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import NER_URL, ZSC_URL, Api, api_event, body_of, header, png_base64

from spcs_gateway.lifecycle import ServiceStatus

NOTE = "9 y/o with acute otitis media, started amoxicillin. History of Crohn's disease."


def entities(api: Api, body: Any, **kwargs: Any) -> dict[str, Any]:
    return api.invoke(api_event("POST", "/v1/notes/entities", body=body, **kwargs))


def classify(api: Api, body: Any, **kwargs: Any) -> dict[str, Any]:
    return api.invoke(api_event("POST", "/v1/images/classifications", body=body, **kwargs))


# -- entities ----------------------------------------------------------------------------------


def test_api_entities_single_text_whole_word_spans(api: Api) -> None:
    response = entities(api, {"text": NOTE})

    assert response["statusCode"] == 200
    assert header(response, "X-Request-Id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    body = body_of(response)
    assert body["service"] == "biobert_ner"
    assert body["model_version"] == "v1"
    assert body["persisted"] is None
    [result] = body["results"]
    found = [(e["label"], e["text"]) for e in result["entities"]]
    assert found == [
        ("DISEASE", "otitis media"),
        ("CHEMICAL", "amoxicillin"),
        ("DISEASE", "Crohn's disease"),
    ]
    for entity in result["entities"]:
        assert NOTE[entity["start"] : entity["end"]] == entity["text"]
        assert 0.75 <= entity["score"] < 1.0


def test_api_entities_many_texts_keep_order(api: Api) -> None:
    texts = ["Started ibuprofen.", "No findings.", "Known asthma, on albuterol."]
    response = entities(api, {"texts": texts})

    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [[e["text"] for e in r["entities"]] for r in results] == [
        ["ibuprofen"],
        [],
        ["asthma", "albuterol"],
    ]


def test_api_entities_marks_on_demand_call_and_activity(api: Api) -> None:
    seen: list[int] = []
    original = api.snowflake.infer_ner

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(api.state.in_flight("biobert_ner"))
        return original(request)

    assert api.snowflake.router is not None
    api.snowflake.router.post(NER_URL).mock(side_effect=spy)
    assert entities(api, {"text": NOTE})["statusCode"] == 200
    assert seen == [1]  # in flight while the service was called
    assert api.state.in_flight("biobert_ner") == 0
    assert api.state.begins == api.state.ends == ["biobert_ner"]
    assert "biobert_ner" in api.state.activity


def test_api_entities_persist_merges_result_row(api: Api) -> None:
    body = {"text": NOTE, "persist": {"event_id": "evt-42", "note_id": "NOTE-7"}}
    response = entities(api, body)

    assert response["statusCode"] == 200
    assert body_of(response)["persisted"] == {
        "event_id": "evt-42",
        "note_id": "NOTE-7",
        "table": "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS",
    }
    row = api.sink.rows["evt-42"]
    assert (row.kind, row.subject_id, row.service, row.model_version, row.status) == (
        "clinical-note",
        "NOTE-7",
        "PEDIATRIC_ML.MODELS.BIOBERT_NER",
        "v1",
        "SUCCEEDED",
    )
    # The router's row shape: the model's raw token output.
    assert [t["entity"] for t in row.output][:2] == ["B-DISEASE", "I-DISEASE"]


def test_api_entities_persist_failure_is_502_with_stable_code(api: Api) -> None:
    api.sink.fail = True
    body = {"text": NOTE, "persist": {"event_id": "evt-43", "note_id": "NOTE-8"}}
    response = entities(api, body)

    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "RESULTS_WRITE_FAILED"
    assert api.state.ends == ["biobert_ner"]


@pytest.mark.parametrize(
    "body",
    [
        {"text": NOTE, "texts": [NOTE]},
        {},
        {"texts": [NOTE], "persist": {"event_id": "e1", "note_id": "n1"}},
        {"texts": ["a"] * 33},
        {"text": "x" * 100_001},
        {"texts": ["x" * 100_000] * 5},
        {"text": ""},
        {"text": NOTE, "persist": {"event_id": "has space", "note_id": "n1"}},
        {"text": NOTE, "wait_seconds": 26},
    ],
    ids=[
        "both",
        "neither",
        "persist-many",
        "too-many",
        "too-long",
        "total-too-long",
        "empty",
        "bad-id",
        "wait-too-long",
    ],
)
def test_api_entities_invalid_requests_are_422(api: Api, body: dict[str, Any]) -> None:
    response = entities(api, body)

    assert response["statusCode"] == 422
    error = body_of(response)["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert error["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert error["errors"]
    assert all(set(e) == {"loc", "type"} for e in error["errors"])
    assert api.snowflake.ingress_calls == []


def test_api_entities_bad_query_parameter_is_422(api: Api) -> None:
    response = entities(api, {"text": NOTE}, query={"wait_seconds": "forever"})

    assert response["statusCode"] == 422
    assert body_of(response)["error"]["errors"][0]["loc"] == ["query", "wait_seconds"]


def test_api_entities_non_json_body_is_422_without_echo(api: Api) -> None:
    response = api.invoke(
        api_event("POST", "/v1/notes/entities", raw_body='{"text": "Jane Roe, MRN 4471')
    )
    assert response["statusCode"] == 422
    assert "Jane" not in response["body"]
    assert "4471" not in response["body"]


def test_api_entities_model_rejection_is_400(api: Api) -> None:
    api.snowflake.refused_text = NOTE  # this input only: a probe row is accepted
    response = entities(api, {"text": NOTE})

    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "MODEL_REJECTED_INPUT"


def test_api_service_refusing_everything_is_a_signature_fault_not_the_callers(api: Api) -> None:
    api.snowflake.status["ner"] = 400  # every request, the probe row included
    response = entities(api, {"text": NOTE})

    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "SIGNATURE_MISMATCH"


def test_api_entities_throttled_is_429_with_retry_after(api: Api) -> None:
    api.snowflake.status["ner"] = 429
    response = entities(api, {"text": NOTE})

    assert response["statusCode"] == 429
    assert body_of(response)["error"]["code"] == "THROTTLED"
    assert header(response, "Retry-After") == "1"


# -- not ready: 503 or a bounded wait ----------------------------------------------------------


def test_api_suspended_service_answers_503_with_retry_after_and_status(api: Api) -> None:
    api.state.set("biobert_ner", ServiceStatus.SUSPENDED)
    api.snowflake.status["ner"] = 503
    response = entities(api, {"text": NOTE})

    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "60"
    assert header(response, "X-Request-Id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    body = body_of(response)
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["service"] == {"name": "biobert_ner", "status": "SUSPENDED", "ready": False}
    assert api.control.ensure_calls == ["biobert_ner"]
    assert api.clock.sleeps == []  # wait_seconds defaults to 0: no waiting
    assert api.state.in_flight("biobert_ner") == 0


def test_api_bounded_wait_succeeds_when_service_becomes_ready(api: Api) -> None:
    # Two attempts fail (each a 503 and its one in-call retry), the third gets the answer.
    api.snowflake.unavailable["ner"] = 4
    response = entities(api, {"text": NOTE, "wait_seconds": 10})

    assert response["statusCode"] == 200
    first = body_of(response)["results"][0]["entities"][0]
    assert first["text"] == "otitis media"
    assert api.snowflake.ingress_calls == ["ner"] * 5
    assert api.control.ensure_calls == ["biobert_ner"]
    assert api.clock.sleeps == [0.5, 1.0]
    assert api.state.begins == api.state.ends == ["biobert_ner"]


def test_api_wait_is_bounded_then_503(api: Api) -> None:
    api.state.set("biobert_ner", ServiceStatus.PENDING)
    api.snowflake.status["ner"] = 503
    response = entities(api, {"text": NOTE}, query={"wait_seconds": "5"})

    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "15"
    assert sum(api.clock.sleeps) == pytest.approx(5.0)
    assert max(api.clock.sleeps) <= 2.0


def test_api_wait_respects_lambda_remaining_time(api: Api) -> None:
    api.snowflake.status["ner"] = 503
    response = api.invoke(
        api_event("POST", "/v1/notes/entities", body={"text": NOTE, "wait_seconds": 25}),
        remaining_ms=7_000,  # 7 s left, 3 s kept for the answer: 4 s of waiting at most
    )
    assert response["statusCode"] == 503
    assert sum(api.clock.sleeps) == pytest.approx(4.0)


def test_api_control_failure_still_answers_503(api: Api) -> None:
    api.control.fail = True
    api.state.fail = True
    api.snowflake.status["ner"] = 502
    response = entities(api, {"text": NOTE})

    assert response["statusCode"] == 503
    assert body_of(response)["service"]["status"] == "UNKNOWN"
    assert header(response, "Retry-After") == "30"


# -- image classification ----------------------------------------------------------------------


def test_api_classify_with_label_set_ranks_labels(api: Api) -> None:
    body = {
        "image": {"base64": png_base64(), "content_type": "image/png"},
        "label_set": "radiology-modality",
    }
    response = classify(api, body)

    assert response["statusCode"] == 200
    result = body_of(response)
    assert result["service"] == "biomedclip"
    assert result["model_version"] == "v2"
    assert [item["label"] for item in result["labels"]] == [
        "CT abdomen",
        "brain MRI",
        "chest x-ray",
    ]
    assert api.state.begins == ["biomedclip"]


def test_api_classify_with_candidate_labels(api: Api) -> None:
    body = {
        "image": {"base64": png_base64(), "content_type": "image/png"},
        "candidate_labels": ["otoscopy", "dermatology photo"],
    }
    response = classify(api, body)

    assert response["statusCode"] == 200
    assert [x["label"] for x in body_of(response)["labels"]] == ["dermatology photo", "otoscopy"]


@pytest.mark.parametrize(
    ("image", "labels", "status", "code"),
    [
        ({"base64": "not base64!!", "content_type": "image/png"}, None, 400, "INVALID_IMAGE"),
        ({"base64": png_base64(), "content_type": "image/jpeg"}, None, 400, "INVALID_IMAGE"),
        (
            {"base64": png_base64((1200, 1000)), "content_type": "image/png"},
            None,
            413,
            "IMAGE_TOO_LARGE",
        ),
        (
            {"base64": png_base64(), "content_type": "image/png"},
            {"label_set": "nope"},
            400,
            "UNKNOWN_LABEL_SET",
        ),
        (
            {"base64": png_base64(), "content_type": "image/png"},
            {"candidate_labels": [f"l{i}" for i in range(6)]},
            400,
            "INVALID_EVENT",
        ),
    ],
    ids=["not-base64", "wrong-type", "too-many-pixels", "unknown-set", "too-many-labels"],
)
def test_api_classify_refuses_bad_input_before_inference(
    api: Api, image: dict[str, str], labels: dict[str, Any] | None, status: int, code: str
) -> None:
    body = {"image": image, **(labels or {"label_set": "radiology-modality"})}
    response = classify(api, body)

    assert response["statusCode"] == status
    assert body_of(response)["error"]["code"] == code
    assert api.snowflake.ingress_calls == []


def test_api_classify_needs_exactly_one_label_source(api: Api) -> None:
    image = {"base64": png_base64(), "content_type": "image/png"}
    both = classify(
        api, {"image": image, "label_set": "radiology-modality", "candidate_labels": ["a"]}
    )
    neither = classify(api, {"image": image})
    assert both["statusCode"] == neither["statusCode"] == 422


def test_api_classify_bad_model_output_is_502(api: Api) -> None:
    assert api.snowflake.router is not None
    api.snowflake.router.post(ZSC_URL).mock(
        return_value=httpx.Response(200, json={"data": [[0, {"labels": [{"nope": 1}]}]]})
    )
    body = {
        "image": {"base64": png_base64(), "content_type": "image/png"},
        "label_set": "radiology-modality",
    }
    response = classify(api, body)

    assert response["statusCode"] == 502
    assert body_of(response)["error"]["code"] == "BAD_RESPONSE"
