"""``spcs-gateway``: the operator CLI over the same control-plane code the control function runs.

    spcs-gateway status [NAME ...]            table of managed services
    spcs-gateway resume NAME [--wait S]       ensure_ready, waiting up to S seconds (0: don't)
    spcs-gateway suspend NAME [--force]       refused while work waits, unless --force
    spcs-gateway scale NAME --min N --max M   set the instance range (within the registry's)
    spcs-gateway reconcile                    one control round (what the schedule runs)
    spcs-gateway redrive-dlq QUEUE [--max N]  move dead letters back to their source queue
    spcs-gateway doctor [--resume S]          preflight of the Snowflake side (one table)
    spcs-gateway replay FILE [--resume-seconds R] [--json]
                                              what each scale-to-zero policy would bill on
                                              your own traffic, and registry settings to use

Configuration: the control function's environment (``spcs_gateway.control.settings``), or
flags: ``--registry FILE``, ``--state-table``, ``--queue-urls``/``--queue-arns`` (JSON or
@file), ``--region``, ``--endpoint-url`` (a local AWS emulator). ``--json`` prints machine
output. ``--dry-run`` (resume, suspend, reconcile) reads the real state, runs the command on an
in-memory copy of it (``control.dryrun``) and prints what it would have changed.

Exit codes: 0 done; 1 the action did not succeed (refused, failed, unknown service, an AWS or
Snowflake error); 2 bad usage or configuration. Expected errors print one line with a code,
never a traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.aws_errors import aws_error_code
from spcs_gateway.cli_format import describe_result, failure_text, status_table
from spcs_gateway.control import (
    QUEUE_URLS_ENV,
    AwsClients,
    ControlPlane,
    ControlResult,
    ControlSettings,
    UnknownServiceError,
    build_control_plane,
)
from spcs_gateway.doctor import Doctor, format_table, passed
from spcs_gateway.errors import GatewayError
from spcs_gateway.redrive import RedriveError, RedriveResult, redrive_dlq, resolve_redrive
from spcs_gateway.registry import REGISTRY_FILE_ENV, RegistryError, parse_registry
from spcs_gateway.service_state import SERVICE_STATE_TABLE_ENV
from spcs_gateway.settings import env_str, parse_json_map

__all__ = [
    "CliError",
    "RedriveResult",
    "build_from_args",
    "describe_result",
    "main",
    "parser",
    "redrive_dlq",
    "resolve_redrive",
    "run",
    "status_table",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_RESUME_WAIT_S = 300.0
_DRY_RUN_COMMANDS = frozenset({"resume", "suspend", "reconcile"})


class CliError(Exception):
    """An expected failure: printed as ``error: CODE: detail``."""

    def __init__(self, code: str, detail: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.exit_code = exit_code


# -- commands ------------------------------------------------------------------------------------


def _json_arg(value: str | None, flag: str) -> dict[str, str] | None:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return parse_json_map(text, flag)
    except ValueError as exc:
        raise CliError("USAGE", str(exc), EXIT_USAGE) from None


def _clients(args: argparse.Namespace) -> AwsClients:
    kwargs: dict[str, Any] = {}
    if args.region:
        kwargs["region_name"] = args.region
    if args.endpoint_url:
        kwargs["endpoint_url"] = args.endpoint_url
    return AwsClients(**kwargs)


def _environ(args: argparse.Namespace, base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    if args.state_table:
        env[SERVICE_STATE_TABLE_ENV] = args.state_table
    if args.registry:
        env[REGISTRY_FILE_ENV] = args.registry
    return env


def build_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> ControlPlane:
    env = _environ(args, environ)
    registry = None
    if args.registry:
        try:
            registry = parse_registry(Path(args.registry).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(
                "CONFIGURATION_ERROR", f"cannot read --registry ({exc.strerror})", EXIT_USAGE
            ) from None
    if not env_str(env, SERVICE_STATE_TABLE_ENV):
        raise CliError(
            "CONFIGURATION_ERROR", "no state table: set SERVICE_STATE_TABLE or --state-table", 2
        )
    urls = _json_arg(args.queue_urls, "--queue-urls")
    arns = _json_arg(args.queue_arns, "--queue-arns")
    settings = ControlSettings.from_env(env)
    settings = replace(
        settings,
        queue_urls=settings.queue_urls if urls is None else urls,
        queue_arns=settings.queue_arns if arns is None else arns,
        owner_id=f"cli:{socket.gethostname()}:{os.getpid()}",
    )
    return build_control_plane(env, settings=settings, registry=registry, clients=_clients(args))


def _emit(out: TextIO, args: argparse.Namespace, data: Any, text: str) -> None:
    out.write((json.dumps(data, indent=2, default=str) if args.json else text) + "\n")


def _result_exit(result: ControlResult, out: TextIO, args: argparse.Namespace) -> int:
    if not result.ok:
        if args.json:
            _emit(out, args, result.as_dict(), "")
        raise CliError(result.code or result.outcome.value.upper(), failure_text(result))
    _emit(out, args, result.as_dict(), describe_result(result))
    return EXIT_OK


def build_doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> Doctor:
    """The doctor over the production clients: only Snowflake (and the secret) is needed."""
    from spcs_gateway.api.search import (
        CORTEX_SEARCH_SERVICE_ENV,
        DEFAULT_SEARCH_SERVICE,
        CortexSearchClient,
        SearchService,
    )
    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.http import build_http_client
    from spcs_gateway.registry import load_registry
    from spcs_gateway.results import ResultsSink
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.spcs_client import SpcsClient
    from spcs_gateway.sql import SnowflakeSql, make_connect

    registry = load_registry(_environ(args, environ))
    http = build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    sql = SnowflakeSql(make_connect(tokens))
    search_name = None
    search = None
    if not args.no_search:
        search_name = args.search_service or env_str(
            environ, CORTEX_SEARCH_SERVICE_ENV, DEFAULT_SEARCH_SERVICE
        )
        search = CortexSearchClient(
            registry.snowflake.account_url, tokens, http, SearchService.parse(search_name)
        )
    spcs = SpcsClient(registry, tokens, http)
    return Doctor(
        registry,
        sql=sql,
        spcs=spcs,
        tokens=tokens,
        results=ResultsSink(sql, registry.snowflake.results_table),
        search=search,
        search_service=search_name,
        resume_wait_s=args.resume,
        closers=(sql.close, spcs.close, http.close),
    )


def run_doctor(doctor: Doctor, out: TextIO, args: argparse.Namespace) -> int:
    try:
        rows = doctor.run()
    finally:
        doctor.close()
    _emit(out, args, [r.as_dict() for r in rows], format_table(rows))
    return EXIT_OK if passed(rows) else EXIT_FAILED


def run(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    out: TextIO,
    build: Callable[[argparse.Namespace, Mapping[str, str]], ControlPlane] = build_from_args,
) -> int:
    if args.command == "doctor":
        return run_doctor(build_doctor(args, environ), out, args)
    if args.command == "replay":  # offline: no AWS, no Snowflake
        from spcs_gateway.replay import main_from_args
        from spcs_gateway.replay_plot import PlotError

        try:
            return main_from_args(args, out)
        except PlotError as exc:  # no matplotlib (the 'plot' extra), or not .png/.html
            raise CliError("USAGE", str(exc), 2) from None
        except (OSError, ValueError, KeyError) as exc:
            raise CliError("USAGE", f"cannot replay the trace ({type(exc).__name__})", 2) from None
    if args.command == "redrive-dlq":
        logical = _json_arg(args.queue_urls, "--queue-urls") or _json_from_env(environ)
        try:
            result = redrive_dlq(
                _clients(args).sqs(),
                args.queue,
                max_messages=args.max,
                to=args.to,
                logical=logical,
            )
        except RedriveError as exc:
            raise CliError(exc.code, exc.detail) from None
        if result.task_handle:
            text = f"move task started: {result.dlq_url} -> source queue (SQS moves the messages)"
        else:
            text = f"moved {result.moved} message(s) {result.dlq_url} -> {result.destination_url}"
            if result.failed:
                text += f"; {result.failed} failed and stay in the DLQ"
        _emit(out, args, result.as_dict(), text)
        return EXIT_FAILED if result.failed else EXIT_OK

    control = build(args, environ)
    if args.dry_run and args.command in _DRY_RUN_COMMANDS:
        return _dry_run(control, args, out)
    return _run_control(control, args, out)


def _run_control(control: ControlPlane, args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "status":
        try:
            rows = control.status(args.names or None)
        except UnknownServiceError as exc:
            raise CliError(
                exc.code.value, f"not in the service registry: {', '.join(exc.names)}"
            ) from None
        _emit(out, args, [r.as_dict() for r in rows], status_table(rows, control.now()))
        return EXIT_FAILED if any(r.code for r in rows) else EXIT_OK
    if args.command == "resume":
        wait = 0.0 if args.dry_run else args.wait
        return _result_exit(control.ensure_ready(args.name, budget_s=wait), out, args)
    if args.command == "suspend":
        return _result_exit(control.suspend(args.name, force=args.force), out, args)
    if args.command == "scale":
        result = control.scale(args.name, min_instances=args.min, max_instances=args.max)
        return _result_exit(result, out, args)
    report = control.reconcile()  # reconcile
    lines = [
        f"{s.name}: {s.status} -> {s.action or 'skip'} ({s.reason or s.code}) {s.outcome}"
        for s in report.services
    ]
    lines += [
        f"pool {p.name}: {p.status} -> {p.action} ({p.reason or p.code})" for p in report.pools
    ]
    _emit(out, args, report.as_dict(), "\n".join(lines))
    return EXIT_FAILED if report.errors else EXIT_OK


def _dry_run(control: ControlPlane, args: argparse.Namespace, out: TextIO) -> int:
    """The command on an in-memory copy of what ``control`` sees; then what it would change
    (with ``--json``: ``{"dry_run": true, "result": ..., "would": [...]}``)."""
    from spcs_gateway.control.dryrun import dry_run

    copy, dry = dry_run(control)
    answer = io.StringIO()
    try:
        return _run_control(copy, args, answer)
    finally:
        planned = dry.planned()
        if args.json:
            result = json.loads(answer.getvalue() or "null")
            _emit(out, args, {"dry_run": True, "result": result, "would": planned}, "")
        else:
            lines = [f"  {p}" for p in planned] or ["  nothing"]
            out.write(answer.getvalue())
            out.write("\n".join(["dry run: nothing was changed; it would have changed:", *lines]))
            out.write("\n")


def _json_from_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    raw = env_str(environ, QUEUE_URLS_ENV)
    return _json_arg(raw, QUEUE_URLS_ENV) if raw else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spcs-gateway",
        description="Operate the SPCS gateway's managed services (status, resume, suspend, "
        "reconcile, DLQ redrive).",
    )
    p.add_argument("--registry", metavar="FILE", help="service registry JSON file")
    p.add_argument("--state-table", metavar="NAME", help="DynamoDB service-state table")
    p.add_argument("--queue-urls", metavar="JSON", help='{"notes": "<url>"} or @file')
    p.add_argument("--queue-arns", metavar="JSON", help='{"notes": "<arn>"} or @file')
    p.add_argument("--region", help="AWS region")
    p.add_argument("--endpoint-url", metavar="URL", help="AWS endpoint (a local emulator)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="resume/suspend/reconcile: read the real state, print what the command would change",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log control actions to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("status", help="status, last activity and idle countdown per service")
    s.add_argument("names", nargs="*", metavar="NAME")
    s = sub.add_parser("resume", help="resume a service and wait until it is ready")
    s.add_argument("name", metavar="NAME")
    s.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_RESUME_WAIT_S,
        metavar="S",
        help=f"seconds to wait for READY (default {DEFAULT_RESUME_WAIT_S:g}; 0: do not wait)",
    )
    s = sub.add_parser("suspend", help="suspend a service (refused while work waits)")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--force", action="store_true", help="suspend even with queued work")
    s = sub.add_parser(
        "scale",
        help="set a service's instance range (within the registry's; the registry's own range "
        "hands the count back to backlog-driven scaling)",
    )
    s.add_argument("name", metavar="NAME")
    s.add_argument("--min", type=int, required=True, metavar="N", help="MIN_INSTANCES")
    s.add_argument("--max", type=int, required=True, metavar="M", help="MAX_INSTANCES")
    sub.add_parser("reconcile", help="run one control round now")
    s = sub.add_parser("redrive-dlq", help="move dead letters back to their source queue")
    s.add_argument("queue", metavar="QUEUE", help="DLQ or source queue: URL, name or logical name")
    s.add_argument("--max", type=int, metavar="N", help="move at most N messages")
    s.add_argument("--to", metavar="QUEUE", help="destination queue (default: the source)")
    s = sub.add_parser(
        "doctor", help="check credentials, grants, services, signatures, search and results"
    )
    # Also accepted after the command (spcs-gateway doctor --registry FILE --json).
    s.add_argument("--registry", metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    s.add_argument(
        "--resume",
        type=float,
        default=0.0,
        metavar="S",
        help="resume suspended services and wait up to S seconds to probe them (default: skip)",
    )
    s.add_argument("--search-service", metavar="DB.SCHEMA.NAME", help="Cortex Search service")
    s.add_argument("--no-search", action="store_true", help="skip the Cortex Search check")
    s = sub.add_parser("replay", help="replay a traffic trace against the scale-to-zero policies")
    from spcs_gateway.replay import add_arguments

    add_arguments(s)
    s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    build: Callable[[argparse.Namespace, Mapping[str, str]], ControlPlane] = build_from_args,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    if args.command == "redrive-dlq" and args.max is not None and args.max < 1:
        err.write("error: USAGE: --max must be at least 1\n")
        return EXIT_USAGE
    # The control plane logs for CloudWatch; at a terminal its lines repeat the one-line
    # answer, so they show only with --verbose.
    if args.verbose:
        logging.basicConfig(stream=err, level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("spcs_gateway").setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    env = os.environ if environ is None else environ
    try:
        return run(args, env, out, build)
    except CliError as exc:
        err.write(f"error: {exc.code}: {exc.detail}\n")
        return exc.exit_code
    except RegistryError as exc:
        err.write(f"error: CONFIGURATION_ERROR: {exc}\n")
        return EXIT_USAGE
    except GatewayError as exc:
        err.write(f"error: {exc}\n")  # code + fixed detail, PHI-free by construction
        return EXIT_FAILED
    except (ClientError, BotoCoreError) as exc:
        err.write(f"error: {aws_error_code(exc)}: AWS call failed\n")
        return EXIT_FAILED
    except ValueError as exc:  # environment contract (QUEUE_URLS, numbers ...)
        err.write(f"error: CONFIGURATION_ERROR: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
