"""Auth faults through the routers (the emulator cases use the image service, whose backend
answers at once): each ends in a clear code and an alarm metric, never in
a retry storm, and recovers by itself when the cause goes away.

Against the emulator (real RS256 JWTs checked with Snowflake's rules, real ingress tokens):
* revoked tokens (the emulator restarts: every issued token is invalid) -> one refresh;
* a rotated key pair: the new key in moto Secrets Manager is used once the cache age passes,
  and a hard cut-over (old key removed at once) costs exactly one failed batch;
* an unregistered key: AUTH_FAILED, transient (never DLQ), ``AuthFailures`` emitted, and one
  token exchange per back-off window however many batches and requests arrive.
With respx and a fake clock (the timing is the point): a token that expires is renewed before
use; a token the server considers expired early is refreshed once; a role the ingress refuses
and a revoked PAT back off the same way.
"""

from __future__ import annotations

import json
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from aws_lambda_powertools.utilities import parameters
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gw_support import (
    IMAGES_QUEUE,
    NER_URL,
    NOTES_QUEUE,
    TOKEN_URL,
    FakeSink,
    GatewayEnv,
    LambdaContextStub,
    ReadinessRecorder,
    image_body,
    load_app,
    note_body,
    registry_doc,
)
from rel_support import deliver

from spcs_gateway.auth import TokenProvider, public_key_fingerprint
from spcs_gateway.http import build_http_client
from spcs_gateway.pipeline import build_pipeline
from spcs_gateway.registry import Registry, Task, parse_registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.spcs_client import SpcsClient

SECRET_ID = "spcs-gateway/auth-faults"
# The emulator's image service: its stand-in backend answers at once (the NER backend loads
# lexicons for seconds after every emulator start).
EMU_SERVICE = "biomedclip"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem_file(key: rsa.RSAPrivateKey, folder: Path) -> str:
    path = folder / f"{uuid.uuid4().hex}.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(path)


def _free_ports(count: int) -> int:
    """A base port P with P..P+count-1 free on loopback (checked, not reserved)."""
    for _ in range(200):
        base = random.randint(20_000, 60_000)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free ports")


@dataclass
class Traffic:
    """What the router's one httpx client sent and got (counted by event hooks)."""

    exchanges: int = 0  # POST /oauth/token
    refused_exchanges: int = 0
    assertions: list[str] = field(default_factory=list)
    ingress: int = 0
    ingress_401: int = 0

    def on_request(self, request: httpx.Request) -> None:
        if request.url.path == "/oauth/token":
            self.exchanges += 1
            form = dict(httpx.QueryParams(request.content.decode()))
            self.assertions.append(form["assertion"])
        else:
            self.ingress += 1

    def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path == "/oauth/token":
            self.refused_exchanges += response.status_code != 200
        elif response.status_code in (401, 403):
            self.ingress_401 += 1

    def fingerprints(self) -> list[str]:
        return [jwt.decode(a, options={"verify_signature": False})["iss"] for a in self.assertions]


@dataclass
class AuthRouter:
    app: Any
    env: GatewayEnv
    sink: FakeSink
    traffic: Traffic
    tokens: TokenProvider
    capsys: pytest.CaptureFixture[str]
    queue: str
    emf: list[dict[str, Any]] = field(default_factory=list)

    def batch(self, *event_ids: str) -> set[str]:
        """Run one batch; answer the event ids handed back for retry."""
        if self.queue == NOTES_QUEUE:
            bodies = [note_body(e) for e in event_ids]
        else:
            bodies = [image_body(e, label_set="chest_xray") for e in event_ids]
        event = deliver(self.env, self.queue, bodies)
        response = self.app.lambda_handler(event, LambdaContextStub())
        by_message = {r["messageId"]: json.loads(r["body"])["event_id"] for r in event["Records"]}
        self.emf += [
            json.loads(line)
            for line in self.capsys.readouterr().out.splitlines()
            if '"_aws"' in line
        ]
        return {by_message[item["itemIdentifier"]] for item in response["batchItemFailures"]}

    def auth_failures_metric(self) -> float:
        return self.metric_total("AuthFailures")

    def metric_total(self, name: str) -> float:
        total = 0.0
        for blob in self.emf:
            value = blob.get(name)
            if value is not None:
                total += sum(value) if isinstance(value, list) else value
        return total


