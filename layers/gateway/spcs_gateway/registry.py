"""Service registry and settings: the one document that says what the gateway may touch.

Loaded once per container (cold start) from, in order of precedence:
``SPCS_GATEWAY_REGISTRY`` (the JSON itself), ``SPCS_GATEWAY_REGISTRY_FILE`` (a path) or
``SPCS_GATEWAY_REGISTRY_PARAM`` (an SSM parameter name, read through Powertools Parameters).
A bad document fails at cold start with an error naming the field, never the value.

Endpoint URLs come only from here, never from an event.
"""

from __future__ import annotations

import ipaddress
import json
import os
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cronsim import CronSim, CronSimError
from pydantic import Field, ValidationError, field_validator, model_validator

from spcs_gateway.model_signature import (
    DEFAULT_SIGNATURES as DEFAULT_SIGNATURES,
)
from spcs_gateway.model_signature import (
    INGRESS_REQUEST_TIMEOUT_S as INGRESS_REQUEST_TIMEOUT_S,
)
from spcs_gateway.model_signature import TASK_INPUTS as TASK_INPUTS
from spcs_gateway.model_signature import Signature as Signature
from spcs_gateway.model_signature import StrictModel as _Strict
from spcs_gateway.model_signature import Task as Task
from spcs_gateway.reference.allow_list import ImageTable as ImageTable
from spcs_gateway.reference.allow_list import NoteTable as NoteTable
from spcs_gateway.reference.allow_list import ReferenceSettings as ReferenceSettings
from spcs_gateway.settings import env_str

REGISTRY_ENV = "SPCS_GATEWAY_REGISTRY"
REGISTRY_FILE_ENV = "SPCS_GATEWAY_REGISTRY_FILE"
REGISTRY_PARAM_ENV = "SPCS_GATEWAY_REGISTRY_PARAM"


def validate_cron(expr: str) -> None:
    """Raise ValueError unless ``expr`` is a valid 5-field cron expression (warm windows)."""
    if len(expr.split()) != 5:
        raise ValueError("cron expression must have 5 fields")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError:
        raise ValueError("invalid cron expression") from None


