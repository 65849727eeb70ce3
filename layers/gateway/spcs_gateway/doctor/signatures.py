"""The registry's signature against a model version's (names and types only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spcs_gateway.doctor.report import _norm
from spcs_gateway.model_signature import (
    FeatureGroupSpec,
    FeatureSpec,
    Signature,
)

# -- signatures ------------------------------------------------------------------------------


def _columns(specs: Sequence[FeatureSpec | FeatureGroupSpec]) -> list[str]:
    return [_norm(s.name) for s in specs]


def _feature_types(specs: Sequence[FeatureSpec | FeatureGroupSpec]) -> list[str]:
    return [
        f"{_norm(s.name)}:{s.type if isinstance(s, FeatureSpec) else 'GROUP'}"
        f"{'[]' if s.shape else ''}"
        for s in specs
    ]


def compare_signatures(registry_sig: Signature, deployed: dict[str, Any]) -> list[str]:
    """Differences (names and types only) between the registry's signature and the model's."""
    try:
        model = Signature.model_validate(
            {
                "inputs": deployed.get("inputs") or [],
                "outputs": deployed.get("outputs") or [],
                "params": deployed.get("params") or [],
            }
        )
    except ValueError:
        return ["the model's signature could not be read"]
    problems: list[str] = []
    if _feature_types(registry_sig.inputs) != _feature_types(model.inputs):
        problems.append(
            f"inputs: registry {', '.join(_feature_types(registry_sig.inputs))}; "
            f"model {', '.join(_feature_types(model.inputs))}"
        )
    ours = [f"{_norm(p.name)}:{p.dtype}" for p in registry_sig.params]
    theirs = [f"{_norm(p.name)}:{p.dtype}" for p in model.params]
    if ours != theirs:
        problems.append(
            f"params: registry {', '.join(ours) or 'none'}; model {', '.join(theirs) or 'none'}"
        )
    if _columns(registry_sig.outputs)[:1] != _columns(model.outputs)[:1]:
        problems.append(
            f"output: registry {', '.join(_columns(registry_sig.outputs))}; "
            f"model {', '.join(_columns(model.outputs))}"
        )
    return problems
