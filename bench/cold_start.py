"""Cold start: time to import and initialise each function module in a fresh interpreter.

Each sample is a new ``sys.executable`` process that runs ``functions/<name>/app.py`` with
``runpy`` (module-level imports and dependency building, exactly what Lambda's Init phase runs)
and reports the time from before the first import to after the module body. The baseline is a
Powertools hello world (Logger + Metrics + Tracer decorating a trivial handler) run the same
way, interleaved with the functions in the same run, so the ratio is robust to machine noise.

The environment looks like Lambda's (``LAMBDA_TASK_ROOT`` set, so Powertools enables the tracer
and patches its modules) with a registry file, fake AWS credentials and every endpoint pointing
at a closed loopback port: initialisation must not do network I/O, so nothing is reached.
One extra run per module with ``-X importtime`` shows which packages dominate.

Packages: Lambda's interpreter sees the function, its layer and the runtime's boto3, not this
development virtualenv (pytest, moto, cfn-lint, bandit ... and click/rich/pygments, which make
``import httpx`` load its command line, while pydantic scans every installed distribution's entry
points for plugins). So every child runs with ``-S`` (no site-packages) on a directory of links
to exactly the distributions it would ship with (a dependency closure, taken from this
environment's metadata): the functions get ``layers/gateway/requirements.txt`` plus
``layers/gateway``; the hello world gets Powertools with its tracer extra and boto3 only (the
tracer patches every library it finds, so it must not find the gateway's httpx).

SnapStart (``spcs_gateway.snapshot``): for the functions that run with it (the routers and the
API) a second kind of child simulates a restore: it runs the module body, the before-snapshot
hooks, then (with the network replaced in process by ``bench/snapstart_io.py``) the
after-restore hooks and the first request, then five more requests. Reported: the
after-restore hooks' own time, the first request's overhead over a warm one, and their sum
(the work a restored environment adds before its first answer), each over the hello world's
init measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = REPO / "functions"
LAYER_SOURCE = REPO / "layers" / "gateway"
LAYER_REQUIREMENTS = LAYER_SOURCE / "requirements.txt"
# What a Powertools hello world ships with (boto3: the Lambda runtime's).
BASELINE_REQUIREMENTS = ("aws-lambda-powertools[tracer]", "boto3")
ROUTERS = ("note_router", "image_router")
# The functions the template runs with SnapStart (template.yaml; docs/PERFORMANCE.md).
SNAPSTART = ("note_router", "image_router", "api")
BASELINE = "powertools_hello"
# Targets: plain init of the SnapStart functions, and a restored environment's added work.
INIT_RATIO_TARGET = 2.0
RESTORE_RATIO_TARGET = 1.5
WARM_REQUESTS = 5
FIRST_EVENT = {
    "note_router": "sqs_notes_batch.json",
    "image_router": "sqs_images_batch.json",
    "api": "api_entities.json",
}
NOWHERE = "http://127.0.0.1:9"  # discard port: nothing listens; nothing may be called at init
ACCOUNT = "123456789012"

_HELLO = """
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return {"hello": "world"}
"""

# Runs in the child (``python -S``): Lambda-like sys.path (function, layer packages, gateway
# code), then time the module body of the app (imports + init), print it as JSON.
_PROBE = """
import sys, time
sys.path[1:1] = [{site!r}, {layer!r}]
sys.stderr.write("BENCH-START\\n"); sys.stderr.flush()
_t0 = time.perf_counter()
import runpy
sys.path.insert(0, {root!r})
runpy.run_path({path!r}, run_name="app")
_t1 = time.perf_counter()
print('{{"init_s": %r}}' % (_t1 - _t0))
"""

# Runs in the child: init, before-snapshot hooks, (network replaced) after-restore hooks, the
# first request and a few warm ones; prints the timings as JSON.
_RESTORE_PROBE = """
import sys, time, json
sys.path[1:1] = [{site!r}, {layer!r}, {repo!r}]
import runpy
sys.path.insert(0, {root!r})
_t0 = time.perf_counter()
module = runpy.run_path({path!r}, run_name="app")
_t1 = time.perf_counter()
from spcs_gateway import snapshot
snapshot.REGISTRY.run_before_snapshot()
_snap = time.perf_counter() - _t1
from bench import snapstart_io
snapstart_io.install(open({secret!r}).read())
event = json.load(open({event!r}))
context = snapstart_io.Context()
_t2 = time.perf_counter()
restore = snapshot.REGISTRY.run_after_restore()
_t3 = time.perf_counter()
answer = module["lambda_handler"](event, context)
_t4 = time.perf_counter()
if "batchItemFailures" in answer:
    ok = answer["batchItemFailures"] == []
else:
    ok = answer.get("statusCode") == 200
