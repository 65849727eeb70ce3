"""Timelines of the idle-cost family (``python -m bench.idle_cost --plot FILE``): for each
trace, when each policy kept the simulated service up, under its arrivals. The simulator's
own intervals (``PolicyResult.spans``: the emulated Snowflake's status history for ours);
drawn by ``spcs_gateway.replay_plot`` (matplotlib, the optional extra ``plot``), which the
replay's ``--plot`` uses too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.traces import DAY, Trace
from spcs_gateway import replay_plot

PLOTTED = {"always_on": "always_on", "fixed_1800s": "fixed_1800s", "fixed": "fixed"}


def panel(trace: Trace, results: Mapping[str, Any], day: int | None = None) -> replay_plot.Panel:
    """One trace's panel; ``results``: policy -> ``idle_cost.PolicyResult``. ``day``: the
    day drawn (default: the last day with arrivals, once the adaptive policy has learned)."""
    days = max(int(trace.horizon // DAY), 1)
    last = int(trace.arrivals[-1] // DAY) if trace.arrivals else days - 1
    shown = min(max(last if day is None else day, 0), days - 1)
    lanes = {
        name: replay_plot.Lane(result.spans, result.billed_s, result.resumes)
        for name, result in results.items()
        if name in replay_plot.POLICIES
    }
    view = (shown * DAY, min((shown + 1) * DAY, trace.horizon))
    return replay_plot.Panel(trace.name, trace.arrivals, lanes, view)


def write_family(path: Path, panels: Sequence[replay_plot.Panel], top: int) -> Path:
    """The ``top`` panels with the highest adaptive bill, into ``path`` (.png or .html)."""
    ranked = sorted(panels, key=lambda p: -p.lanes["adaptive"].billed_s)[: max(top, 0)]
    horizon = max((p.view[1] if p.view else 0.0) for p in ranked) if ranked else DAY
    title = "idle-cost family: the last day of each trace (legend: whole-trace totals)"
    return replay_plot.write(path, ranked, horizon, title)
