"""Helpers and fakes for the API tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

# fake_account first: it sets the Powertools/AWS test environment before any Powertools object.
import fake_account
import httpx
import respx
from fake_account import ACCOUNT_URL, ner_service, snowflake_section, zsc_service
from PIL import Image

from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.lifecycle import ServiceState, ServiceStatus
from spcs_gateway.registry import Registry
from spcs_gateway.results import ResultRow

# Re-exported for the tests that import them from here.
NER_URL, TOKEN_URL, ZSC_URL = fake_account.NER_URL, fake_account.TOKEN_URL, fake_account.ZSC_URL

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
SEARCH_URL = (
    f"{ACCOUNT_URL}/api/v2/databases/PEDIATRIC_ML/schemas/CLINICAL_DATA"
    "/cortex-search-services/CLINICAL_NOTES_SEARCH:query"
)
RESULTS_TABLE = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
CANARY = "Zqxv-PHI-CANARY-Wilhelmina-Oyelaran-1987"


def registry_doc(secret_file: str) -> dict[str, Any]:
    return {
        "version": 1,
        "snowflake": snowflake_section({"file": secret_file}, results_table=RESULTS_TABLE),
        "services": [
            ner_service("biobert_ner", max_instances=3),  # scalable: 1..3
            zsc_service("biomedclip", model_version="v2"),
        ],
        "images": {"max_image_bytes": 256 * 1024, "max_pixels": 1_000_000},
    }


def png_base64(size: tuple[int, int] = (8, 8)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# -- API Gateway REST proxy events ---------------------------------------------------------------


def api_event(
    method: str,
    resource: str,
    *,
    path_params: Mapping[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    query: Mapping[str, str] | None = None,
    request_id: str | None = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    content_type: str = "application/json",
) -> dict[str, Any]:
    path = resource
    for key, value in (path_params or {}).items():
        path = path.replace("{" + key + "}", value)
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    headers = {"Content-Type": content_type, "Host": "abc123.execute-api.us-east-1.amazonaws.com"}
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "abc123",
        "resourceId": "r1",
        "resourcePath": resource,
        "httpMethod": method,
        "path": f"/prod{path}",
        "stage": "prod",
        "protocol": "HTTP/1.1",
        "requestTimeEpoch": 1736935800000,
        "identity": {
            "sourceIp": "10.0.0.1",
            "userArn": "arn:aws:iam::123456789012:role/clinical-app",
            "caller": "AROAEXAMPLE:clinical-app",
            "accountId": "123456789012",
            "user": "AROAEXAMPLE:clinical-app",
        },
    }
    if request_id is not None:
        context["requestId"] = request_id
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": dict(path_params) if path_params else None,
        "stageVariables": None,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": False,
    }


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def body_of(response: Mapping[str, Any]) -> Any:
    return json.loads(response["body"])


def header(response: Mapping[str, Any], name: str) -> str | None:
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


class LambdaContextStub(fake_account.LambdaContextStub):
    """The API function's context."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        super().__init__(
            "spcs-gateway-api",
            request_id="00000000-0000-0000-0000-0000000000a1",
            remaining_ms=remaining_ms,
        )


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def load_function(env: Mapping[str, str]) -> ModuleType:
    """Import ``functions/api/app.py`` (its module-level ``build_api()`` runs under ``env``)."""
    path = REPO / "functions" / "api" / "app.py"
    spec = importlib.util.spec_from_file_location("api_function_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with environment(env):
        spec.loader.exec_module(module)
    return module


# -- fakes -----------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeState:
    """In-memory ``ServiceStateStore`` (the methods the API uses)."""

    states: dict[str, ServiceState] = field(default_factory=dict)
    begins: list[str] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    activity: list[str] = field(default_factory=list)
    in_flight_seen: list[int] = field(default_factory=list)  # counter while inference ran
    fail: bool = False

    def set(self, name: str, status: ServiceStatus, ready: bool = False) -> None:
        self.states[name] = ServiceState(name=name, status=status, ready=ready)

    def get(self, name: str) -> ServiceState:
        if self.fail:
            raise RuntimeError("state store down")
        return self.states.get(name, ServiceState(name=name))

    def record_activity(self, name: str, now: datetime) -> bool:
        self.activity.append(name)
        return True

    def begin_on_demand(
        self, name: str, now: datetime, ttl: timedelta = timedelta(minutes=15)
    ) -> None:
        self.begins.append(name)
        state = self.get(name)
        self.states[name] = replace(
            state, on_demand_in_flight=state.on_demand_in_flight + 1, on_demand_expires_at=now + ttl
        )

    def end_on_demand(self, name: str) -> bool:
        self.ends.append(name)
        state = self.get(name)
        self.states[name] = replace(state, on_demand_in_flight=state.on_demand_in_flight - 1)
        return True

    def in_flight(self, name: str) -> int:
        return self.get(name).on_demand_in_flight


@dataclass
class FakeControl:
    views: list[dict[str, Any]] = field(default_factory=list)
    ensure_calls: list[str] = field(default_factory=list)
    suspend_calls: list[tuple[str, bool]] = field(default_factory=list)
    suspend_answer: dict[str, Any] = field(default_factory=lambda: {"suspended": True})
    scale_calls: list[tuple[str, int, int]] = field(default_factory=list)
    scale_answer: dict[str, Any] = field(
        default_factory=lambda: {"ok": True, "outcome": "scaled", "status": "RUNNING"}
    )
    fail: bool = False

    def ensure_ready(self, name: str) -> None:
        self.ensure_calls.append(name)
        if self.fail:
            raise RuntimeError("lambda invoke failed")

    def suspend(self, name: str, force: bool = False) -> dict[str, Any]:
        self.suspend_calls.append((name, force))
        if self.fail:
            raise RuntimeError("lambda invoke failed")
        return dict(self.suspend_answer)

    def status(self) -> list[dict[str, Any]]:
        if self.fail:
            raise RuntimeError("lambda invoke failed")
        return [dict(v) for v in self.views]

    def scale(self, name: str, min_instances: int, max_instances: int) -> dict[str, Any]:
        self.scale_calls.append((name, min_instances, max_instances))
        if self.fail:
            raise RuntimeError("lambda invoke failed")
        return dict(self.scale_answer)


class FakeSink:
    def __init__(self, table: str = RESULTS_TABLE) -> None:
        self.rows: dict[str, ResultRow] = {}
        self.merges = 0
        self.fail = False
        self._table = table

    @property
    def table(self) -> str:
        return self._table

    def merge(self, rows: Sequence[ResultRow]) -> None:
        self.merges += 1
        if self.fail:
            raise TransientError(ErrorCode.RESULTS_WRITE_FAILED, "Snowflake statement failed")
        for row in rows:
            self.rows.setdefault(row.event_id, row)


RECORDED_NER: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).parent / "ner_recorded.json").read_text(encoding="utf-8")
)["outputs"]


