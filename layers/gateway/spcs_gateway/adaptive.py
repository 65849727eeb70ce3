"""Adaptive keep-alive: learn each service's idle gaps and resume cost, choose when to suspend
and when to pre-resume. Pure: no I/O and no clock of its own (every instant is passed in, as
epoch seconds), so the control plane, the simulator and the replay tool run the same code.

The idea is the hybrid histogram policy of Shahrad et al., "Serverless in the Wild" (USENIX
ATC 2020): per service, a histogram of idle gaps in 1-minute bins up to 4 hours, plus a
time-series fallback for gaps beyond it. Where the paper takes percentiles, this module picks
the keep-alive and the pre-resume window that minimise the expected cost over the learned
gaps (rent-or-buy with a learned distribution):

- a gap ``g`` no longer than the keep-alive ``k`` costs ``g`` seconds of uptime;
- a longer gap costs ``k`` (plus half a control round before the suspend lands), the resume
  ``R`` (billed while the model loads) and ``WAIT_WEIGHT * R`` for the caller who waits;
- a pre-resume window ``[s, e)`` resumes at ``s`` so the service is ready at ``s + R``: a gap
  ending inside ``[s + R, e)`` waits for nothing and costs the idle time from ``s``.

``R`` is the median of the last observed resume durations (``DEFAULT_RESUME_S`` until one is
seen). With no gap seen there is no pattern: the keep-alive is the break-even ``R``
(2-competitive), without pre-resume; with fewer than ``MIN_SAMPLES`` it is no shorter than
the learning-augmented break-even (``learning_keep_alive``). Jobs started by a clock are
pre-resumed from their start-to-start period (``add_start``), since a run's length varies
while its start does not. Operator bounds (``Bounds``) clamp every
choice; the hard rules (backlog, in-flight calls, leases, warm windows) stay in
``lifecycle.py``, which asks this module only once they allow a suspend or a resume.

The record (``IdleModel``) holds times, counts and durations only (never PHI) and stays small:
at most ``BINS + 1`` counters, ``LONG_SAMPLES`` long gaps, ``RESUME_SAMPLES`` durations
(``encode`` gives the compact text the DynamoDB item stores, well under 4 KB).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from statistics import median

MIN_GAP_S = 60.0  # one control round: shorter pauses are continuations of the same work
BIN_S = 60
BINS = 240  # 1-minute bins up to 4 h; one more counter holds the longer gaps
HIST_CAP = 400  # total weight; above it every count is halved (old traffic fades)
LONG_SAMPLES = 6  # exact gaps beyond the histogram (time-series fallback)
PERIOD_SAMPLES = 4  # start-to-start intervals kept (a job started by a clock)
RESUME_SAMPLES = 5
DEFAULT_RESUME_S = 180.0  # a GPU model load, until the service's own resumes are measured
MIN_SAMPLES = 8
WAIT_WEIGHT = 0.5  # a second a caller waits is worth half a second of uptime
ROUND_S = 60.0  # the control round: a suspend or resume lands half a round late on average
PEAK_SHARE = 0.04  # a pre-resume window is considered around points with this share of mass
PEAK_MIN = 3  # ... and at least this many gaps (one odd gap is no pattern)
MAX_HOLD_S = 4 * 3600
_BIG = 1e9  # stands for "longer than any keep-alive"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Bounds:
    """Operator bounds on the keep-alive (and on the idle hold of a pre-resume window)."""

    min_s: float = 0.0
    max_s: float = 900.0

    def clamp(self, seconds: float) -> float:
        return float(min(max(seconds, self.min_s), max(self.max_s, self.min_s)))


@dataclass(frozen=True, slots=True)
class Plan:
    """Seconds after the idle anchor (the last activity): keep alive until ``keep_alive``;
    pre-resume at ``start`` and hold until ``end`` for each window."""

    keep_alive: float
    windows: tuple[tuple[float, float], ...] = ()
    basis: str = "break_even"  # break_even | histogram | long_gaps (| period: see current_plan)


@dataclass(frozen=True, slots=True)
class IdleModel:
    hist: tuple[int, ...] = field(default_factory=lambda: (0,) * (BINS + 1))
    long: tuple[int, ...] = ()  # last exact gaps beyond the histogram, seconds
    resumes: tuple[int, ...] = ()  # last resume durations, seconds
    last: float | None = None  # latest activity accounted (epoch seconds)
    streak: int = 0  # continuations counted in the current busy period
    gaps: int = 0  # gaps ever counted (replanning schedule)
    plan: Plan | None = None
    plan_gaps: int = -1
    began: float | None = None  # estimated start of the current busy period (epoch seconds)
    periods: tuple[int, ...] = ()  # last start-to-start intervals of busy periods, seconds

    @property
    def samples(self) -> int:
        return sum(self.hist[1:])

    def resume_s(self) -> float:
        return float(median(self.resumes)) if self.resumes else DEFAULT_RESUME_S


# ---------------------------------------------------------------------------------------------
# Learning


def _bin(gap_s: float) -> int:
    return min(int(gap_s // BIN_S), BINS)


def _add(hist: tuple[int, ...], index: int, weight: int = 1) -> tuple[int, ...]:
    counts = list(hist)
    counts[index] += weight
    if sum(counts) > HIST_CAP:
        counts = [c // 2 for c in counts]
    return tuple(counts)


def add_gap(model: IdleModel, gap_s: float) -> IdleModel:
    """One idle gap (seconds between the end of a busy period and the next arrival)."""
    if gap_s < MIN_GAP_S:
        return add_continuation(model)
    index = _bin(gap_s)
    long = model.long
    if index == BINS:
        long = (*long, int(gap_s))[-LONG_SAMPLES:]
    return replace(model, hist=_add(model.hist, index), long=long, streak=0, gaps=model.gaps + 1)


def add_continuation(model: IdleModel) -> IdleModel:
    """Work went on across a control round: a sub-minute "gap" (bin 0). At most three per busy
    period, so a long busy day does not drown the real gaps."""
    if model.streak >= 3:
        return model
    return replace(model, hist=_add(model.hist, 0), streak=model.streak + 1)


def observe_arrival(model: IdleModel, at: float, quiet_since: float | None = None) -> IdleModel:
    """An arrival seen exactly (a caller asked for a suspended service at ``at``). The service
    does no work until it is ready, so the next idle period starts ``R`` later. For the first
    arrival ever seen, ``quiet_since`` (when the service was last known idle: its suspension)
    gives the quiet stretch before it, a gap at least that long."""
    anchor = at + model.resume_s()
    if model.last is None:
        if quiet_since is not None and at - quiet_since >= MIN_GAP_S:
            model = add_gap(model, at - quiet_since)
        return replace(add_start(model, at), last=anchor)
    if at <= model.last:
        return replace(model, last=max(model.last, anchor))
    return replace(add_start(add_gap(model, at - model.last), at), last=anchor)


def add_start(model: IdleModel, at: float) -> IdleModel:
    """A busy period began at ``at`` (after an idle gap): the start-to-start interval since
    the previous one is what a job started by a clock keeps regular, whatever its length."""
    periods = model.periods
    if model.began is not None and at - model.began >= MIN_GAP_S:
        periods = (*periods, int(at - model.began))[-PERIOD_SAMPLES:]
    return replace(model, began=at, periods=periods)


def observe_activity(
    model: IdleModel, activity: float | None, looked_at: float | None
) -> IdleModel:
    """The latest recorded activity, read by a control round. ``looked_at``: when the previous
    round looked (nothing newer than ``model.last`` had happened then). Activity newer than
    ``model.last`` ended an idle gap if the quiet stretch seen before it spans a round. The gap
    ended somewhere between the previous look and this one; it is counted to the middle of that
    interval, so its error is at most half a round either way (unbiased, where the lower bound
    would shorten every learned gap by half a round on average).
    """
    if activity is None or (model.last is not None and activity <= model.last + 0.001):
        return model
    if model.last is None:
        return replace(model, last=activity)
    seen_quiet = (looked_at - model.last) if looked_at is not None else 0.0
    if seen_quiet >= MIN_GAP_S and looked_at is not None:
        # The gap ended between the previous look and the activity read now: count the middle.
        start = (looked_at + activity) / 2
        return replace(add_start(add_gap(model, start - model.last), start), last=activity)
    return replace(add_continuation(model), last=activity)


def observe_resume(model: IdleModel, seconds: float, ready_at: float | None = None) -> IdleModel:
    """A resume took ``seconds`` from RESUME to READY (at ``ready_at``). An arrival seen while
    the service slept anchored the next idle period at "arrival + R"; while R is still the
    default (no resume seen yet), that anchor is moved back to the real ready instant, or the
    first call would hold the service up for the default R."""
    if seconds <= 0:
        return model
    guessed = not model.resumes  # the anchor used the default R, not a learned one
    before = model.resume_s()
    model = replace(model, resumes=(*model.resumes, round(seconds))[-RESUME_SAMPLES:])
    if model.resume_s() != before:  # every choice scales with R: plan again
        model = replace(model, plan=None)
    if guessed and ready_at is not None and model.last is not None and model.last > ready_at:
        model = replace(model, last=ready_at)
    return model


def replan(model: IdleModel, bounds: Bounds, *, force: bool = False) -> IdleModel:
    """Recompute the plan when the learned gaps moved enough: after every gap while few are
    known, then after every ~6 % more (a stable histogram barely moves the optimum)."""
    due = model.plan is None or force or model.gaps - model.plan_gaps >= max(1, model.gaps // 16)
    if not due:
        return model
    return replace(model, plan=choose(model, bounds), plan_gaps=model.gaps)


# ---------------------------------------------------------------------------------------------
# Choosing


class _Points:
    """Weighted gap samples with prefix sums: range counts and sums in O(log n)."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        points.sort()
        self.g = [p for p, _ in points]
        self.w = [0.0]
        self.gw = [0.0]
        for g, w in points:
            self.w.append(self.w[-1] + w)
            self.gw.append(self.gw[-1] + (0.0 if g >= _BIG else g * w))

    def count(self, lo: float, hi: float) -> float:
        a, b = bisect_left(self.g, lo), bisect_left(self.g, hi)
        return self.w[b] - self.w[a]

    def gsum(self, lo: float, hi: float) -> float:
        a, b = bisect_left(self.g, lo), bisect_left(self.g, hi)
        return self.gw[b] - self.gw[a]


