"""Source identifiers -> the results table's SUBJECT_ID.

A note's subject is its patient: the FHIR ``subject`` (a reference, or its identifier; inside a
Bundle the referenced Patient's first identifier), or HL7 PID-3's first identifier with its
assigning authority. Without one, the note's document identity stands in. These identifiers
are PHI, so by default the table gets an opaque key: ``sk:`` + the first 128 bits of
HMAC-SHA256(key, kind + value), the same for the same patient on every message, useless without
the key. The operator opts in to the raw value with the registry's ``ehr.subject_ids: source``.

The key: the secret named by the registry's ``ehr.subject_key`` (a JSON object with
``subject_key``, or the bare value), read once per container. Without that setting the
Snowflake credential secret serves: its ``subject_key`` field if it has one, else a key
derived from the whole secret value (HMAC-SHA256 with a fixed label), which changes when that
credential is rotated: deployments that keep subject keys across rotations set
``ehr.subject_key`` (docs/EHR_INTAKE.md).

Errors are ``ConfigurationError`` (records are kept and retried, the alarm fires), and never
quote the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.registry import EhrSettings, SecretRef

KIND_PATIENT = "patient"
KIND_DOCUMENT = "document"
KEYED_PREFIX = "sk:"
MIN_KEY_BYTES = 16
_DERIVATION_LABEL = b"spcs-gateway/ehr-subject-key/v1"

FetchSecret = Callable[[str, int], str | bytes]


class SubjectKeyer(Protocol):
    def __call__(self, kind: str, value: str) -> str: ...


def _error(detail: str) -> ConfigurationError:
    return ConfigurationError(ErrorCode.CONFIGURATION_ERROR, detail)


def _powertools_fetch(secret_id: str, max_age: int) -> str | bytes:
    from aws_lambda_powertools.utilities import parameters

    value: Any = parameters.get_secret(secret_id, max_age=max_age)
    if not isinstance(value, str | bytes):
        raise _error("subject key secret has an unexpected type")
    return value


def key_from_secret(raw: str | bytes, *, derive: bool) -> bytes:
    """The HMAC key held by a secret value: its JSON ``subject_key`` field, else (``derive``)
    a key derived from the whole value, else the bare value itself."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise _error("subject key secret is not UTF-8 text") from None
    text = text.strip()
    fields: Any = None
    if text.startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError:
            raise _error("subject key secret looks like JSON but does not parse") from None
    if isinstance(fields, dict) and "subject_key" in fields:
        value = fields["subject_key"]
        if not isinstance(value, str) or len(value.encode("utf-8")) < MIN_KEY_BYTES:
            raise _error(f"subject_key must be a string of at least {MIN_KEY_BYTES} bytes")
        return value.encode("utf-8")
    if derive:
        if not text:
            raise _error("credential secret is empty")
        return hmac.new(_DERIVATION_LABEL, text.encode("utf-8"), hashlib.sha256).digest()
    if len(text.encode("utf-8")) < MIN_KEY_BYTES:
        raise _error(f"subject key secret must hold at least {MIN_KEY_BYTES} bytes")
    return text.encode("utf-8")


class SubjectIds:
    """``subjects(kind, value)`` -> SUBJECT_ID. The key is read on the first keyed call."""

    def __init__(
        self,
        settings: EhrSettings,
        credential_secret: SecretRef | None = None,
        *,
        fetch_secret: FetchSecret | None = None,
    ) -> None:
        self._source = settings.subject_ids == "source"
        self._ref = settings.subject_key or credential_secret
        self._derive = settings.subject_key is None
        self._fetch = fetch_secret or _powertools_fetch
        self._lock = threading.Lock()
        self._key: bytes | None = None

    @classmethod
    def with_key(cls, key: bytes) -> SubjectIds:
        """A keyer with a fixed key (tests, tools)."""
        made = cls(EhrSettings())
        made._key = key
        return made

    def _read(self, ref: SecretRef) -> str | bytes:
        if ref.file is not None:
            try:
                return Path(ref.file).read_bytes()
            except OSError as exc:
                raise _error(f"cannot read subject key file ({exc.strerror})") from None
        assert ref.secret_id is not None  # SecretRef guarantees exactly one
        try:
            return self._fetch(ref.secret_id, ref.max_age_seconds)
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK's message is not trusted into logs
            raise _error(f"cannot fetch subject key secret ({type(exc).__name__})") from None

    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                if self._ref is None:
                    raise _error("no subject key: set ehr.subject_key in the registry")
                self._key = key_from_secret(self._read(self._ref), derive=self._derive)
            return self._key

    def __call__(self, kind: str, value: str) -> str:
        if self._source:
            return f"{kind}:{value}"
        mac = hmac.new(self.key(), f"{kind}\x1f{value}".encode("utf-8", "surrogatepass"), "sha256")
        return KEYED_PREFIX + mac.hexdigest()[:32]
