"""Assembles the emulator: the account endpoint, one ingress endpoint per service, a ticker.

Account endpoint (one threaded werkzeug server on ``config.port``):
  - the snowflake-connector-python wire protocol (``wire.WireProtocol``),
  - ``POST /oauth/token`` (key-pair JWT -> ingress token, as plain text),
  - ``POST /api/v2/databases/<db>/schemas/<schema>/cortex-search-services/<name>:query``,
  - ``/admin/...``: status, faults, service and pool suspend/resume (loopback only, no auth).
Each service gets its own threaded werkzeug server on a loopback port, like the unique host
name of a real public endpoint; its OAuth scope is that ``host:port``.

``config_document()`` is a gateway service registry (``spcs_gateway.registry``) pointing at
all of this, written to ``config.config_out`` once everything listens.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from spcs_models import spec as model_spec
from spcs_models.spec import ModelDeployment

from ..serving import ThreadedServer
from .auth import AuthError, EmulatorAuth, load_public_key
from .backends import NER_HEADS, ImageStandIn, NerBackend
from .clock import Clock, SystemClock
from .faults import FaultInjector, parse_faults
from .ingress import (
    TOKEN_CLASSIFICATION,
    ZERO_SHOT_IMAGE_CLASSIFICATION,
    BytesEncoding,
    IngressApp,
    IngressSettings,
    image_runner,
    token_classification_runner,
)
from .state import Account, LifecycleError, ServiceSpec
from .store import Store

log = logging.getLogger(__name__)

PRIVATE_KEY_FILE = "rsa_key.p8"
PUBLIC_KEY_FILE = "rsa_key.pub"
PAT_FILE = "pat.txt"
DEFAULT_POOL = "ML_INFERENCE_POOL"


@dataclass(frozen=True)
class EmulatedService:
    """A service to emulate: its deployment (``spcs_models.spec``: method, signature, entity
    labels, queues, label sets) and the account's view of it (``state.ServiceSpec``)."""

    deployment: ModelDeployment
    spec: ServiceSpec

    @property
    def name(self) -> str:  # logical name in the gateway registry
        return str(self.deployment.logical_name)

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self.deployment.queues)

    @property
    def label_sets(self) -> dict[str, list[str]]:
        return dict(self.deployment.label_sets)

    @classmethod
    def from_deployment(cls, deployment: ModelDeployment) -> EmulatedService:
        return cls(deployment, service_spec(deployment))


def service_spec(deployment: ModelDeployment) -> ServiceSpec:
    """The account's ``ServiceSpec`` for a deployment (``ServiceSpec.from_deployment`` when
    state.py offers it)."""
    build = getattr(ServiceSpec, "from_deployment", None)
    if build is not None:
        built: ServiceSpec = build(deployment)
        return built
    return ServiceSpec(
        fqn=deployment.service,
        compute_pool=deployment.settings.compute_pool,
        model_name=deployment.model_name.rsplit(".", 1)[-1],
        model_version=deployment.version,
        task=deployment.task,
        method=deployment.method,
    )


def default_services() -> list[EmulatedService]:
    """The two model deployments of ``spcs_models.spec`` (compute pool ML_INFERENCE_POOL)."""
    return [EmulatedService.from_deployment(d) for d in model_spec.DEPLOYMENTS]


@dataclass
class EmulatorConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    public_keys: list[Path] = field(default_factory=list)
    pats: list[str] = field(default_factory=list)
    resume_seconds: float = 5.0
    auto_resume: bool = True
    start_suspended: bool = False
    faults: list[str] = field(default_factory=list)
    config_out: Path | None = None
    ingress_port_base: int | None = None
    account_name: str = "LOCALTEST"
    user: str = "GATEWAY_SVC"
    role: str = "SPCS_GATEWAY_ROLE"
    warehouse: str = "GATEWAY_WH"  # the one infra/snowflake/01 creates and 03 grants
    bytes_encoding: BytesEncoding = "base64"
    tick_seconds: float = 0.5
    services: list[EmulatedService] = field(default_factory=default_services)
    # Ingress limits and start-up behaviour (ingress.IngressSettings; README "Limits").
    request_timeout_seconds: float = 60.0
    idle_close_seconds: float = 90.0
    startup_unauthorized_seconds: float = 1.0
    startup_bad_gateway_fraction: float = 0.5
    # Emulated model time per row and requests per READY instance (ingress.InstanceCapacity):
    # throughput proportional to the ready instances; 0 s: no model time.
    row_seconds: float = 0.0
    instance_concurrency: int = 1
    # "trained": the lexicon answers the deployment's entity labels; "untrained": every token
    # LABEL_0/LABEL_1, like a checkpoint without a trained NER head (POST /admin/ner-head).
    ner_head: str = "trained"
    # The account is built by running infra/snowflake/*.sql once per state dir (bootstrap.py);
    # the deployment step deploys ``services`` as ``deployer_role``.
    setup_sql_dir: Path | None = None  # None: the repository's infra/snowflake
    deployer_role: str = "MODEL_DEPLOYER_ROLE"
    # Snowflake's own idle timer for MIN_INSTANCES = 0 services (real value undocumented).
    min_zero_idle_secs: float = 1800.0


