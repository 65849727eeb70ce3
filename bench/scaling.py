"""Scaling: drain time, added wait and billed instance-seconds of instance-count policies.

One SPCS model service fed by a queue, simulated second by second (a fluid queue: each READY
instance serves ``rate`` rows per second, FIFO). Compared over the same arrivals:

- ``one_instance``: MIN = MAX = 1, what the gateway ran before it scaled;
- ``fixed_max``: MIN = MAX = ``max_instances`` all the time;
- ``backlog``: the gateway's backlog-driven scaling (``backlog_t900``: the same with the
  registry's default drain target, 900 s, instead of the bench's 300 s). The real control plane
  (``spcs_gateway.control.ControlPlane``, so ``scaling.decide_scale`` and ``control/scale.py``)
  on a simulated clock with the in-memory adapters of ``spcs_gateway.control.memory``, as
  ``bench/idle_cost.py`` drives it: ``reconcile`` every ``reconcile_s`` reads the queue depth,
  learns the per-instance rate and sets MIN = MAX on ``MemorySpcsServices``, whose added
  instances are READY after ``load_s`` (the model load);
- ``spcs_cpu``: SPCS's own CPU-based autoscaling between MIN = 1 and MAX (docs/SNOWFLAKE_FACTS.md
  section 14). Modelled: every ``cpu_period_s`` it adds one instance while the average CPU
  utilisation of the ready instances exceeds ``cpu_up`` (80 %), and removes one after
  ``cpu_down_after_s`` below ``cpu_down``. The thresholds and delays are assumptions (Snowflake
  does not publish them); utilisation is the busy fraction of the ready instances, which is
  100 % whenever a backlog waits (the routers keep every ready instance busy).

Billing: every instance PENDING or RUNNING is billed (a loading instance too), as one node
each (docs/SNOWFLAKE_FACTS.md). The burst is billed from its first arrival until the policy
has drained it: after that the gateway's lifecycle scales the service in to its minimum and
suspends it after the same keep-alive whatever the policy, so what differs is the cost of the
drain itself. The clinic day is billed over the whole day (work arrives until 18:00; no policy
suspends within it here).

Figures per trace and policy: ``drain_s`` (first arrival of the import to the last of it
served), ``p95_wait_s`` (arrival to completion, every note), ``instance_s`` (billed
instance-seconds over the window), ``peak_instances``. Targets (burst): backlog-driven drains
at least 3x faster than one instance at no more than 1.3x its instance-seconds.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spcs_gateway.control import ControlPlane, ControlSettings
from spcs_gateway.control.memory import (
    ManualClock,
    MemoryMappings,
    MemoryQueues,
    MemorySpcsServices,
    MemoryStateStore,
)
from spcs_gateway.lifecycle import LifecyclePolicy
from spcs_gateway.registry import Registry, SecretRef, ServiceConfig, SnowflakeSettings, Task

RESULTS = Path(__file__).resolve().parent / "results" / "scaling.json"
EPOCH = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC
QUEUE = "notes"
FQN = "PEDIATRIC_ML.MODELS.BIOBERT_NER"
POOL = "GPU_POOL"


@dataclass(frozen=True)
class Params:
    rate: float = 5.0  # rows per second one READY instance serves
    load_s: float = 180.0  # a new instance's model load
    max_instances: int = 5
    drain_target_s: int = 300  # registry drain_target_seconds (its default 900: backlog_t900)
    reconcile_s: float = 60.0
    in_flight_per_instance: int = 16  # rows an instance holds in flight
    cpu_period_s: float = 60.0
    cpu_up: float = 0.8
    cpu_down: float = 0.5
    cpu_down_after_s: float = 300.0


@dataclass(frozen=True)
class Trace:
    name: str
    arrivals: tuple[tuple[float, int], ...]  # (second, notes), sorted
    horizon: float
    burst: tuple[float, float]  # the import to drain: [start, end) of its arrivals

    @property
    def total(self) -> int:
        return sum(n for _, n in self.arrivals)


def burst_trace(notes: int = 20_000) -> Trace:
    """An import: ``notes`` in one minute."""
    per_s = notes // 60
    arrivals = tuple((float(s), per_s + (1 if s < notes - per_s * 60 else 0)) for s in range(60))
    return Trace("burst_20k", arrivals, horizon=6 * 3600.0, burst=(0.0, 60.0))


def clinic_day(import_notes: int = 8_000) -> Trace:
    """06:00-24:00: an EHR import at 07:00 (``import_notes`` within five minutes) and the
    clinic's own notes, 0.6 per second 08:00-18:00 with a midday dip."""
    arrivals: dict[float, int] = {}
    start = 3600.0
    per_s = import_notes / 300
    carried = 0.0
    for s in range(300):
        carried += per_s
        count = int(carried)
        carried -= count
        arrivals[start + s] = arrivals.get(start + s, 0) + count
    day = 0.0
    for s in range(2 * 3600, 12 * 3600):
        hour = s / 3600 + 6
        day += 0.3 if 12 <= hour < 13 else 0.6
        count = int(day)
        day -= count
        if count:
            arrivals[float(s)] = arrivals.get(float(s), 0) + count
    return Trace(
        "clinic_day",
        tuple(sorted(arrivals.items())),
        horizon=18 * 3600.0,
        burst=(start, start + 300.0),
    )


