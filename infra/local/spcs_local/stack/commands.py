"""``spcs-local up`` and ``spcs-local demo`` (added to the CLI by ``spcs_local.cli``).

Imports of the stack happen inside the command functions, so ``spcs-local --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

DEMO_EVENTS = 120
DEMO_IDLE_SECONDS = 10
DEMO_RESUME_SECONDS = 3.0
DEMO_SCHEDULE_SECONDS = 3.0
DEMO_RATE = 20.0  # events per second: a feed, not one burst


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", type=Path, default=None, metavar="PATH", help="template.yaml")
    p.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as for sam deploy (e.g. NotesBatchSize=10)",
    )
    p.add_argument("--start-suspended", action="store_true", help="services start suspended")
    p.add_argument(
        "--auto-resume",
        action="store_true",
        help="let a call to a suspended service resume it (default: only the control plane does)",
    )
    p.add_argument("--resume-seconds", type=float, metavar="S", help="how long a resume takes")
    p.add_argument(
        "--idle-seconds",
        type=int,
        metavar="S",
        help="every service's idle window (registry idle_seconds) and the minimum uptime",
    )
    p.add_argument(
        "--schedule-seconds",
        type=float,
        metavar="S",
        help="run the template's schedules (the control round) this often",
    )
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help="emulator faults")
    p.add_argument(
        "--max-containers",
        type=int,
        default=2,
        metavar="N",
        help="containers per function (caps each mapping's concurrency; default 2)",
    )
    p.add_argument("--work-dir", type=Path, metavar="DIR", help="keep state and logs here")


def add_stack_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser(
        "up",
        help="run the whole system locally (moto + emulator + runner + API)",
        description=(
            "Start the emulator, moto server, the resources of template.yaml and the functions "
            "driven like Lambda would; serve the API on --api-port. Runs until Ctrl-C."
        ),
    )
    _common(up)
    up.add_argument("--api-port", type=int, default=3000, metavar="P", help="0: any free port")
    up.add_argument("--config-out", type=Path, metavar="PATH", help="write the endpoints here")
    up.add_argument("--status-seconds", type=float, default=2.0, metavar="S")
    up.set_defaults(func=run_up)

    demo = subparsers.add_parser(
        "demo",
        help="start everything, send a synthetic EHR feed, account for every event",
        description=(
            "Start the local stack, send the feed (or --events-file), wait until every event "
            "has a result row or a DLQ message, wait for idle suspension, print a summary. "
            "Exits 1 if an event was lost or processed twice."
        ),
    )
    _common(demo)
    demo.add_argument("--events", type=int, default=DEMO_EVENTS, metavar="N")
    demo.add_argument("--events-file", type=Path, metavar="PATH", help="JSONL, one body per line")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--rate", type=float, default=DEMO_RATE, metavar="EPS", help="events/s (0: one burst)"
    )
    demo.add_argument("--timeout", type=float, default=240.0, metavar="S")
    demo.add_argument("--json-summary", type=Path, metavar="PATH")
    demo.add_argument("--artifacts", type=Path, metavar="DIR")
    demo.add_argument(
        "--route",
        choices=("inline", "reference"),
        default="inline",
        help="reference: store the notes and images in Snowflake first and send events that "
        "only name them (the model runs inside Snowflake)",
    )
    demo.set_defaults(func=run_demo_command)


def _overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--parameter-overrides expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def registry_idle_floor() -> int:
    """The smallest ``idle_seconds`` the registry model accepts."""
    from spcs_gateway.registry import ServiceConfig

    for meta in ServiceConfig.model_fields["idle_seconds"].metadata:
        ge = getattr(meta, "ge", None)
        if ge is not None:
            return int(ge)
    return 0


def _options(args: argparse.Namespace, *, demo: bool) -> Any:
    from spcs_local.emulator.faults import parse_faults

    from .stack import StackOptions

    parse_faults(args.fault)
    idle = args.idle_seconds
    if idle is None and demo:
        # The demo's default adapts to the registry's lower bound (an explicit value is checked
        # as given, and rejected with a clear message if the registry refuses it).
        idle = max(DEMO_IDLE_SECONDS, registry_idle_floor())
    opts = StackOptions(
        parameter_overrides=_overrides(args.parameter_overrides),
        start_suspended=args.start_suspended,
        auto_resume=args.auto_resume,
        faults=list(args.fault),
        idle_seconds=idle,
        max_containers=args.max_containers,
        work_dir=args.work_dir,
    )
    if args.template is not None:
        opts.template = args.template
    if args.resume_seconds is not None:
        opts.resume_seconds = args.resume_seconds
    elif demo:
        opts.resume_seconds = DEMO_RESUME_SECONDS
    if args.schedule_seconds is not None:
        opts.schedule_seconds = args.schedule_seconds
    elif demo:
        opts.schedule_seconds = DEMO_SCHEDULE_SECONDS
    return opts


def _quiet_libraries() -> None:
    for name in ("snowflake.connector", "botocore", "urllib3", "werkzeug", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _prepare(args: argparse.Namespace, *, demo: bool) -> Any:
    """Quiet the libraries and build the stack options; None (after saying why) if invalid."""
    _quiet_libraries()
    try:
        return _options(args, demo=demo)
    except ValueError as exc:
        print(f"spcs-local: {exc}", file=sys.stderr)
        return None


def _start(opts: Any) -> Any:
    from .stack import LocalStack, StackError

    stack = LocalStack(opts)
    print("spcs-local: starting the emulator, moto server, resources and functions ...", flush=True)
    try:
        stack.start()
    except StackError as exc:
        print(f"spcs-local: {exc}", file=sys.stderr)
        return None
    return stack


# -- up -------------------------------------------------------------------------------------------


def banner(stack: Any) -> str:
    e = stack.endpoints()
    lines = [
        "spcs-local up: the whole system is running",
        f"  AWS (moto server)     {e['aws_endpoint_url']}   region {e['region']}, fake credentials",
        f"  Lambda API (runner)   {e['lambda_endpoint_url']}",
        f"  Snowflake (emulator)  {e['emulator']['account_url']}",
        f"    admin               {e['emulator']['admin_url']}",
    ]
    for name, url in e["emulator"]["ingress"].items():
        lines.append(f"    ingress {name:<13} {url}")
    lines.append(f"  API                   {e['api_url'] or '(no Api function in template.yaml)'}")
    for logical, q in e["queues"].items():
        lines.append(f"  queue {logical:<24} {q['url']}")
    for logical, table in e["tables"].items():
        lines.append(f"  table {logical:<24} {table}")
    for logical, name in e["functions"].items():
        lines.append(f"  function {logical:<21} {name}")
    lines.append(f"  logs                  {stack.log_dir}")
    lines.append("Ctrl-C to stop")
    return "\n".join(lines)


def status_line(stack: Any) -> str:
    depths = stack.queue_depths()
    queues = " ".join(f"{name}={v}/{f}" for name, (v, f) in sorted(depths.items()))
    flight = " ".join(f"{p.name}={p.in_flight}" for p in stack.pools.values())
    services = " ".join(f"{k}={v}" for k, v in sorted(stack.service_states().items()))
    mappings = " ".join(
        f"{m.queue_arn.rsplit(':', 1)[-1]}:{'on' if m.enabled else 'PAUSED'}"
        for m in stack.mappings
    )
    return (
        f"{time.strftime('%H:%M:%S')} queues(visible/in flight) {queues} | in flight {flight} | "
        f"services {services} | mappings {mappings}"
    )


def run_up(args: argparse.Namespace) -> int:
    from spcs_local.cli import stop_on_signals

    opts = _prepare(args, demo=False)
    if opts is None:
        return 2
    opts.api_port = args.api_port
    stop = stop_on_signals()
    stack = _start(opts)
    if stack is None:
        return 1
    try:
        print(banner(stack), flush=True)
        if args.config_out is not None:
            args.config_out.parent.mkdir(parents=True, exist_ok=True)
            args.config_out.write_text(json.dumps(stack.endpoints(), indent=2) + "\n")
            print(f"  endpoints written to {args.config_out}", flush=True)
        tty = sys.stdout.isatty()
        while not stop.wait(args.status_seconds):
            try:
                line = status_line(stack)
            except Exception as exc:  # noqa: BLE001 - keep serving; say what failed
                line = f"status unavailable ({type(exc).__name__})"
            # On a terminal the status line is rewritten in place; in a log, one per interval.
            print(("\r\033[K" + line) if tty else line, end="" if tty else "\n", flush=True)
        if tty:
            print()
    finally:
        stack.stop()
    print("spcs-local up: stopped", flush=True)
    return 0


# -- demo -----------------------------------------------------------------------------------------


def run_demo_command(args: argparse.Namespace) -> int:
    from .demo import (
        DemoOptions,
        Progress,
        expected_dlq,
        run_demo,
        story,
        summarize,
        summary_table,
        write_artifacts,
    )
    from .feed import events_from_file, split_total, synthetic_feed

    opts = _prepare(args, demo=True)
    if opts is None:
        return 2
    if args.events_file is not None:
        events = events_from_file(args.events_file)
    else:
        notes, images, poison = split_total(args.events)
        # FHIR, HL7 v2 and DICOM messages mixed in: a tenth more (ehr_feed.py).
        if args.route == "reference":
            from .reference_feed import reference_feed

            events = reference_feed(synthetic_feed(notes, images, poison, seed=args.seed))
        else:
            events = synthetic_feed(notes, images, poison, seed=args.seed, ehr=args.events // 10)
    stack = _start(opts)
    if stack is None:
        return 1
    try:
        states = " ".join(f"{k}={v}" for k, v in sorted(stack.service_states().items()))
        print(f"spcs-local demo: {len(events)} events; services {states}", flush=True)
        run = run_demo(
            stack, events, DemoOptions(rate=args.rate, timeout_s=args.timeout), progress=Progress()
        )
        summary = summarize(run)
        print(summary_table(summary, expected_dlq(events) if args.events_file is None else None))
        if told := story(run):
            print("control plane (event source mappings, as the Lambda API saw them):")
            print(told)
        if args.json_summary is not None:
            args.json_summary.parent.mkdir(parents=True, exist_ok=True)
            args.json_summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if args.artifacts is not None:
            counts = write_artifacts(stack, run, summary, args.artifacts)
            listed = ", ".join(f"{k} {v}" for k, v in counts.items())
            print(f"artifacts in {args.artifacts}: {listed}")
    finally:
        stack.stop()
    return 0 if summary["lost"] == 0 and summary["duplicate_results"] == 0 else 1
