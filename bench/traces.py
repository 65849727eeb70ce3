"""Arrival traces for the idle-cost benchmark (deterministic for a seed).

The family reaches from one call a day to a steady stream: Poisson at 1/day, 1/h, 1/10 min and
1/min; periodic jobs (hourly, nightly); a clinic day with a lunch lull (diurnal); bursts with
heavy-tailed (Pareto) gaps; on/off periods; plus the nightly export and sparse on-demand calls.
Times are seconds since ``EPOCH`` (a Monday, 00:00 UTC).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAY = 86_400.0
HOUR = 3_600.0
EPOCH = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday, 00:00 UTC


@dataclass(frozen=True)
class Trace:
    name: str
    description: str
    arrivals: tuple[float, ...]  # seconds since EPOCH, sorted
    horizon: float  # seconds; billing is counted inside [0, horizon]
    idle_seconds: int = 900  # the ServiceConfig.idle_seconds an operator would set
    # The ServiceConfig.min_uptime_seconds they would set (None: the policy default, 300 s).
    min_uptime_seconds: int | None = None

    @property
    def days(self) -> float:
        return self.horizon / DAY


def _poisson(rng: random.Random, start: float, end: float, per_hour: float) -> list[float]:
    out: list[float] = []
    t = start
    while per_hour > 0:
        t += rng.expovariate(per_hour / HOUR)
        if t >= end:
            break
        out.append(t)
    return out


def _make(name: str, text: str, arrivals: list[float], days: int, **kw: int | None) -> Trace:
    horizon = days * DAY
    return Trace(name, text, tuple(sorted(a for a in arrivals if 0 <= a < horizon)), horizon, **kw)  # type: ignore[arg-type]


def clinic_trace(seed: int, days: int = 7) -> Trace:
    """Weekday clinic hours: busy mornings and afternoons, a lunch lull, quiet evenings and
    nights, nothing at weekends (notes are signed during clinic hours)."""
    rng = random.Random(f"clinic-{seed}")
    segments = [(7.0, 12.0, 80.0), (12.0, 13.5, 4.0), (13.5, 17.5, 80.0), (17.5, 19.0, 8.0)]
    arrivals: list[float] = []
    for day in range(days):
        if (EPOCH + timedelta(days=day)).weekday() >= 5:
            continue
        for lo, hi, rate in segments:
            arrivals += _poisson(rng, day * DAY + lo * HOUR, day * DAY + hi * HOUR, rate)
    return _make(
        "clinic_hours",
        "weekdays 07-19 h, 80 notes/h with a 90-min lunch lull at 4/h; nights and weekends idle",
        arrivals,
        days,
    )


def nightly_export_trace(seed: int, days: int = 7) -> Trace:
    """Around 02:00 three extracts of 1,500-4,000 notes each at ~50/s, 2-8 min apart."""
    rng = random.Random(f"nightly-{seed}")
    arrivals: list[float] = []
    for day in range(days):
        t = day * DAY + 2 * HOUR + rng.uniform(-30, 30) * 60
        for _ in range(3):
            for _ in range(rng.randint(1_500, 4_000)):
                t += rng.expovariate(50.0)
                arrivals.append(t)
            t += rng.uniform(2, 8) * 60
    return _make(
        "nightly_export",
        "nightly ~02:00 +/- 30 min: 3 extracts x 1,500-4,000 notes at ~50/s, 2-8 min apart",
        arrivals,
        days,
        idle_seconds=600,
    )


def sparse_trace(seed: int, days: int = 7) -> Trace:
    """On-demand sessions (1-4 calls, 20-180 s apart), ~0.5/h by day, ~0.1/h at night."""
    rng = random.Random(f"sparse-{seed}")
    arrivals: list[float] = []
    for day in range(days):
        base = day * DAY
        starts = _poisson(rng, base, base + 6 * HOUR, 0.1)
        starts += _poisson(rng, base + 6 * HOUR, base + 22 * HOUR, 0.5)
        starts += _poisson(rng, base + 22 * HOUR, base + DAY, 0.1)
        for t in starts:
            arrivals.append(t)
            while rng.random() < 0.5:
                t += rng.uniform(20, 180)
                arrivals.append(t)
    return _make(
        "sparse_on_demand",
        "on-demand sessions of 1-4 calls, ~0.5 sessions/h 06-22 h, ~0.1/h at night",
        arrivals,
        days,
        idle_seconds=60,
        min_uptime_seconds=60,
    )


def poisson_trace(per_hour: float, label: str, days: int) -> Callable[[int, int], Trace]:
    def make(seed: int, _days: int = 7) -> Trace:
        rng = random.Random(f"poisson-{label}-{seed}")
        return _make(
            f"poisson_{label}",
            f"Poisson arrivals, {label.replace('_', ' ')} ({days} days)",
            _poisson(rng, 0.0, days * DAY, per_hour),
            days,
        )

    return make


def periodic_hourly_trace(seed: int, days: int = 7) -> Trace:
    """A job at every hour's minute 5 (cron), 20-60 calls over a minute or two."""
    rng = random.Random(f"hourly-{seed}")
    arrivals: list[float] = []
    for hour in range(days * 24):
        t = hour * HOUR + 300 + rng.uniform(0, 5)
        for _ in range(rng.randint(20, 60)):
            t += rng.expovariate(0.5)
            arrivals.append(t)
    return _make(
        "periodic_hourly", "cron job every hour at :05, 20-60 calls over ~1-2 min", arrivals, days
    )


