"""BiomedCLIP zero-shot image classification over open_clip.

``microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`` (MIT; ViT-B/16 image tower,
PubMedBERT text tower, context length 256). For each row: the image, its candidate labels and
the request's ``hypothesis_template`` (default ``"this is a photo of {}"``, the model card's
prompt) give ``[{"label", "score"}]`` sorted by score, highest first, where the scores are the
softmax over the candidates of ``logit_scale.exp() * <image embedding, text embedding>`` with
both embeddings L2-normalised (what ``CustomTextCLIP.forward`` returns and the card uses).

Preprocessing is BiomedCLIP's (open_clip ``image_transform`` for its ``preprocess_cfg``): resize
the shortest side to 224 with PIL bicubic, center crop 224x224, convert to RGB, scale to [0, 1]
and normalise with the OpenAI CLIP mean/std. Done here in numpy, in the same order as open_clip,
so the result is the same float32 array. One deliberate difference: 16-bit and float images
(``I;16``, ``I``, ``F``; common for radiographs) are first stretched to 8 bits over their own
value range, where PIL's RGB conversion would clip them to white.

Images arrive as bytes, or as text over REST: base64 (optionally a ``data:`` URL) or hex.

Everything above is pure: the encoder (``ClipEncoder``) is injected. ``OpenClipEncoder`` wraps
an open_clip model and tokenizer; ``load_encoder`` builds them from local files (the model
card's "load from local files" recipe, with the text tower's Hugging Face config bundled so
nothing is fetched from the Hub). torch and open_clip are imported only there.

PHI: nothing here logs; errors carry fixed texts and row positions, never image bytes, labels
or scores.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import string
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from spcs_models import spec

__all__ = [
    "CONTEXT_LENGTH",
    "IMAGE_SIZE",
    "MEAN",
    "STD",
    "ClipEncoder",
    "ConfigError",
    "OpenClipEncoder",
    "RowErrors",
    "ZeroShotClassifier",
    "check_open_clip_config",
    "decode_image_field",
    "format_prompts",
    "load_encoder",
    "open_image",
    "preprocess",
    "rank_labels",
    "validate_template",
    "zero_shot_scores",
]

IMAGE_SIZE = 224
CONTEXT_LENGTH = 256
# OpenAI CLIP's constants, BiomedCLIP's preprocess_cfg.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
DEFAULT_MAX_PIXELS = 40_000_000
MAX_LABELS = 1000
MAX_LABEL_CHARS = 1000
_MAX_ROWS_IN_MESSAGE = 10
_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_DATA_URL_RE = re.compile(r"^data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)


class ConfigError(ValueError):
    """The bundled open_clip config does not describe the model this code preprocesses for."""


class BadInput(ValueError):  # noqa: N818 - one row's fixed reason
    """One row cannot be served; the message is a fixed text."""


class RowErrors(ValueError):  # noqa: N818 - a collection of per-row errors, not one error
    """Some rows of a request cannot be served.

    ``errors`` maps the row's position in the request to a fixed reason; the message lists
    them too. Neither ever contains image bytes, labels or scores.
    """

    def __init__(self, errors: Mapping[int, str], total: int) -> None:
        self.errors = dict(sorted(errors.items()))
        shown = list(self.errors.items())[:_MAX_ROWS_IN_MESSAGE]
        detail = "; ".join(f"row {row}: {reason}" for row, reason in shown)
        more = len(self.errors) - len(shown)
        suffix = f"; and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.errors)} of {total} rows rejected: {detail}{suffix}")


# --------------------------------------------------------------------------------------------
# Input decoding and preprocessing
# --------------------------------------------------------------------------------------------


def _looks_like_image(data: bytes) -> bool:
    if data.startswith(_IMAGE_MAGIC):
        return True
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def decode_image_field(value: Any) -> bytes:
    """The image bytes of one ``images`` value: bytes, or base64 / hex text (REST sends text).

    Hex is tried first when the text is hex-shaped and decodes to a known image signature
    (base64 of an image never is: PNG starts ``iVBOR``, JPEG ``/9j/``); otherwise base64,
    with or without a ``data:<type>;base64,`` prefix.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not data:
            raise BadInput("image is empty")
        return data
    if not isinstance(value, str):
        raise BadInput("image must be bytes, base64 text or hex text")
    text = "".join(value.split())
    if not text:
        raise BadInput("image is empty")
    if _HEX_RE.match(text):
        data = bytes.fromhex(text)
        if _looks_like_image(data):
            return data
    match = _DATA_URL_RE.match(text)
    if match:
        text = text[match.end() :]
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        try:
            data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise BadInput("image text is neither base64 nor hex") from None
    if not data:
        raise BadInput("image is empty")
    return data


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The decoded first frame. The declared size is checked before pixels are decoded."""
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise BadInput("image dimensions exceed the pixel limit")
        image.load()
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput("image dimensions exceed the pixel limit") from None
    except Exception:  # noqa: BLE001 - any decoder failure on untrusted bytes is bad input
        # Pillow raises OSError, SyntaxError, ValueError, EOFError, struct.error, ... and the
        # message may quote the bytes: it is dropped.
        raise BadInput("image could not be decoded") from None
    return image


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """Stretch a 16-bit / 32-bit / float single-channel image to "L" over its value range."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    low, high = float(np.min(values)), float(np.max(values))
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        scaled = np.zeros(values.shape, dtype=np.uint8)
    else:
        scaled = np.clip(np.rint((values - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)  # 2-D uint8 -> mode "L"


def preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """BiomedCLIP's eval transform: ``(size, size, 3)`` float32, normalised (HWC)."""
    image = _to_eight_bit(image)
    width, height = image.size
    # torchvision Resize(size) on a PIL image: shortest side -> size, long side truncated.
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    # torchvision CenterCrop: offsets rounded half to even, as Python's round().
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    image = image.crop((left, top, left + size, top + size))
    image = image.convert("RGB")
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(MEAN, dtype=np.float32)
    std = np.asarray(STD, dtype=np.float32)
    return np.ascontiguousarray((pixels - mean) / std, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Prompts, scores, ordering
# --------------------------------------------------------------------------------------------


def validate_template(template: Any) -> str:
    """A template with exactly one ``{}`` field and no other (``{{``/``}}`` are literal)."""
    if not isinstance(template, str):
        raise ValueError("hypothesis_template must be text")
    try:
        fields = [
            (name, fmt, conv)
            for _lit, name, fmt, conv in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:
        raise ValueError("hypothesis_template is not a valid template") from None
    if len(fields) != 1 or fields[0] != ("", "", None):
        raise ValueError('hypothesis_template must contain exactly one "{}" and no other field')
    return template


def format_prompts(template: str, labels: Sequence[str]) -> list[str]:
    """One prompt per label: the template with the label in place of ``{}``."""
    validate_template(template)
    return [template.format(label) for label in labels]


def _check_labels(labels: Any) -> list[str]:
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
        raise BadInput("candidate_labels must be a list of text")
    if not 1 <= len(labels) <= MAX_LABELS:
        raise BadInput(f"candidate_labels must hold 1 to {MAX_LABELS} labels")
    if any(not isinstance(label, str) or not label.strip() for label in labels):
        raise BadInput("candidate_labels must be non-empty text")
    if any(len(label) > MAX_LABEL_CHARS for label in labels):
        raise BadInput("a candidate label is too long")
    if len(set(labels)) != len(labels):
        raise BadInput("candidate_labels must not repeat")
    return [str(label) for label in labels]


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    result: np.ndarray = x / np.maximum(norms, 1e-12)
    return result


def zero_shot_scores(image: np.ndarray, texts: np.ndarray, logit_scale: float) -> np.ndarray:
    """Softmax over the texts of ``logit_scale * cos(image, text)``; ``logit_scale`` is the
    multiplier itself (open_clip's ``logit_scale.exp()``)."""
    img = _l2_normalise(np.asarray(image, dtype=np.float64).reshape(-1))
    txt = _l2_normalise(np.asarray(texts, dtype=np.float64))
    logits = float(logit_scale) * (txt @ img)
    logits -= np.max(logits)
    weights = np.exp(logits)
    result: np.ndarray = weights / np.sum(weights)
    return result


def rank_labels(labels: Sequence[str], scores: Sequence[float]) -> list[dict[str, Any]]:
    """``[{"label", "score"}]`` by score, highest first; ties keep the caller's order."""
    pairs = [
        {"label": label, "score": float(score)} for label, score in zip(labels, scores, strict=True)
    ]
    return sorted(pairs, key=lambda p: -p["score"])


# --------------------------------------------------------------------------------------------
# The classifier (pure over an injected encoder)
# --------------------------------------------------------------------------------------------


class ClipEncoder(Protocol):
    """Image and text towers. Embeddings need not be normalised (the classifier does it)."""

    @property
    def logit_scale(self) -> float:
        """The similarity multiplier, i.e. open_clip's ``logit_scale.exp()``."""
        ...

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """``(n, 224, 224, 3)`` preprocessed images -> ``(n, d)``."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``k`` prompts -> ``(k, d)``."""
        ...


class ZeroShotClassifier:
    """Ranks each row's candidate labels. Prompt embeddings are kept (LRU, in memory) across
    requests: label sets repeat, so most requests encode only their images."""

    def __init__(
        self,
        encoder: ClipEncoder,
        *,
        image_size: int = IMAGE_SIZE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        text_cache_size: int = 4096,
    ) -> None:
        self._encoder = encoder
        self._size = image_size
        self._max_pixels = max_pixels
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._cache_lock = threading.Lock()

    def _text_embeddings(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._cache_lock:
            found = {p: self._text_cache[p] for p in prompts if p in self._text_cache}
        missing = [p for p in prompts if p not in found]
        if missing:
            encoded = np.asarray(self._encoder.encode_texts(missing))
            if encoded.shape[0] != len(missing):
                raise RuntimeError("the encoder answered the wrong number of embeddings")
            found.update(zip(missing, encoded, strict=True))
        with self._cache_lock:
            for prompt in prompts:
                self._text_cache[prompt] = found[prompt]
                self._text_cache.move_to_end(prompt)
            while len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        return found

    def prepare(self, value: Any) -> np.ndarray:
        """One ``images`` value -> the preprocessed array (raises ``BadInput``)."""
        image = open_image(decode_image_field(value), max_pixels=self._max_pixels)
        try:
            return preprocess(image, self._size)
        finally:
            image.close()

    def predict(
        self,
        images: Sequence[Any],
        candidate_labels: Sequence[Any],
        *,
        hypothesis_template: str = spec.BIOMEDCLIP_TEMPLATE,
    ) -> list[list[dict[str, Any]]]:
        """Ranked labels per row. Raises ``ValueError`` for a bad template (the whole request)
        and ``RowErrors`` naming every bad row (before any model time is spent)."""
        validate_template(hypothesis_template)
        if len(images) != len(candidate_labels):
            raise ValueError("each image needs its own candidate labels")
        errors: dict[int, str] = {}
        pixels: list[np.ndarray] = []
        labels_per_row: list[list[str]] = []
        for row, (value, labels) in enumerate(zip(images, candidate_labels, strict=True)):
            try:
                labels_per_row.append(_check_labels(labels))
                pixels.append(self.prepare(value))
            except BadInput as exc:
                errors[row] = str(exc)
        if errors:
            raise RowErrors(errors, len(images))
        if not pixels:
            return []
        image_emb = np.asarray(self._encoder.encode_images(np.stack(pixels)))
        if image_emb.shape[0] != len(pixels):
            raise RuntimeError("the encoder answered the wrong number of embeddings")
        prompts_per_row = [format_prompts(hypothesis_template, labels) for labels in labels_per_row]
        unique = sorted({p for prompts in prompts_per_row for p in prompts})
        text_emb = self._text_embeddings(unique)
        scale = float(self._encoder.logit_scale)
        out: list[list[dict[str, Any]]] = []
        for i, (labels, prompts) in enumerate(zip(labels_per_row, prompts_per_row, strict=True)):
            texts = np.stack([text_emb[p] for p in prompts])
            scores = zero_shot_scores(image_emb[i], texts, scale)
            out.append(rank_labels(labels, scores.tolist()))
        return out


# --------------------------------------------------------------------------------------------
# open_clip: config check, encoder, loading from local files
# --------------------------------------------------------------------------------------------

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_pytorch_model.bin"
_PRIVATE_MODEL_NAME = "spcs-biomedclip-local"


def check_open_clip_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model_cfg`` of a BiomedCLIP ``open_clip_config.json``, after checking it matches
    the preprocessing here (224 px, OpenAI mean/std, bicubic/shortest, context 256, HF text
    tower). Raises ``ConfigError`` otherwise."""
    model_cfg = config.get("model_cfg")
    if not isinstance(model_cfg, Mapping):
        raise ConfigError("open_clip config has no model_cfg")
    vision = model_cfg.get("vision_cfg") or {}
    text = model_cfg.get("text_cfg") or {}
    if vision.get("image_size") != IMAGE_SIZE:
        raise ConfigError(f"image tower expects image_size {IMAGE_SIZE}")
    if text.get("context_length") != CONTEXT_LENGTH:
        raise ConfigError(f"text tower expects context_length {CONTEXT_LENGTH}")
    if not text.get("hf_model_name") or not text.get("hf_tokenizer_name"):
        raise ConfigError("text tower is not a Hugging Face model")
    pre = config.get("preprocess_cfg") or {}
    for key, expected in (("mean", MEAN), ("std", STD)):
        got = pre.get(key, expected)
        if len(got) != 3 or any(
            abs(float(a) - b) > 1e-7 for a, b in zip(got, expected, strict=True)
        ):
            raise ConfigError(f"preprocess_cfg {key} differs from the OpenAI CLIP constants")
    for key, expected_value in (
        ("size", IMAGE_SIZE),
        ("mode", "RGB"),
        ("interpolation", "bicubic"),
        ("resize_mode", "shortest"),
    ):
        if key in pre and pre[key] not in (expected_value, [expected_value] * 2):
            raise ConfigError(f"preprocess_cfg {key} differs from what this code implements")
    return dict(model_cfg)


class OpenClipEncoder:
    """An open_clip ``CustomTextCLIP`` and its tokenizer as a ``ClipEncoder``.

    Encodes in chunks, so a request with many prompts (256 tokens each) stays within memory.
    """

    IMAGE_CHUNK = 16
    TEXT_CHUNK = 64

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str = "cpu",
        context_length: int = CONTEXT_LENGTH,
    ) -> None:
        import torch

        self._torch = torch
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer
        self._device = device
        self._context_length = context_length
        with torch.no_grad():
            self._logit_scale = float(model.logit_scale.exp().item())

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        chunks = []
        for lo in range(0, pixels.shape[0], self.IMAGE_CHUNK):
            part = np.ascontiguousarray(pixels[lo : lo + self.IMAGE_CHUNK].transpose(0, 3, 1, 2))
            with torch.no_grad():
                features = self._model.encode_image(
                    torch.from_numpy(part).to(self._device), normalize=True
                )
            chunks.append(features.float().cpu().numpy())
        return np.concatenate(chunks)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        chunks = []
        for lo in range(0, len(texts), self.TEXT_CHUNK):
            tokens = self._tokenizer(
                list(texts[lo : lo + self.TEXT_CHUNK]), context_length=self._context_length
            )
            with torch.no_grad():
                features = self._model.encode_text(tokens.to(self._device), normalize=True)
            chunks.append(features.float().cpu().numpy())
        return np.concatenate(chunks)


def load_encoder(model_dir: str, text_dir: str, *, device: str | None = None) -> OpenClipEncoder:
    """BiomedCLIP from local files: ``model_dir`` holds ``open_clip_config.json``, the weights
    and the tokenizer files; ``text_dir`` the text tower's Hugging Face ``config.json`` (and
    the tokenizer files too). No Hub access."""
    import open_clip
    import torch
    from open_clip import factory

    root = Path(model_dir)
    config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    model_cfg = check_open_clip_config(config)
    text_cfg = dict(model_cfg["text_cfg"])
    # The model card's "load from local files" recipe, with the text tower pointed at the
    # bundled directory: HFTextEncoder reads its AutoConfig there, and HFTokenizer its files.
    text_cfg["hf_model_name"] = str(Path(text_dir))
    text_cfg["hf_tokenizer_name"] = str(Path(text_dir))
    model_cfg["text_cfg"] = text_cfg
    factory._MODEL_CONFIGS[_PRIVATE_MODEL_NAME] = model_cfg
    model, _, _ = open_clip.create_model_and_transforms(
        _PRIVATE_MODEL_NAME, pretrained=str(root / WEIGHTS_FILE)
    )
    tokenizer = open_clip.get_tokenizer(_PRIVATE_MODEL_NAME, context_length=CONTEXT_LENGTH)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return OpenClipEncoder(model, tokenizer, device=device)
