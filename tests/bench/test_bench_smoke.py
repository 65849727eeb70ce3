"""Smoke test of the idle-cost simulator (bench/idle_cost.py): invariants on a short trace."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from spcs_gateway.lifecycle import Action, Decision, Reason

# bench/ is not an installed package: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import idle_cost

DAY, SimParams, Trace = idle_cost.DAY, idle_cost.SimParams, idle_cost.Trace

PARAMS = SimParams()  # R = 180 s, 0.05 s per event, reconcile every 60 s
# Three bursts separated by gaps of hours: every sensible policy suspends in between.
ARRIVALS = (1_000.0, 1_010.0, 1_020.0, 20_000.0, 20_005.0, 60_000.0)
TRACE = Trace("short", "three bursts, hours apart", ARRIVALS, DAY, idle_seconds=60)


def test_optimum_is_exact() -> None:
    base = idle_cost.always_on(TRACE, PARAMS)
    best = idle_cost.optimum(TRACE, PARAMS, base.completions)
    # R before each burst + the busy time of each burst (short gaps inside a burst stay up).
    busy = (1_020.05 - 1_000.0) + (20_005.05 - 20_000.0) + 0.05
    assert best.billed_s == pytest.approx(3 * PARAMS.resume_s + busy)
    assert best.resumes == 3


def test_ours_between_optimum_and_always_on_and_serves_everything() -> None:
    base = idle_cost.always_on(TRACE, PARAMS)
    best = idle_cost.optimum(TRACE, PARAMS, base.completions)
    ours = idle_cost.ours(TRACE, PARAMS, TRACE.idle_seconds)
    assert best.billed_s <= ours.billed_s <= base.billed_s
    assert ours.resumes == 3
    for arrival, done, on in zip(ARRIVALS, ours.completions, base.completions, strict=True):
        assert not math.isnan(done)
        assert done >= on >= arrival + PARAMS.service_s
    # The first event of a burst waits for the resume, and not much longer.
    first_wait = ours.completions[0] - base.completions[0]
    assert PARAMS.resume_s <= first_wait <= PARAMS.resume_s + PARAMS.poll_s + 1
    # Each resume is billed until a reconcile tick after min_uptime (300 s) at the latest + 60 s.
    assert ours.billed_s <= 3 * (300 + PARAMS.reconcile_s) + 1


def test_fixed_timeout_longer_than_every_gap_never_suspends() -> None:
    fixed = idle_cost.fixed_timeout(TRACE, PARAMS, auto_suspend_s=DAY)
    assert fixed.resumes == 1
    assert fixed.billed_s == pytest.approx(DAY - ARRIVALS[0])


def test_simulation_is_driven_by_the_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ours is the real control plane: its policy decides, through its resume and reconcile."""
    from spcs_gateway.control import reconcile, resume

    calls: list[Action] = []

    def never_act(*args: object, **kwargs: object) -> Decision:
        calls.append(Action.NONE)
        return Decision(Action.NONE, Reason.SUSPENDED_IDLE)

    for module in (reconcile, resume):
        monkeypatch.setattr(module, "decide_service", never_act)
    # A policy that never resumes leaves the events waiting: the simulator refuses to settle.
    with pytest.raises(RuntimeError, match="did not settle"):
        idle_cost.ours(TRACE, PARAMS, TRACE.idle_seconds)
    assert calls


def test_ours_counts_the_control_planes_calls() -> None:
    ours = idle_cost.ours(TRACE, PARAMS, TRACE.idle_seconds)
    # One reconcile per minute of the day, and one ensure_ready per burst that found it asleep.
    assert ours.params["reconcile_rounds"] == DAY / PARAMS.reconcile_s
    assert ours.params["ensure_ready_calls"] == 3