def _points(model: IdleModel) -> _Points:
    # Bin 0 holds continuations: pauses shorter than a round inside work. A keep-alive that
    # does not cover them would suspend in the middle of a job.
    pts = [((i + 0.5) * BIN_S, float(c)) for i, c in enumerate(model.hist[:BINS]) if c]
    over = model.hist[BINS]
    if over:
        if model.long:
            share = over / len(model.long)
            pts += [(float(g), share) for g in model.long]
        else:
            pts.append((_BIG, float(over)))
    return _Points(pts)


def choose(model: IdleModel, bounds: Bounds) -> Plan:
    """The keep-alive and pre-resume windows of least expected cost over the learned gaps
    (break-even without a usable pattern)."""
    r = model.resume_s()
    n = model.samples
    if n < PEAK_MIN:  # no usable histogram yet; long regular gaps may be
        return _long_window(model, Plan(learning_keep_alive(model, bounds)), bounds, r)
    plan = _histogram_plan(model, bounds, r)
    if n < MIN_SAMPLES:  # few gaps: no shorter than the learning-augmented keep-alive
        k = max(plan.keep_alive, learning_keep_alive(model, bounds))
        windows = tuple((s, e) for s, e in plan.windows if s > k)
        plan = Plan(k, windows, plan.basis if windows else "break_even")
    return _long_window(model, plan, bounds, r)


