"""``spcs-local``: the local stack's command line.

Subcommands: ``emulator`` (the Snowflake + SPCS emulator), ``up`` (the whole system locally)
and ``demo`` (the whole system fed a synthetic EHR stream, with a summary).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from spcs_gateway.registry import is_loopback_host

if TYPE_CHECKING:
    from spcs_local.emulator.server import EmulatorServer

DEFAULT_STATE_DIR = Path(".spcs-local") / "emulator"


def _add_emulator(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "emulator",
        help="run the Snowflake + SPCS emulator",
        description=(
            "Serve the account endpoint (connector wire protocol, /oauth/token, Cortex Search, "
            "/admin) on --port and one ingress endpoint per service on its own loopback port."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument("--port", type=int, default=0, help="account endpoint port (0: any free)")
    p.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="PEM_PATH",
        help="register a service user's RSA public key (repeatable)",
    )
    p.add_argument(
        "--pat",
        action="append",
        default=[],
        metavar="TOKEN",
        help="register a programmatic access token (repeatable)",
    )
    p.add_argument("--resume-seconds", type=float, default=5.0, metavar="S")
    p.add_argument(
        "--no-auto-resume",
        action="store_true",
        help="a suspended service answers 503 until resumed by SQL",
    )
    p.add_argument("--start-suspended", action="store_true", help="start with services suspended")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="e.g. biobert_ner:503=0.05,429=0.02,drop=0.01,latency_ms=200,latency_p=0.1,seed=7",
    )
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR")
    p.add_argument(
        "--config-out", type=Path, metavar="PATH", help="write the gateway registry document here"
    )
    p.add_argument(
        "--ingress-port-base",
        type=int,
        metavar="N",
        help="ingress ports N, N+1, ... (default: any free ports)",
    )
    p.add_argument(
        "--ner-head",
        choices=("trained", "untrained"),
        default="trained",
        help="untrained: every token LABEL_0/LABEL_1, like a checkpoint without a NER head",
    )
    p.add_argument(
        "--request-timeout-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="ingress request limit; slower answers get 504 (default 60)",
    )
    p.add_argument(
        "--idle-close-seconds",
        type=float,
        default=90.0,
        metavar="S",
        help="close keep-alive connections idle this long (default 90)",
    )
    p.add_argument(
        "--startup-unauthorized-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="after a resume, valid tokens get 401 this long (default 1; 0 disables)",
    )
    p.set_defaults(func=_run_emulator)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spcs-local", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_emulator(subparsers)
    from spcs_local.stack.commands import add_stack_commands

    add_stack_commands(subparsers)
    return parser


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (Ctrl-C): a foreground command's loop waits on it."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stop


def _run_emulator(args: argparse.Namespace) -> int:
    # Imported here so `spcs-local --help` stays fast.
    from spcs_local.emulator.faults import parse_faults
    from spcs_local.emulator.server import EmulatorConfig, EmulatorServer

    if not is_loopback_host(args.host):
        print("spcs-local: --host must be a loopback address", file=sys.stderr)
        return 2
    try:
        parse_faults(args.fault)
    except ValueError as exc:
        print(f"spcs-local: --fault: {exc}", file=sys.stderr)
        return 2
    config = EmulatorConfig(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        public_keys=args.public_key,
        pats=args.pat,
        resume_seconds=args.resume_seconds,
        auto_resume=not args.no_auto_resume,
        start_suspended=args.start_suspended,
        faults=args.fault,
        config_out=args.config_out,
        ingress_port_base=args.ingress_port_base,
        ner_head=args.ner_head,
        request_timeout_seconds=args.request_timeout_seconds,
        idle_close_seconds=args.idle_close_seconds,
        startup_unauthorized_seconds=args.startup_unauthorized_seconds,
    )
    stop = stop_on_signals()
    server = EmulatorServer(config)
    try:
        server.start()
    except (OSError, ValueError) as exc:
        print(f"spcs-local: cannot start the emulator: {exc}", file=sys.stderr)
        return 1
    try:
        _print_banner(server)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    print("spcs-local emulator: stopped", flush=True)
    return 0


def _print_banner(server: EmulatorServer) -> None:
    creds, config = server.credentials, server.config
    assert creds is not None
    lines = [
        f"spcs-local emulator: account {config.account_name}, user {config.user}",
        f"  account endpoint  {server.account_url}  (connector, /oauth/token, Cortex Search)",
        f"  admin API         {server.account_url}/admin/status",
    ]
    for name, app in server.ingress.items():
        lines.append(
            f"  ingress {name:<10} {server.ingress_url(name)}{app.path}  "
            f"{app.fqn} [backend: {app.backend_name}]"
        )
    if creds.generated:
        lines.append(f"  generated key pair: private {creds.secret_file}")
        lines.append(f"                      public  {creds.secret_file.with_suffix('.pub')}")
    elif creds.auth_mode == "pat":
        lines.append(f"  PAT file          {creds.secret_file}")
    else:
        lines.append(
            f"  put the private key matching --public-key at {creds.secret_file} "
            "(the registry document points there)"
        )
    lines.append(f"  state dir         {config.state_dir.resolve()}")
    if config.config_out is not None:
        lines.append(f"  registry          {config.config_out.resolve()}")
    lines.append("ready (Ctrl-C to stop)")
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request lines
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