@dataclass(frozen=True)
class Credentials:
    public_keys: list[rsa.RSAPublicKey]
    pats: list[str]
    auth_mode: str  # "keypair" | "pat": what the registry document uses
    secret_file: Path  # private key PEM (keypair) or PAT file (pat)
    generated: bool  # the key pair was generated (or reused) under the state dir


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (0600), replacing any previous one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_keypair(state_dir: Path) -> tuple[Path, Path]:
    """The service user's key pair under ``state_dir`` (PEM, 0600), generated once."""
    private_path, public_path = state_dir / PRIVATE_KEY_FILE, state_dir / PUBLIC_KEY_FILE
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_private(
        public_path,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return private_path, public_path


def resolve_credentials(config: EmulatorConfig) -> Credentials:
    keys = [load_public_key(Path(p).read_bytes()) for p in config.public_keys]
    pats = [p for p in config.pats if p]
    if not keys and not pats:
        private_path, public_path = ensure_keypair(config.state_dir)
        keys = [load_public_key(public_path.read_bytes())]
        return Credentials(keys, pats, "keypair", private_path, generated=True)
    if pats:
        pat_path = config.state_dir / PAT_FILE
        _write_private(pat_path, pats[0].encode("utf-8"))
        return Credentials(keys, pats, "pat", pat_path, generated=False)
    # Only public keys: the matching private key is the caller's; the document points at
    # where they should put it.
    return Credentials(keys, pats, "keypair", config.state_dir / PRIVATE_KEY_FILE, False)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, default=str), status=status, mimetype="application/json", headers=headers
    )


# Source tables of the reference route (infra/snowflake/11_reference_sources.sql).
REFERENCE_NOTES = "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"
REFERENCE_IMAGES = "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES"
REFERENCE_STAGE = "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGE_STAGE"


def _registry_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """Drop the keys the installed gateway's registry model does not know yet, so the
    document stays loadable while the gateway and the deployments evolve separately."""
    try:
        from spcs_gateway.registry import ServiceConfig
    except ImportError:  # the emulator without the gateway: keep everything
        return entry
    known = set(ServiceConfig.model_fields)
    return {k: v for k, v in entry.items() if k in known}


class _Ticker(threading.Thread):
    def __init__(self, tick: Callable[[], None], every: float) -> None:
        super().__init__(name="emulator-ticker", daemon=True)
        self._tick, self._every = tick, every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self._every):
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - keep ticking; the cause is logged
                log.error("ticker: %s", type(exc).__name__)


