"""bench/idle_cost.py: the service's own min_uptime_seconds reaches the simulated policy."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

# bench/ is not an installed package: load the module from its file (own name: no clash with
# test_bench_smoke.py's copy).
_PATH = Path(__file__).resolve().parents[2] / "bench" / "idle_cost.py"
_SPEC = importlib.util.spec_from_file_location("bench_idle_cost_min_uptime", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
idle_cost = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = idle_cost  # dataclasses resolve annotations through sys.modules
_SPEC.loader.exec_module(idle_cost)

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