def learning_keep_alive(model: IdleModel, bounds: Bounds) -> float:
    """Rent-or-buy with a learned prediction while few gaps are known (learning-augmented ski
    rental, Purohit et al., NeurIPS 2018): keep alive ``lambda * R``, where ``lambda`` is the
    share of gaps no longer than R (posterior mean under a uniform prior). No gap seen:
    break-even R (2-competitive). Every gap seen longer than R: R / (n + 2), trusting the
    prediction more with each gap that agrees; a wrong prediction costs at most one keep-alive
    and one resume per gap, and the histogram takes over at ``MIN_SAMPLES`` gaps. The suspend
    lands half a round late on average, so that much less is asked for, but never less than
    half a round: until the histogram has seen the pauses inside this service's work, a job
    still running at a round must not be cut."""
    r = model.resume_s()
    n = model.samples
    if n == 0:
        return bounds.clamp(r)
    short = sum(model.hist[1 : _bin(r) + 1])
    return bounds.clamp(max(r * (short + 1) / (n + 2) - ROUND_S / 2, BIN_S / 2))


def _histogram_plan(model: IdleModel, bounds: Bounds, r: float) -> Plan:
    pts = _points(model)
    total = pts.w[-1]
    d = ROUND_S / 2
    wr = WAIT_WEIGHT * r

    def keep_cost(k: float) -> float:  # every gap, no pre-resume
        kk = k + d
        n_over = pts.count(kk, 2 * _BIG)
        return pts.gsum(0, kk) + n_over * (kk + r + wr)

    ks = {bounds.clamp(0.0), bounds.clamp(bounds.max_s)}
    ks |= {bounds.clamp(g + BIN_S / 2 - d) for g in pts.g if g < _BIG}
    scored = sorted((keep_cost(k), k) for k in ks)
    best_cost, best_k = scored[0]
    plan = Plan(best_k, (), "histogram")
    hold_max = min(bounds.max_s, MAX_HOLD_S)
    peaks = [
        g
        for g, w0, w1 in zip(pts.g, pts.w, pts.w[1:], strict=False)
        if 0 < g < BINS * BIN_S and (w1 - w0) >= max(PEAK_SHARE * total, PEAK_MIN)
    ]
    for g_lo in peaks:
        # Ready a round before the peak's bin opens: the resume lands up to a round late, and
        # a caller who finds the service still starting retries only after a back-off.
        s = g_lo - BIN_S / 2 - r - ROUND_S
        sd = s + d
        if sd <= best_k + d:
            continue
        # Window terms (gaps from s on), relative to "every gap > k waits R".
        base = -wr * pts.count(sd, 2 * _BIG)
        base += WAIT_WEIGHT * ((sd + r) * pts.count(sd, sd + r) - pts.gsum(sd, sd + r))
        for g_hi in (g for g in pts.g if g_lo <= g < _BIG):
            e = g_hi + BIN_S / 2
            ed = e + d
            if ed - sd - r > hold_max:
                break
            win = base + pts.gsum(sd + r, ed) - (sd + r) * pts.count(sd + r, ed)
            win += (ed - sd + wr) * pts.count(ed, 2 * _BIG)
            # The best keep-alive that ends before the window opens.
            k_cost, k = next(((c, k) for c, k in scored if k + d <= sd), (None, 0.0))
            if k_cost is None:
                continue
            cost = k_cost + win
            if cost < best_cost - 1e-9:
                best_cost, plan = cost, Plan(k, ((s, e),), "histogram")
    return plan


