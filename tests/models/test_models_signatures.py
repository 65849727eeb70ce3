"""spec -> snowflake.ml ModelSignature: what the registry stores equals spec's to_dict().

``models_fakes.StandInSignatureModule`` reproduces the constructors and ``to_dict()`` of
``snowflake.ml.model._signatures.core`` (snowflake-ml-python 2.6.0: shapes are tuples there,
JSON lists once stored). With snowflake-ml installed, the same checks run on the real module.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from models_fakes import StandInSignatureModule

from spcs_models import signatures, spec

_REAL = importlib.util.find_spec("snowflake") is not None and (
    importlib.util.find_spec("snowflake.ml") is not None
)


def _modules() -> list[Any]:
    modules: list[Any] = [pytest.param(StandInSignatureModule, id="stand-in")]
    modules.append(
        pytest.param(
            "real",
            id="snowflake-ml",
            marks=pytest.mark.skipif(not _REAL, reason="snowflake-ml-python is not installed"),
        )
    )
    return modules


def _resolve(module: Any) -> Any:
    if module == "real":
        from snowflake.ml.model import model_signature

        return model_signature
    return module


@pytest.mark.parametrize("module", _modules())
@pytest.mark.parametrize("deployment", spec.DEPLOYMENTS, ids=lambda d: d.logical_name)
def test_converted_signature_is_stored_exactly_as_spec_to_dict(
    module: Any, deployment: spec.ModelDeployment
) -> None:
    converted = signatures.to_snowml(deployment.signature, _resolve(module))
    assert signatures.as_stored(converted) == deployment.signature.to_dict()


@pytest.mark.parametrize("module", _modules())
def test_method_signatures_key_is_the_deployment_method(module: Any) -> None:
    for deployment in spec.DEPLOYMENTS:
        sigs = signatures.method_signatures(deployment, _resolve(module))
        assert list(sigs) == [deployment.method]
        assert signatures.as_stored(sigs[deployment.method]) == deployment.signature.to_dict()


def test_clip_signature_declares_the_template_param_with_biomedclip_default() -> None:
    stored = signatures.as_stored(signatures.to_snowml(spec.CLIP_SIGNATURE, StandInSignatureModule))
    assert stored["params"] == [
        {"name": "hypothesis_template", "dtype": "STRING", "default_value": "this is a photo of {}"}
    ]
    assert stored["inputs"][0] == {"type": "BYTES", "name": "images", "nullable": True}
    assert stored["inputs"][1]["shape"] == [-1]