@dataclass
class Run:
    policy: str
    instances: list[int] = field(default_factory=list)  # billed instances per second
    waits: list[tuple[float, int]] = field(default_factory=list)  # (wait, notes)
    burst_done: float | None = None
    last_done: float = 0.0

    def instance_s(self, until: float) -> float:
        return float(sum(self.instances[: math.ceil(until)]))

    def p95_wait(self) -> float:
        return _weighted_quantile(self.waits, 0.95)


def _weighted_quantile(samples: list[tuple[float, int]], q: float) -> float:
    total = sum(n for _, n in samples)
    if not total:
        return 0.0
    target, seen = q * total, 0
    for value, n in sorted(samples):
        seen += n
        if seen >= target:
            return round(value, 1)
    return round(max(v for v, _ in samples), 1)


# -- the queue (shared by every policy) ----------------------------------------------------------


class _Queue:
    """FIFO fluid queue: arrivals by second, service by a rate; waits per note batch."""

    def __init__(self, trace: Trace) -> None:
        self.pending: deque[list[float]] = deque()  # [arrival second, notes left]
        self.backlog = 0.0
        self._burst = trace.burst
        self._arrivals = dict(trace.arrivals)

    def arrive(self, t: float) -> None:
        n = self._arrivals.get(t, 0)
        if n:
            self.pending.append([t, float(n)])
            self.backlog += n

    def serve(self, t: float, capacity: float, run: Run) -> None:
        while capacity > 1e-9 and self.pending:
            head = self.pending[0]
            take = min(head[1], capacity)
            head[1] -= take
            capacity -= take
            self.backlog -= take
            done = t + 1.0
            whole = round(take)
            if whole:
                run.waits.append((done - head[0], whole))
            run.last_done = done
            if self._burst[0] <= head[0] < self._burst[1]:
                run.burst_done = done
            if head[1] <= 1e-9:
                self.pending.popleft()


# -- policies ------------------------------------------------------------------------------------


def _simulate(
    trace: Trace, p: Params, name: str, step: Callable[[float, _Queue], tuple[int, int]]
) -> Run:
    """``step(t, queue)`` -> (instances billed, instances ready) for second ``t``."""
    run, queue = Run(name), _Queue(trace)
    for t in range(int(trace.horizon)):
        queue.arrive(float(t))
        billed, ready = step(float(t), queue)
        run.instances.append(billed)
        queue.serve(float(t), ready * p.rate, run)
    return run


def fixed(trace: Trace, p: Params, count: int, name: str) -> Run:
    return _simulate(trace, p, name, lambda t, q: (count, count))


def spcs_cpu(trace: Trace, p: Params) -> Run:
    """SPCS's CPU-based autoscaling as modelled (module docstring)."""
    ready_at: list[float] = [0.0]  # one per instance: when it is READY
    low_since: float | None = None

    def step(t: float, q: _Queue) -> tuple[int, int]:
        nonlocal low_since
        ready = sum(1 for r in ready_at if r <= t)
        if t % p.cpu_period_s == 0 and ready:
            offered = q.backlog + 0.0
            utilisation = min(offered / (ready * p.rate), 1.0)
            if utilisation > p.cpu_up and len(ready_at) < p.max_instances:
                ready_at.append(t + p.load_s)
                low_since = None
            elif utilisation < p.cpu_down and len(ready_at) > 1:
                low_since = t if low_since is None else low_since
                if t - low_since >= p.cpu_down_after_s:
                    ready_at.pop()
                    low_since = t
            else:
                low_since = None
        return len(ready_at), sum(1 for r in ready_at if r <= t)

    return _simulate(trace, p, "spcs_cpu", step)


def _config(p: Params) -> ServiceConfig:
    return ServiceConfig(
        name="biobert_ner",
        service=FQN,
        compute_pool=POOL,
        url="https://ner.example.snowflakecomputing.app",
        task=Task.TOKEN_CLASSIFICATION,
        policy="fixed",
        idle_seconds=86_400,  # never idle-suspended here: the lifecycle is idle_cost.py's
        queues=[QUEUE],
        min_instances=1,
        max_instances=p.max_instances,
        drain_target_seconds=p.drain_target_s,
    )


