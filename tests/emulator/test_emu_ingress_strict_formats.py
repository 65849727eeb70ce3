"""Request formats checked against the deployment's signature (spcs_models.spec), through the
running emulator: flat rows carry every parameter, the other formats fall back to defaults,
parameter values are type-checked, the backend gets them, errors name no values."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from spcs_models import spec

pytestmark = pytest.mark.emulator

NOTE = "Started amoxicillin for acute otitis media."
LABELS = ["pneumonia", "normal chest radiograph", "pleural effusion"]
DEFAULT = spec.BIOMEDCLIP_TEMPLATE
OTHER = "a chest x-ray showing {}"


def png_base64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (77, 11, 140)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


IMAGE = png_base64()


@pytest.fixture(scope="module")
def clip(emulator: Any) -> Any:
    headers = emulator.token_header("biomedclip")
    url = emulator.inference_url("biomedclip")

    def post(body: Any) -> httpx.Response:
        return httpx.post(url, json=body, headers=headers, timeout=30)

    return post


@pytest.fixture(scope="module")
def ner(emulator: Any) -> Any:
    headers = emulator.token_header("biobert_ner")
    url = emulator.inference_url("biobert_ner")

    def post(body: Any) -> httpx.Response:
        return httpx.post(url, json=body, headers=headers, timeout=30)

    return post


def scores(response: httpx.Response) -> dict[str, float]:
    assert response.status_code == 200, response.text
    [[_, out]] = response.json()["data"]
    return {item["label"]: item["score"] for item in out["labels"]}


def test_the_registry_document_carries_the_deployment(emulator: Any) -> None:
    for deployment in spec.DEPLOYMENTS:
        entry = emulator.service(deployment.logical_name)
        assert entry["method"] == "predict"
        assert emulator.inference_url(deployment.logical_name).endswith("/predict")
        if "signature" in entry:  # once the gateway's registry model knows the field
            assert entry["signature"] == deployment.signature.to_dict()


def test_flat_without_the_parameter_columns_is_400(clip: Any) -> None:
    response = clip({"data": [[0, IMAGE, LABELS]]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "row 0" in message
    assert "hypothesis_template" in message
    assert "expected 3 value(s)" in message
    assert IMAGE not in response.text
    assert "pneumonia" not in response.text


def test_flat_with_every_parameter_is_200(clip: Any) -> None:
    assert set(scores(clip({"data": [[0, IMAGE, LABELS, DEFAULT]]}))) == set(LABELS)


def test_flat_with_too_many_values_is_400(clip: Any, ner: Any) -> None:
    assert clip({"data": [[0, IMAGE, LABELS, DEFAULT, 30.0]]}).status_code == 400
    # No parameters in the NER signature: exactly the row index and the text.
    assert ner({"data": [[0, NOTE]]}).status_code == 200
    extra = ner({"data": [[0, NOTE, "x"]]})
    assert extra.status_code == 400
    assert "expected 1 value(s)" in extra.json()["message"]
    assert "amoxicillin" not in extra.text


def test_defaults_and_values_reach_the_backend(clip: Any) -> None:
    flat_default = scores(clip({"data": [[0, IMAGE, LABELS, DEFAULT]]}))
    flat_other = scores(clip({"data": [[0, IMAGE, LABELS, OTHER]]}))
    assert flat_default != flat_other  # the template is what the backend scores
    row = {"images": IMAGE, "candidate_labels": LABELS}
    # Wide: parameters by name, a missing one gets the deployment's default.
    assert scores(clip({"data": [[0, row]]})) == flat_default
    assert scores(clip({"data": [[0, {**row, "hypothesis_template": OTHER}]]})) == flat_other
    split = {"index": [0], "columns": ["images", "candidate_labels"], "data": [[IMAGE, LABELS]]}
    assert scores(clip({"dataframe_split": split})) == flat_default
    assert scores(clip({"dataframe_split": split, "params": {"hypothesis_template": OTHER}})) == (
        flat_other
    )
    assert scores(clip({"dataframe_records": [row]})) == flat_default
    records = {"dataframe_records": [row], "params": {"hypothesis_template": OTHER}}
    assert scores(clip(records)) == flat_other


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"dataframe_records": [{"images": "i", "candidate_labels": ["a"]}],
          "params": {"temperature": 0.5}}, "unknown parameter(s) temperature"),
        ({"data": [[0, "IMG", ["a"], 5]]}, "parameter hypothesis_template must be of type STRING"),
        ({"data": [[0, "IMG", ["a"], None]]}, "parameter hypothesis_template must not be null"),
        ({"data": [[0, {"images": "IMG", "candidate_labels": ["a"], "hypothesis_template": []}]]},
         "must be of type STRING"),
        ({"dataframe_records": [{"images": "i", "candidate_labels": ["a"]}],
          "params": {"hypothesis_template": None}}, "must not be null"),
        ({"data": [[0, "IMG", ["a"], DEFAULT], [1, "IMG", ["a"], OTHER]]},
         "row 1: parameter hypothesis_template differs"),
        ({"data": [[0, "IMG", ["a"], DEFAULT]], "params": {"hypothesis_template": OTHER}},
         "travel in the rows"),
    ],
)  # fmt: skip
def test_parameter_errors_name_the_parameter_not_the_value(
    clip: Any, body: Any, reason: str
) -> None:
    response = clip(body)
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert "IMG" not in response.text
    assert "chest x-ray" not in response.text


def test_ner_params_are_refused_when_the_signature_has_none(ner: Any) -> None:
    response = ner({"dataframe_records": [{"inputs": NOTE}], "params": {"aggregation": "x"}})
    assert response.status_code == 400
    assert "unknown parameter(s) aggregation" in response.json()["message"]
    assert ner({"dataframe_records": [{"inputs": NOTE}], "params": {}}).status_code == 200


def test_answers_name_the_output_column(clip: Any, ner: Any) -> None:
    [[row, out]] = ner({"data": [[4, NOTE]]}).json()["data"]
    assert row == 4
    assert set(out) == {spec.NER.signature.output_name}
    [[_, out]] = clip({"data": [[0, IMAGE, LABELS, DEFAULT]]}).json()["data"]
    assert set(out) == {spec.BIOMEDCLIP.signature.output_name}
