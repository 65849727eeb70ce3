"""``make bench`` / ``python -m bench``: run the benchmarks, print a table, write the JSON.

Every figure goes to ``bench/results/latest.json`` (``--out`` to change). Targets are reported,
never asserted: a missed target is a finding, not a failure. A benchmark that cannot run (its
prerequisites are missing) is recorded as skipped with the reason, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cold_start, idle_cost, reference, scaling, throughput

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
ALL = ("idle", "cold", "throughput", "resume", "reference", "scaling")


def _resume_module() -> Any:
    """bench.resume_overhead when it and the local stack it drives are importable."""
    try:
        from bench import resume_overhead
    except ImportError as exc:
        return f"not available: {exc}"
    reason = resume_overhead.unavailable()
    return reason or resume_overhead


def _runners(quick: bool) -> dict[str, tuple[Callable[[], dict[str, Any]], Callable[..., Any]]]:
    resume = _resume_module()

    def run_resume() -> dict[str, Any]:
        if isinstance(resume, str):
            return {"skipped": resume}
        result: dict[str, Any] = resume.run(quick=quick)
        return result

    return {
        "idle": (
            lambda: idle_cost.run(days=2 if quick else 7),
            idle_cost.table,
        ),
        "cold": (
            lambda: cold_start.run(samples=3 if quick else 11),
            cold_start.table,
        ),
        "throughput": (
            lambda: throughput.run(
                notes=300 if quick else 2000,
                naive_notes=40 if quick else 150,
                reps=1 if quick else 3,
            ),
            throughput.table,
        ),
        "resume": (
            run_resume,
            (lambda r: []) if isinstance(resume, str) else resume.table,
        ),
        "reference": (
            lambda: reference.run(notes=100 if quick else 500, reps=1 if quick else 3),
            reference.table,
        ),
        "scaling": (_run_scaling, scaling.table),
    }


def _run_scaling() -> dict[str, Any]:
    """bench.scaling; its figures also go to bench/results/scaling.json."""
    result = scaling.run()
    scaling.RESULTS.parent.mkdir(parents=True, exist_ok=True)
    scaling.RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    """Every target the benchmarks report, with its figure and whether it is met (None: not
    measured)."""
    out: dict[str, Any] = {}
    tput = results.get("throughput", {})
    if "batches" in tput:
        b100 = tput["batches"].get("100", {})
        for batch, figures in tput["batches"].items():
            key = f"gateway_over_limit_b{batch}_ge_0_9"
            if key in tput["targets"]:
                out[key] = {"value": figures["gateway_over_limit"], "met": tput["targets"][key]}
        out["gateway_over_naive_ge_10"] = {
            "value": b100.get("gateway_over_naive"),
            "met": tput["targets"]["gateway_over_naive_ge_10"],
        }
    cold = results.get("cold", {})
    for key, met in cold.get("targets", {}).items():
        name, _, _ = key.partition("_init_ratio")
        module = cold["modules"].get(name.partition("_restore_ratio")[0], {})
        value = (
            module.get("ratio_init")
            if "_init_ratio" in key
            else module.get("snapstart", {}).get("restore_path_ratio")
        )
        out[f"cold_start_{key}"] = {"value": value, "met": met}
    resume = results.get("resume", {})
    if "targets" in resume:
        out.update(resume["targets"])
    burst = results.get("scaling", {}).get("traces", {}).get("burst_20k")
    if burst:
        vs = burst["backlog_vs_one"]
        met = results["scaling"]["targets"]
        out["scaling_burst_drain_speedup_ge_3"] = {
            "value": vs["drain_speedup"],
            "met": met["burst_drain_speedup_ge_3"],
        }
        out["scaling_burst_instance_s_ratio_le_1_3"] = {
            "value": vs["instance_s_ratio"],
            "met": met["burst_instance_s_ratio_le_1_3"],
        }
    idle = results.get("idle", {})
    for name, trace in idle.get("traces", {}).items():
        t = trace["targets"]
        days = trace["policies"]["adaptive"]["resumes_per_day"]
        out[f"idle_{name}_adaptive_over_optimum_le_1_25"] = {
            "value": f"{t['adaptive_over_optimum']} ({days}/day)",
            "met": t["adaptive_over_optimum_le_1_25"],
        }
        out[f"idle_{name}_adaptive_le_fixed_1800s"] = {
            "value": f"{trace['policies']['adaptive']['vs_optimum']} vs "
            f"{trace['policies']['fixed_1800s']['vs_optimum']}",
            "met": t["adaptive_le_fixed_1800s"],
        }
        out[f"idle_{name}_adaptive_p95_wait_le_fixed_best"] = {
            "value": f"{t['adaptive_p95_wait_s']} vs {t['fixed_best_p95_wait_s']} s",
            "met": t["adaptive_p95_le_fixed_best"],
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(ALL),
        help=f"comma-separated subset of {','.join(ALL)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (for development)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    runners = _runners(args.quick)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    durations: dict[str, float] = {}
    for name in wanted:
        run, table = runners[name]
        print(f"== {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = run()
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
        durations[name] = round(time.perf_counter() - t0, 1)
        if "error" in results[name]:
            print(f"   failed: {results[name]['error']}")
        elif "skipped" in results[name]:
            print(f"   skipped: {results[name]['skipped']}")
        else:
            print("\n".join("   " + line for line in table(results[name])), flush=True)

    for name in wanted:
        results[name]["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if set(wanted) != set(ALL) and args.out.exists():
        # A subset refreshes its own entries and keeps the others (each carries measured_at;
        # every ratio is measured within one benchmark, so entries from two runs do not mix).
        try:
            previous_doc = json.loads(args.out.read_text())
        except (OSError, ValueError):
            previous_doc = {}
        previous = previous_doc.get("results", {})
        results = {**{k: v for k, v in previous.items() if k in ALL}, **results}
        durations = {**previous_doc.get("durations_s", {}), **durations}
    targets = _targets(results)
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "duration_s": round(time.perf_counter() - started, 1),
        "durations_s": durations,
        "targets": targets,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")

    print("\n== targets (reported, not asserted)")
    for key, target in targets.items():
        mark = {True: "met", False: "MISSED", None: "n/a"}[target.get("met")]
        print(f"   {key:<52} {target.get('value')!s:>14}  {mark}")
    print(f"\nwrote {args.out} in {document['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
