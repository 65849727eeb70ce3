"""bench.scaling: the policies compared on the burst and the clinic day."""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ is not an installed package: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import scaling


def test_bench_scaling_reports_every_policy_and_meets_the_burst_targets() -> None:
    result = scaling.run()
    burst = result["traces"]["burst_20k"]["policies"]
    one, ours, most = burst["one_instance"], burst["backlog"], burst["fixed_max"]
    assert one["drain_s"] == 4000.0  # 20,000 notes at 5/s on one instance
    assert one["instance_s"] == 4000
    assert most["peak_instances"] == 5
    assert ours["peak_instances"] == 5
    assert one["drain_s"] / ours["drain_s"] >= 3.0
    assert ours["instance_s"] <= 1.3 * one["instance_s"]
    assert result["targets"] == {
        "burst_drain_speedup_ge_3": True,
        "burst_instance_s_ratio_le_1_3": True,
    }
    day = result["traces"]["clinic_day"]["policies"]
    # Every policy serves every note; scaling costs a fraction of running the maximum all day.
    assert day["backlog"]["instance_s"] < day["fixed_max"]["instance_s"] / 4
    assert day["backlog"]["drain_s"] < day["one_instance"]["drain_s"]
