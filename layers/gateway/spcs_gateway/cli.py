"""``spcs-gateway``: the operator CLI over the same control-plane code the control function runs.

    spcs-gateway status [NAME ...]            table of managed services
    spcs-gateway resume NAME [--wait S]       ensure_ready, waiting up to S seconds (0: don't)
    spcs-gateway suspend NAME [--force]       refused while work waits, unless --force
    spcs-gateway reconcile                    one control round (what the schedule runs)
    spcs-gateway redrive-dlq QUEUE [--max N]  move dead letters back to their source queue
    spcs-gateway doctor [--resume S]          preflight of the Snowflake side (one table)

Configuration: the control function's environment (see ``spcs_gateway.control``), or flags:
``--registry FILE``, ``--state-table``, ``--queue-urls``/``--queue-arns`` (JSON or @file),
``--region``, ``--endpoint-url`` (a local AWS emulator). ``--json`` prints machine output.

Exit codes: 0 done; 1 the action did not succeed (refused, failed, unknown service, an AWS or
Snowflake error); 2 bad usage or configuration. Expected errors print one line with a code,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.control import (
    QUEUE_URLS_ENV,
    ControlPlane,
    ControlResult,
    Outcome,
    ServiceStatusView,
    UnknownServiceError,
    build_control_plane,
)
from spcs_gateway.doctor import Doctor, format_table, passed
from spcs_gateway.errors import GatewayError
from spcs_gateway.registry import REGISTRY_FILE_ENV, RegistryError, parse_registry
from spcs_gateway.service_state import SERVICE_STATE_TABLE_ENV

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_RESUME_WAIT_S = 300.0


class CliError(Exception):
    """An expected failure: printed as ``error: CODE: detail``."""

    def __init__(self, code: str, detail: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.exit_code = exit_code


def _aws_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


# -- formatting ----------------------------------------------------------------------------------


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{stamp} ({_duration((now - when).total_seconds())} ago)"


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def status_table(views: Sequence[ServiceStatusView], now: datetime) -> str:
    """The aligned ``status`` table (one row per service)."""
    header = (
        "SERVICE",
        "STATUS",
        "READY",
        "LAST ACTIVITY",
        "IDLE IN",
        "WHY",
        "BACKLOG",
        "RESUMES",
        "SUSPENDS",
        "PAUSED",
    )
    rows = [header]
    for v in views:
        rows.append(
            (
                v.name,
                v.status if v.code is None else f"{v.status} ({v.code})",
                "yes" if v.ready else "no",
                _ago(v.last_activity, now),
                "-" if v.idle_countdown_s is None else _duration(v.idle_countdown_s),
                v.idle_reason,
                "?" if v.backlog is None else str(v.backlog),
                str(v.resumes_today),
                str(v.suspends_today),
                "yes" if v.mappings_paused else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    footer = "RESUMES/SUSPENDS: today (UTC). IDLE IN: time until eligible for suspension."
    return "\n".join(line.rstrip() for line in lines) + "\n" + footer


def describe_result(result: ControlResult) -> str:
    status = f" ({result.status})" if result.status else ""
    text = {
        Outcome.READY: "ready" + (", resumed by this call" if result.resumed else ""),
        Outcome.RESUMING: "resume issued, not ready yet; reconcile re-enables its queues when "
        "it is READY",
        Outcome.IN_PROGRESS: "a resume is already in progress",
        Outcome.STARTING: "starting, not ready yet",
        Outcome.SUSPENDED: "suspend issued",
        Outcome.ALREADY_SUSPENDED: "already suspended",
    }.get(result.outcome, result.outcome.value)
    return f"{result.service}: {text}{status}"


# -- redrive -------------------------------------------------------------------------------------

_MOVE_UNSUPPORTED = frozenset(
    {"UnsupportedOperation", "InvalidAction", "NotImplemented", "UnknownOperationException"}
)


@dataclass(frozen=True)
class RedriveResult:
    dlq_url: str
    destination_url: str | None
    moved: int = 0
    failed: int = 0
    task_handle: str | None = None  # set when SQS runs the move itself (StartMessageMoveTask)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _queue_url(sqs: SQSClient, queue: str, logical: Mapping[str, str]) -> str:
    if queue.startswith(("https://", "http://")):
        return queue
    if queue in logical:
        return logical[queue]
    try:
        return sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError as exc:
        raise CliError(_aws_code(exc), f"queue {queue!r} not found") from None


def _arn_to_url(sqs: SQSClient, arn: str) -> str:
    parts = arn.split(":")
    return sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]


def _queue_arn(sqs: SQSClient, url: str) -> tuple[str, dict[str, str]]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attrs["QueueArn"], {str(k): v for k, v in attrs.items()}


def resolve_redrive(
    sqs: SQSClient, queue: str, *, to: str | None = None, logical: Mapping[str, str] | None = None
) -> tuple[str, str, str, str]:
    """(dlq url, dlq arn, destination url, destination arn). ``queue`` is the DLQ or a source
    queue with a RedrivePolicy (its DLQ is then redriven back into it)."""
    names = logical or {}
    url = _queue_url(sqs, queue, names)
    arn, attrs = _queue_arn(sqs, url)
    if "RedrivePolicy" in attrs and to is None:
        dlq_arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
        return _arn_to_url(sqs, dlq_arn), dlq_arn, url, arn
    if to is not None:
        dest_url = _queue_url(sqs, to, names)
        return url, arn, dest_url, _queue_arn(sqs, dest_url)[0]
    sources = sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
    if len(sources) != 1:
        raise CliError(
            "NO_SOURCE_QUEUE",
            f"{len(sources)} source queues use this queue as their DLQ; name one with --to",
        )
    return url, arn, sources[0], _queue_arn(sqs, sources[0])[0]


def _attribute_for_send(value: MessageAttributeValueOutputTypeDef) -> MessageAttributeValueTypeDef:
    out: MessageAttributeValueTypeDef = {"DataType": value["DataType"]}
    if "StringValue" in value:
        out["StringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["BinaryValue"] = value["BinaryValue"]
    return out


def _send_entry(
    message: MessageTypeDef, index: int, fifo: bool
) -> SendMessageBatchRequestEntryTypeDef:
    entry: SendMessageBatchRequestEntryTypeDef = {
        "Id": str(index),
        "MessageBody": message["Body"],
    }
    attributes = message.get("MessageAttributes")
    if attributes:
        entry["MessageAttributes"] = {k: _attribute_for_send(v) for k, v in attributes.items()}
    system = message.get("Attributes", {})
    if "AWSTraceHeader" in system:
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = system.get("MessageDeduplicationId", message["MessageId"])
    return entry


def redrive_dlq(
    sqs: SQSClient,
    queue: str,
    *,
    max_messages: int | None = None,
    to: str | None = None,
    logical: Mapping[str, str] | None = None,
    wait_seconds: int = 1,
    use_move_task: bool = True,
) -> RedriveResult:
    """Move dead letters back. Without ``max_messages`` SQS's own StartMessageMoveTask is used
    when the endpoint supports it; otherwise (or with a cap) a receive/send/delete loop that
    keeps the body, message attributes, trace header and FIFO group. A message is deleted from
    the DLQ only after its copy was sent, so a failure leaves it where it was (at worst a
    message is sent twice, which the results MERGE on event_id absorbs)."""
    dlq_url, dlq_arn, dest_url, dest_arn = resolve_redrive(sqs, queue, to=to, logical=logical)
    if max_messages is None and use_move_task:
        try:
            kwargs: dict[str, Any] = {"SourceArn": dlq_arn}
            if to is not None:
                kwargs["DestinationArn"] = dest_arn
            handle = sqs.start_message_move_task(**kwargs)["TaskHandle"]
            return RedriveResult(dlq_url, dest_url, task_handle=handle)
        except NotImplementedError:
            pass  # an emulator without the API
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if _aws_code(exc) not in _MOVE_UNSUPPORTED and status != 501:
                raise
    fifo = dest_url.endswith(".fifo")
    moved = failed = 0
    while max_messages is None or moved + failed < max_messages:
        want = 10 if max_messages is None else min(10, max_messages - moved - failed)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=want,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries = [_send_entry(m, i, fifo) for i, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=dest_url, Entries=entries)
        ok = {s["Id"] for s in sent.get("Successful", [])}
        failed += len(messages) - len(ok)
        done: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if str(i) in ok
        ]
        if done:
            deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
            moved += len(deleted.get("Successful", []))
    return RedriveResult(dlq_url, dest_url, moved=moved, failed=failed)


# -- commands ------------------------------------------------------------------------------------


def _json_arg(value: str | None, flag: str) -> dict[str, str] | None:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CliError("USAGE", f"{flag} is not valid JSON", EXIT_USAGE) from None
    if not isinstance(data, dict):
        raise CliError("USAGE", f"{flag} must be a JSON object", EXIT_USAGE)
    return {str(k): str(v) for k, v in data.items()}


def _client(args: argparse.Namespace, service: str) -> Any:
    import boto3

    kwargs: dict[str, Any] = {}
    if args.region:
        kwargs["region_name"] = args.region
    if args.endpoint_url:
        kwargs["endpoint_url"] = args.endpoint_url
    return boto3.client(service, **kwargs)  # type: ignore[call-overload]


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
    if not env.get(SERVICE_STATE_TABLE_ENV):
        raise CliError(
            "CONFIGURATION_ERROR", "no state table: set SERVICE_STATE_TABLE or --state-table", 2
        )
    return build_control_plane(
        env,
        registry=registry,
        dynamodb_client=_client(args, "dynamodb"),
        sqs_client=_client(args, "sqs"),
        lambda_client=_client(args, "lambda"),
        queue_urls=_json_arg(args.queue_urls, "--queue-urls"),
        queue_arns=_json_arg(args.queue_arns, "--queue-arns"),
        owner_id=f"cli:{socket.gethostname()}:{os.getpid()}",
    )


def _emit(out: TextIO, args: argparse.Namespace, data: Any, text: str) -> None:
    out.write((json.dumps(data, indent=2, default=str) if args.json else text) + "\n")


def _failure_text(result: ControlResult) -> str:
    name = result.service
    if result.outcome is Outcome.UNKNOWN_SERVICE:
        return f"{name!r} is not in the service registry; nothing was touched"
    if result.outcome is Outcome.REFUSED:
        return f"{name}: suspend refused ({result.reason}); --force suspends anyway"
    if result.outcome is Outcome.FAILED:
        return f"{name}: service is {result.status}; nothing was done"
    return f"{name}: a Snowflake or AWS call failed"


def _result_exit(result: ControlResult, out: TextIO, args: argparse.Namespace) -> int:
    if not result.ok:
        if args.json:
            _emit(out, args, result.as_dict(), "")
        raise CliError(result.code or result.outcome.value.upper(), _failure_text(result))
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
        search_name = (
            args.search_service or environ.get(CORTEX_SEARCH_SERVICE_ENV) or DEFAULT_SEARCH_SERVICE
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
    if args.command == "redrive-dlq":
        logical = _json_arg(args.queue_urls, "--queue-urls") or _json_from_env(environ)
        result = redrive_dlq(
            _client(args, "sqs"), args.queue, max_messages=args.max, to=args.to, logical=logical
        )
        if result.task_handle:
            text = f"move task started: {result.dlq_url} -> source queue (SQS moves the messages)"
        else:
            text = f"moved {result.moved} message(s) {result.dlq_url} -> {result.destination_url}"
            if result.failed:
                text += f"; {result.failed} failed and stay in the DLQ"
        _emit(out, args, result.as_dict(), text)
        return EXIT_FAILED if result.failed else EXIT_OK

    control = build(args, environ)
    if args.command == "status":
        try:
            views = control.status(args.names or None)
        except UnknownServiceError as exc:
            raise CliError(
                exc.code.value, f"not in the service registry: {', '.join(exc.names)}"
            ) from None
        _emit(out, args, [v.as_dict() for v in views], status_table(views, control.now()))
        return EXIT_FAILED if any(v.code for v in views) else EXIT_OK
    if args.command == "resume":
        return _result_exit(control.ensure_ready(args.name, budget_s=args.wait), out, args)
    if args.command == "suspend":
        return _result_exit(control.suspend(args.name, force=args.force), out, args)
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


def _json_from_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    raw = environ.get(QUEUE_URLS_ENV)
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
        err.write(f"error: {_aws_code(exc)}: AWS call failed\n")
        return EXIT_FAILED
    except ValueError as exc:  # environment contract (QUEUE_URLS, numbers ...)
        err.write(f"error: CONFIGURATION_ERROR: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
