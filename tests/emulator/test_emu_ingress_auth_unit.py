"""EmulatorAuth with plain values and a fake clock: Snowflake's key-pair JWT rules, PATs,
ingress tokens bound to one endpoint, connector login and the REST bearer."""

from __future__ import annotations

import base64
import hashlib

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from spcs_gateway.auth import make_keypair_jwt
from spcs_local.emulator.auth import (
    JWT_BEARER_GRANT,
    AuthError,
    EmulatorAuth,
    parse_scope,
    public_key_fingerprint,
)
from spcs_local.emulator.clock import FakeClock

HOST = "127.0.0.1:45001"
OTHER_HOST = "127.0.0.1:45002"
PAT = "pat-secret-value"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(key: rsa.RSAPrivateKey, clock: FakeClock) -> EmulatorAuth:
    return EmulatorAuth("localtest", "gateway_svc", [key.public_key()], {PAT}, clock)


def claims_for(key: rsa.RSAPrivateKey, now: float, **override: object) -> dict[str, object]:
    qualified = "LOCALTEST.GATEWAY_SVC"
    claims: dict[str, object] = {
        "iss": f"{qualified}.{public_key_fingerprint(key)}",
        "sub": qualified,
        "iat": int(now),
        "exp": int(now) + 3000,
    }
    claims.update(override)
    return claims


def rejected(call: object, *args: object, status: int = 401) -> AuthError:
    with pytest.raises(AuthError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.status == status
    return info.value


def test_fingerprint_is_base64_sha256_of_der(key: rsa.RSAPrivateKey) -> None:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert public_key_fingerprint(key) == expected == public_key_fingerprint(key.public_key())


def test_gateway_jwt_is_accepted(auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock):
    token = make_keypair_jwt(
        "localtest.us-east-1", "gateway_svc", key, now=clock.now(), lifetime_s=3540
    )
    assert auth.verify_jwt(token) == "GATEWAY_SVC"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"iss": "localtest.GATEWAY_SVC.SHA256:x", "sub": "localtest.GATEWAY_SVC"}, "account"),
        ({"iss": "LOCALTEST.gateway_svc.SHA256:x", "sub": "LOCALTEST.gateway_svc"}, "user is"),
        ({"sub": "LOCALTEST.SOMEONE_ELSE"}, "sub must equal"),
        ({"iss": "LOCALTEST.GATEWAY_SVC"}, "iss must be"),
        ({"exp": None}, "numeric exp"),
        ({"iat": None}, "numeric exp and iat"),
    ],
)
def test_claim_rules(
    auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock, override: dict, reason: str
) -> None:
    claims = {k: v for k, v in claims_for(key, clock.now(), **override).items() if v is not None}
    err = rejected(auth.verify_jwt, jwt.encode(claims, key, algorithm="RS256"))
    assert err.error == "invalid_token"
    assert reason in err.message


def test_unregistered_key_is_rejected(
    auth: EmulatorAuth, other_key: rsa.RSAPrivateKey, clock: FakeClock
) -> None:
    token = jwt.encode(claims_for(other_key, clock.now()), other_key, algorithm="RS256")
    assert "fingerprint" in rejected(auth.verify_jwt, token).message


def test_forged_signature_is_rejected(
    auth: EmulatorAuth, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, clock: FakeClock
) -> None:
    # Claims name the registered key, but another key signed them.
    token = jwt.encode(claims_for(key, clock.now()), other_key, algorithm="RS256")
    assert "signature" in rejected(auth.verify_jwt, token).message


def test_only_rs256(auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock) -> None:
    for alg in ("RS512", "PS256"):
        token = jwt.encode(claims_for(key, clock.now()), key, algorithm=alg)
        assert "RS256" in rejected(auth.verify_jwt, token).message
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims_for(key, clock.now()), ec_key, algorithm="ES256")
    assert "RS256" in rejected(auth.verify_jwt, token).message
    rejected(auth.verify_jwt, "not-a-jwt")


def test_time_rules(auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock) -> None:
    now = clock.now()
    ok = jwt.encode(claims_for(key, now, exp=int(now) + 3600), key, algorithm="RS256")
    assert auth.verify_jwt(ok) == "GATEWAY_SVC"
    too_long = jwt.encode(claims_for(key, now, exp=int(now) + 2 * 3600), key, algorithm="RS256")
    assert "one hour" in rejected(auth.verify_jwt, too_long).message
    future_iat = claims_for(key, now, iat=int(now) + 600, exp=int(now) + 900)
    assert "future" in rejected(auth.verify_jwt, jwt.encode(future_iat, key, "RS256")).message
    clock.advance(3600 + 61)
    assert "expired" in rejected(auth.verify_jwt, ok).message


