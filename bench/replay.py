"""Replay of the user's own traffic (``spcs_gateway.replay``, which ``spcs-gateway replay``
runs too) and a synthetic trace file in the Azure Functions layout for the timing check:

    python -m bench.replay --synthetic FILE   # 100 services, ~700,000 invocations in a day
    python -m bench.replay --real-like FILE   # 100 services shaped like a public trace (JSONL)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from spcs_gateway.replay import *  # noqa: F403
from spcs_gateway.replay import main_from_args, replay, table  # noqa: F401


def write_synthetic(path: Path, services: int = 100, per_day: int = 700_000, seed: int = 7) -> int:
    """A synthetic Azure-layout file (for the timing check): a mix of busy, diurnal, periodic
    and sparse services with about ``per_day`` invocations in all."""
    rng = random.Random(seed)
    weights = [rng.paretovariate(1.1) for _ in range(services)]
    scale = per_day / sum(weights)
    total = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["HashOwner", "HashApp", "HashFunction", "Trigger", *range(1, 1441)])
        for i, w in enumerate(weights):
            rate = w * scale / 1440  # per minute
            kind = i % 4
            counts = []
            for m in range(1440):
                if kind == 0:  # steady Poisson-like
                    lam = rate
                elif kind == 1:  # diurnal
                    lam = rate * 2 * max(0.0, math.sin(math.pi * (m - 360) / 720))
                elif kind == 2:  # periodic every 15 minutes
                    lam = rate * 15 if m % 15 == 0 else 0.0
                else:  # on/off hours
                    lam = rate * 2 if (m // 60) % 2 == 0 else 0.0
                n = _poisson_count(rng, lam)
                counts.append(n)
                total += n
            writer.writerow([f"o{i:03d}", f"a{i:03d}", f"f{i:03d}", "http", *counts])
    return total


def _poisson_count(rng: Any, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(float(rng.gauss(lam, math.sqrt(lam)))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def write_real_like(path: Path, services: int = 100, days: int = 1, seed: int = 11) -> int:
    """JSONL ``{"service", "at"}`` of ``traces.real_like_population`` (exact instants)."""
    from bench.traces import EPOCH, real_like_population

    total = 0
    with path.open("w", encoding="utf-8") as handle:
        for trace in real_like_population(seed, services, days):
            for t in trace.arrivals:
                at = (EPOCH + timedelta(seconds=t)).isoformat()
                handle.write(json.dumps({"service": trace.name, "at": at}) + "\n")
            total += len(trace.arrivals)
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--synthetic", metavar="FILE")
    group.add_argument("--real-like", metavar="FILE")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=810_000)
    ns = parser.parse_args()
    if ns.real_like:
        print(write_real_like(Path(ns.real_like), ns.services, ns.days), "invocations")
    else:
        print(write_synthetic(Path(ns.synthetic), ns.services, ns.per_day), "invocations")