def _long_window(model: IdleModel, plan: Plan, bounds: Bounds, r: float) -> Plan:
    """Time-series fallback for gaps beyond the histogram: when the last long gaps agree (a
    nightly job, say), pre-resume ahead of the next one. Their median is robust to one odd
    gap (a DST change moves a local-time job by an hour once)."""
    if plan.windows or len(model.long) < 3 or model.hist[BINS] < 0.2 * model.samples:
        return plan
    recent = sorted(model.long[-4:])
    mid = median(recent)
    near = [g for g in recent if abs(g - mid) <= max(2 * BIN_S, 0.01 * mid)]
    if len(near) < 3:
        return plan
    spread = max(near) - min(near)
    hold = spread + 2 * ROUND_S
    if hold > min(bounds.max_s, MAX_HOLD_S) or hold / 2 > r:
        return plan
    start = min(near) - r - ROUND_S  # the resume lands within a round: ready before min(near)
    return Plan(plan.keep_alive, ((start, max(near) + ROUND_S),), "long_gaps")


# ---------------------------------------------------------------------------------------------
# Deciding (lifecycle.py asks once the hard rules allow)


def current_plan(model: IdleModel | None, bounds: Bounds) -> Plan:
    """The stored plan clamped to today's bounds (break-even for a service never seen)."""
    if model is None or model.plan is None:
        r = model.resume_s() if model is not None else DEFAULT_RESUME_S
        return Plan(bounds.clamp(r))
    hold_max = bounds.max_s
    keep = bounds.clamp(model.plan.keep_alive)
    period = _period_window(model, keep, bounds)
    if period is not None:
        return Plan(keep, (period,), "period")
    windows = tuple((s, min(e, s + (model.resume_s() + hold_max))) for s, e in model.plan.windows)
    return Plan(keep, windows, model.plan.basis)