@pytest.fixture
def auth_router(
    gateway_env: GatewayEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., AuthRouter]]:
    """``auth_router(registry, clock=..., backoff_s=...)``: the note router over a real
    TokenProvider/SpcsClient whose credential is ``SECRET_ID`` in moto Secrets Manager."""
    made: list[tuple[SpcsClient, httpx.Client]] = []

    def make(
        registry: Registry,
        *,
        service: str,
        clock: Callable[[], float] = time.time,
        backoff_s: float = 5.0,
        secret_clock: Callable[[], float] = time.monotonic,
    ) -> AuthRouter:
        traffic = Traffic()
        http = build_http_client()
        http.event_hooks["request"].append(traffic.on_request)
        http.event_hooks["response"].append(traffic.on_response)
        credentials = CredentialSource(registry.snowflake, clock=secret_clock)
        tokens = TokenProvider(
            registry.snowflake, credentials, http, clock=clock, auth_failure_backoff_s=backoff_s
        )
        client = SpcsClient(registry, tokens, http, sleep=lambda _s: None)
        made.append((client, http))
        monkeypatch.setenv("SERVICE_NAME", service)
        monkeypatch.setenv("SPCS_GATEWAY_REGISTRY", registry.model_dump_json(by_alias=True))
        images = registry.service(service).task is Task.ZERO_SHOT_IMAGE_CLASSIFICATION
        app = load_app("image_router" if images else "note_router")
        sink = FakeSink()
        app.pipeline = build_pipeline(
            service,
            registry=registry,
            spcs=client,
            sink=sink,
            sqs_client=gateway_env.sqs,
            s3_client=gateway_env.s3,
            readiness=ReadinessRecorder(),
            rng=random.Random(5),
        )
        capsys.readouterr()
        queue = IMAGES_QUEUE if images else NOTES_QUEUE
        return AuthRouter(app, gateway_env, sink, traffic, tokens, capsys, queue)

    yield make
    for client, http in made:
        client.close()
        http.close()


def _emulator_registry(handle: Any, max_age_seconds: int = 300) -> Registry:
    doc = json.loads(json.dumps(handle.config))
    doc["snowflake"]["secret"] = {"secret_id": SECRET_ID, "max_age_seconds": max_age_seconds}
    return parse_registry(doc)


def _put_secret(env: GatewayEnv, key: rsa.RSAPrivateKey) -> None:
    value = json.dumps({"private_key": _pem(key)})
    try:
        env.secrets.put_secret_value(SecretId=SECRET_ID, SecretString=value)
    except env.secrets.exceptions.ResourceNotFoundException:
        env.secrets.create_secret(Name=SECRET_ID, SecretString=value)


# -- against the emulator --------------------------------------------------------------------


@pytest.mark.emulator
def test_revoked_tokens_cost_exactly_one_refresh(
    emulator_factory: Callable[..., Any],
    gateway_env: GatewayEnv,
    auth_router: Callable[..., AuthRouter],
) -> None:
    base = _free_ports(3)
    flags = ("--port", str(base), "--ingress-port-base", str(base + 1))
    first = emulator_factory(*flags)
    _put_secret(gateway_env, first.private_key())
    r = auth_router(_emulator_registry(first), service=EMU_SERVICE)

    assert r.batch("rv-1", "rv-2") == set()
    assert (r.traffic.exchanges, r.traffic.ingress_401) == (1, 0)

    # A restart forgets every issued token (new signing key); same key pair and ports.
    first.stop()
    emulator_factory(*flags, state_dir=first.state_dir)

    assert r.batch("rv-3", "rv-4") == set()
    assert (r.traffic.exchanges, r.traffic.ingress_401) == (2, 1)  # one 401, one refresh
    assert sorted(r.sink.rows) == ["rv-1", "rv-2", "rv-3", "rv-4"]
    assert r.env.dead_letters(r.queue) == []


