"""Deploy ``spec.DEPLOYMENTS`` to a Snowflake account, idempotently.

For each deployment:

1. **Model version**: skipped if ``SHOW VERSIONS IN MODEL`` has it. Otherwise the weights are
   downloaded (``weights.fetch``), checked (``weights.validate``) and logged with
   ``Registry.log_model`` as the deployment's ``CustomModel`` (``serving.py``) with explicit
   ``signatures={method: ModelSignature}`` converted from ``spec``, the pinned
   ``pip_requirements`` (``relax_version=False``),
   ``target_platforms=["SNOWPARK_CONTAINER_SERVICES"]``, Python 3.11 and the ``spcs_models``
   package as a code path.
2. **Service**: skipped if ``SHOW SERVICES`` has it. Otherwise ``ModelVersion.create_service``
   with every setting of ``spec.ServiceSettings`` passed explicitly (``min_instances`` is never
   snowflake-ml's default 0: the gateway's control plane decides when a service sleeps).
3. **Endpoint**: ``SHOW ENDPOINTS IN SERVICE`` until the public endpoint has its
   ``ingress_url``; the deployment's gateway registry entry is built from
   ``https://<ingress_url>`` (``spec.ModelDeployment.registry_entry``).

The Snowflake side is behind ``Platform`` (``SnowflakePlatform`` is the real one), so the
orchestration is tested without an account. ``plan`` needs neither Snowflake nor
snowflake-ml. Progress goes to stderr; it names models, services and commits, never data.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from spcs_models import signatures, spec, weights

__all__ = [
    "ENDPOINT_NAME",
    "MODELS_PYTHON",
    "REMINDER",
    "TARGET_PLATFORMS",
    "DeployError",
    "DeployOptions",
    "Deployer",
    "Platform",
    "SnowflakePlatform",
    "code_paths",
    "connection_options",
    "fragment",
    "log_kwargs",
    "open_session",
    "plan",
    "service_kwargs",
    "split_fqn",
]

# The Python the models are logged for. snowflake-ml pickles the serving module by value, which
# only loads under the same minor version, so the tool runs on it too (checked in the CLI).
MODELS_PYTHON = "3.11"
TARGET_PLATFORMS = ("SNOWPARK_CONTAINER_SERVICES",)
# snowflake-ml names the public endpoint of a model service "inference".
ENDPOINT_NAME = "inference"
URL_PLACEHOLDER = "https://<ingress_url>"

REMINDER = (
    "Next: run infra/snowflake/08_model_services.sql (AUTO_SUSPEND_SECS = 0 and the gateway "
    "role's grants on the services), put the entries above into the gateway registry "
    "(services list, or the template parameters NerServiceUrl/ClipServiceUrl with method "
    "'predict'), then check the whole path with `spcs-gateway doctor`."
)

_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
_FQN_RE = re.compile(rf"^({_IDENT})\.({_IDENT})\.({_IDENT})$")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


class DeployError(RuntimeError):
    """A deployment step cannot go on; the message says which and why (no data in it)."""


def split_fqn(name: str) -> tuple[str, str, str]:
    """``DB.SCHEMA.NAME`` of unquoted identifiers (safe to place in SQL text)."""
    match = _FQN_RE.match(name)
    if match is None:
        raise DeployError(f"{name!r} is not a DB.SCHEMA.NAME of plain identifiers")
    db, schema, obj = match.groups()
    return db, schema, obj


@dataclass(frozen=True)
class DeployOptions:
    image_repo: str | None = None  # None: snowflake-ml's default (hidden) image repository
    image_build_compute_pool: str | None = None  # None: the service's compute pool
    build_external_access_integrations: tuple[str, ...] = ()
    work_dir: Path | None = None  # None: a temporary directory, removed after logging
    revisions: Mapping[str, str] = field(default_factory=dict)  # repo id -> commit/branch
    endpoint_timeout_s: float = 900.0
    endpoint_poll_s: float = 10.0


def service_kwargs(deployment: spec.ModelDeployment, options: DeployOptions) -> dict[str, Any]:
    """``ModelVersion.create_service`` arguments, every one explicit."""
    s = deployment.settings
    if s.min_instances < 1:
        raise DeployError(
            f"{deployment.logical_name}: min_instances must be at least 1 (0 lets Snowflake "
            "suspend the service behind the gateway's control plane)"
        )
    if s.max_instances < s.min_instances:
        raise DeployError(f"{deployment.logical_name}: max_instances is below min_instances")
    return {
        "service_name": deployment.service,
        "service_compute_pool": s.compute_pool,
        "image_build_compute_pool": options.image_build_compute_pool or s.compute_pool,
        "image_repo": options.image_repo,
        "ingress_enabled": s.ingress_enabled,
        "min_instances": s.min_instances,
        "max_instances": s.max_instances,
        "cpu_requests": s.cpu_requests,
        "memory_requests": s.memory_requests,
        "gpu_requests": s.gpu_requests,
        "num_workers": s.num_workers,
        "max_batch_rows": s.max_batch_rows,
        "force_rebuild": False,
        "build_external_access_integrations": (
            list(options.build_external_access_integrations) or None
        ),
        "block": True,
    }


def code_paths() -> list[str]:
    """The ``spcs_models`` package, shipped with each model so the serving module imports."""
    return [str(Path(__file__).resolve().parent)]


def log_kwargs(deployment: spec.ModelDeployment, *, comment: str) -> dict[str, Any]:
    """``Registry.log_model`` arguments other than the model and its signatures."""
    _, _, model = split_fqn(deployment.model_name)
    return {
        "model_name": model,
        "version_name": deployment.version,
        "comment": comment,
        "pip_requirements": list(deployment.pip_requirements),
        "target_platforms": list(TARGET_PLATFORMS),
        "python_version": MODELS_PYTHON,
        "code_paths": code_paths(),
        # Keep the pins exact: the default relaxes ==x.y.z to >=x.y,<x+1.
        "options": {"relax_version": False},
    }


def plan(deployments: Sequence[spec.ModelDeployment], options: DeployOptions) -> dict[str, Any]:
    """What ``deploy`` would do, without Snowflake or snowflake-ml."""
    items = []
    for d in deployments:
        log_model = log_kwargs(d, comment="<weights and their commits>")
        log_model["signatures"] = {d.method: d.signature.to_dict()}
        items.append(
            {
                "name": d.logical_name,
                "model": d.model_name,
                "version": d.version,
                "method": d.method,
                "url_path": d.method_path,
                "log_model": log_model,
                "weights": [source.plan() for source in weights.SOURCES[d.logical_name]],
                "create_service": service_kwargs(d, options),
                "registry_entry": d.registry_entry(URL_PLACEHOLDER),
            }
        )
    return {"python": MODELS_PYTHON, "deployments": items}


def fragment(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The gateway registry fragment: its ``services`` list for these deployments."""
    return {"services": [dict(e) for e in entries]}


