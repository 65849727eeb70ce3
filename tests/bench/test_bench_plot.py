"""``--plot`` of the replay (``spcs-gateway replay`` and ``python -m bench.idle_cost --trace``):
one timeline panel per chosen service in a valid PNG or a self-contained HTML page, the top N
by cost, and a clear error naming the optional extra when matplotlib is missing."""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from spcs_gateway import replay, replay_plot
from spcs_gateway.cli import main

# bench/ is not an installed package: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import idle_cost

pytest.importorskip("matplotlib")  # the 'plot' extra (also in 'dev')


def write_trace(path: Path) -> None:
    """Three services: busy (costliest), hourly, and two calls a day (cheapest)."""
    lines = []
    for minute in range(0, 24 * 60, 2):
        lines.append(
            {"service": "busy", "at": f"2025-03-03T{minute // 60:02d}:{minute % 60:02d}:00Z"}
        )
    for hour in range(24):
        lines.append({"service": "hourly", "at": f"2025-03-03T{hour:02d}:05:00Z"})
    lines += [{"service": "rare", "at": "2025-03-03T09:00:00Z"}]
    lines += [{"service": "rare", "at": "2025-03-03T17:30:00Z"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def panels_in_html(text: str) -> list[str]:
    """The service named in each panel's title (matplotlib's SVG keeps text as text here)."""
    return re.findall(r">(\w+) \(\d+ arrivals[^<]*\)<", text)


def test_html_is_self_contained_with_one_panel_per_service(tmp_path: Path) -> None:
    trace, page = tmp_path / "t.jsonl", tmp_path / "timeline.html"
    write_trace(trace)
    out = io.StringIO()
    assert main(["replay", str(trace), "--json", "--plot", str(page)], out=out) == 0
    assert json.loads(out.getvalue())["plot"] == str(page)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text
    assert text.rstrip().endswith("</html>")
    assert not re.search(r"(src|href)=['\"]https?:", text)  # nothing fetched from elsewhere
    assert sorted(panels_in_html(text)) == ["busy", "hourly", "rare"]
    assert text.count('id="axes_') == 3
    # the legend carries billed hours and resumes of every policy
    for policy in replay_plot.POLICIES:
        assert re.search(rf"{policy}: [\d.]+ h billed, \d+ resumes", text)


def test_top_n_by_cost_and_png_through_the_bench_entry_point(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    one, two, page = tmp_path / "one.png", tmp_path / "two.png", tmp_path / "two.html"
    for target, top in ((one, 1), (two, 2), (page, 2)):
        idle_cost.main(["--trace", str(trace), "--plot", str(target), "--plot-top", str(top)])
    for target in (one, two):
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(target) as image:
            image.verify()
    with Image.open(one) as a, Image.open(two) as b:
        assert b.height > a.height  # one more panel
    # the two costliest by adaptive bill: busy, then hourly (rare is left out)
    assert panels_in_html(page.read_text(encoding="utf-8")) == ["busy", "hourly"]


def test_the_simulated_intervals_are_what_is_billed(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    result = replay.replay(trace, 180.0)
    for row in result["_rows"]:
        for name, outcome in row["_outcomes"].items():
            spans = outcome.spans
            assert sum(e - s for s, e in spans) == pytest.approx(outcome.billed_s), name
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_without_matplotlib_the_cli_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace, target = tmp_path / "t.jsonl", tmp_path / "t.png"
    write_trace(trace)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    err = io.StringIO()
    assert main(["replay", str(trace), "--plot", str(target)], err=err) == 2
    assert "pip install 'spcs-gateway[plot]'" in err.getvalue()
    assert err.getvalue().startswith("error: USAGE:")
    assert not target.exists()
    with pytest.raises(SystemExit) as exit_info:
        idle_cost.main(["--trace", str(trace), "--plot", str(target)])
    assert exit_info.value.code == 2


def test_an_unknown_plot_format_is_refused_before_any_work(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    err = io.StringIO()
    assert main(["replay", str(trace), "--plot", str(tmp_path / "t.pdf")], err=err) == 2
    assert ".png or .html" in err.getvalue()


def test_the_simulator_exposes_each_policys_up_intervals(tmp_path: Path) -> None:
    """The family's plot draws the simulator's own intervals: for ours, the emulated
    Snowflake's status history; they add up to what each policy is billed."""
    from bench import plotting
    from bench.traces import DAY, Trace

    arrivals = (3600.0, 3605.0, 5 * 3600.0, 9 * 3600.0, 9 * 3600.0 + 30)
    trace = Trace("three_calls", "three short bursts", arrivals, DAY)
    row = idle_cost.evaluate(trace, idle_cost.SimParams(), timelines=True)
    results = row["_results"]
    assert set(results) == set(replay_plot.POLICIES)
    for result in results.values():
        assert sum(e - s for s, e in result.spans) == pytest.approx(result.billed_s, abs=1e-3)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(result.spans))
    # every arrival falls inside an up interval of the policies that serve without waiting
    for name in ("always_on", "optimum"):
        assert all(any(s <= a <= e for s, e in results[name].spans) for a in arrivals)
    target = plotting.write_family(
        tmp_path / "family.html", [plotting.panel(row["_trace"], results)], top=5
    )
    assert panels_in_html(target.read_text(encoding="utf-8")) == ["three_calls"]


def test_the_cli_and_the_replay_never_import_matplotlib_unless_asked() -> None:
    code = (
        "import sys, spcs_gateway.cli, spcs_gateway.replay, spcs_gateway.replay_plot; "
        "sys.exit('matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