@pytest.mark.emulator
def test_rotated_key_is_used_after_the_cache_age_without_a_failure(
    emulator_factory: Callable[..., Any],
    gateway_env: GatewayEnv,
    auth_router: Callable[..., AuthRouter],
    tmp_path: Path,
) -> None:
    """Snowflake's two-key rotation: register B next to A, update the secret, drop A later."""
    old, new = _key(), _key()
    base = _free_ports(3)
    ports = ("--port", str(base), "--ingress-port-base", str(base + 1))
    both = (
        "--public-key",
        _public_pem_file(old, tmp_path),
        "--public-key",
        _public_pem_file(new, tmp_path),
    )
    first = emulator_factory(*ports, *both)
    _put_secret(gateway_env, old)
    now = [0.0]
    r = auth_router(_emulator_registry(first, max_age_seconds=60), service=EMU_SERVICE,
                    secret_clock=lambda: now[0])  # fmt: skip

    assert r.batch("kr-1") == set()
    _put_secret(gateway_env, new)
    now[0] = 30.0  # inside the cache age: the old key is still in use (and still valid)
    r.tokens.invalidate(r.app.pipeline.service.ingress_host)
    assert r.batch("kr-2") == set()
    now[0] = 61.0  # past the cache age: the rotated key is read and used
    parameters.clear_caches()  # Powertools' own cache (same max_age) has aged as well
    r.tokens.invalidate(r.app.pipeline.service.ingress_host)
    assert r.batch("kr-3") == set()

    # Then the old key is removed from the user (restart: issued tokens are revoked too).
    first.stop()
    only_new = ("--public-key", _public_pem_file(new, tmp_path))
    emulator_factory(*ports, *only_new, state_dir=first.state_dir)
    assert r.batch("kr-4") == set()

    old_fp, new_fp = public_key_fingerprint(old), public_key_fingerprint(new)
    signed_by = [iss.rsplit(".", 1)[-1] for iss in r.traffic.fingerprints()]
    assert signed_by == [old_fp, old_fp, new_fp, new_fp]
    assert r.traffic.refused_exchanges == 0
    assert sorted(r.sink.rows) == ["kr-1", "kr-2", "kr-3", "kr-4"]


@pytest.mark.emulator
def test_hard_key_cut_over_costs_at_most_one_failed_batch(
    emulator_factory: Callable[..., Any],
    gateway_env: GatewayEnv,
    auth_router: Callable[..., AuthRouter],
    tmp_path: Path,
) -> None:
    """The old key is removed and the secret updated at once, long before the cache age."""
    old, new = _key(), _key()
    base = _free_ports(3)
    ports = ("--port", str(base), "--ingress-port-base", str(base + 1))
    first = emulator_factory(*ports, "--public-key", _public_pem_file(old, tmp_path))
    _put_secret(gateway_env, old)
    r = auth_router(_emulator_registry(first, max_age_seconds=3_600), service=EMU_SERVICE)
    assert r.batch("hc-1") == set()

    first.stop()
    emulator_factory(
        *ports, "--public-key", _public_pem_file(new, tmp_path), state_dir=first.state_dir
    )
    _put_secret(gateway_env, new)

    outcomes = [r.batch(f"hc-{i}a", f"hc-{i}b") for i in range(2, 6)]

    # The first batch after the cut-over fails: its token is revoked and the refresh is
    # signed with the cached old key (refused). That refusal forces a re-read of the secret,
    # so the very next batch uses the new key.
    assert outcomes == [{"hc-2a", "hc-2b"}, set(), set(), set()]
    assert r.traffic.refused_exchanges == 1
    assert r.env.dead_letters(r.queue) == []  # auth failures are retried, never DLQ'd
    assert r.auth_failures_metric() == 2
    assert set(r.sink.rows) == {"hc-1", "hc-3a", "hc-3b", "hc-4a", "hc-4b", "hc-5a", "hc-5b"}


