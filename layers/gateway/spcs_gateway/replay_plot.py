"""Timeline plots for the replay: per service, the arrivals over the up/down timeline of each
scale-to-zero policy, with billed hours and resumes in the legend.

    spcs-gateway replay FILE --plot out.png [--plot-top N]
    python -m bench.idle_cost --trace FILE --plot out.html

PNG or HTML by the file's extension (HTML: one self-contained page, the figure embedded as
SVG). matplotlib is an optional extra (``pip install 'spcs-gateway[plot]'``), imported only
here and only when a plot is asked for; it is never part of the Lambda layer.
"""

from __future__ import annotations

import argparse
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICIES = ("always_on", "fixed_1800s", "fixed", "adaptive", "optimum")
COLORS = {
    "always_on": "#9e9e9e",
    "fixed_1800s": "#e07b39",
    "fixed": "#c9a227",
    "adaptive": "#2a7ab9",
    "optimum": "#3a9d5d",
}
FORMATS = (".png", ".html", ".htm")
MISSING = "plotting needs matplotlib: pip install 'spcs-gateway[plot]'"


class PlotError(RuntimeError):
    """A plot cannot be drawn: the extra is missing or the file type is not PNG/HTML."""


@dataclass(frozen=True)
class Lane:
    """One policy's up intervals (seconds from the trace's start) and its totals."""

    spans: Sequence[tuple[float, float]]
    billed_s: float
    resumes: int


@dataclass(frozen=True)
class Panel:
    service: str
    arrivals: Sequence[float]
    lanes: Mapping[str, Lane]  # policy -> lane, drawn in POLICIES order
    # The part of the trace drawn (seconds from its start; None: all of it). The legend's
    # totals are for the whole trace either way.
    view: tuple[float, float] | None = None


def check_target(path: Path) -> str:
    """The output format for ``path`` (``png`` or ``html``), before any work is done."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"--plot wants a .png or .html file, not {suffix or 'no extension'!r}")
    return "png" if suffix == ".png" else "html"


def require(path: Path) -> None:
    """Fail before any work when the plot could not be written (format, missing extra)."""
    check_target(path)
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError(MISSING) from None
    return plt


def write(path: Path, panels: Sequence[Panel], horizon_s: float, title: str = "") -> Path:
    """Draw one panel per service into ``path`` (PNG or self-contained HTML)."""
    kind = check_target(path)
    plt = _pyplot()
    rows = max(len(panels), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(13, 2.3 * rows + 0.6), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=False):
        _panel(ax, panel, panel.view or (0.0, horizon_s))
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no services", ha="center", va="center")
        axes[0, 0].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        if kind == "png":
            fig.savefig(path, format="png", dpi=90)
        else:
            svg = io.StringIO()
            with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: small, searchable
                fig.savefig(svg, format="svg")
            path.write_text(_html(svg.getvalue(), title, len(panels)), encoding="utf-8")
    finally:
        plt.close(fig)
    return path


def _panel(ax: Any, panel: Panel, view: tuple[float, float]) -> None:
    lo, hi = view[0] / 3600, view[1] / 3600
    names = [p for p in POLICIES if p in panel.lanes]
    for row, name in enumerate(reversed(names)):
        lane = panel.lanes[name]
        bars = [(s / 3600, (e - s) / 3600) for s, e in lane.spans if e > s and e >= view[0]]
        label = f"{name}: {lane.billed_s / 3600:.2f} h billed, {lane.resumes} resumes"
        ax.broken_barh(bars, (row + 0.15, 0.7), facecolors=COLORS[name], label=label)
    top = len(names) + 0.2
    # One tick per pixel column at most: a busy service's thousands of calls stay a small file.
    step = max((hi - lo) / 2000, 1e-9)
    seen = (a / 3600 for a in panel.arrivals if view[0] <= a <= view[1])
    ticks = sorted({round(a / step) * step for a in seen})
    ax.vlines(ticks, top, top + 0.6, colors="black", linewidth=0.4)
    ax.set_yticks([i + 0.5 for i in range(len(names))], list(reversed(names)), fontsize=7)
    ax.set_ylim(0, top + 0.7)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("hours from the trace's start (top: arrivals; bars: service up)", fontsize=7)
    shown = "" if panel.view is None else f", hours {lo:g}-{hi:g} shown"
    title = f"{panel.service} ({len(panel.arrivals)} arrivals{shown})"
    ax.set_title(title, fontsize=9, loc="left")
    ax.tick_params(axis="x", labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))


def _html(svg: str, title: str, panels: int) -> str:
    start = svg.find("<svg")
    body = svg[start:] if start >= 0 else svg
    heading = html.escape(title or "replay")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{heading}</title></head><body>\n<h1 style='font:16px sans-serif'>{heading}</h1>"
        f"\n<p style='font:12px sans-serif'>{panels} service(s): when each policy kept the "
        "service up (bars) under the arrivals (ticks).</p>\n"
        f"<div class='timelines' data-panels='{panels}'>{body}</div>\n</body></html>\n"
    )


def top_by_cost(rows: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    """The ``n`` replay rows with the highest adaptive bill (ties: most events)."""
    return sorted(rows, key=_cost_key)[: max(n, 0)]


def _cost_key(row: Mapping[str, Any]) -> tuple[float, int]:
    return (-float(row["policies"]["adaptive"]["billed_s"]), -int(row["events"]))


def from_replay(result: dict[str, Any], path: Path, top: int) -> Path:
    """Timelines of the ``top`` services by adaptive cost, from ``replay.replay``'s result."""
    panels = [
        Panel(
            row["service"],
            row["_arrivals"],
            {
                name: Lane(out.spans, out.billed_s, out.resumes)
                for name, out in row["_outcomes"].items()
                if name in POLICIES
            },
        )
        for row in top_by_cost(result["_rows"], top)
    ]
    title = f"{result['trace']}: R = {result['resume_seconds']:g} s, top {len(panels)} by cost"
    return write(path, panels, result["horizon_s"], title)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw each service's up/down timeline per policy (.png or .html; needs the "
        "optional extra 'plot': pip install 'spcs-gateway[plot]')",
    )
    parser.add_argument(
        "--plot-top", type=int, default=10, metavar="N", help="plot the N costliest services"
    )
