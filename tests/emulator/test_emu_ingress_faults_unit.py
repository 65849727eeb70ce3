"""Fault specs: parsing, validation, targeting and seeded rates (no I/O)."""

from __future__ import annotations

from collections import Counter

import pytest

from spcs_local.emulator.faults import Fault, FaultInjector, FaultSpec, parse_faults

FQN = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"


def test_parse_full_spec() -> None:
    spec = FaultSpec.parse(
        "biobert_ner:503=0.05,429=0.02,500=0.01,drop=0.01,latency_ms=200,latency_p=0.1,seed=7"
    )
    assert spec.target == "biobert_ner"
    assert spec.statuses == ((429, 0.02), (500, 0.01), (503, 0.05))
    assert (spec.drop, spec.latency_ms, spec.latency_p, spec.seed) == (0.01, 200, 0.1, 7)
    assert FaultSpec.parse(spec.to_text()) == spec


def test_target_defaults_to_wildcard() -> None:
    assert FaultSpec.parse("503=0.5").target == "*"
    assert FaultSpec.parse(f"{FQN}:503=0.5").target == FQN


@pytest.mark.parametrize(
    "text",
    [
        "x:503=1.5",
        "x:418=0.1",
        "x:503=0.7,429=0.4",
        "x:latency_ms=-1",
        "x:bogus=1",
        "x:503",
        "x:seed=a",
    ],
)
def test_invalid_specs(text: str) -> None:
    with pytest.raises(ValueError, match=r"fault|latency"):
        FaultSpec.parse(text)


def test_rates_follow_the_spec_and_are_reproducible() -> None:
    def run() -> Counter[str]:
        injector = FaultInjector(parse_faults(["biobert_ner:503=0.3,429=0.2,drop=0.1,seed=11"]))
        seen: Counter[str] = Counter()
        for _ in range(4000):
            fault = injector.decide(FQN, "biobert_ner")
            if fault is None:
                seen["ok"] += 1
            elif fault.drop:
                seen["drop"] += 1
            else:
                seen[str(fault.status)] += 1
        return seen

    first = run()
    assert first == run()  # same seed, same sequence
    assert abs(first["503"] / 4000 - 0.3) < 0.03
    assert abs(first["429"] / 4000 - 0.2) < 0.03
    assert abs(first["drop"] / 4000 - 0.1) < 0.02
    assert abs(first["ok"] / 4000 - 0.4) < 0.03


def test_429_carries_retry_after_and_latency_is_independent() -> None:
    injector = FaultInjector([FaultSpec.parse("*:429=1,retry_after=3,latency_ms=50,seed=1")])
    assert injector.decide("anything") == Fault(status=429, latency_ms=50, retry_after=3.0)
    only_latency = FaultInjector([FaultSpec.parse("*:latency_ms=20,latency_p=1")])
    assert only_latency.decide("x") == Fault(latency_ms=20)


def test_named_rule_beats_wildcard_and_others_are_untouched() -> None:
    injector = FaultInjector(parse_faults(["biobert_ner:500=1", "*:503=1"]))
    assert injector.decide(FQN, "biobert_ner") == Fault(status=500)
    assert injector.decide("PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE", "biomedclip") == Fault(
        status=503
    )
    by_fqn = FaultInjector(parse_faults([f"{FQN.lower()}:502=1"]))
    assert by_fqn.decide(FQN, "biobert_ner") == Fault(status=502)
    assert by_fqn.decide("biomedclip") is None
    by_fqn.set([])
    assert by_fqn.decide(FQN) is None
