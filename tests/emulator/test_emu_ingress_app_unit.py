"""IngressApp in-process (werkzeug test client): request formats, routing, gate, faults."""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

import pytest
from PIL import Image
from werkzeug.test import Client

from spcs_local.emulator.auth import EmulatorAuth
from spcs_local.emulator.backends import ImageStandIn
from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.faults import FaultInjector, parse_faults
from spcs_local.emulator.ingress import (
    BACKEND_HEADER,
    BadRequestError,
    IngressApp,
    ParsedRequest,
    image_runner,
    parse_request,
)
from spcs_local.emulator.state import GateDecision
from spcs_models import spec

PAT = "unit-pat"
AUTH = {"Authorization": f'Snowflake Token="{PAT}"'}
HOST = "127.0.0.1:40000"
ROW = {"data": [[0, "a"]]}
TEMPLATE = spec.BIOMEDCLIP_TEMPLATE


class FakeGate:
    def __init__(self) -> None:
        self.decision = GateDecision(True, "RUNNING", None)
        self.calls = 0

    def ingress_gate(self, fqn: str) -> GateDecision:
        self.calls += 1
        return self.decision


def echo_runner(request: ParsedRequest) -> list[Any]:
    return [{"seen": row} for row in request.rows]


def make_app(
    task: str = "token-classification",
    runner: Any = echo_runner,
    faults: FaultInjector | None = None,
    gate: FakeGate | None = None,
    method: str = "predict",
) -> IngressApp:
    deployment = spec.NER if task == "token-classification" else spec.BIOMEDCLIP
    app = IngressApp(
        fqn="DB.SCH.SVC",
        names=("svc",),
        deployment=dataclasses.replace(deployment, method=method),
        runner=runner,
        backend_name="stand-in",
        account=gate or FakeGate(),
        auth=EmulatorAuth("LOCALTEST", "GATEWAY_SVC", [], {PAT}, FakeClock()),
        faults=faults or FaultInjector(),
        sleep=lambda s: None,
    )
    app.scope_host = HOST
    return app


def png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    "body",
    [
        {"data": [[7, "a"], [8, "b"]]},
        {"data": [[7, {"inputs": "a"}], [8, {"inputs": "b", "extra": 1}]]},
        {"dataframe_split": {"index": [7, 8], "columns": ["inputs"], "data": [["a"], ["b"]]}},
    ],
)
def test_formats_normalise_to_the_same_rows(body: dict[str, Any]) -> None:
    parsed = parse_request(body, spec.NER_SIGNATURE)
    assert parsed.index == [7, 8]
    assert parsed.rows == [{"inputs": "a"}, {"inputs": "b"}]