class Platform(Protocol):
    """The Snowflake operations the deployment needs."""

    def version_exists(self, deployment: spec.ModelDeployment) -> bool: ...

    def log_model(self, deployment: spec.ModelDeployment, model: Any, **kwargs: Any) -> None: ...

    def service_exists(self, deployment: spec.ModelDeployment) -> bool: ...

    def create_service(self, deployment: spec.ModelDeployment, **kwargs: Any) -> None: ...

    def ingress_host(self, deployment: spec.ModelDeployment) -> str | None:
        """The public endpoint's host, or None while it is still provisioning."""
        ...


Fetch = Callable[..., Mapping[str, weights.FetchedArtifact]]
BuildModel = Callable[[spec.ModelDeployment, Mapping[str, Path]], Any]


def build_model(deployment: spec.ModelDeployment, paths: Mapping[str, Path]) -> Any:
    """The deployment's ``CustomModel`` over the downloaded directories (not loaded)."""
    from snowflake.ml.model import custom_model

    from spcs_models import serving

    context = custom_model.ModelContext(**{key: str(path) for key, path in paths.items()})
    return serving.MODEL_CLASSES[deployment.logical_name](context, load=False)


class Deployer:
    def __init__(
        self,
        platform: Platform,
        *,
        fetch: Fetch = weights.fetch,
        validate: Callable[[str, Mapping[str, Path]], None] = weights.validate,
        build: BuildModel = build_model,
        signatures_for: Callable[[spec.ModelDeployment], dict[str, Any]] = (
            signatures.method_signatures
        ),
        out: TextIO = sys.stderr,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._platform = platform
        self._fetch = fetch
        self._validate = validate
        self._build = build
        self._signatures_for = signatures_for
        self._out = out
        self._sleep = sleep
        self._clock = clock

    def _say(self, deployment: spec.ModelDeployment, message: str) -> None:
        print(f"{deployment.logical_name}: {message}", file=self._out, flush=True)

    def deploy(
        self, deployments: Sequence[spec.ModelDeployment], options: DeployOptions
    ) -> list[dict[str, Any]]:
        """Log, create, read back; returns the registry entries (also when steps skipped)."""
        entries = []
        for d in deployments:
            kwargs = service_kwargs(d, options)  # fail on bad settings before any work
            self.ensure_version(d, options)
            if self._platform.service_exists(d):
                self._say(d, f"service {d.service} exists: skipped (not rebuilt)")
            else:
                self._say(d, f"creating service {d.service} on {d.settings.compute_pool}")
                self._platform.create_service(d, **kwargs)
                self._say(d, f"service {d.service} created")
            entries.append(self.entry(d, options))
        return entries

    def registry(
        self, deployments: Sequence[spec.ModelDeployment], options: DeployOptions
    ) -> list[dict[str, Any]]:
        """Only read the endpoints of existing services."""
        return [self.entry(d, options) for d in deployments]

    def ensure_version(self, d: spec.ModelDeployment, options: DeployOptions) -> None:
        if self._platform.version_exists(d):
            self._say(d, f"model {d.model_name} version {d.version} exists: skipped")
            return
        if options.work_dir is not None:
            self._log_version(d, options, options.work_dir / d.logical_name)
            return
        with tempfile.TemporaryDirectory(prefix=f"spcs-models-{d.logical_name}-") as tmp:
            self._log_version(d, options, Path(tmp))

    def _log_version(self, d: spec.ModelDeployment, options: DeployOptions, where: Path) -> None:
        sources = weights.SOURCES[d.logical_name]
        self._say(d, f"downloading {', '.join(s.repo_id for s in sources)} into {where}")
        fetched = self._fetch(sources, where, revisions=options.revisions)
        for artifact in fetched.values():
            pinned = "pinned" if artifact.source.revision == artifact.revision else "resolved"
            self._say(d, f"{artifact.source.repo_id} at commit {artifact.revision} ({pinned})")
        paths = {key: artifact.path for key, artifact in fetched.items()}
        self._validate(d.logical_name, paths)
        comment = "spcs_models {}: {}".format(
            d.logical_name,
            ", ".join(f"{a.source.repo_id}@{a.revision}" for a in fetched.values()),
        )
        model = self._build(d, paths)
        self._say(d, f"logging model {d.model_name} version {d.version}")
        self._platform.log_model(
            d, model, signatures=self._signatures_for(d), **log_kwargs(d, comment=comment)
        )
        self._say(d, f"model {d.model_name} version {d.version} logged")

    def entry(self, d: spec.ModelDeployment, options: DeployOptions) -> dict[str, Any]:
        deadline = self._clock() + options.endpoint_timeout_s
        while True:
            host = self._platform.ingress_host(d)
            if host:
                if not _HOST_RE.match(host):
                    raise DeployError(f"{d.service}: the endpoint's ingress_url is not a host")
                return d.registry_entry(f"https://{host}")
            if self._clock() >= deadline:
                raise DeployError(
                    f"{d.service}: no ingress URL after {options.endpoint_timeout_s:.0f} s; "
                    "run `spcs-models registry` once the endpoint is provisioned"
                )
            self._say(d, "waiting for the endpoint's ingress URL")
            self._sleep(options.endpoint_poll_s)


# --------------------------------------------------------------------------------------------
# The real Snowflake side (snowflake-snowpark-python and snowflake-ml-python, imported lazily)
# --------------------------------------------------------------------------------------------

_ENV_PARAMETERS = {
    "SNOWFLAKE_ACCOUNT": "account",
    "SNOWFLAKE_USER": "user",
    "SNOWFLAKE_ROLE": "role",
    "SNOWFLAKE_WAREHOUSE": "warehouse",
    "SNOWFLAKE_AUTHENTICATOR": "authenticator",
    "SNOWFLAKE_PASSWORD": "password",
    "SNOWFLAKE_TOKEN": "token",
    "SNOWFLAKE_PRIVATE_KEY_FILE": "private_key_file",
    "SNOWFLAKE_PRIVATE_KEY_FILE_PWD": "private_key_file_pwd",
    "SNOWFLAKE_HOST": "host",
}


def connection_options(
    environ: Mapping[str, str], *, connection_name: str | None = None, role: str | None = None
) -> dict[str, Any]:
    """Snowpark session parameters, the standard ways.

    ``--connection NAME``: that connection of ``connections.toml``. Else, with
    ``SNOWFLAKE_ACCOUNT`` set: the ``SNOWFLAKE_*`` variables (account, user, role, warehouse,
    authenticator, password, token, private_key_file[_pwd], host). Else nothing: the
    connector's default connection (``SNOWFLAKE_DEFAULT_CONNECTION_NAME``, or
    ``default_connection_name`` in ``config.toml``, or ``default``), see ``open_session``.
    ``role`` overrides the role in every case.
    """
    options: dict[str, Any] = {}
    if connection_name:
        options["connection_name"] = connection_name
    elif environ.get("SNOWFLAKE_ACCOUNT"):
        options = {key: environ[var] for var, key in _ENV_PARAMETERS.items() if environ.get(var)}
    if role:
        options["role"] = role
    return options


def open_session(options: Mapping[str, Any]) -> Any:
    """A Snowpark session; without a connection name or account, the connector's default
    connection, with ``options`` (e.g. the role) applied over it."""
    from snowflake.snowpark import Session

    settings = dict(options)
    if "connection_name" not in settings and "account" not in settings:
        from snowflake.connector.config_manager import _get_default_connection_params

        settings = {**_get_default_connection_params(), **settings}
    return Session.builder.configs(settings).create()


def _rows(session: Any, query: str) -> list[dict[str, Any]]:
    out = []
    for row in session.sql(query).collect():
        out.append({str(k).strip('"').lower(): v for k, v in row.as_dict().items()})
    return out


class SnowflakePlatform:
    """``Platform`` over a Snowpark session and the snowflake-ml Model Registry."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def _registry(self, deployment: spec.ModelDeployment) -> Any:
        from snowflake.ml.registry import Registry

        db, schema, _ = split_fqn(deployment.model_name)
        return Registry(self._session, database_name=db, schema_name=schema)

    def version_exists(self, deployment: spec.ModelDeployment) -> bool:
        db, schema, model = split_fqn(deployment.model_name)
        models = _rows(self._session, f"SHOW MODELS LIKE '{model}' IN SCHEMA {db}.{schema}")
        if not any(str(r.get("name", "")).upper() == model.upper() for r in models):
            return False
        version = deployment.version
        if not re.fullmatch(_IDENT, version):
            raise DeployError(f"{version!r} is not a plain version identifier")
        versions = _rows(
            self._session, f"SHOW VERSIONS LIKE '{version}' IN MODEL {deployment.model_name}"
        )
        return any(str(r.get("name", "")).upper() == version.upper() for r in versions)

    def log_model(self, deployment: spec.ModelDeployment, model: Any, **kwargs: Any) -> None:
        self._registry(deployment).log_model(model, **kwargs)

    def service_exists(self, deployment: spec.ModelDeployment) -> bool:
        db, schema, service = split_fqn(deployment.service)
        rows = _rows(self._session, f"SHOW SERVICES LIKE '{service}' IN SCHEMA {db}.{schema}")
        return any(str(r.get("name", "")).upper() == service.upper() for r in rows)

    def create_service(self, deployment: spec.ModelDeployment, **kwargs: Any) -> None:
        _, _, model = split_fqn(deployment.model_name)
        version = self._registry(deployment).get_model(model).version(deployment.version)
        version.create_service(**kwargs)

    def ingress_host(self, deployment: spec.ModelDeployment) -> str | None:
        split_fqn(deployment.service)
        rows = _rows(self._session, f"SHOW ENDPOINTS IN SERVICE {deployment.service}")
        chosen = [r for r in rows if str(r.get("name", "")).lower() == ENDPOINT_NAME]
        chosen = chosen or [r for r in rows if str(r.get("is_public", "")).lower() == "true"]
        for row in chosen:
            url = str(row.get("ingress_url") or "").strip()
            if _HOST_RE.match(url):
                return url
        return None