warm = []
for _ in range({warm}):
    _s = time.perf_counter()
    module["lambda_handler"](event, context)
    warm.append(time.perf_counter() - _s)
print(json.dumps({{"init_s": _t1 - _t0, "snapshot_hooks_s": _snap,
    "restore_hooks_s": _t3 - _t2, "restore_by_hook_s": restore.seconds,
    "first_request_s": _t4 - _t3, "warm_requests_s": warm, "ok": ok}}))
"""

SERVICE_BY_FUNCTION = {"note_router": "ner", "image_router": "zsc"}


def _registry() -> dict[str, Any]:
    return {
        "version": 1,
        "snowflake": {
            "account": "myorg-acct",
            "user": "svc_gateway",
            "role": "GATEWAY_ROLE",
            "warehouse": "GATEWAY_WH",
            "auth": "keypair",
            "secret": {"secret_id": "spcs-gateway/snowflake"},
        },
        "services": [
            {
                "name": "ner",
                "service": "PEDIATRIC_ML.MODELS.BIOBERT_NER",
                "compute_pool": "CPU_POOL",
                "url": "https://ner-myorg-acct.snowflakecomputing.app",
                "task": "token-classification",
                "queues": ["notes"],
            },
            {
                "name": "zsc",
                "service": "PEDIATRIC_ML.MODELS.BIOMEDCLIP",
                "compute_pool": "GPU_POOL",
                "url": "https://zsc-myorg-acct.snowflakecomputing.app",
                "task": "zero-shot-image-classification",
                "queues": ["images"],
                # events/sqs_images_batch.json names it (the restore path's first batch).
                "label_sets": {"radiology-modality": ["chest x-ray", "brain MRI", "CT scan"]},
            },
        ],
    }


def _write_secret(workdir: Path) -> Path:
    """The key-pair credential (a fresh RSA key) the restore children's fake secret holds."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = workdir / "secret.json"
    path.write_text(json.dumps({"private_key": pem}))
    return path


def _env(workdir: Path, name: str) -> dict[str, str]:
    queue = f"{NOWHERE}/{ACCOUNT}/spcs-gateway-notes"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),  # the Snowflake connector's caches go under HOME
        "LANG": "C.UTF-8",
        "LAMBDA_TASK_ROOT": str(FUNCTIONS / name),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": NOWHERE,
        "POWERTOOLS_SERVICE_NAME": name,
        "POWERTOOLS_METRICS_NAMESPACE": "SpcsGatewayBench",
        "SPCS_GATEWAY_REGISTRY_FILE": str(workdir / "registry.json"),
        "SERVICE_NAME": SERVICE_BY_FUNCTION.get(name, "ner"),
        "DLQ_URL": queue + "-dlq",
        "SOURCE_QUEUE_URL": queue,
        "SERVICE_STATE_TABLE": "spcs-gateway-service-state",
        "QUEUE_URLS": json.dumps({"notes": queue}),
        "QUEUE_ARNS": json.dumps({"notes": f"arn:aws:sqs:us-east-1:{ACCOUNT}:spcs-gateway-notes"}),
        "CONTROL_FUNCTION_NAME": "spcs-gateway-control",
    }
    return env


def _requirement_lines(path: Path) -> list[str]:
    return [t for line in path.read_text().splitlines() if (t := line.split("#", 1)[0].strip())]