def test_exchange_issues_a_token_bound_to_the_scope_host(
    auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock
) -> None:
    assertion = make_keypair_jwt("LOCALTEST", "GATEWAY_SVC", key, now=clock.now(), lifetime_s=600)
    form = {
        "grant_type": JWT_BEARER_GRANT,
        "scope": f"session:role:SPCS_GATEWAY_ROLE {HOST}",
        "assertion": assertion,
    }
    token = auth.exchange(form, [HOST, OTHER_HOST])
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == int(clock.now()) + 3600
    header = f'Snowflake Token="{token}"'
    assert auth.verify_ingress(header, HOST) == "GATEWAY_SVC"
    assert "another endpoint" in rejected(auth.verify_ingress, header, OTHER_HOST).message
    clock.advance(3601)
    assert "expired" in rejected(auth.verify_ingress, header, HOST).message


def test_exchange_errors(auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock) -> None:
    assertion = make_keypair_jwt("LOCALTEST", "GATEWAY_SVC", key, now=clock.now(), lifetime_s=600)
    good = {"grant_type": JWT_BEARER_GRANT, "scope": HOST, "assertion": assertion}
    assert rejected(auth.exchange, {**good, "grant_type": "password"}, [HOST], status=400)
    assert rejected(auth.exchange, {**good, "assertion": ""}, [HOST], status=400)
    assert rejected(auth.exchange, {**good, "scope": ""}, [HOST], status=400)
    err = rejected(auth.exchange, {**good, "scope": "127.0.0.1:1"}, [HOST], status=401)
    assert err.body() == {"error": "invalid_scope", "message": err.message}
    rejected(auth.exchange, {**good, "assertion": assertion + "x"}, [HOST], status=401)


def test_scope_parsing() -> None:
    assert parse_scope("session:role:R1 https://127.0.0.1:9/").host == "127.0.0.1:9"
    assert parse_scope("session:role:R1 127.0.0.1:9").role == "R1"
    with pytest.raises(AuthError):
        parse_scope("a b")


def test_ingress_header_forms(auth: EmulatorAuth) -> None:
    assert auth.verify_ingress(f'Snowflake Token="{PAT}"', HOST) == "GATEWAY_SVC"
    assert rejected(auth.verify_ingress, None, HOST).error == "missing_token"
    rejected(auth.verify_ingress, f"Bearer {PAT}", HOST)
    rejected(auth.verify_ingress, 'Snowflake Token="wrong"', HOST)


def test_connector_login(auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock) -> None:
    token = make_keypair_jwt("LOCALTEST", "GATEWAY_SVC", key, now=clock.now(), lifetime_s=600)
    assert auth.verify_login("SNOWFLAKE_JWT", "gateway_svc", "localtest", token) == "GATEWAY_SVC"
    assert auth.verify_login("PROGRAMMATIC_ACCESS_TOKEN", "GATEWAY_SVC", None, PAT) == "GATEWAY_SVC"
    rejected(auth.verify_login, "PROGRAMMATIC_ACCESS_TOKEN", "GATEWAY_SVC", None, "nope")
    rejected(auth.verify_login, "SNOWFLAKE_JWT", "OTHER_USER", None, token)
    rejected(auth.verify_login, "SNOWFLAKE_JWT", None, "OTHERACCT", token)
    rejected(auth.verify_login, "SNOWFLAKE", "GATEWAY_SVC", None, PAT)


def test_rest_bearer(auth: EmulatorAuth, key: rsa.RSAPrivateKey, clock: FakeClock) -> None:
    token = make_keypair_jwt("LOCALTEST", "GATEWAY_SVC", key, now=clock.now(), lifetime_s=600)
    assert auth.verify_bearer(f"Bearer {token}", "KEYPAIR_JWT") == "GATEWAY_SVC"
    assert auth.verify_bearer(f"Bearer {PAT}", None) == "GATEWAY_SVC"
    rejected(auth.verify_bearer, f"Bearer {token}", None)  # a JWT needs the token-type header
    rejected(auth.verify_bearer, None, None)
    rejected(auth.verify_bearer, f'Snowflake Token="{PAT}"', None)


def test_messages_never_echo_secrets(auth: EmulatorAuth) -> None:
    for call, args in [
        (auth.verify_ingress, ('Snowflake Token="leaky-token-123"', HOST)),
        (auth.verify_bearer, ("Bearer leaky-token-123", None)),
        (auth.verify_login, ("PROGRAMMATIC_ACCESS_TOKEN", None, None, "leaky-token-123")),
    ]:
        err = rejected(call, *args)
        assert "leaky" not in err.message