@pytest.mark.emulator
def test_unregistered_key_fails_clearly_without_a_retry_storm(
    emulator_factory: Callable[..., Any],
    gateway_env: GatewayEnv,
    auth_router: Callable[..., AuthRouter],
) -> None:
    handle = emulator_factory()
    _put_secret(gateway_env, _key())  # a key the service user does not have
    shift = [0.0]  # moves the gateway's clock (within the emulator's 60 s skew)
    backoff_s = 30.0
    r = auth_router(
        _emulator_registry(handle),
        service=EMU_SERVICE,
        backoff_s=backoff_s,
        clock=lambda: time.time() + shift[0],
    )

    batches = [[f"bk-{b}-{i}" for i in range(40)] for b in range(6)]  # 2 requests a batch
    for ids in batches:
        assert r.batch(*ids) == set(ids)  # every record retried

    # One exchange per back-off window for the host, not one per batch or per request.
    assert (r.traffic.exchanges, r.traffic.refused_exchanges) == (1, 1)
    assert r.traffic.ingress == 0  # no token, no inference call
    assert r.env.dead_letters(r.queue) == []
    assert r.auth_failures_metric() == 6 * 40
    outcomes = {blob.get("outcome") for blob in r.emf if "Records" in blob}
    assert "configuration" in outcomes
    # Retried slowly: SQS hides every record for the configuration back-off (>= 1 s, jittered).
    delays = [e["VisibilityTimeout"] for c in r.env.visibility_calls for e in c["Entries"]]
    assert len(delays) == 6 * 40
    assert all(1 <= d <= 60 for d in delays)

    # Once the window has passed, one more exchange is tried (and refused again).
    shift[0] = backoff_s + 1
    assert r.batch("bk-last") == {"bk-last"}
    assert (r.traffic.exchanges, r.traffic.refused_exchanges) == (2, 2)


# -- respx with a fake clock -------------------------------------------------------------------


@dataclass
class ClockedSnowflake:
    """Token endpoint and ingress with their own clock: issued tokens are JWTs with an exp."""

    server_now: Callable[[], float]
    lifetime_s: int = 600
    secret: bytes = field(default_factory=lambda: uuid.uuid4().bytes * 2)
    refuse_role: bool = False  # the ingress refuses every token (the role lacks the grant)
    status_401: int = 0

    def token(self, request: httpx.Request) -> httpx.Response:
        now = int(self.server_now())
        claims = {
            "sub": "GATEWAY",
            "iat": now,
            "exp": now + self.lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        return httpx.Response(200, text=jwt.encode(claims, self.secret, algorithm="HS256"))

    def infer(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].split('"')[1]
        claims = jwt.decode(
            token,
            self.secret,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False},
        )
        if self.refuse_role or claims["exp"] <= self.server_now():
            self.status_401 += 1
            return httpx.Response(403 if self.refuse_role else 401, text="no")
        rows = json.loads(request.content)["data"]
        return httpx.Response(200, json={"data": [[r[0], {"outputs": []}] for r in rows]})


@pytest.fixture
def clocked(
    gateway_env: GatewayEnv, private_key_pem: str
) -> Iterator[tuple[ClockedSnowflake, list[float]]]:
    now = [1_800_000_000.0]
    fake = ClockedSnowflake(server_now=lambda: now[0])
    gateway_env.secrets.create_secret(
        Name=SECRET_ID, SecretString=json.dumps({"private_key": private_key_pem})
    )
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).mock(side_effect=fake.token)
        mock.post(NER_URL).mock(side_effect=fake.infer)
        yield fake, now


def _respx_registry() -> Registry:
    doc = registry_doc()
    doc["snowflake"]["secret"] = {"secret_id": SECRET_ID}
    return parse_registry(doc)


