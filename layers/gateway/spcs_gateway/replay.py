"""Replay your own traffic: what each scale-to-zero policy would have billed, per service.

    spcs-gateway replay FILE [--resume-seconds R] [--json] [--plot OUT.png|OUT.html]
    python -m bench.idle_cost --trace FILE [--resume-seconds R] [--json] [--plot ...]

FILE is either per-minute invocation counts in the Azure Functions 2019 public trace layout
(``HashOwner,HashApp,HashFunction,Trigger,1,...,1440``; ``minute_N`` column names and files
without ``Trigger`` are accepted; one row = one service, one file = one day) or JSONL lines
``{"service": name, "at": ISO-8601}``. Per-minute counts are spread evenly over their minute.

Not part of any Lambda function (the operator CLI and the benchmark use it). How it relates
to the simulator (``bench/idle_cost.py``): the simulator drives the real
``ControlPlane`` (resume protocol, leases, paused mappings, routers' retries) on a simulated
clock, event by event, which is exact but far too slow for months of busy services. The
replay evaluates the same decisions per idle gap instead: it groups arrivals into busy
periods (pauses shorter than a control round are continuations, as the control plane sees
them), feeds the same pure learning functions of ``spcs_gateway.adaptive`` (gaps and
busy-period starts as the control plane measures them: exactly when a caller finds the
service asleep, else the middle of the round that saw the work begin), asks the same
``adaptive.hold_until`` / ``pre_resume_due`` at the control rounds where the decision can
change, and computes billing and waits in closed form. It leaves out
the router's retry back-off and the readiness poll (a few seconds per resume), so it is
slightly optimistic for our policies compared with the simulator; the baselines are computed
exactly as in the simulator.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from spcs_gateway import adaptive, replay_plot

ROUND = 60.0  # the control function's schedule
FIXED_GRID = (60, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 14400)
DEFAULT_IDLE = 900  # registry idle_seconds default (adaptive: its keep-alive maximum)
DEFAULT_MIN_UPTIME = 300.0  # LifecyclePolicy.min_uptime (fixed policy)
_MINUTE = re.compile(r"^(?:minute_)?(\d+)$")


@dataclass
class Service:
    name: str
    arrivals: list[float]  # seconds from the trace's start, sorted


@dataclass
class Outcome:
    billed_s: float = 0.0
    resumes: int = 0
    waits: list[float] = field(default_factory=list)  # positive waits only
    spans: list[tuple[float, float]] = field(default_factory=list)  # up intervals (for plots)

    def as_dict(self, events: int) -> dict[str, Any]:
        return {
            "billed_s": round(self.billed_s, 1),
            "resumes": self.resumes,
            "added_wait_p95_s": round(p95(self.waits, events), 1),
        }


def p95(waits: Sequence[float], events: int) -> float:
    """Nearest-rank p95 over ``events`` waits, of which only the positive ones are listed."""
    if events == 0 or not waits:
        return 0.0
    rank = max(math.ceil(0.95 * events), 1)
    zeros = events - len(waits)
    return 0.0 if rank <= zeros else sorted(waits)[rank - zeros - 1]


# ---------------------------------------------------------------------------------------------
# Reading


def read_trace(path: Path) -> tuple[list[Service], float]:
    """Services and the horizon (seconds) of a CSV or JSONL trace file."""
    with path.open(encoding="utf-8", newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        if first.lstrip().startswith("{"):
            return _read_jsonl(handle)
        return _read_csv(handle)


def _read_csv(handle: TextIO) -> tuple[list[Service], float]:
    reader = csv.reader(handle)
    header = next(reader)
    minutes = [(i, int(m.group(1))) for i, h in enumerate(header) if (m := _MINUTE.match(h))]
    if not minutes:
        raise ValueError("no minute columns (1..1440 or minute_N)")
    ids = [i for i, h in enumerate(header) if h in ("HashOwner", "HashApp", "HashFunction")]
    key = header.index("HashFunction") if "HashFunction" in header else (ids[-1] if ids else 0)
    last_minute = max(m for _, m in minutes)
    services: list[Service] = []
    seen: dict[str, int] = {}
    for row in reader:
        if not row:
            continue
        name = row[key][:12] or f"row{len(services)}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        arrivals: list[float] = []
        for index, minute in minutes:
            cell = row[index] if index < len(row) else ""
            n = int(float(cell)) if cell else 0
            if n > 0:
                start, step = (minute - 1) * 60.0, 60.0 / n
                arrivals.extend(start + (j + 0.5) * step for j in range(n))
        services.append(Service(name, arrivals))
    return services, last_minute * 60.0


def _read_jsonl(handle: TextIO) -> tuple[list[Service], float]:
    by_name: dict[str, list[float]] = {}
    for line in handle:
        if not line.strip():
            continue
        doc = json.loads(line)
        at = datetime.fromisoformat(str(doc["at"]).replace("Z", "+00:00"))
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        by_name.setdefault(str(doc["service"]), []).append(at.timestamp())
    if not by_name:
        return [], 0.0
    first = min(min(v) for v in by_name.values())
    origin = first - first % 86_400
    last = max(max(v) for v in by_name.values())
    horizon = math.ceil((last - origin + 1) / 86_400) * 86_400
    services = [Service(n, sorted(t - origin for t in v)) for n, v in sorted(by_name.items())]
    return services, float(horizon)


# ---------------------------------------------------------------------------------------------
# Evaluating


def busy_periods(arrivals: Sequence[float]) -> list[tuple[float, float]]:
    """(first, last) arrival of each run with pauses shorter than a control round."""
    periods: list[tuple[float, float]] = []
    for a in arrivals:
        if periods and a - periods[-1][1] < adaptive.MIN_GAP_S:
            periods[-1] = (periods[-1][0], a)
        else:
            periods.append((a, a))
    return periods


def _tick(t: float) -> float:
    return math.ceil(t / ROUND) * ROUND


class _Run:
    """Shared bookkeeping: up intervals, resumes and the waits of the events that found the
    service not ready."""

    def __init__(self, arrivals: Sequence[float], horizon: float) -> None:
        self.arrivals, self.horizon = arrivals, horizon
        self.out = Outcome()
        self.up_from: float | None = None

    def up(self, at: float) -> None:
        if self.up_from is None:
            self.up_from = at
            self.out.resumes += 1

    def down(self, at: float) -> None:
        if self.up_from is not None:
            lo, hi = max(self.up_from, 0.0), min(at, self.horizon)
            if hi > lo:
                self.out.billed_s += hi - lo
                self.out.spans.append((lo, hi))
            self.up_from = None

    def wait_until(self, start: float, ready: float) -> None:
        """Events from ``start`` on that arrive before ``ready`` wait for it."""
        i = bisect_left(self.arrivals, start)
        while i < len(self.arrivals) and self.arrivals[i] < ready:
            self.out.waits.append(ready - self.arrivals[i])
            i += 1

    def finish(self) -> Outcome:
        self.down(self.horizon)
        return self.out


def snowflake_fixed(arrivals: Sequence[float], horizon: float, r: float, t: float) -> Outcome:
    """``AUTO_SUSPEND_SECS`` = t: exact timer from the last request, resume on the next."""
    run = _Run(arrivals, horizon)
    down_at = -math.inf
    for b0, b1 in busy_periods(arrivals):
        if b0 > down_at:
            run.down(down_at)
            run.up(b0)
            run.wait_until(b0, b0 + r)
        down_at = max(b1, b0 + r) + t
    run.down(down_at)
    return run.finish()


def optimum(arrivals: Sequence[float], horizon: float, r: float) -> Outcome:
    run = _Run(arrivals, horizon)
    prev: float | None = None
    for b0, b1 in busy_periods(arrivals):
        if prev is None or b0 - prev > r:
            run.down(prev if prev is not None else -math.inf)
            run.up(b0 - r)
        prev = b1
    if prev is not None:
        run.down(prev)
    return run.finish()


def ours(
    arrivals: Sequence[float],
    horizon: float,
    r: float,
    *,
    mode: str,
    idle_s: float = DEFAULT_IDLE,
    min_uptime_s: float | None = None,
    bounds: adaptive.Bounds | None = None,
) -> tuple[Outcome, adaptive.IdleModel]:
    """The control plane's decisions at its rounds, per busy period and idle gap."""
    run = _Run(arrivals, horizon)
    bounds = bounds or adaptive.Bounds(0.0, idle_s)
    model = adaptive.IdleModel()
    uptime = (
        (DEFAULT_MIN_UPTIME if mode == "fixed" else 0.0) if min_uptime_s is None else min_uptime_s
    )
    state_up, resumed_at, ready_at = False, -math.inf, -math.inf
    prev_end: float | None = None
    for b0, b1 in busy_periods(arrivals):
        if prev_end is not None:
            state_up, resumed_at, ready_at, model = _gap(
                run,
                model,
                bounds,
                mode,
                r,
                idle_s,
                uptime,
                prev_end,
                b0,
                state_up,
                resumed_at,
                ready_at,
            )
        if not state_up:  # a caller finds it asleep: ensure_ready resumes it now
            if mode == "adaptive":  # the first: quiet since the trace's start (at least)
                model = adaptive.observe_arrival(model, b0, 0.0 if prev_end is None else None)
            run.up(b0)
            state_up, resumed_at, ready_at = True, b0, b0 + r
            model = adaptive.observe_resume(model, r)
        if ready_at > b0:
            run.wait_until(b0, ready_at)
        end = max(b1, ready_at)
        for _ in range(min(int((end - b0) // ROUND), 3)):
            model = adaptive.add_continuation(model)
        if mode == "adaptive":
            model = adaptive.replan(replace(model, last=end), bounds)
        prev_end = end
    if prev_end is not None and state_up:
        state_up, *_ = _gap(
            run,
            model,
            bounds,
            mode,
            r,
            idle_s,
            uptime,
            prev_end,
            math.inf,
            state_up,
            resumed_at,
            ready_at,
        )
    return run.finish(), model


def _gap(
    run: _Run,
    model: adaptive.IdleModel,
    bounds: adaptive.Bounds,
    mode: str,
    r: float,
    idle_s: float,
    uptime: float,
    anchor: float,
    nxt: float,
    up: bool,
    resumed_at: float,
    ready_at: float,
) -> tuple[bool, float, float, adaptive.IdleModel]:
    """From the end of a busy period (``anchor``) to the next arrival ``nxt``."""
    if mode == "fixed":
        t = _tick(max(anchor + idle_s, resumed_at + uptime))
        if t < nxt:
            run.down(t)
            up = False
    else:
        plan = adaptive.current_plan(model, bounds)
        t = _tick(max(anchor + plan.keep_alive, resumed_at + uptime))
        for _ in range(4):  # inside a pre-resume window: hold to its end
            until = adaptive.hold_until(plan, anchor, t)
            if until is None:
                break
            t = _tick(until)
        if t < nxt:
            run.down(t)
            up = False
            for s, e in plan.windows:
                at = _tick(max(anchor + s, t))
                if up or at >= nxt:
                    continue
                if adaptive.pre_resume_due(plan, anchor, at, model.resume_s(), resumed_at):
                    run.up(at)
                    up, resumed_at, ready_at = True, at, at + r
                    end = _tick(anchor + e)
                    if end < nxt:
                        run.down(end)
                        up = False
        if nxt < math.inf and up:  # what a round learns: the gap ended since its last look
            start = math.floor(nxt / ROUND) * ROUND + ROUND / 2
            model = adaptive.add_start(adaptive.add_gap(model, start - anchor), start)
    return up, resumed_at, ready_at, model


def evaluate(service: Service, horizon: float, r: float) -> dict[str, Any]:
    a, n = service.arrivals, len(service.arrivals)
    adaptive_out, model = ours(a, horizon, r, mode="adaptive")
    outcomes = {
        "always_on": Outcome(horizon, 0, [], [(0.0, horizon)]),
        "fixed_1800s": snowflake_fixed(a, horizon, r, 1800),
        "fixed": ours(a, horizon, r, mode="fixed")[0],
        "adaptive": adaptive_out,
        "optimum": optimum(a, horizon, r),
    }
    cap = p95(adaptive_out.waits, n) + 1.0
    grid = [(t, snowflake_fixed(a, horizon, r, t)) for t in FIXED_GRID]
    fair = [(t, o) for t, o in grid if p95(o.waits, n) <= cap] or grid
    best_t, best = min(fair, key=lambda item: (item[1].billed_s, item[1].resumes))
    outcomes["fixed_best"] = best
    return {
        "service": service.name,
        "events": n,
        "policies": {k: v.as_dict(n) for k, v in outcomes.items()},
        "fixed_best_seconds": best_t,
        "_arrivals": a,
        "_outcomes": outcomes,
        "_model": model,
    }


def recommend(row: dict[str, Any]) -> dict[str, Any]:
    """Registry settings for one service from its replay."""
    pol = row["policies"]
    model: adaptive.IdleModel = row["_model"]
    adaptive_s, best_s = pol["adaptive"]["billed_s"], pol["fixed_best"]["billed_s"]
    if row["events"] == 0:
        return {"policy": "adaptive", "note": "no traffic in the trace"}
    if adaptive_s <= best_s * 1.05:
        plan = adaptive.current_plan(model, adaptive.Bounds(0.0, DEFAULT_IDLE))
        rec: dict[str, Any] = {"policy": "adaptive", "idle_seconds": DEFAULT_IDLE}
        if plan.keep_alive >= DEFAULT_IDLE:
            rec["keep_alive_max_seconds"] = 3600  # the learned keep-alive hit the maximum
        return rec
    return {"policy": "fixed", "idle_seconds": max(int(row["fixed_best_seconds"]), 60)}


def replay(path: Path, r: float) -> dict[str, Any]:
    started = time.perf_counter()
    services, horizon = read_trace(path)
    rows = [evaluate(s, horizon, r) for s in services]
    ratios = sorted(
        row["policies"]["adaptive"]["billed_s"] / row["policies"]["optimum"]["billed_s"]
        for row in rows
        if row["policies"]["optimum"]["billed_s"] > 0
    )
    totals = {
        k: round(sum(row["policies"][k]["billed_s"] for row in rows) / 3600, 2)
        for k in ("always_on", "fixed_1800s", "fixed_best", "fixed", "adaptive", "optimum")
    }
    return {
        "trace": str(path),
        "resume_seconds": r,
        "horizon_s": horizon,
        "services": [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows],
        "recommendation": {row["service"]: recommend(row) for row in rows},
        "summary": {
            "services": len(rows),
            "events": sum(row["events"] for row in rows),
            "billed_h": totals,
            "adaptive_over_optimum_p50": _pick(ratios, 0.5),
            "adaptive_over_optimum_p90": _pick(ratios, 0.9),
            "seconds": round(time.perf_counter() - started, 2),
        },
        "_rows": rows,
    }


def _pick(values: Sequence[float], q: float) -> float | None:
    return round(values[max(math.ceil(q * len(values)), 1) - 1], 3) if values else None


def table(result: dict[str, Any]) -> list[str]:
    lines = [f"{'service':<14}{'events':>8}" + "".join(f"{k:>13}" for k in _COLS)]
    for row in result["services"]:
        cells = "".join(
            f"{row['policies'][k]['billed_s'] / 3600:>8.2f}h/{row['policies'][k]['resumes']:<3}"
            for k in _COLS
        )
        lines.append(f"{row['service']:<14}{row['events']:>8}{cells}")
    s = result["summary"]
    lines.append(
        f"adaptive/optimum p50 {s['adaptive_over_optimum_p50']} p90 "
        f"{s['adaptive_over_optimum_p90']}; billed h {s['billed_h']}; {s['seconds']} s"
    )
    return lines


_COLS = ("always_on", "fixed_1800s", "fixed_best", "fixed", "adaptive", "optimum")


def main_from_args(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    r = 180.0 if args.resume_seconds is None else float(args.resume_seconds)
    target = getattr(args, "plot", None)
    if target:  # fail fast: a bad extension or no matplotlib, before the replay runs
        replay_plot.require(Path(target))
    result = replay(Path(args.trace), r)
    if target:
        top = getattr(args, "plot_top", 10)
        result["plot"] = str(replay_plot.from_replay(result, Path(target), top))
    result.pop("_rows")
    out.write((json.dumps(result, indent=2) if args.json else "\n".join(table(result))) + "\n")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="FILE", help="Azure Functions per-minute CSV or JSONL")
    parser.add_argument("--resume-seconds", type=float, default=None, help="R (default 180)")
    replay_plot.add_arguments(parser)
