"""IngressApp in-process (werkzeug test client): request formats, routing, gate, faults."""

from __future__ import annotations

import base64
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

PAT = "unit-pat"
AUTH = {"Authorization": f'Snowflake Token="{PAT}"'}
HOST = "127.0.0.1:40000"
ROW = {"data": [[0, "a"]]}


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
    method: str = "__call__",
) -> IngressApp:
    app = IngressApp(
        fqn="DB.SCH.SVC",
        names=("svc",),
        method=method,
        task=task,
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
    parsed = parse_request(body, ["inputs"])
    assert parsed.index == [7, 8]
    assert parsed.rows == [{"inputs": "a"}, {"inputs": "b"}]


def test_records_format_uses_positions_and_params() -> None:
    parsed = parse_request(
        {
            "dataframe_records": [{"images": "x", "candidate_labels": ["a"]}],
            "params": {"hypothesis_template": "t {}"},
        },
        ["images", "candidate_labels"],
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
    ],
)
def test_malformed_requests(body: Any, reason: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_request(body, ["inputs"])
    assert reason in info.value.reason


def test_answer_shape_header_and_counts() -> None:
    app = make_app()
    client = Client(app)
    response = client.post("/--call--", json={"data": [[3, "text"]]}, headers=AUTH)
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
    response = Client(make_app(gate=gate)).post(
        "/--call--", json={"data": [[0, "a"]]}, headers=AUTH
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json["status"] == "PENDING"
    gate.decision = GateDecision(False, "SUSPENDED", None)
    response = Client(make_app(gate=gate)).post(
        "/--call--", json={"data": [[0, "a"]]}, headers=AUTH
    )
    assert response.status_code == 503
    assert "Retry-After" not in response.headers


def test_injected_fault_precedes_the_gate() -> None:
    gate = FakeGate()
    faults = FaultInjector(parse_faults(["svc:429=1,retry_after=4"]))
    response = Client(make_app(gate=gate, faults=faults)).post(
        "/--call--", json={"data": [[0, "a"]]}, headers=AUTH
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
        "/--call--",
        json={"data": [[0, png_b64(), ["pneumonia", "normal"]]]},
        headers=AUTH,
    )
    assert ok.status_code == 200
    labels = ok.json["data"][0][1]["labels"]
    assert {item["label"] for item in labels} == {"pneumonia", "normal"}
    assert abs(sum(item["score"] for item in labels) - 1) < 1e-6
    not_b64 = client.post("/--call--", json={"data": [[0, "%%%", ["a"]]]}, headers=AUTH)
    assert not_b64.status_code == 400
    assert "base64" in not_b64.json["message"]
    garbage = base64.b64encode(b"definitely not an image").decode()
    undecodable = client.post("/--call--", json={"data": [[0, garbage, ["a"]]]}, headers=AUTH)
    assert undecodable.status_code == 400
    assert undecodable.json["error"] == "bad_input"
    no_labels = client.post("/--call--", json={"data": [[0, png_b64(), []]]}, headers=AUTH)
    assert no_labels.status_code == 400


def test_hex_encoding_flag() -> None:
    raw = base64.b64decode(png_b64())
    app = make_app(
        task="zero-shot-image-classification", runner=image_runner(ImageStandIn(), "hex")
    )
    response = Client(app).post(
        "/--call--", json={"data": [[0, raw.hex(), '["a", "b"]']]}, headers=AUTH
    )
    assert response.status_code == 200
    assert len(response.json["data"][0][1]["labels"]) == 2


def test_a_bug_becomes_a_phi_free_500() -> None:
    def broken(request: ParsedRequest) -> list[Any]:
        raise RuntimeError("secret note text")

    response = Client(make_app(runner=broken)).post(
        "/--call--", json={"data": [[0, "a"]]}, headers=AUTH
    )
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True)
