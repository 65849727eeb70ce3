"""The whole system on one machine: emulator + moto server + template resources + runner.

``LocalStack(options).start()`` brings up, in order:

1. the Snowflake/SPCS emulator (in this process, so the demo can read its lifecycle history);
2. moto server (own process) for SQS, DynamoDB, Secrets Manager, KMS, SSM, SNS, CloudWatch;
3. the Snowflake credential secret in Secrets Manager and everything template.yaml declares
   (``resources.py``), with the registry parameter holding the emulator's registry document
   (credential: ``secret_id`` of that secret, so the production Secrets Manager path runs);
4. the local Lambda API, one container per function (more on demand, up to
   ``max_containers``), one poller per SQS event source, the schedules, and optionally the
   API on ``api_port``.

Each function gets the environment the template gives it (Globals + its own variables,
references resolved to the local resources) plus what a Lambda container and the local
endpoints need: ``AWS_ENDPOINT_URL`` (moto), ``AWS_ENDPOINT_URL_LAMBDA`` (the runner), fake
credentials and region, ``AWS_LAMBDA_*``, ``POWERTOOLS_TRACE_DISABLED=true`` and the local
knobs in ``StackOptions.environment()`` (listed in infra/local/STACK.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lambda_api import LocalLambdaApi
from .resources import AwsClients, LocalResources, QueueInfo, create_resources, create_secret
from .runner import EsmPoller, FunctionPool, Mapping, MappingTrace, Scheduler
from .template import FunctionDef, Template, TemplateError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
FAKE_ACCOUNT = "123456789012"
# Process variables a container keeps from the runner (everything else comes from the template).
_BASE_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")


@dataclass
class StackOptions:
    template: Path = DEFAULT_TEMPLATE
    work_dir: Path | None = None  # default: a fresh temporary directory, removed on stop
    stack_name: str = "spcs-gateway"
    region: str = "us-east-1"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    # emulator
    start_suspended: bool = False
    auto_resume: bool = False  # the gateway's control plane resumes services, not the ingress
    resume_seconds: float = 5.0
    faults: list[str] = field(default_factory=list)
    # lifecycle knobs for demos
    idle_seconds: int | None = None  # registry idle_seconds of every service
    min_uptime_seconds: float | None = None  # LIFECYCLE_MIN_UPTIME_SECONDS (default: idle)
    control_poll_seconds: float = 1.0  # CONTROL_POLL_SECONDS
    schedule_seconds: float = 5.0  # every Schedule event of the template runs this often
    # scaling: every service's registry range and drain target (local backlogs are seconds)
    max_instances: int = 3
    drain_target_seconds: int = 60
    # runner
    max_containers: int = 2
    # Run only these functions (logical ids or names); None: every function of the template.
    functions: list[str] | None = None
    api_port: int | None = None  # None: no API server; 0: any free port
    warm_ner: bool = True  # load the emulator's NER dictionaries at start, not on first use
    warm_containers: bool = True  # one container per function at start (else: first invoke)
    # One JSON line per delivered SQS batch in <log dir>/mappings.jsonl (ids, receive counts,
    # outcome, deleted or kept: runner.MappingTrace).
    trace_mappings: bool = False
    extra_environment: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """Local knobs added to every function's environment (after the template's)."""
        env = {"CONTROL_POLL_SECONDS": _num(self.control_poll_seconds)}
        # Routers retry an unavailable service after about one emulated resume, not the
        # production default (30 s, sized for an SPCS model load).
        env["RETRY_UNAVAILABLE_BASE_SECONDS"] = str(max(1, math.ceil(self.resume_seconds)))
        uptime = self.min_uptime_seconds
        if uptime is None and self.idle_seconds is not None:
            uptime = float(self.idle_seconds)
        if uptime is not None:
            env["LIFECYCLE_MIN_UPTIME_SECONDS"] = _num(uptime)
        env.update(self.extra_environment)
        return env


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class StackError(RuntimeError):
    """The local stack cannot start; the message says why (no PHI: there is none yet)."""


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self._own_work_dir = self.options.work_dir is None
        self.work_dir = Path(
            self.options.work_dir or tempfile.mkdtemp(prefix="spcs-local-stack-")
        ).resolve()
        self.log_dir = self.work_dir / "logs"
        self.emulator: Any = None
        self.moto: Any = None
        self.aws: AwsClients | None = None
        self.template: Template | None = None
        self.resources: LocalResources | None = None
        self.registry_document: dict[str, Any] = {}
        self.emulator_registry: dict[str, Any] = {}
        self.secret_arn: str | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.mappings: list[Mapping] = []
        self.pollers: list[EsmPoller] = []
        self.schedulers: list[Scheduler] = []
        self.mapping_trace: MappingTrace | None = None
        self.lambda_api: LocalLambdaApi | None = None
        self.api_server: Any = None
        self.environments: dict[str, dict[str, str]] = {}
        self._sql: Any = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except OSError as exc:  # a port in use, an unwritable work dir ...
            self.stop()
            raise StackError(f"cannot start the local stack: {exc.strerror or exc}") from None
        except BaseException:
            self.stop()
            raise
        self._started = True

    def _start(self) -> None:
        opts = self.options
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "home").mkdir(exist_ok=True)
        self._start_emulator()
        from .moto_proc import MotoServer

        self.moto = MotoServer(self.work_dir / "moto.log")
        self.moto.start()
        self.aws = AwsClients(self.moto.url, opts.region)
        self._create_aws_resources()
        assert self.resources is not None
        self.lambda_api = LocalLambdaApi(self.pools, self.mappings)
        self.lambda_api.start()
        for fn in self.functions:
            env = self._function_environment(fn)
            self.environments[fn.name] = env
            limit = opts.max_containers
            if fn.reserved_concurrency is not None:
                limit = min(limit, max(1, fn.reserved_concurrency))
            self.pools[fn.name] = FunctionPool(fn, env, self.log_dir, max_containers=limit)
        if opts.warm_containers:
            self._warm_all()
        for fn in self.functions:
            for event in fn.sqs_events:
                queue = self.resources.queue_by_arn(event.queue_arn)
                self.mappings.append(
                    Mapping(
                        uuid=event.mapping_id,
                        function_name=fn.name,
                        # The alias-qualified ARN with AutoPublishAlias, as Lambda records it.
                        function_arn=fn.target_arn,
                        queue_arn=queue.arn,
                        queue_url=queue.url,
                        batch_size=event.batch_size,
                        window_s=event.window_s,
                        max_concurrency=event.max_concurrency,
                        function_response_types=(
                            ["ReportBatchItemFailures"] if event.report_batch_item_failures else []
                        ),
                        enabled=event.enabled,
                    )
                )
        if opts.trace_mappings:
            self.mapping_trace = MappingTrace(self.log_dir / "mappings.jsonl")
        for mapping in self.mappings:
            poller = EsmPoller(
                mapping,
                self.pools[mapping.function_name],
                self._new_sqs_client,
                opts.region,
                trace=self.mapping_trace,
            )
            self.pollers.append(poller)
            poller.start()
        for fn in self.functions:
            for schedule in fn.schedules:
                if not schedule.enabled:
                    continue
                payload = json.loads(schedule.input) if isinstance(schedule.input, str) else None
                rule = (
                    f"arn:aws:events:{opts.region}:{FAKE_ACCOUNT}:rule/"
                    f"{opts.stack_name}-{fn.logical_id}{schedule.name}"
                )
                scheduler = Scheduler(
                    self.pools[fn.name],
                    rule,
                    opts.schedule_seconds,
                    region=opts.region,
                    account=FAKE_ACCOUNT,
                    payload=payload,
                )
                self.schedulers.append(scheduler)
                scheduler.start()
        if opts.api_port is not None and self.api_functions:
            from .apigw import LocalApiGateway

            self.api_server = LocalApiGateway(
                [(fn, self.pools[fn.name]) for fn in self.api_functions],
                port=opts.api_port,
                account_id=FAKE_ACCOUNT,
            )
            self.api_server.start()

    def _start_emulator(self) -> None:
        from spcs_local.emulator.server import EmulatorConfig, EmulatorServer

        opts = self.options
        self.emulator = EmulatorServer(
            EmulatorConfig(
                state_dir=self.work_dir / "emulator",
                resume_seconds=opts.resume_seconds,
                auto_resume=opts.auto_resume,
                start_suspended=opts.start_suspended,
                faults=list(opts.faults),
            )
        )
        self.emulator.start()
        if opts.warm_ner:
            # The NER dictionaries take seconds to load: do it now, beside the container starts.
            threading.Thread(target=_warm_ner, name="ner-warm-up", daemon=True).start()
        self.emulator_registry = self.emulator.config_document()

    def _create_aws_resources(self) -> None:
        from spcs_gateway.registry import RegistryError, parse_registry

        opts = self.options
        assert self.aws is not None
        creds = self.emulator.credentials
        secret_text = Path(creds.secret_file).read_text(encoding="utf-8")
        value = (
            {"token": secret_text.strip()}
            if creds.auth_mode == "pat"
            else {"private_key": secret_text}
        )
        self.secret_arn = create_secret(
            self.aws, f"{opts.stack_name}/snowflake-credential", json.dumps(value)
        )
        document = json.loads(json.dumps(self.emulator_registry))
        document["snowflake"]["secret"] = {"secret_id": self.secret_arn}
        if opts.idle_seconds is not None:
            for service in document["services"]:
                service["idle_seconds"] = int(opts.idle_seconds)
        for service in document["services"]:  # 1..max_instances: the control plane scales
            service.setdefault("min_instances", 1)
            service.setdefault("max_instances", int(opts.max_instances))
            service.setdefault("drain_target_seconds", int(opts.drain_target_seconds))
        try:
            parse_registry(document)
        except RegistryError as exc:
            hint = ""
            if opts.idle_seconds is not None:
                hint = (
                    " (--idle-seconds below the registry's lower bound? see infra/local/STACK.md)"
                )
            raise StackError(f"local registry document rejected: {exc}{hint}") from None
        self.registry_document = document
        template = Template(
            opts.template,
            self._template_parameters(opts.template),
            stack_name=opts.stack_name,
            region=opts.region,
            account_id=FAKE_ACCOUNT,
        )
        self.template = template
        try:
            self.resources = create_resources(template, self.aws, registry_document=document)
        except TemplateError as exc:
            raise StackError(str(exc)) from None

    def _template_parameters(self, path: Path) -> dict[str, str]:
        """Values for the parameters a real deploy would pass (the emulator's), then overrides."""
        from .template import load_template

        declared = load_template(path).get("Parameters", {})
        sf = self.emulator_registry["snowflake"]
        services = {s["name"]: s for s in self.emulator_registry["services"]}
        known: dict[str, str] = {
            "SnowflakeAccount": sf["account"],
            "SnowflakeUser": sf["user"],
            "SnowflakeRole": sf.get("role") or "",
            "SnowflakeWarehouse": sf.get("warehouse") or "",
            "SnowflakeAuthMode": sf["auth"],
            "SnowflakeSecretArn": str(self.secret_arn),
        }
        for param, service in (("NerServiceUrl", "biobert_ner"), ("ClipServiceUrl", "biomedclip")):
            if service in services:
                known[param] = services[service]["url"]
        values = {k: v for k, v in known.items() if k in declared}
        values.update(self.options.parameter_overrides)
        return values

    def _function_environment(self, fn: FunctionDef) -> dict[str, str]:
        opts = self.options
        assert self.moto is not None
        assert self.lambda_api is not None
        assert self.resources is not None
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
        env.update(fn.environment)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.moto.url,
                "AWS_ENDPOINT_URL_LAMBDA": self.lambda_api.url,
                "AWS_REGION": opts.region,
                "AWS_DEFAULT_REGION": opts.region,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
                "LAMBDA_TASK_ROOT": str(fn.code_dir),
                # The template's HOME=/tmp, per stack instead (connector caches).
                "HOME": str(self.work_dir / "home"),
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SpcsGateway")
        if "SPCS_GATEWAY_REGISTRY_PARAM" not in env:
            env["SPCS_GATEWAY_REGISTRY_PARAM"] = self.resources.registry_parameters[0]
        env.update(opts.environment())
        return env

    def _warm_all(self) -> None:
        errors: dict[str, str] = {}

        def warm(pool: FunctionPool) -> None:
            try:
                pool.warm()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors[pool.name] = str(exc)

        threads = [threading.Thread(target=warm, args=(p,)) for p in self.pools.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
            raise StackError(f"functions failed to start: {detail} (see {self.log_dir})")

    def _new_sqs_client(self) -> Any:
        assert self.aws is not None
        import boto3

        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
            region_name=self.options.region,
        ).client("sqs", endpoint_url=self.aws.endpoint_url)

    def stop(self) -> None:
        # Flags first, then the containers (an invocation in flight fails at once), then joins.
        for scheduler in self.schedulers:
            scheduler.signal_stop()
        for poller in self.pollers:
            poller.signal_stop()
        if self.api_server is not None:
            self.api_server.stop()
            self.api_server = None
        if self.lambda_api is not None:
            self.lambda_api.stop()
            self.lambda_api = None
        for pool in self.pools.values():
            pool.stop()
        for scheduler in self.schedulers:
            scheduler.stop()
        for poller in self.pollers:
            poller.stop()
        if self._sql is not None:
            try:
                self._sql.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                log.debug("closing the SQL session failed")
            self._sql = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        self.schedulers, self.pollers = [], []
        if self._own_work_dir and self._started:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self._started = False

    # -- views ---------------------------------------------------------------------------------

    @property
    def functions(self) -> list[FunctionDef]:
        """The template's functions this stack runs."""
        assert self.resources is not None
        wanted = self.options.functions
        if wanted is None:
            return list(self.resources.functions)
        return [fn for fn in self.resources.functions if {fn.logical_id, fn.name} & set(wanted)]

    @property
    def api_functions(self) -> list[FunctionDef]:
        return [fn for fn in self.functions if fn.apis]

    def client(self, service: str) -> Any:
        assert self.aws is not None
        return self.aws.client(service)

    def source_queue(self, task: str) -> QueueInfo:
        """The queue feeding the router of the registry's first service with ``task``
        (``token-classification`` -> the notes queue): registry service -> the function whose
        SERVICE_NAME names it -> its SQS event source."""
        assert self.resources is not None
        names = {s["name"] for s in self.registry_document["services"] if s["task"] == task}
        for fn in self.resources.functions:
            if fn.environment.get("SERVICE_NAME") in names and fn.sqs_events:
                return self.resources.queue_by_arn(fn.sqs_events[0].queue_arn)
        raise KeyError(task)

    def queue_url(self, logical_id: str) -> str:
        assert self.resources is not None
        return self.resources.queues[logical_id].url

    def sql(self) -> Any:
        """A Snowflake session through the real connector (the emulator's own credentials)."""
        if self._sql is None:
            from spcs_gateway.auth import TokenProvider
            from spcs_gateway.http import build_http_client
            from spcs_gateway.registry import parse_registry
            from spcs_gateway.secrets import CredentialSource
            from spcs_gateway.sql import SnowflakeSql, make_connect

            registry = parse_registry(self.emulator_registry)
            tokens = TokenProvider(
                registry.snowflake, CredentialSource(registry.snowflake), build_http_client()
            )
            self._sql = SnowflakeSql(make_connect(tokens))
        return self._sql

    def admin_sql(self, role: str = "SYSADMIN") -> AdminSql:
        """SQL in the emulated account as its administrator acting as ``role`` (in process):
        what the EHR pipeline or an operator does there, which the gateway's role may not
        (e.g. loading CLINICAL_NOTES, owned by SYSADMIN)."""
        return AdminSql(self.emulator.engine, role)

    def service_states(self) -> dict[str, str]:
        """Logical service name -> emulator status (RUNNING, PENDING, SUSPENDED ...)."""
        by_fqn = {s["service"].upper(): s["name"] for s in self.emulator_registry["services"]}
        out: dict[str, str] = {}
        for row in self.emulator.account.snapshot()["services"]:
            name = by_fqn.get(str(row["name"]).upper())
            if name:
                out[name] = str(row["status"])
        return out

    def lifecycle_counts(self, since: float = 0.0) -> tuple[dict[str, int], dict[str, int]]:
        """Resumes and suspends per logical service after ``since`` (epoch seconds), from the
        emulator's transition history (what Snowflake did, whoever asked)."""
        by_fqn = {s["service"].upper(): s["name"] for s in self.emulator_registry["services"]}
        resumes = dict.fromkeys(by_fqn.values(), 0)
        suspends = dict.fromkeys(by_fqn.values(), 0)
        for row in self.emulator.account.transitions():
            if row.kind != "service" or row.ts < since:
                continue
            name = by_fqn.get(str(row.name).upper())
            if name is None or not row.from_state:
                continue
            if row.to_state == "PENDING" and row.from_state == "SUSPENDED":
                resumes[name] += 1
            elif row.to_state == "SUSPENDED" and row.from_state != "SUSPENDED":
                suspends[name] += 1
        return resumes, suspends

    def instance_timeline(self, since: float = 0.0) -> dict[str, list[tuple[float, int]]]:
        """Per logical service, each instance count set after ``since`` (epoch seconds, count),
        from the emulator's ``instances`` transitions (ALTER SERVICE ... SET MIN_INSTANCES)."""
        by_fqn = {s["service"].upper(): s["name"] for s in self.emulator_registry["services"]}
        out: dict[str, list[tuple[float, int]]] = {name: [] for name in by_fqn.values()}
        for row in self.emulator.account.transitions():
            name = by_fqn.get(str(row.name).upper())
            if row.kind != "instances" or name is None or row.ts < since:
                continue
            out[name].append((float(row.ts), int(row.to_state)))
        return out

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """Queue name -> (visible + delayed, in flight)."""
        assert self.resources is not None
        sqs = self.client("sqs")
        out: dict[str, tuple[int, int]] = {}
        for queue in self.resources.queues.values():
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            visible = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
                attrs.get("ApproximateNumberOfMessagesDelayed", 0)
            )
            out[queue.name] = (visible, int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)))
        return out

    def queue_detail(self) -> dict[str, dict[str, int]]:
        """Queue name -> ``{"visible", "delayed", "in_flight"}`` (SQS's approximate counts):
        where a message that is in no table yet can be."""
        assert self.resources is not None
        sqs = self.client("sqs")
        names = {
            "visible": "ApproximateNumberOfMessages",
            "delayed": "ApproximateNumberOfMessagesDelayed",
            "in_flight": "ApproximateNumberOfMessagesNotVisible",
        }
        out: dict[str, dict[str, int]] = {}
        for queue in self.resources.queues.values():
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue.url, AttributeNames=list(names.values())
            )
            out[queue.name] = {
                key: int(attrs["Attributes"].get(name, 0)) for key, name in names.items()
            }
        return out

    def endpoints(self) -> dict[str, Any]:
        """Where everything listens (``spcs-local up --config-out``)."""
        assert self.resources is not None
        assert self.lambda_api is not None
        return {
            "aws_endpoint_url": self.moto.url,
            "lambda_endpoint_url": self.lambda_api.url,
            "region": self.options.region,
            "emulator": {
                "account_url": self.emulator.account_url,
                "admin_url": f"{self.emulator.account_url}/admin/status",
                "ingress": {n: self.emulator.ingress_url(n) for n in self.emulator.ingress},
                "secret_file": str(self.emulator.credentials.secret_file),
            },
            "api_url": self.api_server.url if self.api_server is not None else None,
            "queues": {
                q.logical_id: {"name": q.name, "url": q.url, "arn": q.arn}
                for q in self.resources.queues.values()
            },
            "tables": dict(self.resources.tables),
            "registry_parameters": list(self.resources.registry_parameters),
            "secret_arn": self.secret_arn,
            "functions": {fn.logical_id: fn.name for fn in self.resources.functions},
            "event_source_mappings": [m.as_api() for m in self.mappings],
            "registry": self.registry_document,
            "operator_env": self.operator_environment(),
            "work_dir": str(self.work_dir),
        }

    def operator_environment(self) -> dict[str, str]:
        """What the operator CLI (``spcs-gateway``) needs to act on this stack: the control
        function's environment (template + local endpoints), without container internals."""
        control = [fn for fn in self.functions if fn.schedules]
        if not control:
            return {}
        env = self.environments.get(control[0].name) or self._function_environment(control[0])
        keep = (
            set(control[0].environment)
            | set(self.options.environment())
            | {
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_LAMBDA",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "SPCS_GATEWAY_REGISTRY_PARAM",
            }
        )
        keep -= {"HOME", "PATH"}  # the operator's own
        return {
            k: v for k, v in sorted(env.items()) if k in keep and not k.startswith("AWS_LAMBDA")
        }


class AdminSql:
    """``execute(sql, params) -> rows`` as the emulator's administrator (bootstrap.Admin)."""

    def __init__(self, engine: Any, role: str) -> None:
        from spcs_local.emulator.bootstrap import Admin

        self._admin = Admin(engine)
        self.role = role

    def execute(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        results = self._admin.run(sql, role=self.role, bindings=list(params) or None)
        return [tuple(row) for row in results[-1].rows] if results else []


def _warm_ner() -> None:
    try:
        from spcs_local.emulator.backends import NerBackend

        NerBackend().warm_up()
    except Exception:  # noqa: BLE001 - the first request loads them instead
        log.debug("NER warm-up failed")


def mapping_of(stack: LocalStack, queue_logical_id: str) -> Mapping:
    assert stack.resources is not None
    arn = stack.resources.queues[queue_logical_id].arn
    return next(m for m in stack.mappings if m.queue_arn == arn)


__all__ = [
    "DEFAULT_TEMPLATE",
    "LocalStack",
    "StackError",
    "StackOptions",
    "mapping_of",
]
