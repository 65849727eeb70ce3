"""Fault injection for the ingress endpoints: error answers, latency, dropped connections.

A spec reads ``<service>:<key>=<value>,...`` where ``<service>`` is a logical name
(``biobert_ner``), a fully qualified service name or ``*`` (also the default when omitted):

    biobert_ner:503=0.05,429=0.02,500=0.01,drop=0.01,latency_ms=200,latency_p=0.1,seed=7

Status keys (429, 500, 502, 503, 504) and ``drop`` are probabilities of mutually exclusive
outcomes (one uniform draw per request); ``latency_ms`` is added with probability
``latency_p`` (default 1) on top of whatever else happens; ``retry_after`` (seconds, default 1)
goes into the ``Retry-After`` header of 429 answers; ``seed`` makes the spec's own random
stream reproducible. A rule for the service itself wins over a ``*`` rule.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FAULT_STATUSES = (429, 500, 502, 503, 504)
WILDCARD = "*"
_MAX_LATENCY_MS = 120_000


@dataclass(frozen=True)
class Fault:
    """What to do to one request."""

    status: int | None = None  # answer this instead of the model
    drop: bool = False  # close the connection without an answer
    latency_ms: int = 0  # wait this long first
    retry_after: float | None = None  # for the Retry-After header


def _probability(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"fault key {key!r} needs a number") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault key {key!r} must be a probability in [0, 1]")
    return value


@dataclass(frozen=True)
class FaultSpec:
    target: str = WILDCARD
    statuses: tuple[tuple[int, float], ...] = ()
    drop: float = 0.0
    latency_ms: int = 0
    latency_p: float = 1.0
    retry_after: float = 1.0
    seed: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        text = text.strip()
        target, sep, body = text.partition(":")
        if not sep:
            target, body = WILDCARD, text
        target = target.strip() or WILDCARD
        values: dict[str, Any] = {}
        statuses: dict[int, float] = {}
        for item in filter(None, (part.strip() for part in body.split(","))):
            key, eq, raw = item.partition("=")
            key, raw = key.strip().lower(), raw.strip()
            if not eq:
                raise ValueError(f"fault item {key!r} must be key=value")
            if key.isdigit():
                if int(key) not in FAULT_STATUSES:
                    raise ValueError(f"fault status must be one of {FAULT_STATUSES}")
                statuses[int(key)] = _probability(key, raw)
            elif key in ("drop", "latency_p"):
                values[key] = _probability(key, raw)
            elif key in ("latency_ms", "seed"):
                try:
                    values[key] = int(raw)
                except ValueError:
                    raise ValueError(f"fault key {key!r} needs an integer") from None
            elif key == "retry_after":
                try:
                    values[key] = float(raw)
                except ValueError:
                    raise ValueError("fault key 'retry_after' needs a number") from None
            else:
                raise ValueError(f"unknown fault key {key!r}")
        spec = cls(target=target, statuses=tuple(sorted(statuses.items())), **values)
        spec._validate()
        return spec

    def _validate(self) -> None:
        if sum(p for _, p in self.statuses) + self.drop > 1.0 + 1e-9:
            raise ValueError("fault probabilities (statuses + drop) add up to more than 1")
        if not 0 <= self.latency_ms <= _MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be within 0..{_MAX_LATENCY_MS}")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    def matches(self, names: Iterable[str]) -> bool:
        wanted = self.target.upper()
        return wanted == WILDCARD or any(wanted == n.upper() for n in names)

    def to_text(self) -> str:
        parts = [f"{status}={p:g}" for status, p in self.statuses]
        if self.drop:
            parts.append(f"drop={self.drop:g}")
        if self.latency_ms:
            parts += [f"latency_ms={self.latency_ms}", f"latency_p={self.latency_p:g}"]
        if self.retry_after != 1.0:
            parts.append(f"retry_after={self.retry_after:g}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return f"{self.target}:{','.join(parts)}"


@dataclass
class _Rule:
    spec: FaultSpec
    rng: random.Random = field(repr=False)


class FaultInjector:
    """Thread-safe holder of the active specs; replaced at run time by the admin API."""

    def __init__(self, specs: Iterable[FaultSpec] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.set(specs)

    def set(self, specs: Iterable[FaultSpec]) -> None:
        # Each rule draws from its own stream, so a seeded rule is reproducible whatever
        # traffic other services get.
        rules = [_Rule(spec, random.Random(spec.seed)) for spec in specs]  # noqa: S311
        with self._lock:
            self._rules = rules

    @property
    def specs(self) -> list[FaultSpec]:
        with self._lock:
            return [rule.spec for rule in self._rules]

    def _rule_for(self, names: tuple[str, ...]) -> _Rule | None:
        chosen: _Rule | None = None
        for rule in self._rules:  # last matching rule wins; a named rule beats the wildcard
            if not rule.spec.matches(names):
                continue
            if chosen is None or rule.spec.target != WILDCARD or chosen.spec.target == WILDCARD:
                chosen = rule
        return chosen

    def decide(self, *names: str) -> Fault | None:
        """The fault for one request to the service known by ``names`` (logical name, FQN)."""
        with self._lock:
            rule = self._rule_for(names)
            if rule is None:
                return None
            spec = rule.spec
            draw = rule.rng.random()
            latency = (
                spec.latency_ms if spec.latency_ms and rule.rng.random() < spec.latency_p else 0
            )
        cumulative = 0.0
        for status, p in spec.statuses:
            cumulative += p
            if draw < cumulative:
                retry = spec.retry_after if status == 429 else None
                return Fault(status=status, latency_ms=latency, retry_after=retry)
        if draw < cumulative + spec.drop:
            return Fault(drop=True, latency_ms=latency)
        return Fault(latency_ms=latency) if latency else None


def parse_faults(texts: Iterable[str]) -> list[FaultSpec]:
    return [FaultSpec.parse(text) for text in texts if text.strip()]