def backlog_driven(trace: Trace, p: Params, name: str = "backlog") -> Run:
    """The real control plane on a simulated clock (module docstring)."""
    clock = ManualClock(EPOCH)
    spcs = MemorySpcsServices(clock.now, resume_seconds=p.load_s, start_seconds=0.0)
    spcs.add_service(FQN, POOL, "RUNNING")
    queues = MemoryQueues([QUEUE])
    config = _config(p)
    snowflake = SnowflakeSettings(account="sim", user="sim", secret=SecretRef(file="/dev/null"))
    control = ControlPlane(
        Registry(snowflake=snowflake, services=[config]),
        spcs,
        MemoryStateStore(),
        queues,
        MemoryMappings([QUEUE]),
        settings=ControlSettings(owner_id="bench", policy=LifecyclePolicy(min_uptime=timedelta(0))),
        clock=clock.now,
        sleep=clock.sleep,
    )

    def step(t: float, q: _Queue) -> tuple[int, int]:
        clock.set(EPOCH + timedelta(seconds=t))
        if t % p.reconcile_s == 0:
            obs = spcs.observe(FQN)
            in_flight = min(q.backlog, obs.instances_ready * p.in_flight_per_instance)
            queues.set(QUEUE, visible=int(q.backlog - in_flight), in_flight=int(in_flight))
            control.reconcile()
        obs = spcs.observe(FQN)
        return spcs.instances(FQN), obs.instances_ready

    return _simulate(trace, p, name, step)


# -- the benchmark -------------------------------------------------------------------------------


def evaluate(trace: Trace, p: Params) -> dict[str, Any]:
    runs = [
        fixed(trace, p, 1, "one_instance"),
        fixed(trace, p, p.max_instances, "fixed_max"),
        backlog_driven(trace, p),
        backlog_driven(trace, replace(p, drain_target_s=900), "backlog_t900"),
        spcs_cpu(trace, p),
    ]
    start = trace.burst[0]
    whole_day = trace.name == "clinic_day"
    out: dict[str, Any] = {
        "notes": trace.total,
        "billed_until": "horizon" if whole_day else "drained",
        "policies": {},
    }
    for r in runs:
        until = trace.horizon if whole_day or r.burst_done is None else r.burst_done
        out["policies"][r.policy] = {
            "drain_s": None if r.burst_done is None else round(r.burst_done - start, 1),
            "p95_wait_s": r.p95_wait(),
            "instance_s": round(r.instance_s(until)),
            "peak_instances": max(r.instances),
        }
    one, ours = out["policies"]["one_instance"], out["policies"]["backlog"]
    speedup = one["drain_s"] / ours["drain_s"] if ours["drain_s"] else None
    cost = ours["instance_s"] / one["instance_s"] if one["instance_s"] else None
    out["backlog_vs_one"] = {
        "drain_speedup": None if speedup is None else round(speedup, 2),
        "instance_s_ratio": None if cost is None else round(cost, 3),
    }
    return out


def run(params: Params | None = None) -> dict[str, Any]:
    p = params or Params()
    traces = {t.name: evaluate(t, p) for t in (burst_trace(), clinic_day())}
    burst = traces["burst_20k"]["backlog_vs_one"]
    return {
        "params": p.__dict__,
        "traces": traces,
        "targets": {
            "burst_drain_speedup_ge_3": burst["drain_speedup"] is not None
            and burst["drain_speedup"] >= 3.0,
            "burst_instance_s_ratio_le_1_3": burst["instance_s_ratio"] is not None
            and burst["instance_s_ratio"] <= 1.3,
        },
    }


def table(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, trace in result["traces"].items():
        lines.append(f"{name} ({trace['notes']} notes, billed until {trace['billed_until']})")
        lines.append(
            f"  {'policy':<13} {'drain s':>8} {'p95 wait s':>11} {'inst-s':>8} {'peak':>5}"
        )
        for policy, row in trace["policies"].items():
            lines.append(
                f"  {policy:<13} {row['drain_s']!s:>8} {row['p95_wait_s']:>11} "
                f"{row['instance_s']:>8} {row['peak_instances']:>5}"
            )
        vs = trace["backlog_vs_one"]
        lines.append(
            f"  backlog vs one instance: {vs['drain_speedup']}x faster, "
            f"{vs['instance_s_ratio']}x instance-seconds"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run()
    print("\n".join(table(result)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
