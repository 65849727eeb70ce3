"""Secret material never leaves the calls to Snowflake.

Router batches (success, a 401 answered by one token refresh, poison, 503, refused credentials)
run with a freshly generated key pair (key-pair mode) or a PAT (PAT mode) whose text is unique,
both read from moto Secrets Manager. Every artifact is captured: the Powertools log stream,
every other logger's records (tracebacks included), stdout/stderr (EMF metrics), trace
annotations, DLQ message attributes, visibility-change calls and the string and repr of every
error the pipeline saw. None may hold a private-key PEM fragment, the PAT, a JWT assertion
(or its signature) or an issued ingress token.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gw_support import (
    NER_URL,
    NOTES_QUEUE,
    TOKEN_URL,
    FakeSink,
    GatewayEnv,
    LambdaContextStub,
    ReadinessRecorder,
    load_app,
    note_body,
    registry_doc,
)
from rel_support import Capture, assert_no_canary, capture_app_output, deliver

from spcs_gateway.auth import TokenProvider
from spcs_gateway.http import build_http_client
from spcs_gateway.pipeline import build_pipeline
from spcs_gateway.registry import ServiceConfig, parse_registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.spcs_client import InferenceInput, RowResult, SpcsClient

KEY_SECRET = "spcs-gateway/secret-canary-key"
PAT_SECRET = "spcs-gateway/secret-canary-pat"
REJECT = "REJECTME"


@dataclass
class SnowflakeSide:
    """The token endpoint and the NER ingress; issues unique tokens and records what it got."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    assertions: list[str] = field(default_factory=list)  # JWTs received at /oauth/token
    issued: list[str] = field(default_factory=list)  # ingress tokens handed out
    presented: list[str] = field(default_factory=list)  # Authorization headers at the ingress
    refuse_exchange: bool = False  # the token endpoint refuses the JWT (bad key / wrong role)
    reject_token_once: str | None = None  # answer 401 to this token once ("expired")
    always_401: bool = False
    status: int | None = None

    def token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        with self.lock:
            self.assertions.append(form["assertion"][0])
            if self.refuse_exchange:
                return httpx.Response(400, json={"error": "invalid_grant"})
            token = f"INGRESSTOKEN{uuid.uuid4().hex}"
            self.issued.append(token)
        return httpx.Response(200, text=token)

    def infer(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        with self.lock:
            self.presented.append(auth)
            expired = self.reject_token_once is not None and self.reject_token_once in auth
            if expired:
                self.reject_token_once = None
        if expired or self.always_401:
            return httpx.Response(401, text="token expired")
        if self.status is not None:
            return httpx.Response(self.status, text="unavailable")
        rows = json.loads(request.content)["data"]
        if any(REJECT in json.dumps(row) for row in rows):
            return httpx.Response(400, text="bad input")
        data = [[row[0], {"outputs": [{"entity": "B-DRUG", "word": "x"}]}] for row in rows]
        return httpx.Response(200, json={"data": data})


class RecordingSpcs:
    """The real SpcsClient, keeping the text of every error it returned."""

    def __init__(self, client: SpcsClient) -> None:
        self.client = client
        self.error_texts: list[str] = []

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        results = self.client.infer(service, inputs)
        for result in results:
            self.error_texts.append(repr(result))
            if result.error is not None:
                self.error_texts += [str(result.error), repr(result.error), result.error.detail]
        return results


class TraceRecorder:
    def __init__(self) -> None:
        self.written: list[Any] = []

    def put_annotation(self, key: str, value: Any) -> None:
        self.written.append(("annotation", key, value))

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        self.written.append(("metadata", key, value))

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **_: Any) -> Iterator[TraceRecorder]:
        yield self


@dataclass
class Secrets:
    pem: str
    pat: str

    def fragments(self, side: SnowflakeSide) -> list[str]:
        """Every string that must not appear in an artifact."""
        body = [line for line in self.pem.splitlines() if line and not line.startswith("-----")]
        jwt_parts = [a.rsplit(".", 1)[1] for a in side.assertions]  # the signatures
        return [
            "PRIVATE KEY-----",
            "".join(body),
            *body,  # every 64-character line of the key
            self.pat,
            *side.assertions,
            *jwt_parts,
            *side.issued,
        ]


@pytest.fixture
def secrets(gateway_env: GatewayEnv) -> Secrets:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    pat = f"PATSECRET{uuid.uuid4().hex}"
    gateway_env.secrets.create_secret(
        Name=KEY_SECRET, SecretString=json.dumps({"private_key": pem})
    )
    gateway_env.secrets.create_secret(Name=PAT_SECRET, SecretString=json.dumps({"token": pat}))
    return Secrets(pem, pat)


