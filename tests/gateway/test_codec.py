"""SPCS request/response codec for both tasks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spcs_gateway.codec import (
    ENVELOPE_OVERHEAD,
    decode_response,
    encode_request,
    encoded_row_size,
)
from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.registry import ServiceConfig

CANARY = "Patient CANARY-9d8e has asthma"
ENTITY = {
    "word": "asthma",
    "score": 0.98,
    "entity": "B-DISEASE",
    "index": 4,
    "start": 24,
    "end": 30,
}


def _service(task: str, **extra: Any) -> ServiceConfig:
    doc: dict[str, Any] = {
        "name": "svc",
        "service": "DB.SCH.SVC",
        "compute_pool": "POOL",
        "url": "https://abc-org-acct.snowflakecomputing.app",
        "task": task,
    }
    doc.update(extra)
    return ServiceConfig.model_validate(doc)


NER = _service("token-classification")
IMG = _service("zero-shot-image-classification")
IMG_HEX = _service("zero-shot-image-classification", bytes_encoding="hex")


def test_encode_token_classification_compact() -> None:
    body = encode_request(NER, [(0, ("first note",)), (1, ["second \u00e9 note"])])
    assert body == b'{"data":[[0,"first note"],[1,"second \\u00e9 note"]]}'
    assert json.loads(body) == {"data": [[0, "first note"], [1, "second \u00e9 note"]]}


@pytest.mark.parametrize(
    ("service", "decode"),
    [(IMG, base64.b64decode), (IMG_HEX, bytes.fromhex)],
)
def test_encode_image_bytes_and_labels(service: ServiceConfig, decode: Any) -> None:
    image = bytes(range(256)) * 3
    body = encode_request(service, [(0, (image, ("pneumonia", "normal"))), (1, (b"\x00", ["x"]))])
    data = json.loads(body)["data"]
    assert [row[0] for row in data] == [0, 1]
    assert decode(data[0][1]) == image
    assert data[0][2] == ["pneumonia", "normal"]
    assert decode(data[1][1]) == b"\x00"


def test_flat_rows_carry_every_parameter_column_after_the_inputs() -> None:
    # The inferred zero-shot signature (snowflake-ml-python >= 1.38) has two parameters: the
    # ingress refuses a flat row without their columns (HTTP 400).
    [row] = json.loads(encode_request(IMG, [(0, (b"\x01", ["a", "b"]))]))["data"]
    assert row == [0, "AQ==", ["a", "b"], "This is a photo of {}.", None]


def test_parameter_values_come_from_the_registry_else_the_signature_default() -> None:
    custom = _service(
        "zero-shot-image-classification",
        signature={
            "inputs": [
                {"name": "images", "type": "BYTES"},
                {"name": "candidate_labels", "type": "STRING", "shape": [-1]},
            ],
            "outputs": [{"name": "labels", "specs": [{"name": "label"}, {"name": "score"}]}],
            "params": [
                {"name": "hypothesis_template", "dtype": "STRING", "default_value": "x {}"},
                {"name": "top_k", "dtype": "INT64", "default_value": 3},
            ],
        },
        param_values={"hypothesis_template": "a radiograph showing {}"},
    )
    [row] = json.loads(encode_request(custom, [(0, (b"\x01", ["a"]))]))["data"]
    assert row[3:] == ["a radiograph showing {}", 3]
    assert encoded_row_size(custom, (b"\x01", ["a"])) >= len(json.dumps(row, separators=(",", ":")))


def test_token_classification_has_no_parameter_columns() -> None:
    assert NER.param_columns == []


def test_base64_is_default_and_hex_is_configurable() -> None:
    assert json.loads(encode_request(IMG, [(0, (b"\xff\x01", ["a"]))]))["data"][0][1] == "/wE="
    assert json.loads(encode_request(IMG_HEX, [(0, (b"\xff\x01", ["a"]))]))["data"][0][1] == "ff01"


def test_wrong_column_count_is_refused() -> None:
    with pytest.raises(ValueError, match="number of values"):
        encode_request(IMG, [(0, (b"x",))])
    with pytest.raises(ValueError, match="number of values"):
        encoded_row_size(NER, ("a", "b"))


def test_lone_surrogate_encodes() -> None:
    body = encode_request(NER, [(0, ("bad \ud800 char",))])
    assert json.loads(body)["data"][0][1] == "bad \ud800 char"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(max_size=64), st.lists(st.text(max_size=12), max_size=4)),
        min_size=1,
        max_size=12,
    )
)
def test_row_sizes_bound_the_body_exactly_for_ten_digit_indices(rows: list[Any]) -> None:
    sizes = [encoded_row_size(IMG, values) for values in rows]
    small = encode_request(IMG, list(enumerate(rows)))
    assert len(small) <= ENVELOPE_OVERHEAD + sum(sizes)
    # With 10-digit indices the bound is exact (the last row has no trailing comma).
    wide = encode_request(IMG, [(9_000_000_000 + i, v) for i, v in enumerate(rows)])
    assert len(wide) == ENVELOPE_OVERHEAD + sum(sizes) - 1


def _body(rows: list[Any]) -> bytes:
    return json.dumps({"data": rows}).encode()


def test_decode_token_classification_list_and_json_string() -> None:
    body = _body([[1, {"outputs": [ENTITY]}], [0, {"outputs": json.dumps([ENTITY])}]])
    assert decode_response(NER, body, [0, 1]) == {0: [ENTITY], 1: [ENTITY]}


def test_decode_zero_shot_labels() -> None:
    labels = [{"label": "pneumonia", "score": 0.7}, {"label": "normal", "score": 0.3}]
    body = _body([[0, {"labels": labels, "extra": 1}]])
    assert decode_response(IMG, body, [0]) == {0: labels}


def test_decode_output_column_case_insensitive_fallback() -> None:
    assert decode_response(NER, _body([[0, {"OUTPUTS": []}]]), [0]) == {0: []}


def test_custom_output_column() -> None:
    service = _service(
        "token-classification",
        signature={
            "inputs": [{"name": "text", "type": "STRING"}],
            "outputs": [{"name": "entities", "specs": [{"name": "word"}], "shape": [-1]}],
        },
    )
    assert decode_response(service, _body([[0, {"entities": [ENTITY]}]]), [0]) == {0: [ENTITY]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>CANARY-9d8e bad gateway</html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'"CANARY"', "no 'data'"),
        (b'{"data": {"0": 1}}', "no 'data'"),
        (_body([[0, {"outputs": []}]]), "lacks rows"),  # row 1 missing
        (_body([[0, {"outputs": []}], [1, {"outputs": []}], [2, {"outputs": []}]]), "not sent"),
        (_body([[0, {"outputs": []}], [0, {"outputs": []}], [1, {"outputs": []}]]), "twice"),
        (_body([[0, {"outputs": []}], [1, {"other": CANARY}]]), "lacks the output column"),
        (_body([[0, {"outputs": []}], [1, {"outputs": "CANARY not json"}]]), "not JSON"),
        (_body([[0, {"outputs": []}], [1, {"outputs": {"x": 1}}]]), "not a list"),
        (_body([[0, {"outputs": []}], ["1", {"outputs": []}]]), "not an integer"),
        (_body([[0, {"outputs": []}], [True, {"outputs": []}]]), "not an integer"),
        (_body([[0, {"outputs": []}], [1, [CANARY]]]), "not [index"),
    ],
)
def test_decode_rejects_bad_responses_without_echo(body: bytes, expected: str) -> None:
    with pytest.raises(TransientError) as info:
        decode_response(NER, body, [0, 1])
    err = info.value
    assert err.code is ErrorCode.BAD_RESPONSE
    assert expected in str(err)
    assert "CANARY" not in str(err)
    assert err.__cause__ is None
