"""Key-pair JWT claims, ingress token exchange and cache, PAT mode, REST and connector auth."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spcs_gateway.auth import (
    JWT_BEARER_GRANT,
    TokenProvider,
    jwt_account_name,
    make_keypair_jwt,
    public_key_fingerprint,
)
from spcs_gateway.errors import ConfigurationError, ErrorCode, TransientError
from spcs_gateway.registry import SnowflakeSettings
from spcs_gateway.secrets import CredentialSource

NOW = 1_750_000_000.0
HOST = "abc-org-acct.snowflakecomputing.app"
TOKEN_URL = "https://myorg-acct.snowflakecomputing.com/oauth/token"
PAT = "pat-CANARY-3c4d"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _independent_fingerprint(key: rsa.RSAPrivateKey) -> str:
    # DER SubjectPublicKeyInfo taken from the PEM text itself (base64 body between the armour).
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode()


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeFetch:
    def __init__(self, value: str) -> None:
        self.value = value
        self.forces: list[bool] = []

    def __call__(self, secret_id: str, max_age: int, force: bool) -> str:
        self.forces.append(force)
        return self.value


def _settings(auth: str = "keypair", **extra: Any) -> SnowflakeSettings:
    doc: dict[str, Any] = {
        "account": "myorg-acct",
        "user": "svc_gateway",
        "auth": auth,
        "secret": {"secret_id": "arn:secret", "max_age_seconds": 0},
        "token_refresh_margin_seconds": 60,
    }
    doc.update(extra)
    return SnowflakeSettings.model_validate(doc)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _provider(
    http: httpx.Client,
    key: rsa.RSAPrivateKey,
    clock: FakeClock,
    *,
    fetch: FakeFetch | None = None,
    **extra: Any,
) -> TokenProvider:
    settings = _settings("keypair", **extra)
    fetch = fetch or FakeFetch(json.dumps({"private_key": _pem(key)}))
    source = CredentialSource(settings, fetch_secret=fetch)
    return TokenProvider(settings, source, http, clock=clock, opaque_token_ttl_s=3000)


def _ingress_jwt(exp: float) -> str:
    return jwt.encode({"exp": int(exp)}, "not-a-real-secret-0123456789abcdef", algorithm="HS256")


# -- JWT --------------------------------------------------------------------------------------


def test_fingerprint_matches_independent_computation(key: rsa.RSAPrivateKey) -> None:
    expected = _independent_fingerprint(key)
    assert public_key_fingerprint(key) == expected
    assert public_key_fingerprint(key.public_key()) == expected


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ("myorg-acct", "MYORG-ACCT"),
        ("xy12345.us-east-2.aws", "XY12345"),
        ("myorg-acct.privatelink", "MYORG-ACCT"),
        ("acct-ab.global", "ACCT"),  # replication account: cut at the first '-'
        ("acct-ab.GLOBAL", "ACCT"),
    ],
)
def test_jwt_account_name(account: str, expected: str) -> None:
    assert jwt_account_name(account) == expected


def test_keypair_jwt_claims(key: rsa.RSAPrivateKey) -> None:
    token = make_keypair_jwt(
        "xy12345.us-east-2.aws", "svc_Gateway", key, now=NOW + 0.7, lifetime_s=3540
    )
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    fp = _independent_fingerprint(key)
    assert claims == {
        "iss": f"XY12345.SVC_GATEWAY.{fp}",
        "sub": "XY12345.SVC_GATEWAY",
        "iat": int(NOW),
        "exp": int(NOW) + 3540,
    }


def test_keypair_jwt_lifetime_capped_at_one_hour(key: rsa.RSAPrivateKey) -> None:
    token = make_keypair_jwt("a", "u", key, now=NOW, lifetime_s=7200)
    claims = jwt.decode(
        token, key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["exp"] - claims["iat"] == 3600
    with pytest.raises(ValueError, match="positive"):
        make_keypair_jwt("a", "u", key, now=NOW, lifetime_s=0)


def test_signature_fails_with_another_key(key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = make_keypair_jwt("a", "u", key, now=NOW, lifetime_s=60)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["RS256"], options={"verify_exp": False})


# -- token exchange ---------------------------------------------------------------------------


@respx.mock(assert_all_called=False)
def test_exchange_request_form_and_plain_text_token(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    route = respx_mock.post(TOKEN_URL).respond(200, text="ingress-token-1\n")
    clock = FakeClock()
    provider = _provider(http, key, clock, role="GATEWAY_ROLE")

    assert provider.ingress_token(HOST) == "ingress-token-1"
    assert provider.ingress_auth_header(HOST) == {
        "Authorization": 'Snowflake Token="ingress-token-1"'
    }
    assert route.call_count == 1
    request = route.calls[0].request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert set(form) == {"grant_type", "scope", "assertion"}
    assert form["grant_type"] == JWT_BEARER_GRANT
    assert form["scope"] == f"session:role:GATEWAY_ROLE {HOST}"
    claims = jwt.decode(
        form["assertion"], key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["sub"] == "MYORG-ACCT.SVC_GATEWAY"
    assert claims["iat"] == int(NOW)


@respx.mock(assert_all_called=False)
def test_scope_without_role_is_the_host(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    route = respx_mock.post(TOKEN_URL).respond(200, text="t")
    _provider(http, key, FakeClock()).ingress_token("127.0.0.1:9443")
    form = parse_qs(route.calls[0].request.content.decode())
    assert form["scope"] == ["127.0.0.1:9443"]


@respx.mock(assert_all_called=False)
def test_jwt_ingress_token_cached_until_margin_before_exp(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    tokens = iter([_ingress_jwt(NOW + 600), _ingress_jwt(NOW + 1200), "unused"])
    route = respx_mock.post(TOKEN_URL).mock(
        side_effect=lambda request: httpx.Response(200, text=next(tokens))
    )
    provider = _provider(http, key, clock)
    first = provider.ingress_token(HOST)
    clock.now = NOW + 539  # refresh margin is 60 s before exp (NOW + 600)
    assert provider.ingress_token(HOST) == first
    assert route.call_count == 1
    clock.now = NOW + 541
    second = provider.ingress_token(HOST)
    assert second != first
    assert route.call_count == 2
    # Tokens are cached per scope host.
    provider.ingress_token("other.snowflakecomputing.app")
    assert route.call_count == 3


@respx.mock(assert_all_called=False)
def test_opaque_token_cached_for_default_ttl(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    route = respx_mock.post(TOKEN_URL).respond(200, text="opaque-token")
    provider = _provider(http, key, clock)
    provider.ingress_token(HOST)
    clock.now = NOW + 2999
    provider.ingress_token(HOST)
    assert route.call_count == 1
    clock.now = NOW + 3001
    provider.ingress_token(HOST)
    assert route.call_count == 2


@respx.mock(assert_all_called=False)
def test_invalidate_forces_one_reexchange(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    counter = iter(range(1, 100))
    route = respx_mock.post(TOKEN_URL).mock(
        side_effect=lambda request: httpx.Response(200, text=f"tok-{next(counter)}")
    )
    provider = _provider(http, key, FakeClock())
    assert provider.ingress_token(HOST) == "tok-1"
    provider.invalidate(HOST)
    assert provider.ingress_token(HOST) == "tok-2"
    # A late 401 carrying the stale token must not throw away the fresh one.
    provider.invalidate(HOST, token="tok-1")
    assert provider.ingress_token(HOST) == "tok-2"
    provider.invalidate(HOST, token="tok-2")
    assert provider.ingress_token(HOST) == "tok-3"
    assert route.call_count == 3
    assert provider.exchanges == 3


@respx.mock(assert_all_called=False)
def test_one_exchange_under_concurrent_callers(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.1)
        return httpx.Response(200, text="shared-token")

    route = respx_mock.post(TOKEN_URL).mock(side_effect=slow)
    provider = _provider(http, key, FakeClock())
    barrier = threading.Barrier(10)
    got: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        token = provider.ingress_token(HOST)
        with lock:
            got.append(token)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert got == ["shared-token"] * 10
    assert route.call_count == 1


@pytest.mark.parametrize("status", [400, 401, 403])
@respx.mock(assert_all_called=False)
def test_exchange_refused_is_auth_failed_without_body_or_jwt(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey, status: int
) -> None:
    respx_mock.post(TOKEN_URL).respond(status, text="BODY-CANARY invalid jwt")
    fetch = FakeFetch(json.dumps({"private_key": _pem(key)}))
    provider = _provider(http, key, FakeClock(), fetch=fetch)
    with pytest.raises(ConfigurationError) as info:
        provider.ingress_token(HOST)
    err = info.value
    assert err.code is ErrorCode.AUTH_FAILED
    assert err.status == status
    assert "CANARY" not in str(err)
    assert provider.keypair_jwt() not in str(err)
    # A refused exchange makes the next read bypass the secret cache (rotated key).
    assert fetch.forces[-1] is True


@pytest.mark.parametrize("status", [429, 500, 503])
@respx.mock(assert_all_called=False)
def test_exchange_server_errors_are_transient(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey, status: int
) -> None:
    respx_mock.post(TOKEN_URL).respond(status, text="BODY-CANARY")
    with pytest.raises(TransientError) as info:
        _provider(http, key, FakeClock()).ingress_token(HOST)
    assert info.value.code is ErrorCode.DEPENDENCY_ERROR
    assert "CANARY" not in str(info.value)


@respx.mock(assert_all_called=False)
def test_exchange_connection_error_is_transient(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    respx_mock.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(TransientError) as info:
        _provider(http, key, FakeClock()).ingress_token(HOST)
    assert info.value.code is ErrorCode.DEPENDENCY_ERROR
    assert "ConnectError" in str(info.value)


@respx.mock(assert_all_called=False)
def test_empty_exchange_answer_is_transient(
    respx_mock: respx.MockRouter, http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    respx_mock.post(TOKEN_URL).respond(200, text="  ")
    with pytest.raises(TransientError):
        _provider(http, key, FakeClock()).ingress_token(HOST)


# -- REST and connector -----------------------------------------------------------------------


def test_rest_headers_keypair_jwt_cached_until_near_exp(
    http: httpx.Client, key: rsa.RSAPrivateKey
) -> None:
    clock = FakeClock()
    provider = _provider(http, key, clock, jwt_lifetime_seconds=600)
    headers = provider.rest_auth_headers()
    assert headers["X-Snowflake-Authorization-Token-Type"] == "KEYPAIR_JWT"
    scheme, token = headers["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = jwt.decode(
        token, key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["exp"] == int(NOW) + 600
    clock.now = NOW + 539
    assert provider.rest_auth_headers()["Authorization"] == headers["Authorization"]
    clock.now = NOW + 541
    assert provider.rest_auth_headers()["Authorization"] != headers["Authorization"]


def test_pat_mode_headers_and_no_exchange(http: httpx.Client) -> None:
    settings = _settings("pat")
    provider = TokenProvider(
        settings, CredentialSource(settings, fetch_secret=FakeFetch(PAT)), http
    )
    with respx.mock(assert_all_called=False) as router:
        route = router.post(TOKEN_URL)
        assert provider.ingress_auth_header(HOST) == {"Authorization": f'Snowflake Token="{PAT}"'}
        assert provider.rest_auth_headers() == {"Authorization": f"Bearer {PAT}"}
        assert route.call_count == 0


def test_pat_invalidate_rereads_secret_with_force(http: httpx.Client) -> None:
    settings = _settings("pat", secret={"secret_id": "arn:secret", "max_age_seconds": 300})
    fetch = FakeFetch(PAT)
    provider = TokenProvider(settings, CredentialSource(settings, fetch_secret=fetch), http)
    assert provider.ingress_token(HOST) == PAT
    assert provider.ingress_token(HOST) == PAT
    assert fetch.forces == [False]  # cached
    fetch.value = "rotated-pat"
    provider.invalidate(HOST, token=PAT)
    assert provider.ingress_token(HOST) == "rotated-pat"
    assert fetch.forces == [False, True]
    # A late 401 with the old PAT does not force another read.
    provider.invalidate(HOST, token=PAT)
    assert provider.ingress_token(HOST) == "rotated-pat"
    assert fetch.forces == [False, True]


def test_connector_kwargs_keypair(http: httpx.Client, key: rsa.RSAPrivateKey) -> None:
    provider = _provider(
        http,
        key,
        FakeClock(),
        role="R",
        warehouse="WH",
        database="DB",
        schema="SC",
    )
    kwargs = provider.connector_kwargs()
    der = kwargs.pop("private_key")
    assert kwargs == {
        "account": "myorg-acct",
        "user": "svc_gateway",
        "role": "R",
        "warehouse": "WH",
        "database": "DB",
        "schema": "SC",
        "authenticator": "SNOWFLAKE_JWT",
    }
    loaded = serialization.load_der_private_key(der, password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == key.private_numbers()


def test_connector_kwargs_pat_with_loopback_host(http: httpx.Client) -> None:
    settings = _settings("pat", host="127.0.0.1", port=8765, protocol="http")
    provider = TokenProvider(
        settings, CredentialSource(settings, fetch_secret=FakeFetch(PAT)), http
    )
    assert provider.connector_kwargs() == {
        "account": "myorg-acct",
        "user": "svc_gateway",
        "authenticator": "PROGRAMMATIC_ACCESS_TOKEN",
        "token": PAT,
        "host": "127.0.0.1",
        "port": 8765,
        "protocol": "http",
    }
