"""Tiny stand-ins for the model stacks the tests never install (transformers, open_clip).

``FakeTokenClassificationPipeline`` answers like a ``transformers`` token-classification
pipeline without aggregation: one dict per token whose label is not ``"O"`` (the pipeline's
``ignore_labels``), with the raw label strings of the checkpoint's ``id2label``.
``TinyClipEncoder`` is a deterministic random projection (numpy) with the ``ClipEncoder`` shape.
``StandInSignatureModule`` mimics ``snowflake.ml.model.model_signature``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

TOKEN_RE = re.compile(r"\w+|[^\w\s]")

# The disease checkpoint's id2label as published: the outside label is the digit "0".
DISEASE_ID2LABEL = {0: "B-DISEASE", 1: "I-DISEASE", 2: "0"}
CHEMICAL_ID2LABEL = {"0": "B-CHEMICAL", "1": "I-CHEMICAL", "2": "O"}


def tokens(text: str) -> list[re.Match[str]]:
    return list(TOKEN_RE.finditer(text))


class FakeTokenizer:
    def __init__(self, *, is_fast: bool = True, model_max_length: int = 512) -> None:
        self.is_fast = is_fast
        self.model_max_length = model_max_length

    def __call__(self, text: str, **kwargs: Any) -> dict[str, Any]:
        assert kwargs.get("add_special_tokens") is False
        assert kwargs.get("return_offsets_mapping") is True
        return {"offset_mapping": [(m.start(), m.end()) for m in tokens(text)]}


class FakeTokenClassificationPipeline:
    """``tags``: lower-cased word -> raw label; every other token gets ``outside``."""

    def __init__(
        self,
        id2label: Mapping[Any, str],
        tags: Mapping[str, str],
        *,
        outside: str = "O",
        scores: Mapping[str, float] | None = None,
        max_positions: int = 512,
        is_fast: bool = True,
        fail_on: str | None = None,
    ) -> None:
        self.model = SimpleNamespace(
            config=SimpleNamespace(id2label=dict(id2label), max_position_embeddings=max_positions)
        )
        self.tokenizer = FakeTokenizer(is_fast=is_fast)
        self.tags = dict(tags)
        self.outside = outside
        self.scores = dict(scores or {})
        self.fail_on = fail_on
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str], batch_size: int = 1) -> list[list[dict[str, Any]]]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            if self.fail_on is not None and self.fail_on in text:
                # Real libraries put input in messages now and then; it must not leak.
                raise RuntimeError(f"cannot handle {text!r}")
            items = []
            for position, match in enumerate(tokens(text), start=1):
                label = self.tags.get(match.group().lower(), self.outside)
                if label == "O":
                    continue
                items.append(
                    {
                        "entity": label,
                        "score": np.float32(self.scores.get(match.group().lower(), 0.875)),
                        "index": np.int64(position),
                        "word": match.group(),
                        "start": match.start(),
                        "end": match.end(),
                    }
                )
            out.append(items)
        return out


def disease_pipeline(**kwargs: Any) -> FakeTokenClassificationPipeline:
    tags = {"kawasaki": "B-DISEASE", "disease": "I-DISEASE", "asthma": "B-DISEASE"}
    tags.update(kwargs.pop("tags", {}))
    return FakeTokenClassificationPipeline(DISEASE_ID2LABEL, tags, outside="0", **kwargs)


def chemical_pipeline(**kwargs: Any) -> FakeTokenClassificationPipeline:
    tags = {"amoxicillin": "B-CHEMICAL", "ibuprofen": "B-CHEMICAL"}
    tags.update(kwargs.pop("tags", {}))
    return FakeTokenClassificationPipeline(CHEMICAL_ID2LABEL, tags, outside="O", **kwargs)


class TinyClipEncoder:
    """Images: 8x8 average pool of the normalised pixels, projected to ``dim``. Texts: a
    character-trigram hash histogram, projected to ``dim``. Fixed seed: deterministic."""

    def __init__(self, dim: int = 16, *, logit_scale: float = 100.0, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.image_projection = rng.standard_normal((8 * 8 * 3, dim))
        self.text_projection = rng.standard_normal((257, dim))
        self._logit_scale = logit_scale
        self.image_batches: list[tuple[int, ...]] = []
        self.text_batches: list[list[str]] = []

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        self.image_batches.append(tuple(pixels.shape))
        n = pixels.shape[0]
        pooled = pixels.reshape(n, 8, 28, 8, 28, 3).mean(axis=(2, 4)).reshape(n, -1)
        result: np.ndarray = pooled @ self.image_projection
        return result

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_batches.append(list(texts))
        counts = np.zeros((len(texts), 257))
        for row, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                counts[row, sum(map(ord, padded[i : i + 3])) % 257] += 1.0
        result: np.ndarray = counts @ self.text_projection
        return result


# BiomedCLIP's open_clip_config.json as published (model card repository).
BIOMEDCLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {
            "timm_model_name": "vit_base_patch16_224",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 224,
        },
        "text_cfg": {
            "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
            "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 256,
        },
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


# A stand-in for snowflake.ml.model.model_signature: the constructors and to_dict() of
# snowflake.ml.model._signatures.core (snowflake-ml-python 2.6.0), tuple shapes included.
class _DataType(enum.Enum):
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    BOOL = "BOOL"
    STRING = "STRING"
    BYTES = "BYTES"
    TIMESTAMP_NTZ = "TIMESTAMP_NTZ"


class _FeatureSpec:
    def __init__(
        self,
        name: str,
        dtype: _DataType,
        shape: tuple[int, ...] | None = None,
        nullable: bool = True,
    ) -> None:
        assert isinstance(dtype, _DataType)
        assert shape is None or isinstance(shape, tuple)
        self._name, self._dtype, self._shape, self._nullable = name, dtype, shape, nullable

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self._dtype.name,
            "name": self._name,
            "nullable": self._nullable,
        }
        if self._shape is not None:
            out["shape"] = self._shape
        return out


class _FeatureGroupSpec:
    def __init__(self, name: str, specs: list[Any], shape: tuple[int, ...] | None = None) -> None:
        assert specs
        assert all(isinstance(s, _FeatureSpec) for s in specs)
        self._name, self._specs, self._shape = name, specs, shape

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self._name, "specs": [s.to_dict() for s in self._specs]}
        if self._shape is not None:
            out["shape"] = self._shape
        return out


class _ParamSpec:
    def __init__(self, name: str, dtype: _DataType, default_value: Any, shape: Any = None) -> None:
        self._name, self._dtype, self._default, self._shape = name, dtype, default_value, shape

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self._name,
            "dtype": self._dtype.name,
            "default_value": self._default,
        }
        if self._shape is not None:
            out["shape"] = self._shape
        return out


class _ModelSignature:
    def __init__(
        self, inputs: list[Any], outputs: list[Any], params: list[Any] | None = None
    ) -> None:
        names = [s._name.lower() for s in inputs] + [p._name.lower() for p in params or []]
        assert len(names) == len(set(names)), "param names collide with inputs"
        self._inputs, self._outputs, self._params = inputs, outputs, params or []

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_dict() for s in self._inputs],
            "outputs": [s.to_dict() for s in self._outputs],
            "params": [p.to_dict() for p in self._params],
        }


StandInSignatureModule = SimpleNamespace(
    DataType=_DataType,
    FeatureSpec=_FeatureSpec,
    FeatureGroupSpec=_FeatureGroupSpec,
    ParamSpec=_ParamSpec,
    ModelSignature=_ModelSignature,
)
