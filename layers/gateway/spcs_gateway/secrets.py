"""Credential source: the Snowflake private key or PAT, from Secrets Manager or a local file.

Production reads the secret through Powertools Parameters (which caches it for ``max_age``);
the emulator and development point ``SecretRef.file`` at a local file. The parsed credential is
cached here too, so a PEM (possibly passphrase-protected, i.e. slow to load) is parsed once per
secret value, not per request.

Nothing in this module ever puts secret material into an exception message or a repr.

SnapStart (``snapshot.py``): after a restore the cached value counts as expired and the next
``get`` re-reads the secret past Powertools' cache, because the age of anything cached before
the snapshot was measured on a clock that does not span the snapshot (``time.monotonic`` in a
restored microVM says nothing about how long the snapshot was stored). A value that did not
change keeps its parsed key object.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spcs_gateway import snapshot
from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.registry import AuthMode, SnowflakeSettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

# (secret_id, max_age_seconds, force_fetch) -> the secret's value.
FetchSecret = Callable[[str, int, bool], str | bytes]


@dataclass(frozen=True, repr=False)
class Credential:
    mode: AuthMode
    private_key: rsa.RSAPrivateKey | None  # keypair mode
    token: str | None  # PAT mode

    def __repr__(self) -> str:
        held = "private_key" if self.private_key is not None else "token" if self.token else "none"
        return f"Credential(mode={self.mode.value}, holds={held})"

    __str__ = __repr__


def _config_error(detail: str) -> ConfigurationError:
    return ConfigurationError(ErrorCode.CONFIGURATION_ERROR, detail)


def _powertools_fetch(secret_id: str, max_age: int, force: bool) -> str | bytes:
    # Imported lazily: Powertools Parameters pulls in boto3, which the file mode never needs.
    from aws_lambda_powertools.utilities import parameters

    value: Any = parameters.get_secret(secret_id, max_age=max_age, force_fetch=force)
    if not isinstance(value, str | bytes):
        raise _config_error("secret value has an unexpected type")
    return value


def warm_secret_client() -> None:
    """Build Powertools' Secrets Manager provider (and its boto3 client) now: a SnapStart
    before-snapshot hook, so a restored environment's first request does not pay for loading
    the service model. No call is made; the secret itself stays out of the snapshot."""
    from aws_lambda_powertools.utilities.parameters import constants
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    if "secrets" not in constants.DEFAULT_PROVIDERS:
        constants.DEFAULT_PROVIDERS["secrets"] = SecretsProvider()


def parse_secret(mode: AuthMode, raw: str | bytes) -> Credential:
    """Turn a secret value into a credential for ``mode``. Errors never quote the value."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _config_error("secret value is not UTF-8 text") from None
    text = raw.strip()
    if not text:
        raise _config_error("secret value is empty")

    fields: dict[str, Any] = {}
    if text.startswith(("{", "[")):
        try:
            loaded = json.loads(text)
        except ValueError:
            raise _config_error("secret value looks like JSON but does not parse") from None
        if not isinstance(loaded, dict):
            raise _config_error("secret JSON must be an object")
        fields = loaded

    if mode is AuthMode.PAT:
        token = fields.get("token") if fields else text
        if (
            not isinstance(token, str)
            or not token.strip()
            or any(c.isspace() for c in token.strip())
        ):
            raise _config_error("secret holds no 'token' for PAT auth")
        return Credential(mode=mode, private_key=None, token=token.strip())

    # cryptography only for key-pair auth (a PAT deployment never loads a key).
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = fields.get("private_key") if fields else text
    passphrase = fields.get("passphrase") if fields else None
    if not isinstance(pem, str) or "-----BEGIN" not in pem:
        raise _config_error("secret holds no PEM 'private_key' for keypair auth")
    if passphrase is not None and not isinstance(passphrase, str):
        raise _config_error("secret 'passphrase' must be a string")
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # TypeError: encrypted key without a passphrase (or the reverse).
        raise _config_error(
            "private key cannot be loaded (bad PEM, wrong or missing passphrase)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _config_error("private key is not an RSA key")
    return Credential(mode=mode, private_key=key, token=None)


class CredentialSource:
    """Cached access to the configured credential; ``force=True`` re-reads the secret."""

    def __init__(
        self,
        settings: SnowflakeSettings,
        *,
        fetch_secret: FetchSecret | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mode = settings.auth
        self._ref = settings.secret
        self._fetch = fetch_secret or _powertools_fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: Credential | None = None
        self._cached_digest: bytes | None = None
        self._fetched_at = 0.0
        self._stale = False  # set by a restore: the next get re-reads past every cache
        if self._ref.secret_id is not None and fetch_secret is None:
            snapshot.before_snapshot(
                lambda _source: warm_secret_client(), name="secrets.warm_client", owner=self
            )
        snapshot.after_restore(self.expire, name="secrets.expire")

    def expire(self) -> None:
        """Treat the cached value as expired: the next ``get`` re-reads the secret with
        ``force`` (past Powertools' cache too)."""
        with self._lock:
            self._stale = True

    def get(self, *, force: bool = False) -> Credential:
        with self._lock:
            now = self._clock()
            fresh = now - self._fetched_at < self._ref.max_age_seconds and not self._stale
            if self._cached is not None and fresh and not force:
                return self._cached
            raw = self._read(force or self._stale)
            digest = hashlib.sha256(raw if isinstance(raw, bytes) else raw.encode()).digest()
            if self._cached is None or digest != self._cached_digest:
                # Parse only when the value changed (rotation), keeping the key object stable.
                self._cached = parse_secret(self._mode, raw)
                self._cached_digest = digest
            self._fetched_at = now
            self._stale = False
            return self._cached

    def _read(self, force: bool) -> str | bytes:
        if self._ref.file is not None:
            try:
                return Path(self._ref.file).read_bytes()
            except OSError as exc:
                raise _config_error(f"cannot read secret file ({exc.strerror})") from None
        assert self._ref.secret_id is not None  # SecretRef guarantees exactly one
        try:
            return self._fetch(self._ref.secret_id, self._ref.max_age_seconds, force)
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK's message is not trusted into logs
            raise _config_error(f"cannot fetch secret ({type(exc).__name__})") from None
