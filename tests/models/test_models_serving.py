"""The CustomModel adapters (``spcs_models.serving``), inspected without snowflake-ml.

Without snowflake-ml-python and pandas (CI), minimal stand-ins for
``snowflake.ml.model.custom_model`` and ``pandas.DataFrame`` are put in ``sys.modules`` for
the duration of each test, so the real adapter classes import and their method signatures can
be checked against ``spec`` the way snowflake-ml checks them (``_validate_predict_function``:
input and return annotated ``pd.DataFrame``; every further parameter keyword-only, with a
default and a supported annotation). With snowflake-ml installed the real module is used and
its own validator runs too.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from models_fakes import TinyClipEncoder, chemical_pipeline, disease_pipeline

import spcs_models
from spcs_models import biomedclip, deploy, ner, spec, weights

_REAL = all(importlib.util.find_spec(m) is not None for m in ("pandas", "snowflake")) and (
    importlib.util.find_spec("snowflake.ml") is not None
)
# spec dtype -> the Python annotation snowflake-ml maps to it (DataType.from_python_type).
_ANNOTATION = {"STRING": str, "DOUBLE": float, "INT64": int, "BOOL": bool, "BYTES": bytes}


def _stub_modules() -> dict[str, types.ModuleType]:
    pandas = types.ModuleType("pandas")

    class Series(list[Any]):
        def tolist(self) -> list[Any]:
            return list(self)

    class DataFrame:
        def __init__(self, data: dict[str, Any] | None = None, index: Any = None) -> None:
            self._data = {k: list(v) for k, v in (data or {}).items()}
            rows = len(next(iter(self._data.values()), []))
            self.index = list(range(rows)) if index is None else list(index)

        @property
        def columns(self) -> list[str]:
            return list(self._data)

        def __getitem__(self, key: str) -> Series:
            return Series(self._data[key])

    pandas.DataFrame = DataFrame  # type: ignore[attr-defined]

    custom_model = types.ModuleType("snowflake.ml.model.custom_model")

    class ModelContext:
        def __init__(self, **kwargs: Any) -> None:
            self.artifacts = {k: v for k, v in kwargs.items() if isinstance(v, str)}

        def path(self, key: str) -> str:
            return self.artifacts[key]

    class CustomModel:
        def __init__(self, context: ModelContext | None = None) -> None:
            self.context = context or ModelContext()

    def inference_api(func: Any) -> Any:
        func.__dict__["_is_inference_api"] = True
        return func

    custom_model.ModelContext = ModelContext  # type: ignore[attr-defined]
    custom_model.CustomModel = CustomModel  # type: ignore[attr-defined]
    custom_model.inference_api = inference_api  # type: ignore[attr-defined]
    ml = types.ModuleType("snowflake.ml")
    model = types.ModuleType("snowflake.ml.model")
    model.custom_model = custom_model  # type: ignore[attr-defined]
    ml.model = model  # type: ignore[attr-defined]
    return {
        "pandas": pandas,
        "snowflake.ml": ml,
        "snowflake.ml.model": model,
        "snowflake.ml.model.custom_model": custom_model,
    }


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    if not _REAL:
        for name, module in _stub_modules().items():
            monkeypatch.setitem(sys.modules, name, module)
    sys.modules.pop("spcs_models.serving", None)
    try:
        yield importlib.import_module("spcs_models.serving")
    finally:
        sys.modules.pop("spcs_models.serving", None)
        if hasattr(spcs_models, "serving"):
            delattr(spcs_models, "serving")


def _frame(serving: types.ModuleType, data: dict[str, list[Any]]) -> Any:
    return serving.pd.DataFrame(data)


def _column(frame: Any, name: str) -> list[Any]:
    return list(frame[name].tolist())


@pytest.mark.parametrize("deployment", spec.DEPLOYMENTS, ids=lambda d: d.logical_name)
def test_method_signature_matches_spec_params(
    serving: types.ModuleType, deployment: spec.ModelDeployment
) -> None:
    cls = serving.MODEL_CLASSES[deployment.logical_name]
    method = getattr(cls, deployment.method)
    assert method.__dict__.get("_is_inference_api") is True
    sig = inspect.signature(method)
    params = list(sig.parameters.values())
    assert params[0].name == "self"
    assert params[1].annotation is serving.pd.DataFrame
    assert params[1].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert sig.return_annotation is serving.pd.DataFrame
    extra = params[2:]
    assert [p.name for p in extra] == deployment.signature.param_names
    for p, declared in zip(extra, deployment.signature.params, strict=True):
        assert p.kind is inspect.Parameter.KEYWORD_ONLY
        assert p.default == declared.default
        assert p.annotation is _ANNOTATION[declared.dtype]
    if _REAL:
        from snowflake.ml.model import custom_model

        custom_model._validate_predict_function(method)


def test_clip_default_template_is_biomedclips_own_prompt(serving: types.ModuleType) -> None:
    sig = inspect.signature(serving.BiomedClipClassifier.predict)
    assert sig.parameters["hypothesis_template"].default == "this is a photo of {}"


def test_ner_predict_adapts_columns_to_the_model(serving: types.ModuleType) -> None:
    model = serving.BiobertNer(load=False)
    model._model = ner.NerModel(
        [ner.PipelineTagger(chemical_pipeline()), ner.PipelineTagger(disease_pipeline())]
    )
    # Column names may come upper-cased from SQL callers.
    frame = _frame(serving, {"INPUTS": ["asthma after ibuprofen", ""]})
    out = model.predict(frame)
    assert list(out.columns) == [spec.NER.signature.output_name]
    rows = _column(out, "outputs")
    assert [[t["entity"] for t in row] for row in rows] == [["B-DISEASE", "B-CHEMICAL"], []]
    assert list(out.index) == list(frame.index)


def test_clip_predict_adapts_columns_and_template(serving: types.ModuleType) -> None:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (9, 9, 9)).save(buffer, format="PNG")
    image_text = base64.b64encode(buffer.getvalue()).decode()
    encoder = TinyClipEncoder()
    model = serving.BiomedClipClassifier(load=False)
    model._model = biomedclip.ZeroShotClassifier(encoder)
    frame = _frame(serving, {"images": [image_text], "candidate_labels": [["a", "b"]]})
    rows = _column(model.predict(frame), "labels")
    assert {r["label"] for r in rows[0]} == {"a", "b"}
    assert sorted(encoder.text_batches[-1]) == ["this is a photo of a", "this is a photo of b"]
    model.predict(frame, hypothesis_template="{} on a radiograph")
    assert sorted(encoder.text_batches[-1]) == ["a on a radiograph", "b on a radiograph"]
    # A NULL parameter means the default template: the first request's (cached) prompts.
    assert _column(model.predict(frame, hypothesis_template=None), "labels") == rows
    assert len(encoder.text_batches) == 2


def test_missing_input_column_is_a_clear_error(serving: types.ModuleType) -> None:
    model = serving.BiobertNer(load=False)
    model._model = object()
    with pytest.raises(ValueError, match="'inputs' is missing"):
        model.predict(_frame(serving, {"text": ["x"]}))


def test_the_server_construction_loads_from_the_bundled_artifacts(
    serving: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_ner_load(dirs: list[str], *, labels: Any) -> str:
        seen["ner"] = (dirs, tuple(labels))
        return "ner-model"

    def fake_encoder(model_dir: str, text_dir: str) -> TinyClipEncoder:
        seen["clip"] = (model_dir, text_dir)
        return TinyClipEncoder()

    monkeypatch.setattr(ner, "load_model", fake_ner_load)
    monkeypatch.setattr(biomedclip, "load_encoder", fake_encoder)
    context = serving.custom_model.ModelContext(
        **{
            weights.NER_CHEMICAL_ARTIFACT: "/m/chem",
            weights.NER_DISEASE_ARTIFACT: "/m/dis",
            weights.CLIP_MODEL_ARTIFACT: "/m/clip",
            weights.CLIP_TEXT_ARTIFACT: "/m/clip_text",
        }
    )
    assert serving.BiobertNer(context)._model == "ner-model"
    assert seen["ner"] == (["/m/chem", "/m/dis"], spec.NER_LABELS)
    assert isinstance(serving.BiomedClipClassifier(context)._model, biomedclip.ZeroShotClassifier)
    assert seen["clip"] == ("/m/clip", "/m/clip_text")


def test_deploy_builds_unloaded_models_over_the_downloaded_dirs(
    serving: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def must_not_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("logging must not load the weights")

    monkeypatch.setattr(ner, "load_model", must_not_load)
    monkeypatch.setattr(biomedclip, "load_encoder", must_not_load)
    for deployment in spec.DEPLOYMENTS:
        paths = {
            s.artifact: tmp_path / s.artifact for s in weights.SOURCES[deployment.logical_name]
        }
        model = deploy.build_model(deployment, paths)
        assert type(model) is serving.MODEL_CLASSES[deployment.logical_name]
        assert model._model is None
        for key, path in paths.items():
            assert model.context.path(key) == str(path)
