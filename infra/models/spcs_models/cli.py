"""``spcs-models`` (or ``python -m spcs_models``): deploy the two model services.

    spcs-models plan      [--only NAME] [--image-repo R] [--image-build-pool P] [--build-eai E]
    spcs-models deploy    [--only NAME] [--connection C] [--role R] [--image-repo R]
                          [--image-build-pool P] [--build-eai E ...] [--work-dir D]
                          [--revision REPO=COMMIT ...] [--endpoint-timeout S]
    spcs-models registry  [--only NAME] [--connection C] [--role R] [--endpoint-timeout S]

``plan`` prints (stdout, JSON) what ``deploy`` would do and needs neither Snowflake nor
snowflake-ml. ``deploy`` logs each missing model version, creates each missing service and
prints the gateway registry fragment (stdout, JSON); ``registry`` only prints the fragment of
existing services. Progress and the next steps go to stderr.

Exit codes: 0 done, 1 a step failed (message on stderr), 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from spcs_models import spec, weights
from spcs_models.deploy import (
    MODELS_PYTHON,
    REMINDER,
    Deployer,
    DeployError,
    DeployOptions,
    SnowflakePlatform,
    connection_options,
    fragment,
    open_session,
    plan,
)

__all__ = ["build_parser", "main"]


def _revision(value: str) -> tuple[str, str]:
    repo, sep, commit = value.partition("=")
    if not sep or not repo or not commit:
        raise argparse.ArgumentTypeError("expected REPO_ID=COMMIT")
    return repo, commit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spcs-models",
        description="Deploy BioBERT NER and BiomedCLIP to Snowpark Container Services.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    names = [d.logical_name for d in spec.DEPLOYMENTS]

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--only", choices=names, action="append", help="one deployment (repeat)")

    def build(p: argparse.ArgumentParser) -> None:
        p.add_argument("--image-repo", help="image repository (default: snowflake-ml's own)")
        p.add_argument("--image-build-pool", help="compute pool for the image build")
        p.add_argument(
            "--build-eai",
            action="append",
            default=[],
            help="external access integration for the image build (repeat)",
        )

    def connect(p: argparse.ArgumentParser) -> None:
        p.add_argument("--connection", help="connection name in connections.toml")
        p.add_argument("--role", help="role to use, e.g. MODEL_DEPLOYER_ROLE (infra/snowflake/03)")
        p.add_argument("--endpoint-timeout", type=float, default=900.0, metavar="SECONDS")

    p_plan = sub.add_parser("plan", help="print what deploy would do (no Snowflake)")
    common(p_plan)
    build(p_plan)

    p_deploy = sub.add_parser("deploy", help="log models, create services, print the registry")
    common(p_deploy)
    build(p_deploy)
    connect(p_deploy)
    p_deploy.add_argument("--work-dir", type=Path, help="keep downloads here (default: temp)")
    p_deploy.add_argument(
        "--revision",
        type=_revision,
        action="append",
        default=[],
        metavar="REPO_ID=COMMIT",
        help="download this commit of a weights repository (repeat)",
    )

    p_registry = sub.add_parser("registry", help="print the registry fragment of the services")
    common(p_registry)
    connect(p_registry)
    return parser


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # parent package missing / odd module entry
        return False


def _selected(args: argparse.Namespace) -> list[spec.ModelDeployment]:
    wanted = set(args.only or [])
    return [d for d in spec.DEPLOYMENTS if not wanted or d.logical_name in wanted]


def _options(args: argparse.Namespace) -> DeployOptions:
    return DeployOptions(
        image_repo=getattr(args, "image_repo", None),
        image_build_compute_pool=getattr(args, "image_build_pool", None),
        build_external_access_integrations=tuple(getattr(args, "build_eai", []) or ()),
        work_dir=getattr(args, "work_dir", None),
        revisions=dict(getattr(args, "revision", []) or []),
        endpoint_timeout_s=getattr(args, "endpoint_timeout", 900.0),
    )


def _print_json(document: Any, out: TextIO) -> None:
    print(json.dumps(document, indent=2), file=out)


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    platform_factory: Any = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    deployments = _selected(args)
    try:
        options = _options(args)
        if args.command == "plan":
            _print_json(plan(deployments, options), out)
            return 0
        if platform_factory is None:
            running = f"{sys.version_info.major}.{sys.version_info.minor}"
            if args.command == "deploy" and running != MODELS_PYTHON:
                print(
                    f"spcs-models deploy must run on Python {MODELS_PYTHON} (the models are "
                    f"pickled for the container's Python); this is {running}",
                    file=err,
                )
                return 2
            if not all(_installed(m) for m in ("snowflake.ml", "snowflake.snowpark")):
                print(
                    "spcs-models needs snowflake-ml-python: run `make models-venv` and use "
                    "infra/models/.venv/bin/spcs-models (infra/models/README.md)",
                    file=err,
                )
                return 2
            try:
                session = open_session(
                    connection_options(environ, connection_name=args.connection, role=args.role)
                )
            except Exception as exc:  # noqa: BLE001 - any connector failure: say it, exit 2
                print(f"spcs-models: no Snowflake session: {type(exc).__name__}: {exc}", file=err)
                return 2
            platform: Any = SnowflakePlatform(session)
        else:
            platform = platform_factory(args)
        deployer = Deployer(platform, out=err)
        if args.command == "deploy":
            entries = deployer.deploy(deployments, options)
        else:
            entries = deployer.registry(deployments, options)
    except (DeployError, weights.WeightsError) as exc:
        print(f"spcs-models: {exc}", file=err)
        return 1
    _print_json(fragment(entries), out)
    print(REMINDER, file=err)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