def periodic_nightly_trace(seed: int, days: int = 14) -> Trace:
    """A job every night at 01:30 (cron, a few seconds of jitter), 100-300 calls at ~2/s."""
    rng = random.Random(f"nightly-cron-{seed}")
    arrivals: list[float] = []
    for day in range(days):
        t = day * DAY + 1.5 * HOUR + rng.uniform(0, 10)
        for _ in range(rng.randint(100, 300)):
            t += rng.expovariate(2.0)
            arrivals.append(t)
    return _make(
        "periodic_nightly",
        "cron job nightly at 01:30, 100-300 calls at ~2/s (14 days)",
        arrivals,
        days,
    )


def bursty_trace(seed: int, days: int = 7) -> Trace:
    """Bursts (geometric size, mean 8, calls ~5 s apart) separated by Pareto gaps (alpha 1.2,
    from 2 min: heavy-tailed, a few of hours)."""
    rng = random.Random(f"bursty-{seed}")
    arrivals: list[float] = []
    t = 0.0
    while t < days * DAY:
        t += 120.0 * rng.paretovariate(1.2)
        arrivals.append(t)
        while rng.random() < 7 / 8:
            t += rng.expovariate(1 / 5)
            arrivals.append(t)
    return _make(
        "bursty_heavy_tail", "bursts of ~8 calls, Pareto(1.2) gaps from 2 min", arrivals, days
    )


def on_off_trace(seed: int, days: int = 7) -> Trace:
    """On periods (exponential, mean 2 h) at 1 call / 30 s, off periods (mean 4 h) silent."""
    rng = random.Random(f"onoff-{seed}")
    arrivals: list[float] = []
    t = 0.0
    while t < days * DAY:
        on_end = t + rng.expovariate(1 / (2 * HOUR))
        arrivals += _poisson(rng, t, on_end, 120.0)
        t = on_end + rng.expovariate(1 / (4 * HOUR))
    return _make("on_off", "on (mean 2 h, 1 call/30 s) / off (mean 4 h)", arrivals, days)


TRACES: dict[str, Callable[[int, int], Trace]] = {
    "poisson_1_per_day": poisson_trace(1 / 24, "1_per_day", 60),
    "poisson_1_per_hour": poisson_trace(1.0, "1_per_hour", 7),
    "poisson_1_per_10min": poisson_trace(6.0, "1_per_10min", 7),
    "poisson_1_per_min": poisson_trace(60.0, "1_per_min", 3),
    "periodic_hourly": periodic_hourly_trace,
    "periodic_nightly": lambda seed, days: periodic_nightly_trace(seed, max(days, 14)),
    "clinic_hours": clinic_trace,
    "bursty_heavy_tail": bursty_trace,
    "on_off": on_off_trace,
    "nightly_export": nightly_export_trace,
    "sparse_on_demand": sparse_trace,
}


def real_like_population(seed: int, services: int = 100, days: int = 1) -> list[Trace]:
    """Services shaped like a public serverless invocation trace (most are rare, a few carry
    most calls; timers, diurnal, bursty and steady ones): rates log-uniform from one call a
    day to several a minute, for replay (``python -m bench.replay --real-like FILE``)."""
    rng = random.Random(f"real-like-{seed}")
    out: list[Trace] = []
    end = days * DAY
    for i in range(services):
        per_hour = 10 ** rng.uniform(-1.4, 2.6)  # 1 per ~25 h .. ~400 per hour
        kind = rng.choice(("poisson", "poisson", "timer", "diurnal", "bursty", "on_off"))
        arrivals: list[float] = []
        if kind == "poisson":
            arrivals = _poisson(rng, 0.0, end, per_hour)
        elif kind == "timer":
            period = rng.choice((60.0, 300.0, 900.0, HOUR, 6 * HOUR, DAY))
            t = rng.uniform(0, period)
            while t < end:
                arrivals += [t + rng.uniform(0, 2) + j for j in range(rng.randint(1, 5))]
                t += period
        elif kind == "diurnal":
            for day in range(days):
                lo = day * DAY + rng.uniform(6, 9) * HOUR
                arrivals += _poisson(rng, lo, lo + rng.uniform(8, 12) * HOUR, per_hour * 2)
        elif kind == "bursty":
            t = 0.0
            while t < end:
                t += 60.0 * rng.paretovariate(1.1) * max(1.0, 60 / per_hour)
                arrivals.append(t)
                while rng.random() < 0.8:
                    t += rng.expovariate(1 / 10)
                    arrivals.append(t)
        else:
            t = 0.0
            while t < end:
                on_end = t + rng.expovariate(1 / HOUR)
                arrivals += _poisson(rng, t, on_end, per_hour * 3)
                t = on_end + rng.expovariate(1 / (2 * HOUR))
        out.append(_make(f"{kind}-{i:03d}", kind, arrivals, days))
    return out
