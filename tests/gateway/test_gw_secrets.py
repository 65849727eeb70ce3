"""CredentialSource and secret parsing: formats, caching, force refresh, no secret leakage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.registry import AuthMode, SnowflakeSettings
from spcs_gateway.secrets import Credential, CredentialSource, parse_secret

PAT = "pat-CANARY-7f3e9a"
PASSPHRASE = "pass-CANARY-1b2c"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey, passphrase: str | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def _settings(auth: str = "keypair", **secret: Any) -> SnowflakeSettings:
    return SnowflakeSettings.model_validate(
        {
            "account": "abc-org-acct",
            "user": "svc",
            "auth": auth,
            "secret": secret or {"secret_id": "arn:secret"},
        }
    )


class FakeFetch:
    def __init__(self, *values: str | bytes) -> None:
        self.values = list(values)
        self.calls: list[tuple[str, int, bool]] = []

    def __call__(self, secret_id: str, max_age: int, force: bool) -> str | bytes:
        self.calls.append((secret_id, max_age, force))
        return self.values[min(len(self.calls), len(self.values)) - 1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _same_key(a: rsa.RSAPrivateKey | None, b: rsa.RSAPrivateKey) -> bool:
    assert a is not None
    return a.private_numbers() == b.private_numbers()


def test_keypair_json_bare_pem_and_bytes(key: rsa.RSAPrivateKey) -> None:
    pem = _pem(key)
    for raw in (json.dumps({"private_key": pem}), pem, pem.encode()):
        cred = parse_secret(AuthMode.KEYPAIR, raw)
        assert cred.mode is AuthMode.KEYPAIR
        assert cred.token is None
        assert _same_key(cred.private_key, key)


def test_keypair_with_passphrase(key: rsa.RSAPrivateKey) -> None:
    raw = json.dumps({"private_key": _pem(key, PASSPHRASE), "passphrase": PASSPHRASE})
    assert _same_key(parse_secret(AuthMode.KEYPAIR, raw).private_key, key)


@pytest.mark.parametrize("passphrase", [None, "wrong-passphrase"])
def test_bad_passphrase_is_configuration_error_without_material(
    key: rsa.RSAPrivateKey, passphrase: str | None
) -> None:
    pem = _pem(key, PASSPHRASE)
    doc: dict[str, Any] = {"private_key": pem}
    if passphrase:
        doc["passphrase"] = passphrase
    with pytest.raises(ConfigurationError) as info:
        parse_secret(AuthMode.KEYPAIR, json.dumps(doc))
    err = info.value
    assert err.code is ErrorCode.CONFIGURATION_ERROR
    assert "BEGIN" not in str(err)
    assert "wrong-passphrase" not in str(err)
    assert err.__cause__ is None
    assert err.__suppress_context__


def test_pat_json_and_bare() -> None:
    assert parse_secret(AuthMode.PAT, json.dumps({"token": PAT})).token == PAT
    assert parse_secret(AuthMode.PAT, f"  {PAT}\n").token == PAT


@pytest.mark.parametrize(
    ("mode", "raw"),
    [
        (AuthMode.PAT, json.dumps({"private_key": "x"})),
        (AuthMode.KEYPAIR, json.dumps({"token": PAT})),
        (AuthMode.KEYPAIR, PAT),
        (AuthMode.PAT, "   "),
        (AuthMode.PAT, '{"token": "' + PAT),  # broken JSON
        (AuthMode.PAT, json.dumps([PAT])),
        (AuthMode.PAT, b"\xff\xfe" + PAT.encode()),
    ],
)
def test_unusable_secret_values(mode: AuthMode, raw: str | bytes) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_secret(mode, raw)
    assert info.value.code is ErrorCode.CONFIGURATION_ERROR
    assert "CANARY" not in str(info.value)


def test_non_rsa_key_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ConfigurationError, match="not an RSA key"):
        parse_secret(AuthMode.KEYPAIR, pem)


def test_repr_hides_secret_material(key: rsa.RSAPrivateKey) -> None:
    pat = Credential(mode=AuthMode.PAT, private_key=None, token=PAT)
    kp = Credential(mode=AuthMode.KEYPAIR, private_key=key, token=None)
    assert "CANARY" not in repr(pat)
    assert "CANARY" not in str(pat)
    assert "pat" in repr(pat)
    assert "keypair" in repr(kp)
    assert "RSAPrivateKey" not in repr(kp)


def test_cached_until_max_age_then_refetched_and_force_bypasses() -> None:
    fetch = FakeFetch(PAT, PAT, "rotated-pat", "rotated-pat")
    clock = FakeClock()
    settings = _settings("pat", secret_id="arn:secret", max_age_seconds=300)
    source = CredentialSource(settings, fetch_secret=fetch, clock=clock)

    first = source.get()
    assert source.get() is first
    assert len(fetch.calls) == 1
    assert fetch.calls[0] == ("arn:secret", 300, False)

    clock.now += 301
    again = source.get()
    assert again is first  # same value: the parsed credential is reused
    assert len(fetch.calls) == 2

    rotated = source.get(force=True)
    assert fetch.calls[-1] == ("arn:secret", 300, True)
    assert rotated.token == "rotated-pat"
    assert source.get() is rotated
    assert len(fetch.calls) == 3


def test_fetch_failure_does_not_echo_sdk_message() -> None:
    def boom(secret_id: str, max_age: int, force: bool) -> str:
        raise RuntimeError(f"AccessDenied for {PAT}")

    source = CredentialSource(_settings("pat"), fetch_secret=boom)
    with pytest.raises(ConfigurationError) as info:
        source.get()
    assert "CANARY" not in str(info.value)
    assert "RuntimeError" in str(info.value)


def test_default_fetch_uses_powertools_get_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.utilities import parameters

    calls: list[tuple[str, Any, Any]] = []

    def fake_get_secret(name: str, max_age: int | None = None, force_fetch: bool = False) -> str:
        calls.append((name, max_age, force_fetch))
        return json.dumps({"token": PAT})

    monkeypatch.setattr(parameters, "get_secret", fake_get_secret)
    source = CredentialSource(_settings("pat", secret_id="sm-id", max_age_seconds=120))
    assert source.get().token == PAT
    assert source.get(force=True).token == PAT
    assert calls == [("sm-id", 120, False), ("sm-id", 120, True)]


def test_file_secret(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"private_key": _pem(key)}))
    source = CredentialSource(_settings("keypair", file=str(path)))
    assert _same_key(source.get().private_key, key)


def test_missing_file_is_configuration_error(tmp_path: Path) -> None:
    source = CredentialSource(_settings("pat", file=str(tmp_path / "absent")))
    with pytest.raises(ConfigurationError, match="cannot read secret file"):
        source.get()