def _period_window(model: IdleModel, keep: float, bounds: Bounds) -> tuple[float, float] | None:
    """A job started by a clock (hourly, nightly): when the last start-to-start intervals
    agree, pre-resume for the next start, counted from this busy period's start rather than
    from its end (a run's length varies; its start does not). Relative to the idle anchor."""
    if model.began is None or model.last is None or len(model.periods) < PERIOD_SAMPLES - 1:
        return None
    recent = sorted(model.periods[-PERIOD_SAMPLES:])
    mid = median(recent)
    near = [p for p in recent if abs(p - mid) <= max(BIN_S, 0.01 * mid)]
    if len(near) < PERIOD_SAMPLES - 1:
        return None
    r = model.resume_s()
    offset = model.began - model.last  # <= 0: the start of the work the anchor ended
    start = min(near) + offset - r - ROUND_S  # the resume lands within a round of this
    end = max(near) + offset + ROUND_S
    hold = end - start - r
    if start <= keep or hold > min(bounds.max_s, MAX_HOLD_S) or hold / 2 > r:
        return None
    return (start, end)


def hold_until(plan: Plan, anchor: float, now: float) -> float | None:
    """While running and idle since ``anchor``: the instant until which to stay up, or None
    when the plan lets it be suspended now."""
    if now < anchor + plan.keep_alive:
        return anchor + plan.keep_alive
    for s, e in plan.windows:
        if anchor + s <= now < anchor + e:
            return anchor + e
    return None


def pre_resume_due(
    plan: Plan, anchor: float, now: float, resume_s: float, resumed_at: float | None
) -> bool:
    """While suspended: a window is open, there is time to be ready before it ends, and this
    window has not been resumed for already."""
    for s, e in plan.windows:
        opened = anchor + s
        if opened <= now < anchor + e - resume_s and (resumed_at is None or resumed_at < opened):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# The stored form (one string attribute of the service-state item)


def encode(model: IdleModel) -> str:
    hist = {str(i): c for i, c in enumerate(model.hist) if c}
    doc: dict[str, object] = {"v": _FORMAT, "h": hist, "n": model.gaps, "s": model.streak}
    if model.long:
        doc["l"] = list(model.long)
    if model.resumes:
        doc["r"] = list(model.resumes)
    if model.last is not None:
        doc["t"] = round(float(model.last), 3)
    if model.began is not None:
        doc["b"] = round(float(model.began), 3)
    if model.periods:
        doc["q"] = list(model.periods)
    if model.plan is not None:
        doc["p"] = [
            round(float(model.plan.keep_alive), 1),
            [[round(float(s), 1), round(float(e), 1)] for s, e in model.plan.windows],
            model.plan.basis,
            model.plan_gaps,
        ]
    return json.dumps(doc, separators=(",", ":"))


def decode(text: str | None) -> IdleModel | None:
    """The stored form back; None for a missing or unreadable one (learning starts again)."""
    if not text:
        return None
    try:
        doc = json.loads(text)
        if doc.get("v") != _FORMAT:
            return None
        hist = [0] * (BINS + 1)
        for key, count in doc.get("h", {}).items():
            hist[int(key)] = int(count)
        plan = None
        plan_gaps = -1
        if "p" in doc:
            keep, windows, basis, plan_gaps = doc["p"]
            plan = Plan(float(keep), tuple((float(s), float(e)) for s, e in windows), str(basis))
        return IdleModel(
            hist=tuple(hist),
            long=tuple(int(g) for g in doc.get("l", ()))[-LONG_SAMPLES:],
            resumes=tuple(int(r) for r in doc.get("r", ()))[-RESUME_SAMPLES:],
            last=float(doc["t"]) if "t" in doc else None,
            began=float(doc["b"]) if "b" in doc else None,
            periods=tuple(int(q) for q in doc.get("q", ()))[-PERIOD_SAMPLES:],
            streak=int(doc.get("s", 0)),
            gaps=int(doc.get("n", 0)),
            plan=plan,
            plan_gaps=int(plan_gaps),
        )
    except (ValueError, TypeError, KeyError, IndexError):
        return None