def test_expiring_token_is_renewed_before_use_and_early_expiry_costs_one_refresh(
    clocked: tuple[ClockedSnowflake, list[float]], auth_router: Callable[..., AuthRouter]
) -> None:
    fake, now = clocked
    client_now = [now[0]]
    r = auth_router(_respx_registry(), service="ner", clock=lambda: client_now[0])

    assert r.batch("ex-1") == set()
    # Past the token's exp minus the refresh margin (60 s): renewed before use, no 401.
    now[0] += fake.lifetime_s - 30
    client_now[0] = now[0]
    issued_at = now[0]
    assert r.batch("ex-2") == set()
    assert (r.traffic.exchanges, fake.status_401) == (2, 0)

    # The server's clock runs 75 s ahead of ours: it sees the token expired while we still
    # hold it valid -> one 401, one refresh, success.
    now[0] = issued_at + fake.lifetime_s + 5
    client_now[0] = now[0] - 75
    assert r.batch("ex-3", "ex-4") == set()
    assert (r.traffic.exchanges, fake.status_401) == (3, 1)
    assert sorted(r.sink.rows) == ["ex-1", "ex-2", "ex-3", "ex-4"]


def test_role_refused_at_the_ingress_is_privilege_missing_and_backs_off(
    clocked: tuple[ClockedSnowflake, list[float]], auth_router: Callable[..., AuthRouter]
) -> None:
    """The exchange succeeds but the ingress refuses every token (the role lacks the grant)."""
    fake, now = clocked
    fake.refuse_role = True
    r = auth_router(_respx_registry(), service="ner", clock=lambda: now[0], backoff_s=30)
    lanes = r.app.pipeline.service.max_concurrency

    first = [f"rr-0-{i}" for i in range(20)]  # 3 requests, 2 at a time
    assert r.batch(*first) == set(first)
    # The requests in flight each try twice; one refresh between them, then no more.
    assert r.traffic.exchanges <= 1 + lanes
    assert 2 <= r.traffic.ingress <= 2 * lanes
    seen = (r.traffic.exchanges, r.traffic.ingress)
    for b in range(1, 4):
        ids = [f"rr-{b}-{i}" for i in range(20)]
        assert r.batch(*ids) == set(ids)
    assert (r.traffic.exchanges, r.traffic.ingress) == seen  # backing off: no call at all
    now[0] += 31
    assert r.batch("rr-late") == {"rr-late"}
    assert r.traffic.exchanges <= seen[0] + 2
    assert r.traffic.ingress == seen[1] + 2  # one request: token, 403, refresh, 403
    assert r.env.dead_letters(r.queue) == []
    # A missing grant, not a refused credential: alarmed as a configuration fault.
    assert r.auth_failures_metric() == 0
    assert r.metric_total("ConfigurationFaults") == 4 * 20 + 1


def test_revoked_pat_is_auth_failed_and_backs_off_per_window(
    gateway_env: GatewayEnv, auth_router: Callable[..., AuthRouter]
) -> None:
    gateway_env.secrets.create_secret(
        Name=SECRET_ID, SecretString=json.dumps({"token": f"pat-{uuid.uuid4().hex}"})
    )
    doc = registry_doc()
    doc["snowflake"].update(auth="pat", secret={"secret_id": SECRET_ID})
    now = [1_800_000_000.0]
    ingress_calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        ingress_calls.append(request.headers["authorization"])
        return httpx.Response(401, text="PAT revoked")

    with respx.mock(assert_all_called=False) as mock:
        mock.post(NER_URL).mock(side_effect=refuse)
        r = auth_router(parse_registry(doc), service="ner", clock=lambda: now[0], backoff_s=30)
        lanes = r.app.pipeline.service.max_concurrency
        first = [f"pt-0-{i}" for i in range(20)]  # 3 requests, 2 at a time
        assert r.batch(*first) == set(first)
        # Each request in flight tries twice (re-reading the secret in between), then none.
        assert 2 <= len(ingress_calls) <= 2 * lanes
        after_first = len(ingress_calls)
        for b in range(1, 4):
            ids = [f"pt-{b}-{i}" for i in range(20)]
            assert r.batch(*ids) == set(ids)
        assert len(ingress_calls) == after_first  # backing off: no call at all
        now[0] += 31
        assert r.batch("pt-late") == {"pt-late"}
        assert len(ingress_calls) == after_first + 2  # one request, tried twice

    assert r.traffic.exchanges == 0  # a PAT is never exchanged
    assert r.auth_failures_metric() == 4 * 20 + 1
    assert r.env.dead_letters(r.queue) == []