class EmulatorServer:
    """The running emulator. ``start()`` returns once everything listens."""

    def __init__(self, config: EmulatorConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._servers: list[ThreadedServer] = []
        self._ticker: _Ticker | None = None
        self._account_server: ThreadedServer | None = None
        self.ingress: dict[str, IngressApp] = {}  # logical name -> app
        self._by_name: dict[str, EmulatedService] = {}
        self.credentials: Credentials | None = None
        self.store: Store | None = None
        self.account: Account | None = None
        self.auth: EmulatorAuth | None = None
        self.faults = FaultInjector(parse_faults(config.faults))
        self.ner_backends: list[NerBackend] = []
        self._wire: Any = None
        self._search: Any = None
        self.engine: Any = None  # the SqlEngine (built with the account; admin SQL runs on it)
        self._image_backend: ImageStandIn | None = None
        self._url_map = Map(
            [
                Rule("/oauth/token", endpoint="oauth", methods=["POST"]),
                Rule(
                    "/api/v2/databases/<db>/schemas/<schema>/cortex-search-services/<target>",
                    endpoint="search",
                    methods=["POST"],
                ),
                Rule("/admin/status", endpoint="status", methods=["GET"]),
                Rule("/admin/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
                Rule("/admin/services", endpoint="services", methods=["GET"]),
                Rule("/admin/services/<name>", endpoint="service", methods=["GET"]),
                Rule(
                    "/admin/services/<name>/<action>", endpoint="service_action", methods=["POST"]
                ),
                Rule("/admin/pools/<name>/<action>", endpoint="pool_action", methods=["POST"]),
                Rule("/admin/ner-head", endpoint="ner_head", methods=["GET", "POST"]),
                # Account administration (bootstrap.py): SQL as the emulator's administrator,
                # a service or job of another owner, one more model deployment.
                Rule("/admin/sql", endpoint="admin_sql", methods=["POST"]),
                Rule("/admin/services", endpoint="add_service", methods=["POST"]),
                Rule("/admin/deployments", endpoint="deployments", methods=["POST"]),
                # A file on a stage (there is no PUT): stages.py.
                Rule("/admin/stages/<stage>/files", endpoint="stage_file", methods=["POST"]),
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.credentials = resolve_credentials(config)
        try:
            self.store = Store(config.state_dir)
            self.account = Account(
                self.store,
                self.clock,
                resume_seconds=config.resume_seconds,
                auto_resume=config.auto_resume,
                account_name=config.account_name,
                min_zero_idle_secs=config.min_zero_idle_secs,
            )
            self._build_account()
            if config.start_suspended:
                self.account.suspend_all("emulator started suspended")
            if not config.auto_resume:  # the flag wins over a setting kept in the state dir
                for svc in config.services:
                    self.account.alter_service(svc.spec.fqn, auto_resume=False)
            self.auth = EmulatorAuth(
                config.account_name,
                config.user,
                self.credentials.public_keys,
                self.credentials.pats,
                self.clock,
            )
            self._start_ingress()
            self._start_account_endpoint()
            self._ticker = _Ticker(self.account.tick, config.tick_seconds)
            self._ticker.start()
            if config.config_out is not None:
                self.write_config(config.config_out)
        except BaseException:
            self.stop()
            raise

    def _build_account(self) -> None:
        """Run infra/snowflake/*.sql and the deployment step once per state dir
        (``bootstrap.py``); the SQL engine is the account endpoint's."""
        from .bootstrap import SQL_DIR, bootstrap
        from .sqlengine import SqlEngine

        assert self.account is not None
        assert self.store is not None
        assert self.credentials is not None
        config = self.config
        self.engine = SqlEngine(self.account, self.store)
        keys = self.credentials.public_keys
        der = (
            keys[0].public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if keys
            else b""
        )
        cidrs = dict.fromkeys(["127.0.0.1/32", f"{config.host}/32"])
        bootstrap(
            self.engine,
            variables={
                "gateway_public_key": base64.b64encode(der).decode("ascii"),
                "lambda_egress_cidrs": ", ".join(f"'{c}'" for c in cidrs),
            },
            deployments=[svc.deployment for svc in config.services],
            sql_dir=config.setup_sql_dir or SQL_DIR,
            deployer_role=config.deployer_role,
        )
        for svc in config.services:
            try:
                self.account.resolve(svc.spec.fqn)
            except KeyError:
                raise ValueError(
                    f"the account has no service {svc.spec.fqn}: the set-up SQL and the "
                    "deployment step did not create it"
                ) from None

    def _start_ingress(self) -> None:
        if self.config.ner_head not in NER_HEADS:
            raise ValueError(f"ner_head must be one of {', '.join(NER_HEADS)}")
        for offset, svc in enumerate(self.config.services):
            self._start_service_ingress(svc, offset)

    def _start_service_ingress(self, svc: EmulatedService, offset: int) -> IngressApp:
        """The public endpoint of one deployed service, on its own loopback port."""
        assert self.account is not None
        assert self.auth is not None
        config = self.config
        settings = IngressSettings(
            request_timeout_seconds=config.request_timeout_seconds,
            startup_unauthorized_seconds=config.startup_unauthorized_seconds,
            startup_bad_gateway_fraction=config.startup_bad_gateway_fraction,
            row_seconds=config.row_seconds,
            instance_concurrency=config.instance_concurrency,
        )
        deployment = svc.deployment
        task = deployment.task
        if task == TOKEN_CLASSIFICATION:
            # The dictionaries load on the first NER request (~2.5 s of CPU), so an
            # emulator that never sees a note does not pay for them.
            ner = NerBackend(deployment.entity_labels, head=config.ner_head)
            self.ner_backends.append(ner)
            runner = token_classification_runner(ner, deployment.signature)
            # A getter, not the name: it follows /admin/ner-head.
            backend_name: Any = functools.partial(getattr, ner, "name")
        elif task == ZERO_SHOT_IMAGE_CLASSIFICATION:
            image = self._image_backend = self._image_backend or ImageStandIn()
            runner = image_runner(image, config.bytes_encoding, deployment.signature)
            backend_name = image.name
        else:
            raise ValueError(f"unsupported task {task!r} for {svc.spec.fqn}")
        app = IngressApp(
            fqn=self.account.resolve(svc.spec.fqn),
            names=(svc.name,),
            deployment=deployment,
            runner=runner,
            backend_name=backend_name,
            account=self.account,
            auth=self.auth,
            faults=self.faults,
            settings=settings,
            clock=self.clock,
        )
        # The same backend and signature rules serve svc!METHOD(...) calls from SQL.
        self.engine.service_functions.register(app.fqn, deployment, runner, config.bytes_encoding)
        port = 0 if config.ingress_port_base is None else config.ingress_port_base + offset
        server = self._serve(
            app, port, f"ingress-{svc.name}", idle_timeout=config.idle_close_seconds
        )
        app.scope_host = f"{config.host}:{server.port}"
        self.account.set_ingress_url(app.fqn, app.scope_host)
        self.ingress[svc.name] = app
        self._by_name[svc.name] = svc
        return app

    def deploy(self, deployment: ModelDeployment, owner_role: str | None = None) -> IngressApp:
        """Deploy one more model service (``Account.create_model_service`` as the deployer
        role) and serve its public endpoint; the registry document then lists it too."""
        assert self.account is not None
        if deployment.logical_name in self.ingress:
            raise ValueError(f"a service named {deployment.logical_name!r} is served already")
        self.account.create_model_service(deployment, owner_role or self.config.deployer_role)
        svc = EmulatedService.from_deployment(deployment)
        self.config.services.append(svc)
        app = self._start_service_ingress(svc, len(self.config.services) - 1)
        if self.config.config_out is not None:
            self.write_config(self.config.config_out)
        return app

    def _start_account_endpoint(self) -> None:
        # Imported here: the SQL side is the biggest import and only this endpoint needs it.
        from .search import CortexSearch, catalog_lookup
        from .sqlengine import SqlEngine
        from .wire import WireProtocol

        assert self.account is not None
        assert self.store is not None
        engine = self.engine or SqlEngine(self.account, self.store)
        self._wire = WireProtocol(engine, self._authenticate_login, now=self.clock.now)
        self._search = CortexSearch(self.store, lookup=catalog_lookup(self.account.catalog))
        self._account_server = self._serve(self._account_app, self.config.port, "account")

    def _serve(
        self, app: Any, port: int, name: str, *, idle_timeout: float | None = None
    ) -> ThreadedServer:
        server = ThreadedServer(
            app, host=self.config.host, port=port, name=name, idle_timeout=idle_timeout
        )
        self._servers.append(server)
        return server

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stopping.set()
            self._ticker.join(timeout=5)
            self._ticker = None
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        if self.store is not None:
            self.store.close()
            self.store = None

    # -- addresses and the registry document ----------------------------------------------------

    @property
    def port(self) -> int:
        if self._account_server is None:
            raise RuntimeError("the emulator is not started")
        return self._account_server.port

    @property
    def account_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def ingress_url(self, name: str) -> str:
        return f"http://{self.ingress[name].scope_host}"

    def config_document(self) -> dict[str, Any]:
        """A gateway service registry pointing at this emulator."""
        assert self.credentials is not None
        config = self.config
        services = []
        for name, app in self.ingress.items():
            svc = self._by_name[name]
            entry = svc.deployment.registry_entry(self.ingress_url(name))
            entry.update(
                service=app.fqn,
                compute_pool=svc.spec.compute_pool,
                model_version=svc.spec.model_version,
                label_sets=svc.label_sets,
                bytes_encoding=config.bytes_encoding,
            )
            services.append(_registry_fields(entry))
        document: dict[str, Any] = {
            "version": 1,
            "allow_http_loopback": True,
            "snowflake": {
                "account": config.account_name,
                "user": config.user,
                "role": config.role,
                "warehouse": config.warehouse,
                "host": config.host,
                "port": self.port,
                "protocol": "http",
                "auth": self.credentials.auth_mode,
                "secret": {"file": str(self.credentials.secret_file.resolve())},
            },
            "services": services,
        }
        references = self._reference_allow_list()
        if references:
            document["references"] = references
        return document

    def _reference_allow_list(self) -> dict[str, Any]:
        """The reference route's allow-list: the source tables infra/snowflake/11 creates and
        grants on, when this account has them."""
        known = set(self.store.tables()) if self.store is not None else set()
        out: dict[str, Any] = {}
        if REFERENCE_NOTES in known:
            out["note_tables"] = [
                {
                    "table": REFERENCE_NOTES,
                    "key_column": "NOTE_ID",
                    "text_column": "NOTE_TEXT",
                    "version_column": "NOTE_VERSION",
                }
            ]
        from .privileges import STAGE

        if self.account is not None and self.account.catalog.exists(STAGE, REFERENCE_STAGE):
            out["image_stages"] = [{"stage": REFERENCE_STAGE}]
        if REFERENCE_IMAGES in known:
            out["image_tables"] = [
                {
                    "table": REFERENCE_IMAGES,
                    "key_column": "IMAGE_ID",
                    "image_column": "IMAGE",
                    "version_column": "UPDATED_AT",
                }
            ]
        return out

    def write_config(self, path: Path) -> None:
        """Write the registry document atomically (readers never see half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.config_document(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    # -- account endpoint -----------------------------------------------------------------------

    def _authenticate_login(self, login: Any) -> str:
        from .wire import AuthRejected

        assert self.auth is not None
        try:
            return self.auth.verify_login(
                getattr(login, "authenticator", None),
                getattr(login, "login_name", None),
                getattr(login, "account", None),
                getattr(login, "token", None) or "",
            )
        except AuthError as exc:
            raise AuthRejected(exc.message) from None

    def _account_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            response = self._wire.dispatch(request)
            if response is None:
                response = self._route(request)
        except HTTPException as exc:
            response = _json(exc.code or 500, {"error": "http_error", "message": exc.name})
        except Exception as exc:  # noqa: BLE001 - a PHI-free 500, never a traceback page
            log.error("account endpoint: internal error (%s)", type(exc).__name__)
            response = _json(500, {"error": "internal_error", "message": "emulator error"})
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as exc:
            return _json(exc.code or 404, {"error": "not_found", "message": exc.name})
        handler = getattr(self, f"_on_{endpoint}")
        response: Response = handler(request, **args)
        return response

    def _on_oauth(self, request: Request) -> Response:
        assert self.auth is not None
        hosts = [app.scope_host for app in self.ingress.values()]
        try:
            token = self.auth.exchange(request.form.to_dict(), hosts)
        except AuthError as exc:
            return _json(exc.status, exc.body())
        return Response(token, status=200, mimetype="text/plain")

    def _on_search(self, request: Request, db: str, schema: str, target: str) -> Response:
        from .search import SearchError

        assert self.auth is not None
        name, sep, verb = target.rpartition(":")
        if not sep or verb != "query":
            return _json(404, {"code": "404", "message": "unknown Cortex Search operation"})
        try:
            user = self.auth.verify_bearer(
                request.headers.get("Authorization"),
                request.headers.get("X-Snowflake-Authorization-Token-Type"),
            )
        except AuthError as exc:
            return _json(exc.status, {"code": str(exc.status), "message": exc.message})
        refused = self._search_refused(user, f"{db}.{schema}.{name}")
        if refused is not None:
            return refused
        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"code": "400", "message": "request body is not valid JSON"})
        if not isinstance(body, dict):
            return _json(400, {"code": "400", "message": "request body must be a JSON object"})
        try:
            result = self._search.query(f"{db}.{schema}.{name}", body)
        except SearchError as exc:
            return _json(exc.status, {"code": exc.code, "message": exc.message})
        return _json(200, result)

    def _search_refused(self, user: str, fqn: str) -> Response | None:
        """404 for an unknown service, 403 when the caller's (default) role lacks USAGE."""
        assert self.account is not None
        if self._search.service(fqn) is None:
            return None  # query() answers the 404
        role = self.account.user_default_role(user) or "PUBLIC"
        if self.account.role_can_use_search(role, self._search_key(fqn)):
            return None
        return _json(
            403,
            {"code": "403", "message": "the caller's role lacks USAGE on the search service"},
        )

    @staticmethod
    def _search_key(fqn: str) -> str:
        from .search import normalize_fqn

        return normalize_fqn(fqn)

    # -- admin API ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        assert self.account is not None
        return {
            "account_url": self.account_url,
            "account": self.account.snapshot(),
            "ingress": {
                name: {
                    "service": app.fqn,
                    "url": self.ingress_url(name),
                    "backend": app.backend_name,
                    "stats": app.stats.snapshot(),
                }
                for name, app in self.ingress.items()
            },
            "faults": [spec.to_text() for spec in self.faults.specs],
            "ner_head": self.ner_head,
        }

    def _on_status(self, request: Request) -> Response:
        return _json(200, self.status())

    @property
    def ner_head(self) -> str:
        return self.ner_backends[0].head if self.ner_backends else self.config.ner_head

    def set_ner_head(self, head: str) -> None:
        """Switch every NER service between the trained lexicon and an untrained head."""
        if head not in NER_HEADS:
            raise ValueError(f"ner_head must be one of {', '.join(NER_HEADS)}")
        for backend in self.ner_backends:
            backend.head = head
        self.config.ner_head = head

    def _on_ner_head(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(request.get_data(cache=False) or b"{}")
                head = body.get("ner_head") if isinstance(body, dict) else None
                if not isinstance(head, str):
                    raise ValueError('expected {"ner_head": "trained" | "untrained"}')
                self.set_ner_head(head)
            except ValueError as exc:  # our own messages: no request values in them
                return _json(400, {"error": "bad_ner_head", "message": str(exc)})
        return _json(200, {"ner_head": self.ner_head})

    def _on_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.set([])
        elif request.method == "POST":
            try:
                body = json.loads(request.get_data(cache=False) or b"{}")
                texts = body.get("faults") if isinstance(body, dict) else None
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise ValueError('expected {"faults": ["<spec>", ...]}')
                self.faults.set(parse_faults(texts))
            except ValueError as exc:  # our own parse messages: no request values in them
                return _json(400, {"error": "bad_fault_spec", "message": str(exc)})
        return _json(200, {"faults": [spec.to_text() for spec in self.faults.specs]})

    def _service_fqn(self, name: str) -> str:
        assert self.account is not None
        if name in self._by_name:
            return self.ingress[name].fqn
        return self.account.resolve(name)

    def _on_services(self, request: Request) -> Response:
        assert self.account is not None
        return _json(200, {"services": self.account.snapshot()["services"]})

    def _on_service(self, request: Request, name: str) -> Response:
        assert self.account is not None
        try:
            fqn = self._service_fqn(name)
        except KeyError:
            return _json(404, {"error": "not_found", "message": "unknown service"})
        rows = [s for s in self.account.snapshot()["services"] if s["name"] == fqn]
        return _json(200, rows[0]) if rows else _json(404, {"error": "not_found"})

    def _on_service_action(self, request: Request, name: str, action: str) -> Response:
        assert self.account is not None
        try:
            fqn = self._service_fqn(name)
        except KeyError:
            return _json(404, {"error": "not_found", "message": "unknown service"})
        actions = {"suspend": self.account.suspend_service, "resume": self.account.resume_service}
        if action not in actions:
            return _json(404, {"error": "not_found", "message": "use suspend or resume"})
        try:
            actions[action](fqn)
        except LifecycleError as exc:
            return _json(409, {"error": "conflict", "message": exc.message})
        return self._on_service(request, name)

    def _on_pool_action(self, request: Request, name: str, action: str) -> Response:
        assert self.account is not None
        actions = {"suspend": self.account.suspend_pool, "resume": self.account.resume_pool}
        if action not in actions:
            return _json(404, {"error": "not_found", "message": "use suspend or resume"})
        try:
            actions[action](name)
        except KeyError:
            return _json(404, {"error": "not_found", "message": "unknown compute pool"})
        except LifecycleError as exc:
            return _json(409, {"error": "conflict", "message": exc.message})
        return _json(200, {"compute_pools": self.account.snapshot()["compute_pools"]})

    def _on_admin_sql(self, request: Request) -> Response:
        """SQL as the emulator's administrator: ``{"sql", "role", "variables"}``."""
        from .bootstrap import Admin, admin_sql

        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"error": "bad_request", "message": "body is not JSON"})
        answer = admin_sql(Admin(self.engine), body)
        return _json(answer.status, answer.body)

    def _on_stage_file(self, request: Request, stage: str) -> Response:
        """Place a file on a stage: ``{"path": "dir/file.png", "data_base64": "..."}``; the
        stage is ``DB.SCHEMA.STAGE``. The directory table lists it at once (AUTO_REFRESH)."""
        import binascii
        from datetime import UTC, datetime

        assert self.engine is not None
        assert self.account is not None
        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
            path = body.get("path") if isinstance(body, dict) else None
            data = body.get("data_base64") if isinstance(body, dict) else None
            if not isinstance(path, str) or not isinstance(data, str):
                raise ValueError('expected {"path": "...", "data_base64": "..."}')
            raw = base64.b64decode(data, validate=True)
            when = datetime.fromtimestamp(self.account.now(), UTC).isoformat()
            self.engine.stages.put(stage.upper(), path, raw, now=when)
        except KeyError:
            return _json(404, {"error": "not_found", "message": "unknown stage"})
        except (ValueError, binascii.Error) as exc:  # our own messages: no file bytes in them
            return _json(400, {"error": "bad_request", "message": str(exc)[:200]})
        return _json(200, {"stage": stage.upper(), "path": path, "size": len(raw)})

    def _on_add_service(self, request: Request) -> Response:
        """A service (or job) the gateway does not manage, owned by another role:
        ``{"name": "DB.SCHEMA.SVC", "owner_role": "OTHER_ROLE", "compute_pool": ...,
        "job": false, "job_seconds": 3600, "min_instances": 1, "public": false}``. The role is
        created when missing (granted to nobody)."""
        from .privileges import ACCOUNTADMIN, ROLE, AccessError

        assert self.account is not None
        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                raise ValueError('expected {"name": "DB.SCHEMA.SERVICE", ...}')
            owner = str(body.get("owner_role") or "OTHER_TEAM_ROLE").upper()
            pool = str(body.get("compute_pool") or model_spec.ServiceSettings().compute_pool)
            job = bool(body.get("job", False))
            self.account.catalog.create(ROLE, owner, ACCOUNTADMIN, {}, if_not_exists=True)
            self.account.create_service(
                ServiceSpec(
                    fqn=body["name"],
                    compute_pool=pool,
                    public=bool(body.get("public", False)),
                    is_job=job,
                ),
                owner,
                min_instances=body.get("min_instances", 1),
                max_instances=body.get("max_instances", body.get("min_instances", 1)),
                auto_suspend_secs=body.get("auto_suspend_secs", 0),
                job_seconds=float(body.get("job_seconds", 3600)) if job else None,
            )
            fqn = self.account.resolve(body["name"])
        except (ValueError, TypeError, KeyError) as exc:
            return _json(400, {"error": "bad_request", "message": str(exc)})
        except AccessError as exc:
            return _json(409, {"error": "conflict", "message": exc.message})
        except LifecycleError as exc:
            return _json(409, {"error": "conflict", "message": exc.message})
        rows = [s for s in self.account.snapshot()["services"] if s["name"] == fqn]
        return _json(201, rows[0])

    def _on_deployments(self, request: Request) -> Response:
        """One more model deployment, like the deployment tool's, with its own endpoint:
        ``{"base": "biomedclip", "logical_name": ..., "service": ..., "model_name": ...,
        "version": ..., "signature": {...} | "hf-zero-shot", "settings": {...},
        "owner_role": ...}`` (bootstrap.deployment_from_request)."""
        from .bootstrap import deployment_from_request
        from .privileges import AccessError

        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            deployment = deployment_from_request(body)
            owner = body.get("owner_role")
            app = self.deploy(deployment, str(owner) if owner else None)
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": "bad_request", "message": str(exc)})
        except (AccessError, LifecycleError) as exc:
            return _json(409, {"error": "conflict", "message": exc.message})
        entry = next(
            s for s in self.config_document()["services"] if s["name"] == deployment.logical_name
        )
        return _json(
            201,
            {
                "service": app.fqn,
                "url": self.ingress_url(deployment.logical_name),
                "registry_entry": entry,
            },
        )
