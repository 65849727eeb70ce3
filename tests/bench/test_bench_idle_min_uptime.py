"""bench/idle_cost.py: the service's own min_uptime_seconds reaches the simulated policy."""

from __future__ import annotations

import math
import sys
from pathlib import Path

# bench/ is not an installed package: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import idle_cost

PARAMS = idle_cost.SimParams()  # R = 180 s, reconcile every 60 s
ARRIVALS = (1_000.0, 1_010.0, 20_000.0, 60_000.0)  # isolated bursts, hours apart
TRACE = idle_cost.Trace("short", "isolated bursts", ARRIVALS, idle_cost.DAY, idle_seconds=60)


def test_per_service_min_uptime_shortens_each_stay_up() -> None:
    default = idle_cost.ours(TRACE, PARAMS, 60)  # policy default: 300 s after each resume
    own = idle_cost.ours(TRACE, PARAMS, 60, min_uptime_seconds=60)
    assert default.params["min_uptime_seconds"] is None
    assert own.params["min_uptime_seconds"] == 60
    assert own.resumes == default.resumes == 3
    assert not any(math.isnan(c) for c in own.completions)
    # With 300 s each resume is billed >= 300 s; with 60 s the idle window after the (R = 180 s)
    # start-up decides, ending at the first reconcile tick after it.
    assert default.billed_s >= 3 * 300
    assert own.billed_s <= 3 * (PARAMS.resume_s + 60 + 2 * PARAMS.reconcile_s)
    assert own.billed_s < default.billed_s


def test_only_the_sparse_trace_configures_its_min_uptime() -> None:
    assert idle_cost.sparse_trace(1, 1).min_uptime_seconds == 60
    assert idle_cost.clinic_trace(1, 1).min_uptime_seconds is None
    assert idle_cost.nightly_export_trace(1, 1).min_uptime_seconds is None