@dataclass
class Run:
    app: Any
    env: GatewayEnv
    side: SnowflakeSide
    spcs: RecordingSpcs
    sink: FakeSink
    trace: TraceRecorder
    cap: Capture

    def batch(self, bodies: list[str]) -> dict[str, Any]:
        event = deliver(self.env, NOTES_QUEUE, bodies)
        response: dict[str, Any] = self.app.lambda_handler(event, LambdaContextStub())
        return response


@pytest.fixture(params=["keypair", "pat"])
def run(
    request: pytest.FixtureRequest,
    gateway_env: GatewayEnv,
    secrets: Secrets,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Run]:
    mode = request.param
    doc = registry_doc()
    doc["snowflake"]["auth"] = mode
    doc["snowflake"]["secret"] = {"secret_id": KEY_SECRET if mode == "keypair" else PAT_SECRET}
    registry = parse_registry(doc)
    side = SnowflakeSide()
    monkeypatch.setenv("SERVICE_NAME", "ner")
    app = load_app("note_router")
    http = build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    client = SpcsClient(registry, tokens, http, sleep=lambda _s: None)
    spcs = RecordingSpcs(client)
    sink = FakeSink()
    app.pipeline = build_pipeline(
        "ner",
        registry=registry,
        spcs=spcs,
        sink=sink,
        sqs_client=gateway_env.sqs,
        readiness=ReadinessRecorder(),
        rng=random.Random(3),
    )
    trace = TraceRecorder()
    monkeypatch.setattr(app.tracer, "provider", trace)
    monkeypatch.setattr(app.tracer, "disabled", False)
    try:
        with (
            respx.mock(assert_all_called=False) as mock,
            capture_app_output([app], caplog, capsys) as cap,
        ):
            mock.post(TOKEN_URL).mock(side_effect=side.token)
            mock.post(NER_URL).mock(side_effect=side.infer)
            cap.drain()
            yield Run(app, gateway_env, side, spcs, sink, trace, cap)
    finally:
        client.close()
        http.close()


def test_no_secret_material_in_any_artifact(run: Run, secrets: Secrets) -> None:
    side = run.side
    keypair = run.app.pipeline._spcs.client._tokens.mode.value == "keypair"

    # 1. success
    assert run.batch([note_body("s-1"), note_body("s-2")]) == {"batchItemFailures": []}
    # 2. the token in use expires: one refresh, then success
    side.reject_token_once = side.issued[-1] if keypair else secrets.pat
    assert run.batch([note_body("s-3")]) == {"batchItemFailures": []}
    # 3. poison: broken JSON and an input the model rejects
    poison = ['{"schema": "clinical-note.v1", "text": "', note_body("s-4", text=REJECT)]
    assert run.batch(poison) == {"batchItemFailures": []}
    # 4. the service is unavailable
    side.status = 503
    assert len(run.batch([note_body("s-5")])["batchItemFailures"]) == 1
    side.status = None
    # 5. refused credentials (a bad key or wrong role; for a PAT, 401 after the refresh), long
    # after the service's start-up: a 401 right after a 503 would count as "still starting".
    run.app.pipeline._spcs.client._unavailable_at.clear()
    if keypair:
        side.refuse_exchange = True
        run.app.pipeline._spcs.client._tokens.invalidate("ner-myorg-acct.snowflakecomputing.app")
    else:
        side.always_401 = True
    assert len(run.batch([note_body("s-6")])["batchItemFailures"]) == 1

    assert sorted(run.sink.rows) == ["s-1", "s-2", "s-3"]
    logs = run.cap.drain()
    dead = run.env.dead_letters(NOTES_QUEUE)
    attributes = json.dumps([m["MessageAttributes"] for m in dead])
    visibility = json.dumps(run.env.visibility_calls)
    errors = "\n".join(run.spcs.error_texts)
    trace = json.dumps(run.trace.written, default=str)

    # The captures are live and the secrets were really used.
    assert "batch processed" in logs
    assert '"CloudWatchMetrics"' in logs
    assert "AUTH_FAILED" in errors
    assert "SERVICE_UNAVAILABLE" in errors
    assert len(dead) == 2
    assert "MODEL_REJECTED_INPUT" in attributes
    assert run.env.visibility_calls
    assert '"records"' in trace
    if keypair:
        assert len(side.issued) >= 2  # the first token was refreshed
        assert len(side.assertions) >= 3  # the refused exchange sent one more
        assert set(side.presented) == {f'Snowflake Token="{t}"' for t in side.issued}
    else:
        assert side.presented
        assert set(side.presented) == {f'Snowflake Token="{secrets.pat}"'}
        assert side.assertions == []  # a PAT is sent as it is, never exchanged

    for where, text in (
        ("logs/metrics/stdout", logs),
        ("DLQ attributes", attributes),
        ("visibility calls", visibility),
        ("error strings", errors),
        ("trace", trace),
    ):
        assert_no_canary(text, where, secrets.fragments(side))