def _closure(requirements: Sequence[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that ``requirements`` pulls in, extras and markers applied."""
    from packaging.requirements import Requirement  # a dependency of pytest

    todo: list[tuple[str, frozenset[str]]] = []
    for text in requirements:
        req = Requirement(text)
        todo.append((req.name, frozenset(req.extras)))
    found: dict[str, importlib.metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (name.lower().replace("_", "-"), extras)
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(name)
        found[key[0]] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in sorted(extras)] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return list(found.values())


def layer_site(target: Path, requirements: Sequence[str]) -> Path:
    """Fill ``target`` with links to the top-level modules and metadata of the distributions
    ``requirements`` needs (what ``pip install -t python/ ...`` would hold)."""
    target.mkdir(parents=True, exist_ok=True)
    for dist in _closure(requirements):
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            source = Path(str(dist.locate_file(top)))
            link = target / top
            if source.exists() and not link.exists():
                link.symlink_to(source, target_is_directory=source.is_dir())
    return target


def _probe(workdir: Path, name: str) -> str:
    app = _app_path(workdir, name)
    if name == BASELINE:
        site, layer = workdir / "site-baseline", workdir / "no-layer"
    else:
        site, layer = workdir / "site-layer", LAYER_SOURCE
    return _PROBE.format(site=str(site), layer=str(layer), root=str(app.parent), path=str(app))


def discover() -> list[str]:
    return sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py"))


def _app_path(workdir: Path, name: str) -> Path:
    return workdir / "hello" / "app.py" if name == BASELINE else FUNCTIONS / name / "app.py"


def _restore_sample(workdir: Path, name: str) -> dict[str, Any]:
    """One simulated SnapStart restore of ``name`` in a fresh interpreter (timings in s)."""
    app = _app_path(workdir, name)
    code = _RESTORE_PROBE.format(
        site=str(workdir / "site-layer"),
        layer=str(LAYER_SOURCE),
        repo=str(REPO),
        root=str(app.parent),
        path=str(app),
        secret=str(workdir / "secret.json"),
        event=str(REPO / "events" / FIRST_EVENT[name]),
        warm=WARM_REQUESTS,
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env=_env(workdir, name),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{name}: restore failed: {' | '.join(tail)}")
    sample: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if not sample["ok"]:
        raise RuntimeError(f"{name}: the first request after restore did not succeed")
    return sample


def _restore_figures(samples: Sequence[dict[str, Any]], base_init: float) -> dict[str, Any]:
    """Medians of the restore samples; ratios over the hello world's init median."""
    med = statistics.median
    hooks = med(s["restore_hooks_s"] for s in samples)
    first = med(s["first_request_s"] for s in samples)
    warm = med(med(s["warm_requests_s"]) for s in samples)
    overhead = max(first - warm, 0.0)
    by_hook: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for hook, seconds in sample["restore_by_hook_s"].items():
            by_hook[hook].append(seconds)
    return {
        "samples": len(samples),
        "snapshot_hooks_ms": round(med(s["snapshot_hooks_s"] for s in samples) * 1000, 1),
        "restore_hooks_ms": round(hooks * 1000, 2),
        "restore_hooks_ratio": round(hooks / base_init, 3),
        "restore_by_hook_ms": {h: round(med(v) * 1000, 3) for h, v in sorted(by_hook.items())},
        "first_request_ms": round(first * 1000, 1),
        "warm_request_ms": round(warm * 1000, 1),
        "first_request_overhead_ms": round(overhead * 1000, 1),
        "restore_path_ms": round((hooks + overhead) * 1000, 1),
        "restore_path_ratio": round((hooks + overhead) / base_init, 2),
    }


def _sample(workdir: Path, name: str) -> tuple[float, float]:
    """(init seconds inside the interpreter, whole process wall seconds)."""
    code = _probe(workdir, name)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env=_env(workdir, name),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{name}: init failed: {' | '.join(tail)}")
    line = proc.stdout.strip().splitlines()[-1]
    return float(json.loads(line)["init_s"]), wall


def import_profile(workdir: Path, name: str) -> dict[str, Any]:
    """One ``-X importtime`` run: time in imports vs the rest of init, and the packages whose
    own modules cost most (self time summed per top-level package, ms)."""
    code = _probe(workdir, name)
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", code],
        env=_env(workdir, name),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    by_package: dict[str, float] = defaultdict(float)
    imports_ms = 0.0
    started = False
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH-START"):
            started = True  # imports before this belong to interpreter start-up
            continue
        if not started or not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, module = line[len("import time:") :].split("|", 2)
        by_package[module.strip().split(".")[0]] += int(self_us) / 1000
        if not module.startswith("  "):  # top level: nested imports are in its cumulative
            imports_ms += int(cumulative_us) / 1000
    init_ms = float(json.loads(proc.stdout.strip().splitlines()[-1])["init_s"]) * 1000
    ranked = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)
    return {
        "imports_ms": round(imports_ms, 1),
        "other_init_ms": round(max(init_ms - imports_ms, 0.0), 1),
        "packages_self_ms": {p: round(ms, 2) for p, ms in ranked},
    }


def _median_profile(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-figure median of several ``-X importtime`` runs (one run is noisy here)."""
    names = {p for prof in runs for p in prof["packages_self_ms"]}
    packages = {
        p: statistics.median(prof["packages_self_ms"].get(p, 0.0) for prof in runs) for p in names
    }
    return {
        "imports_ms": round(statistics.median(p["imports_ms"] for p in runs), 1),
        "other_init_ms": round(statistics.median(p["other_init_ms"] for p in runs), 1),
        "packages_self_ms": packages,
    }


def _top(packages: dict[str, float], n: int = 6) -> list[dict[str, Any]]:
    ranked = sorted(packages.items(), key=lambda kv: kv[1], reverse=True)[:n]
    return [{"package": p, "ms": round(ms, 1)} for p, ms in ranked]


def run(
    *, samples: int = 11, names: Sequence[str] | None = None, restore_samples: int | None = None
) -> dict[str, Any]:
    names = list(names or discover())
    restored = [n for n in SNAPSTART if n in names]
    restore_samples = restore_samples or max(3, samples // 2)
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        workdir = Path(tmp)
        (workdir / "registry.json").write_text(json.dumps(_registry()))
        _write_secret(workdir)
        (workdir / "hello").mkdir()
        (workdir / "hello" / "app.py").write_text(_HELLO)
        layer_site(workdir / "site-layer", _requirement_lines(LAYER_REQUIREMENTS))
        layer_site(workdir / "site-baseline", BASELINE_REQUIREMENTS)
        modules = [BASELINE, *names]
        for name in modules:  # warm the OS page cache; not counted
            _sample(workdir, name)
        init: dict[str, list[float]] = {m: [] for m in modules}
        wall: dict[str, list[float]] = {m: [] for m in modules}
        for _ in range(samples):  # interleaved: noise hits every module alike
            for name in modules:
                i, w = _sample(workdir, name)
                init[name].append(i)
                wall[name].append(w)
        restores: dict[str, list[dict[str, Any]]] = {m: [] for m in restored}
        for _ in range(restore_samples):  # interleaved with hello world inits
            i, w = _sample(workdir, BASELINE)
            init[BASELINE].append(i)
            wall[BASELINE].append(w)
            for name in restored:
                restores[name].append(_restore_sample(workdir, name))
        profiles = {
            m: _median_profile([import_profile(workdir, m) for _ in range(3)]) for m in modules
        }
    base_init = statistics.median(init[BASELINE])
    base_wall = statistics.median(wall[BASELINE])
    result: dict[str, Any] = {"samples": samples, "modules": {}}
    for name in modules:
        med_init, med_wall = statistics.median(init[name]), statistics.median(wall[name])
        result["modules"][name] = {
            "init_median_ms": round(med_init * 1000, 1),
            "process_median_ms": round(med_wall * 1000, 1),
            "ratio_init": round(med_init / base_init, 2),
            "ratio_process": round(med_wall / base_wall, 2),
            "importtime": {
                "imports_ms": profiles[name]["imports_ms"],
                "other_init_ms": profiles[name]["other_init_ms"],
                "top_packages_self_ms": _top(profiles[name]["packages_self_ms"]),
                # What the module adds over the baseline: self time per package, difference.
                "top_added_vs_baseline_ms": _top(
                    {
                        p: ms - profiles[BASELINE]["packages_self_ms"].get(p, 0.0)
                        for p, ms in profiles[name]["packages_self_ms"].items()
                    }
                ),
            },
        }
    for name in restored:
        result["modules"][name]["snapstart"] = _restore_figures(restores[name], base_init)
    result["targets"] = {}
    for name in restored:
        m = result["modules"][name]
        result["targets"][f"{name}_init_ratio_le_2"] = m["ratio_init"] <= INIT_RATIO_TARGET
        result["targets"][f"{name}_restore_ratio_le_1_5"] = (
            m["snapstart"]["restore_path_ratio"] <= RESTORE_RATIO_TARGET
        )
    return result


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"{'module':<18}{'init ms':>9}{'ratio':>7}{'process ms':>12}"
        f"{'imports/other':>15}  most added vs baseline (self ms, -X importtime)"
    ]
    for name, m in result["modules"].items():
        prof = m["importtime"]
        key = "top_packages_self_ms" if name == BASELINE else "top_added_vs_baseline_ms"
        top = ", ".join(f"{t['package']} {t['ms']:.0f}" for t in prof[key][:4])
        split = f"{prof['imports_ms']:.0f}/{prof['other_init_ms']:.0f}"
        lines.append(
            f"{name:<18}{m['init_median_ms']:>9.1f}{m['ratio_init']:>7.2f}"
            f"{m['process_median_ms']:>12.1f}{split:>15}  {top}"
        )
    restored = [(n, m["snapstart"]) for n, m in result["modules"].items() if "snapstart" in m]
    if restored:
        lines.append(
            f"{'SnapStart restore':<18}{'hooks ms':>9}{'ratio':>7}{'1st req ms':>12}"
            f"{'warm ms':>9}{'overhead':>10}{'restore+1st':>13}{'ratio':>7}"
        )
        for name, r in restored:
            lines.append(
                f"{name:<18}{r['restore_hooks_ms']:>9.2f}{r['restore_hooks_ratio']:>7.3f}"
                f"{r['first_request_ms']:>12.1f}{r['warm_request_ms']:>9.1f}"
                f"{r['first_request_overhead_ms']:>10.1f}{r['restore_path_ms']:>13.1f}"
                f"{r['restore_path_ratio']:>7.2f}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="cold start of the function modules")
    parser.add_argument("--samples", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(samples=args.samples)
    print(json.dumps(result, indent=2) if args.json else "\n".join(table(result)))


if __name__ == "__main__":
    main()
