"""``spec.Signature`` -> ``snowflake.ml.model.model_signature.ModelSignature``.

The conversion is explicit (no ``infer_signature``): every input, output and parameter of the
spec becomes the matching ``FeatureSpec`` / ``FeatureGroupSpec`` / ``ParamSpec``, so what the
Model Registry stores (``ModelSignature.to_dict()``, JSON) equals ``spec.Signature.to_dict()``.

``module`` is ``snowflake.ml.model.model_signature`` by default (imported only then); anything
with the same five names works, which is how the tests check the conversion without
snowflake-ml installed.
"""

from __future__ import annotations

import json
from typing import Any

from spcs_models import spec

__all__ = ["as_stored", "method_signatures", "to_snowml"]


def _module(module: Any | None) -> Any:
    if module is not None:
        return module
    from snowflake.ml.model import model_signature

    return model_signature


def _feature(ms: Any, feature: spec.Feature) -> Any:
    return ms.FeatureSpec(
        name=feature.name,
        dtype=ms.DataType[feature.dtype],
        shape=feature.shape,
        nullable=True,
    )


def _output(ms: Any, output: spec.Feature | spec.FeatureGroup) -> Any:
    if isinstance(output, spec.FeatureGroup):
        return ms.FeatureGroupSpec(
            name=output.name,
            specs=[_feature(ms, s) for s in output.specs],
            shape=output.shape,
        )
    return _feature(ms, output)


def to_snowml(signature: spec.Signature, module: Any | None = None) -> Any:
    """The ``ModelSignature`` for ``signature``."""
    ms = _module(module)
    return ms.ModelSignature(
        inputs=[_feature(ms, f) for f in signature.inputs],
        outputs=[_output(ms, o) for o in signature.outputs],
        params=[
            ms.ParamSpec(name=p.name, dtype=ms.DataType[p.dtype], default_value=p.default)
            for p in signature.params
        ],
    )


def method_signatures(
    deployment: spec.ModelDeployment, module: Any | None = None
) -> dict[str, Any]:
    """``log_model(signatures=...)``: the deployment's one method and its signature."""
    return {deployment.method: to_snowml(deployment.signature, module)}


def as_stored(model_signature: Any) -> dict[str, Any]:
    """``model_signature.to_dict()`` as the registry stores it (JSON: tuples become lists)."""
    result: dict[str, Any] = json.loads(json.dumps(model_signature.to_dict()))
    return result