def lexicon_output(text: str) -> list[dict[str, Any]]:
    """The emulator's lexicon NER output for ``text`` (recorded: loading the lexicons costs
    seconds; ``test_api_recorded_ner_matches_backend`` keeps the recording honest). Texts not
    recorded get no entities; the canary, wherever it appears, is tagged as a disease so model
    output carries PHI in the PHI tests."""
    out = [dict(token) for token in RECORDED_NER.get(text, [])]
    at = text.find(CANARY)
    if at >= 0:
        out.append(
            {
                "word": CANARY,
                "score": 0.9,
                "entity": "B-DISEASE",
                "index": 1,
                "start": at,
                "end": at + len(CANARY),
            }
        )
    return sorted(out, key=lambda t: t["start"])


class SnowflakeFake:
    """respx side effects: token exchange, both ingress endpoints, Cortex Search."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.router: respx.MockRouter | None = None  # set by the fixture
        self.exchanges = 0
        self.ingress_calls: list[str] = []
        self.unavailable: dict[str, int] = {}  # host part -> answer 503 this many more times
        self.status: dict[str, int] = {}  # host part -> always answer this status
        self.refused_text: str | None = None  # the NER endpoint answers 400 to this input
        self.search_requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.search_status = 200
        self.search_rows: list[dict[str, Any]] = [
            {"NOTE_ID": "N-1", "NOTE_TYPE": "progress", "DEPARTMENT": "cardiology"}
        ]

    def token(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.exchanges += 1
            return httpx.Response(200, text=f"ingress-token-{self.exchanges}")

    def _forced(self, key: str) -> int | None:
        with self.lock:
            self.ingress_calls.append(key)
            left = self.unavailable.get(key, 0)
            if left > 0:
                self.unavailable[key] = left - 1
                return 503
            return self.status.get(key)

    def infer_ner(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith('Snowflake Token="ingress-token-')
        forced = self._forced("ner")
        if forced is not None:
            return httpx.Response(forced, text="unavailable")
        rows = json.loads(request.content)["data"]
        if any(row[1] == self.refused_text for row in rows):
            return httpx.Response(400, json={"message": "bad input"})
        data = [[row[0], {"outputs": lexicon_output(row[1])}] for row in rows]
        return httpx.Response(200, json={"data": data})

    def infer_zsc(self, request: httpx.Request) -> httpx.Response:
        forced = self._forced("zsc")
        if forced is not None:
            return httpx.Response(forced, text="unavailable")
        rows = json.loads(request.content)["data"]
        data = []
        for row in rows:
            labels = row[2]
            # Ascending scores: the API must rank them.
            scored = [{"label": lab, "score": (i + 1) / 10} for i, lab in enumerate(labels)]
            data.append([row[0], {"labels": scored}])
        return httpx.Response(200, json={"data": data})

    def search(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self.lock:
            self.search_requests.append((dict(request.headers), body))
        if self.search_status != 200:
            return httpx.Response(self.search_status, json={"message": "no"})
        rows = [
            {k: v for k, v in r.items() if k in body.get("columns", r)} for r in self.search_rows
        ]
        return httpx.Response(200, json={"results": rows[: body["limit"]], "request_id": "sf-q-1"})


@dataclass
class Api:
    """The API function under test with its fakes (built by the ``api`` fixture)."""

    module: ModuleType
    snowflake: SnowflakeFake
    control: FakeControl
    state: FakeState
    sink: FakeSink
    clock: FakeClock
    registry: Registry

    def invoke(self, event: dict[str, Any], remaining_ms: int = 30_000) -> dict[str, Any]:
        result: dict[str, Any] = self.module.lambda_handler(event, LambdaContextStub(remaining_ms))
        return result


@contextmanager
def installed_api(
    function: ModuleType,
    registry: Registry,
    snowflake: SnowflakeFake,
    stored: Any = None,
) -> Iterator[Api]:
    """``function``'s app swapped for ``create_api`` over a real SpcsClient, TokenProvider and
    CortexSearchClient, fake control client, state store and results sink, and a fake clock
    for the readiness wait; ``stored``: the stored-notes port, if the test serves it."""
    from spcs_gateway.api import create_api
    from spcs_gateway.api.ondemand import OnDemandInference
    from spcs_gateway.api.ports import ApiDeps
    from spcs_gateway.api.search import CortexSearchClient, SearchService
    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.http import build_http_client
    from spcs_gateway.images import ImageSource
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.spcs_client import SpcsClient

    http = build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    spcs = SpcsClient(registry, tokens, http, sleep=lambda _s: None)
    control, state, sink, clock = FakeControl(), FakeState(), FakeSink(), FakeClock()
    for service in registry.services:
        state.set(service.name, ServiceStatus.RUNNING, ready=True)
    deps = ApiDeps(
        registry=registry,
        spcs=spcs,
        control=control,
        state=state,
        sink=sink,
        images=ImageSource(registry.images),
        search=CortexSearchClient(
            registry.snowflake.account_url,
            tokens,
            http,
            SearchService.parse("pediatric_ml.clinical_data.clinical_notes_search"),
        ),
        ner_service=registry.service("biobert_ner"),
        image_service=registry.service("biomedclip"),
        stored=stored,
    )
    ondemand = OnDemandInference(
        spcs, control, state, logger=function.logger, sleep=clock.sleep, monotonic=clock.monotonic
    )
    original = function.app
    function.app = create_api(deps, logger=function.logger, ondemand=ondemand)
    try:
        yield Api(function, snowflake, control, state, sink, clock, registry)
    finally:
        function.app = original
        spcs.close()
        http.close()