class RegistryError(ValueError):
    """The registry document is missing or invalid. The message names fields, never values."""


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, *, allow_http_loopback: bool) -> str:
    """https only; plain http only for a loopback host and only when the registry allows it."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname:
        if allow_http_loopback and is_loopback_host(parts.hostname):
            return url.rstrip("/")
        raise ValueError("http:// is accepted only for loopback hosts with allow_http_loopback")
    raise ValueError("must be an https:// URL with a host")


class AuthMode(StrEnum):
    KEYPAIR = "keypair"
    PAT = "pat"


class SecretRef(_Strict):
    """Where the credential lives. Production: a Secrets Manager secret id/ARN.

    The secret's value is JSON: ``{"private_key": "<PEM>", "passphrase": "..."}`` for keypair,
    ``{"token": "<PAT>"}`` for PAT (a bare PEM or bare token string is accepted too).
    ``file`` (a local path holding the same content) exists for the emulator and development.
    """

    secret_id: str | None = None
    file: str | None = None
    max_age_seconds: int = Field(default=300, ge=0, le=86_400)

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.secret_id is None) == (self.file is None):
            raise ValueError("give exactly one of secret_id or file")
        return self


class SnowflakeSettings(_Strict):
    account: str = Field(min_length=1)
    user: str = Field(min_length=1)
    role: str | None = None
    warehouse: str | None = None
    database: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    results_table: str = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
    auth: AuthMode = AuthMode.KEYPAIR
    secret: SecretRef
    # Optional overrides so the same code reaches a loopback emulator.
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65_535)
    protocol: Literal["https", "http"] = "https"
    # Lifetime asked for the key-pair JWT (Snowflake caps it at one hour).
    jwt_lifetime_seconds: int = Field(default=3_540, ge=60, le=3_600)
    # Renew cached tokens this long before they expire.
    token_refresh_margin_seconds: int = Field(default=60, ge=0, le=600)

    @model_validator(mode="after")
    def _http_only_loopback(self) -> SnowflakeSettings:
        if self.protocol == "http" and not is_loopback_host(self.host):
            raise ValueError("protocol http is accepted only with a loopback host")
        return self

    @property
    def account_host(self) -> str:
        return self.host or f"{self.account}.snowflakecomputing.com"

    @property
    def account_url(self) -> str:
        """Base URL of the account endpoint (OAuth token exchange, Cortex Search REST)."""
        default_port = 443 if self.protocol == "https" else 80
        port = self.port or default_port
        suffix = "" if port == default_port else f":{port}"
        return f"{self.protocol}://{self.account_host}{suffix}"

    @property
    def token_url(self) -> str:
        return f"{self.account_url}/oauth/token"


class WarmWindow(_Strict):
    """Keep the service running inside [cron start, +duration) in the given time zone."""

    cron: str = Field(min_length=9, description="5-field cron, e.g. '45 6 * * 1-5'")
    duration_minutes: int = Field(gt=0, le=24 * 60)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        validate_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value


LabelList = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1)
]


# Upper bound of a service's instance range accepted in the registry (docs/SNOWFLAKE_FACTS.md,
# "Scaling a service").
MAX_SERVICE_INSTANCES = 50


class ServiceConfig(_Strict):
    """One managed SPCS model service."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="logical name")
    service: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$",
        description="fully qualified service name, DB.SCHEMA.SERVICE",
    )
    compute_pool: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")
    url: str = Field(description="ingress base URL, https://<host>.snowflakecomputing.app")
    method: str = Field(default="__call__", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    task: Task
    # The method's signature as the Model Registry stores it; None -> DEFAULT_SIGNATURES[task].
    signature: Signature | None = None
    # Values sent in the parameter columns, by name; a parameter not named here gets its default.
    param_values: dict[str, Any] = Field(default_factory=dict)
    # Token classification: the entity labels the service must return (B-/I- tags), so a model
    # without a trained head (LABEL_0/LABEL_1) is caught by `spcs-gateway doctor`.
    entity_labels: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    model: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$",
        description="Model Registry model, DB.SCHEMA.MODEL (doctor reads its signature)",
    )
    model_version: str | None = None
    max_batch_rows: int = Field(default=32, ge=1, le=10_000)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1_024, le=64 * 1024 * 1024)
    max_concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=30.0, gt=0, le=INGRESS_REQUEST_TIMEOUT_S)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Seconds without work before the control plane may suspend the service. Deployments keep
    # minutes (template ServiceIdleSeconds has MinValue 60); lower values exist for the local
    # stack's demos and tests (spcs-local demo --idle-seconds), where a resume takes seconds.
    idle_seconds: int = Field(default=900, ge=1)
    # Minimum seconds up after the control plane's resume before it may suspend again
    # (hysteresis). None -> the policy default (LifecyclePolicy.min_uptime, set by
    # LIFECYCLE_MIN_UPTIME_SECONDS, 300 s). A sparse on-demand service with a short idle window
    # sets it low so it is not held up long after every resume.
    min_uptime_seconds: int | None = Field(default=None, ge=0, le=86_400)
    # Scale-to-zero policy (adaptive.py). ``fixed``: suspend after ``idle_seconds`` without
    # work. ``adaptive`` (default): learn the service's idle gaps and resume time, keep alive
    # for the least expected cost and pre-resume ahead of regular arrivals, never idling
    # longer than ``keep_alive_max_seconds`` (unset: ``idle_seconds``) nor suspending sooner
    # than ``keep_alive_min_seconds`` after work. An adaptive service applies the minimum
    # uptime only when ``min_uptime_seconds`` is set here.
    policy: Literal["fixed", "adaptive"] = "adaptive"
    keep_alive_min_seconds: int = Field(default=0, ge=0, le=14_400)
    keep_alive_max_seconds: int | None = Field(default=None, ge=0, le=14_400)
    warm_windows: list[WarmWindow] = Field(default_factory=list)
    label_sets: dict[str, LabelList] = Field(default_factory=dict)
    max_candidate_labels: int = Field(default=64, ge=1, le=1_000)
    # Zero-shot image services: the model's input size; a DICOM image is converted to an
    # image_size x image_size PNG (BiomedCLIP: 224). docs/EHR_INTAKE.md.
    image_size: int = Field(default=224, ge=16, le=4_096)
    # JSON encoding of a bytes column: not documented upstream, so configurable
    # (docs/SNOWFLAKE_FACTS.md).
    bytes_encoding: Literal["base64", "hex"] = "base64"
    # Logical queue names that feed this service (the control plane checks their backlog).
    queues: list[str] = Field(default_factory=list)
    # Instance-count range the control plane (scaling.py) and operators may set with
    # ALTER SERVICE ... SET MIN_INSTANCES / MAX_INSTANCES; 1..1 never scales.
    min_instances: int = Field(default=1, ge=1, le=MAX_SERVICE_INSTANCES)
    max_instances: int = Field(default=1, ge=1, le=MAX_SERVICE_INSTANCES)
    # Backlog-driven scaling aims to clear the queued backlog within this many seconds.
    drain_target_seconds: int = Field(default=900, ge=60, le=86_400)
    # Router invocations per READY instance: a scalable service's event source mappings get
    # MaximumConcurrency = ready instances x this (Lambda's bounds 2..1000 apply).
    mapping_concurrency_per_instance: int = Field(default=2, ge=1, le=500)

    @field_validator("url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _fits_task(self) -> ServiceConfig:
        if len(self.effective_signature.inputs) != len(TASK_INPUTS[self.task]):
            raise ValueError(
                f"signature: a {self.task.value} service takes "
                f"{len(TASK_INPUTS[self.task])} input column(s) "
                f"({', '.join(TASK_INPUTS[self.task])})"
            )
        unknown = set(self.param_values) - {p.name for p in self.effective_signature.params}
        if unknown:
            raise ValueError("param_values: names a parameter the signature does not have")
        return self

    @model_validator(mode="after")
    def _instance_range(self) -> ServiceConfig:
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances must not exceed max_instances")
        return self

    @property
    def effective_signature(self) -> Signature:
        return self.signature or DEFAULT_SIGNATURES[self.task]

    @property
    def columns(self) -> list[str]:
        """Input column names in signature order."""
        return [f.name for f in self.effective_signature.inputs]

    @property
    def param_columns(self) -> list[tuple[str, Any]]:
        """(name, value) of every parameter column, in signature order."""
        return [
            (p.name, self.param_values.get(p.name, p.default_value))
            for p in self.effective_signature.params
        ]

    @property
    def out_column(self) -> str:
        return self.effective_signature.outputs[0].name

    @property
    def method_path(self) -> str:
        """Model method name to URL path: ``_`` becomes ``-`` (``__call__`` -> ``/--call--``)."""
        return "/" + self.method.replace("_", "-")

    @property
    def ingress_host(self) -> str:
        """Host (with port when explicit) used as the OAuth scope for this endpoint."""
        parts = urlsplit(self.url)
        return parts.netloc


class PoolConfig(_Strict):
    """A compute pool's own setting: suspend it once every managed service on it is suspended
    (and nothing else runs on it), or never. Unset: the control function's switch
    (``SUSPEND_IDLE_POOLS``, default on)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")
    suspend_when_idle: bool | None = None


class ImageSettings(_Strict):
    allowed_buckets: list[str] = Field(default_factory=list)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1_024)
    max_pixels: int = Field(default=40_000_000, ge=1)


class EhrSettings(_Strict):
    """EHR-native intake (FHIR, HL7 v2): how source identifiers reach the results table.

    ``subject_ids``: ``keyed`` (default) writes an opaque HMAC-SHA256 of the patient (or, without
    one, the document) identifier as SUBJECT_ID; ``source`` is the operator's opt-in to the raw
    identifier. The HMAC key is the ``subject_key`` secret; without one it is derived from the
    Snowflake credential secret (its ``subject_key`` field if present). docs/EHR_INTAKE.md.
    """

    subject_ids: Literal["keyed", "source"] = "keyed"
    subject_key: SecretRef | None = None


class Registry(_Strict):
    version: Literal[1] = 1
    allow_http_loopback: bool = False
    snowflake: SnowflakeSettings
    services: list[ServiceConfig] = Field(min_length=1)
    # Per-pool overrides of the control function's SUSPEND_IDLE_POOLS (pool_suspends_when_idle).
    pools: list[PoolConfig] = Field(default_factory=list)
    images: ImageSettings = Field(default_factory=ImageSettings)
    ehr: EhrSettings = Field(default_factory=EhrSettings)
    references: ReferenceSettings = Field(default_factory=ReferenceSettings)

    @model_validator(mode="after")
    def _check(self) -> Registry:
        names = [s.name for s in self.services]
        if len(names) != len(set(names)):
            raise ValueError("services: logical names must be unique")
        for index, svc in enumerate(self.services):
            try:
                check_endpoint_url(svc.url, allow_http_loopback=self.allow_http_loopback)
            except ValueError as exc:
                raise ValueError(f"services[{index}].url: {exc}") from None
        return self

    def service(self, name: str) -> ServiceConfig:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def pool_suspends_when_idle(self, pool: str, default: bool = True) -> bool:
        """The pool's own ``suspend_when_idle``; ``default`` (the control function's switch)
        when the registry does not set it."""
        wanted = pool.upper()
        conf = next((p for p in self.pools if p.name.upper() == wanted), None)
        if conf is None or conf.suspend_when_idle is None:
            return default
        return conf.suspend_when_idle


def parse_registry(document: str | bytes | dict[str, Any]) -> Registry:
    """Validate a registry document. Errors name the failing fields and never echo values."""
    try:
        data = json.loads(document) if isinstance(document, str | bytes) else document
    except json.JSONDecodeError as exc:
        raise RegistryError(f"registry is not valid JSON (line {exc.lineno})") from None
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise RegistryError(f"invalid service registry: {details}") from None


def load_registry(environ: dict[str, str] | None = None) -> Registry:
    """Load the registry from the environment (JSON, file path, or SSM parameter name)."""
    env = os.environ if environ is None else environ
    if raw := env_str(env, REGISTRY_ENV):
        return parse_registry(raw)
    if path := env_str(env, REGISTRY_FILE_ENV):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"cannot read registry file ({exc.strerror})") from None
        return parse_registry(text)
    if param := env_str(env, REGISTRY_PARAM_ENV):
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_parameter(param, max_age=300)
        return parse_registry(str(value))
    raise RegistryError(
        f"no service registry: set {REGISTRY_ENV}, {REGISTRY_FILE_ENV} or {REGISTRY_PARAM_ENV}"
    )
