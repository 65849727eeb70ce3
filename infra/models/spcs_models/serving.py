# mypy: disable-error-code="misc, untyped-decorator"
# (without snowflake-ml's stubs, CustomModel and inference_api are Any to mypy)
"""The two services as snowflake-ml ``CustomModel`` classes (what the inference server runs).

Thin adapters: column in, ``ner.NerModel`` / ``biomedclip.ZeroShotClassifier`` in the middle,
column out, with the names, method and parameters of ``spec``. The models load from the
artifacts bundled at log time (``self.context.path(<key>)``) when the server constructs the
class; the deployment tool constructs them with ``load=False`` only to log them.

This module must not use ``from __future__ import annotations``: snowflake-ml checks the
annotations of ``@inference_api`` methods as objects (``pd.DataFrame``, ``str``), and checks
that every parameter after the input frame is keyword-only, has a default and an annotation.

snowflake-ml pickles this module by value with the class; ``spcs_models`` itself is shipped as a
code path, so ``spec``, ``ner`` and ``biomedclip`` import in the container.

PHI: nothing here logs; errors raised by the models carry fixed texts and row positions only.
"""

import threading
from typing import Any

import pandas as pd
from snowflake.ml.model import custom_model

from spcs_models import spec, weights

__all__ = ["MODEL_CLASSES", "BiobertNer", "BiomedClipClassifier"]


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    """A column by its signature name (case-insensitive: SQL callers may upper-case it)."""
    if name in frame.columns:
        return list(frame[name].tolist())
    folded = {str(column).lower(): column for column in frame.columns}
    if name.lower() not in folded:
        raise ValueError(f"input column {name!r} is missing")
    return list(frame[folded[name.lower()]].tolist())


class BiobertNer(custom_model.CustomModel):
    """``spec.NER``: chemicals and diseases from two BioBERT checkpoints, merged."""

    def __init__(self, context: custom_model.ModelContext | None = None, *, load: bool = True):
        super().__init__(context)
        self._lock = threading.Lock()
        self._model: Any = None
        if load:
            self._loaded()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from spcs_models import ner

                self._model = ner.load_model(
                    [
                        self.context.path(weights.NER_CHEMICAL_ARTIFACT),
                        self.context.path(weights.NER_DISEASE_ARTIFACT),
                    ],
                    labels=spec.NER.entity_labels,
                )
            return self._model

    @custom_model.inference_api
    def predict(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803 - snowflake-ml's name
        texts = _column(X, spec.NER.signature.input_names[0])
        tagged = self._loaded().predict(texts)
        return pd.DataFrame({spec.NER.signature.output_name: tagged}, index=X.index)


class BiomedClipClassifier(custom_model.CustomModel):
    """``spec.BIOMEDCLIP``: zero-shot labels for an image with BiomedCLIP."""

    def __init__(self, context: custom_model.ModelContext | None = None, *, load: bool = True):
        super().__init__(context)
        self._lock = threading.Lock()
        self._model: Any = None
        if load:
            self._loaded()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from spcs_models import biomedclip

                encoder = biomedclip.load_encoder(
                    self.context.path(weights.CLIP_MODEL_ARTIFACT),
                    self.context.path(weights.CLIP_TEXT_ARTIFACT),
                )
                self._model = biomedclip.ZeroShotClassifier(encoder)
            return self._model

    @custom_model.inference_api
    def predict(
        self,
        X: pd.DataFrame,  # noqa: N803 - snowflake-ml's name
        *,
        hypothesis_template: str = spec.BIOMEDCLIP_TEMPLATE,
    ) -> pd.DataFrame:
        images_name, labels_name = spec.BIOMEDCLIP.signature.input_names
        ranked = self._loaded().predict(
            _column(X, images_name),
            _column(X, labels_name),
            # A NULL parameter may arrive as None: it means the default.
            hypothesis_template=(
                spec.BIOMEDCLIP_TEMPLATE if hypothesis_template is None else hypothesis_template
            ),
        )
        return pd.DataFrame({spec.BIOMEDCLIP.signature.output_name: ranked}, index=X.index)


# The class that serves each deployment, by logical name.
MODEL_CLASSES: dict[str, type[custom_model.CustomModel]] = {
    spec.NER.logical_name: BiobertNer,
    spec.BIOMEDCLIP.logical_name: BiomedClipClassifier,
}