def test_records_format_uses_positions_and_params() -> None:
    parsed = parse_request(
        {
            "dataframe_records": [{"images": "x", "candidate_labels": ["a"]}],
            "params": {"hypothesis_template": "t {}"},
        },
        spec.CLIP_SIGNATURE,
    )
    assert parsed.index == [0]
    assert parsed.rows == [{"images": "x", "candidate_labels": ["a"]}]
    assert parsed.params == {"hypothesis_template": "t {}"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "JSON object"),
        ({}, "expected one of"),
        ({"data": []}, "non-empty"),
        ({"data": [[0, "a", "b"]]}, "row 0"),
        ({"data": [["x"]]}, "row 0"),
        ({"data": [[True, "a"]]}, "row index"),
        ({"data": [[0, {"other": "a"}]]}, "missing column"),
        ({"dataframe_split": {"columns": ["inputs"], "data": [["a"]], "index": [0, 1]}}, "index"),
        ({"dataframe_records": [["a"]]}, "object of columns"),
        ({"data": [[0, "a"]], "params": []}, "params"),
        ({"data": [[0, "a"]], "params": {"x": 1}}, "travel in the rows"),
        ({"dataframe_records": [{"inputs": "a"}], "params": {"x": 1}}, "unknown parameter"),
    ],
)
def test_malformed_requests(body: Any, reason: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_request(body, spec.NER_SIGNATURE)
    assert reason in info.value.reason


def test_answer_shape_header_and_counts() -> None:
    app = make_app()
    client = Client(app)
    response = client.post("/predict", json={"data": [[3, "text"]]}, headers=AUTH)
    assert response.status_code == 200
    assert response.json == {"data": [[3, {"outputs": {"seen": {"inputs": "text"}}}]]}
    assert response.headers[BACKEND_HEADER] == "stand-in"
    assert app.stats.snapshot()["responses"] == {"200": 1}
    assert app.stats.snapshot()["rows"] == 1


def test_routing_and_auth_order() -> None:
    gate = FakeGate()
    client = Client(make_app(method="predict_proba", gate=gate))
    assert client.post("/predict-proba", json={"data": [[0, "a"]]}).status_code == 401
    assert gate.calls == 0  # auth comes first
    assert client.post("/--call--", json={"data": [[0, "a"]]}, headers=AUTH).status_code == 404
    assert client.get("/predict-proba", headers=AUTH).status_code == 405
    bad = client.post("/predict-proba", data=b"{nope", headers=AUTH)
    assert bad.status_code == 400
    assert bad.json["message"] == "the body is not valid JSON"
    assert bad.headers[BACKEND_HEADER] == "stand-in"


def test_gate_not_ready_answers_503_with_retry_after() -> None:
    gate = FakeGate()
    gate.decision = GateDecision(False, "PENDING", 2.2)
    response = Client(make_app(gate=gate)).post("/predict", json={"data": [[0, "a"]]}, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json["status"] == "PENDING"
    gate.decision = GateDecision(False, "SUSPENDED", None)
    response = Client(make_app(gate=gate)).post("/predict", json={"data": [[0, "a"]]}, headers=AUTH)
    assert response.status_code == 503
    assert "Retry-After" not in response.headers


def test_injected_fault_precedes_the_gate() -> None:
    gate = FakeGate()
    faults = FaultInjector(parse_faults(["svc:429=1,retry_after=4"]))
    response = Client(make_app(gate=gate, faults=faults)).post(
        "/predict", json={"data": [[0, "a"]]}, headers=AUTH
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "4"
    assert gate.calls == 0


def test_image_runner_decodes_and_rejects() -> None:
    app = make_app(
        task="zero-shot-image-classification", runner=image_runner(ImageStandIn(), "base64")
    )
    client = Client(app)
    ok = client.post(
        "/predict",
        json={"data": [[0, png_b64(), ["pneumonia", "normal"], TEMPLATE]]},
        headers=AUTH,
    )
    assert ok.status_code == 200
    labels = ok.json["data"][0][1]["labels"]
    assert {item["label"] for item in labels} == {"pneumonia", "normal"}
    assert abs(sum(item["score"] for item in labels) - 1) < 1e-6
    not_b64 = client.post("/predict", json={"data": [[0, "%%%", ["a"], TEMPLATE]]}, headers=AUTH)
    assert not_b64.status_code == 400
    assert "base64" in not_b64.json["message"]
    garbage = base64.b64encode(b"definitely not an image").decode()
    undecodable = client.post(
        "/predict", json={"data": [[0, garbage, ["a"], TEMPLATE]]}, headers=AUTH
    )
    assert undecodable.status_code == 400
    assert undecodable.json["error"] == "bad_input"
    no_labels = client.post("/predict", json={"data": [[0, png_b64(), [], TEMPLATE]]}, headers=AUTH)
    assert no_labels.status_code == 400


def test_hex_encoding_flag() -> None:
    raw = base64.b64decode(png_b64())
    app = make_app(
        task="zero-shot-image-classification", runner=image_runner(ImageStandIn(), "hex")
    )
    response = Client(app).post(
        "/predict", json={"data": [[0, raw.hex(), '["a", "b"]', TEMPLATE]]}, headers=AUTH
    )
    assert response.status_code == 200
    assert len(response.json["data"][0][1]["labels"]) == 2


def test_a_bug_becomes_a_phi_free_500() -> None:
    def broken(request: ParsedRequest) -> list[Any]:
        raise RuntimeError("secret note text")

    response = Client(make_app(runner=broken)).post(
        "/predict", json={"data": [[0, "a"]]}, headers=AUTH
    )
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True)


# The zero-shot signature snowflake-ml-python infers (1.38+): a STRING and a nullable DOUBLE.
INFERRED = spec.Signature(
    inputs=spec.CLIP_SIGNATURE.inputs,
    outputs=spec.CLIP_SIGNATURE.outputs,
    params=(
        spec.Param("hypothesis_template", spec.STRING, "This is a photo of {}."),
        spec.Param("timeout", spec.DOUBLE, None),
        spec.Param("top_k", spec.INT64, 5),
    ),
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["t {}", None, 3], {"hypothesis_template": "t {}", "timeout": None, "top_k": 3}),
        (["t {}", 2.5, 3], {"hypothesis_template": "t {}", "timeout": 2.5, "top_k": 3}),
        (["t {}", 2, 3], {"hypothesis_template": "t {}", "timeout": 2, "top_k": 3}),
    ],
)
def test_flat_params_are_typed_by_dtype(values: list[Any], expected: dict[str, Any]) -> None:
    parsed = parse_request({"data": [[0, "img", ["a"], *values]]}, INFERRED)
    assert parsed.params == expected


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["t {}", "fast", 3], "timeout must be of type DOUBLE"),
        (["t {}", True, 3], "timeout must be of type DOUBLE"),
        (["t {}", None, 2.5], "top_k must be of type INT64"),
        (["t {}", None, None], "top_k must not be null"),
        ([None, None, 3], "hypothesis_template must not be null"),
        (["t {}", None], "expected 5 value(s)"),
    ],
)
def test_flat_param_type_errors(values: list[Any], reason: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_request({"data": [[0, "img", ["a"], *values]]}, INFERRED)
    assert reason in info.value.reason
    assert "fast" not in info.value.reason


def test_defaults_fill_in_for_the_named_formats() -> None:
    record = {"images": "img", "candidate_labels": ["a"]}
    defaults = {"hypothesis_template": "This is a photo of {}.", "timeout": None, "top_k": 5}
    assert parse_request({"data": [[0, record]]}, INFERRED).params == defaults
    assert parse_request({"data": [[0, {**record, "top_k": 2}]]}, INFERRED).params == {
        **defaults,
        "top_k": 2,
    }
    records = {"dataframe_records": [record], "params": {"timeout": 1.5}}
    assert parse_request(records, INFERRED).params == {**defaults, "timeout": 1.5}
