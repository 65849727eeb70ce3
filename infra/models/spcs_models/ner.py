"""Biomedical NER from two BioBERT checkpoints: chemicals and diseases, merged.

``alvaroalon2/biobert_chemical_ner`` (BC5CDR-chem + BC4CHEMD) and
``alvaroalon2/biobert_diseases_ner`` (BC5CDR-disease + NCBI-disease) each tag one entity kind.
Both run on every text; their token tags are merged into one list in the shape of a
HuggingFace token-classification pipeline without aggregation::

    {"word": str, "score": float, "entity": "B-CHEMICAL", "index": int, "start": int, "end": int}

ordered by ``start`` (``spec.NER_SIGNATURE``).

Labels come from each checkpoint's ``config.id2label`` and are normalised when the model is
loaded (``normalise_labels``): ``B-x`` / ``I-x`` map onto the declared set (``spec.NER_LABELS``,
upper case), everything else (``O``, the digit ``0`` the disease checkpoint uses, ``LABEL_n``)
is "outside" and never returned. Loading fails when a checkpoint has no entity label at all
(``LABEL_0``/``LABEL_1``: an untrained or unnamed head), names a kind outside the declared set,
or when the checkpoints together do not produce every declared label.

Texts longer than the encoder's 512 positions are tagged in windows cut at whitespace, so
entities past the first window are not lost; ``start``/``end`` are offsets into the whole text
and ``index`` counts tokens over the whole text (1 = first token, as the pipeline counts
``[CLS]`` as 0).

Where two checkpoints claim overlapping text (a span tagged both CHEMICAL and DISEASE), the
span with the higher mean score is kept (then the longer one, then the first checkpoint's).

Everything above is pure (``NerModel`` over ``TokenTagger`` objects). ``PipelineTagger`` adapts
a ``transformers`` token-classification pipeline and ``load_pipeline`` builds one from a local
directory; ``transformers`` is imported only there.

PHI: nothing here logs; errors carry fixed texts and row positions, never input text or output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from spcs_models import spec

__all__ = [
    "MAX_TEXT_CHARS",
    "CheckpointError",
    "NerModel",
    "PipelineTagger",
    "RowErrors",
    "TokenTagger",
    "check_label_sets",
    "load_model",
    "load_pipeline",
    "normalise_labels",
    "token_windows",
]

# Longest text accepted per row (characters). Far above any clinical note; bounds the work.
MAX_TEXT_CHARS = 1_000_000
# BERT-base: 512 positions, 2 of them for [CLS] and [SEP].
DEFAULT_MAX_TOKENS = 510
# Rows named in a RowErrors message (the count is always complete).
_MAX_ROWS_IN_MESSAGE = 10

_BIO_RE = re.compile(r"^([BI])-(\S.*)$", re.IGNORECASE)
_DEFAULT_NAME_RE = re.compile(r"^LABEL_\d+$")


class CheckpointError(ValueError):
    """A checkpoint cannot serve the declared label set (raised at load time)."""


class RowErrors(ValueError):  # noqa: N818 - a collection of per-row errors, not one error
    """Some rows of a request cannot be served.

    ``errors`` maps the row's position in the request to a fixed reason; the message lists
    them too. Neither ever contains input text.
    """

    def __init__(self, errors: Mapping[int, str], total: int) -> None:
        self.errors = dict(sorted(errors.items()))
        shown = list(self.errors.items())[:_MAX_ROWS_IN_MESSAGE]
        detail = "; ".join(f"row {row}: {reason}" for row, reason in shown)
        more = len(self.errors) - len(shown)
        suffix = f"; and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.errors)} of {total} rows rejected: {detail}{suffix}")


def normalise_labels(
    id2label: Mapping[Any, Any], allowed: Sequence[str] = spec.NER_LABELS
) -> dict[str, str | None]:
    """Raw label -> declared label, or None for "outside".

    ``B-x`` / ``I-x`` (any case) become ``B-X`` / ``I-X`` and must be in ``allowed``; every
    other label is outside. Raises ``CheckpointError`` when no label is an entity label (an
    untrained ``LABEL_0``/``LABEL_1`` head, or names that are not B-/I- tags) or when a B-/I-
    label names a kind that is not declared.
    """
    if not id2label:
        raise CheckpointError("checkpoint config has no id2label")
    declared = {label.upper() for label in allowed}
    mapping: dict[str, str | None] = {}
    for raw in id2label.values():
        if not isinstance(raw, str):
            raise CheckpointError("checkpoint config has a label that is not text")
        match = _BIO_RE.match(raw.strip())
        if match is None:
            mapping[raw] = None  # O, the digit 0, LABEL_n, ...
            continue
        label = f"{match.group(1).upper()}-{match.group(2).strip().upper()}"
        if label not in declared:
            raise CheckpointError(
                f"checkpoint label {raw!r} is not in the declared label set {sorted(declared)}"
            )
        mapping[raw] = label
    if not any(value is not None for value in mapping.values()):
        if all(_DEFAULT_NAME_RE.match(str(raw).strip()) for raw in mapping):
            raise CheckpointError(
                "checkpoint labels are only LABEL_n defaults: its token-classification head "
                "is untrained or unnamed"
            )
        raise CheckpointError("checkpoint has no B-/I- entity label")
    return mapping


def check_label_sets(
    id2labels: Sequence[Mapping[Any, Any]], labels: Sequence[str] = spec.NER_LABELS
) -> list[dict[str, str | None]]:
    """``normalise_labels`` for each checkpoint, and together they must produce every
    declared label. Raises ``CheckpointError``."""
    if not id2labels:
        raise CheckpointError("no checkpoint given")
    maps = [normalise_labels(id2label, labels) for id2label in id2labels]
    produced = {label for m in maps for label in m.values() if label is not None}
    missing = [label for label in labels if label.upper() not in produced]
    if missing:
        raise CheckpointError(f"no checkpoint produces the declared label(s) {missing}")
    return maps


def token_windows(
    offsets: Sequence[tuple[int, int]], max_tokens: int = DEFAULT_MAX_TOKENS
) -> list[tuple[int, int]]:
    """Split tokens ``[0, len(offsets))`` into ranges of at most ``max_tokens``.

    A range ends where the next token starts after a gap (whitespace), so no word is cut; a
    single gap-free run longer than ``max_tokens`` is cut hard.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    windows: list[tuple[int, int]] = []
    lo, n = 0, len(offsets)
    while lo < n:
        hi = min(lo + max_tokens, n)
        if hi < n:
            cut = hi
            while cut > lo + 1 and offsets[cut][0] <= offsets[cut - 1][1]:
                cut -= 1
            if offsets[cut][0] > offsets[cut - 1][1]:
                hi = cut
        windows.append((lo, hi))
        lo = hi
    return windows


class TokenTagger(Protocol):
    """One token-classification checkpoint (``PipelineTagger`` adapts a HF pipeline)."""

    @property
    def id2label(self) -> Mapping[Any, Any]: ...

    @property
    def max_tokens(self) -> int: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of the text's tokens, without special tokens."""
        ...

    def tag(self, texts: Sequence[str]) -> list[list[Mapping[str, Any]]]:
        """Pipeline output per text: dicts with entity, score, index, word, start, end."""
        ...


@dataclass(frozen=True)
class _Token:
    word: str
    score: float
    entity: str  # normalised label
    index: int
    start: int
    end: int

    @property
    def prefix(self) -> str:
        return self.entity[0]

    @property
    def kind(self) -> str:
        return self.entity[2:]

    def as_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "score": self.score,
            "entity": self.entity,
            "index": self.index,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class _Span:
    tokens: tuple[_Token, ...]
    head: int  # position of the checkpoint in the model's list

    @property
    def start(self) -> int:
        return self.tokens[0].start

    @property
    def end(self) -> int:
        return max(t.end for t in self.tokens)

    @property
    def mean_score(self) -> float:
        return sum(t.score for t in self.tokens) / len(self.tokens)


class _UnusableAnswerError(Exception):
    """The checkpoint answered something unusable (fixed text, no input in it)."""


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _UnusableAnswerError
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise _UnusableAnswerError from None
    if number != value:
        raise _UnusableAnswerError
    return number


def _spans(tokens: Sequence[_Token], head: int) -> list[_Span]:
    """Group one checkpoint's tags: a span starts at B- or at an I- that does not continue."""
    spans: list[list[_Token]] = []
    for token in sorted(tokens, key=lambda t: (t.start, t.end)):
        current = spans[-1] if spans else None
        if (
            current is not None
            and token.prefix == "I"
            and token.kind == current[-1].kind
            and token.index == current[-1].index + 1
        ):
            current.append(token)
        else:
            spans.append([token])
    return [_Span(tuple(span), head) for span in spans]


def merge_spans(per_head: Sequence[Sequence[_Token]]) -> list[_Token]:
    """All checkpoints' tags, overlapping spans resolved, ordered by start offset."""
    spans = [span for head, tokens in enumerate(per_head) for span in _spans(tokens, head)]
    ranked = sorted(spans, key=lambda s: (-s.mean_score, -(s.end - s.start), s.head, s.start))
    kept: list[_Span] = []
    for span in ranked:
        if all(span.end <= other.start or other.end <= span.start for other in kept):
            kept.append(span)
    out = [token for span in kept for token in span.tokens]
    return sorted(out, key=lambda t: (t.start, t.end, t.index))


class NerModel:
    """Runs every checkpoint on each text and merges their tags. Pure over ``TokenTagger``s."""

    def __init__(
        self,
        taggers: Sequence[TokenTagger],
        *,
        labels: Sequence[str] = spec.NER_LABELS,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self._taggers = list(taggers)
        self._maps = check_label_sets([t.id2label for t in self._taggers], labels)
        self.labels = tuple(label.upper() for label in labels)
        self.max_chars = max_chars

    def predict(self, texts: Sequence[Any]) -> list[list[dict[str, Any]]]:
        """Tags per text, in order. Raises ``RowErrors`` naming every row that cannot be served
        (rows are checked before any is run, so a bad row costs no model time)."""
        errors: dict[int, str] = {}
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                errors[row] = "inputs must be text"
            elif len(text) > self.max_chars:
                errors[row] = "input text is too long"
        if errors:
            raise RowErrors(errors, len(texts))
        results: list[list[dict[str, Any]]] = []
        for row, text in enumerate(texts):
            try:
                results.append(self._one(text))
            except _UnusableAnswerError:
                errors[row] = "the model answered an unusable result for this input"
            except Exception:  # noqa: BLE001 - a model failure on one input is that row's error
                errors[row] = "the model could not process this input"
        if errors:
            raise RowErrors(errors, len(texts))
        return results

    def _one(self, text: str) -> list[dict[str, Any]]:
        if not text.strip():
            return []
        per_head = [
            self._tag(tagger, mapping, text)
            for tagger, mapping in zip(self._taggers, self._maps, strict=True)
        ]
        return [token.as_dict() for token in merge_spans(per_head)]

    @staticmethod
    def _tag(tagger: TokenTagger, mapping: Mapping[str, str | None], text: str) -> list[_Token]:
        offsets = tagger.token_offsets(text)
        if not offsets:
            return []
        windows = token_windows(offsets, tagger.max_tokens)
        pieces = [text[offsets[lo][0] : offsets[hi - 1][1]] for lo, hi in windows]
        outputs = tagger.tag(pieces)
        if len(outputs) != len(pieces):
            raise _UnusableAnswerError
        tokens: list[_Token] = []
        for (lo, _hi), piece, items in zip(windows, pieces, outputs, strict=True):
            base = offsets[lo][0]
            for item in items:
                raw = item.get("entity")
                if not isinstance(raw, str) or raw not in mapping:
                    raise _UnusableAnswerError
                label = mapping[raw]
                if label is None:
                    continue
                start, end = _as_int(item.get("start")), _as_int(item.get("end"))
                if not 0 <= start < end <= len(piece):
                    raise _UnusableAnswerError
                score = float(item.get("score", 0.0))
                if not 0.0 <= score <= 1.0:
                    raise _UnusableAnswerError
                word = item.get("word")
                tokens.append(
                    _Token(
                        word=str(word) if word is not None else piece[start:end],
                        score=score,
                        entity=label,
                        index=_as_int(item.get("index")) + lo,
                        start=base + start,
                        end=base + end,
                    )
                )
        return tokens


# --------------------------------------------------------------------------------------------
# transformers adapter and loading (imports transformers/torch only when called)
# --------------------------------------------------------------------------------------------


class PipelineTagger:
    """A ``transformers`` token-classification pipeline (no aggregation) as a ``TokenTagger``.

    Needs a fast tokenizer: offsets come from it.
    """

    def __init__(self, pipe: Any, *, batch_size: int = 8) -> None:
        tokenizer = pipe.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise CheckpointError("the checkpoint needs a fast tokenizer (character offsets)")
        self._pipe = pipe
        self._batch_size = batch_size
        config = pipe.model.config
        positions = int(getattr(config, "max_position_embeddings", 512) or 512)
        model_max = int(getattr(tokenizer, "model_max_length", positions) or positions)
        self._max_tokens = max(1, min(positions, model_max) - 2)
        self._id2label: dict[Any, Any] = dict(config.id2label)

    @property
    def id2label(self) -> Mapping[Any, Any]:
        return self._id2label

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self._pipe.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False
        )
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]

    def tag(self, texts: Sequence[str]) -> list[list[Mapping[str, Any]]]:
        out = self._pipe(list(texts), batch_size=self._batch_size)
        if len(texts) == 1 and out and isinstance(out[0], Mapping):
            out = [out]  # a single text may come back unwrapped
        return [list(items) for items in out]


def load_pipeline(model_dir: str, *, device: int | None = None) -> Any:
    """A token-classification pipeline over a local checkpoint directory (no hub access)."""
    import torch
    from transformers import pipeline

    if device is None:
        device = 0 if torch.cuda.is_available() else -1
    return pipeline(
        "token-classification",
        model=model_dir,
        tokenizer=model_dir,
        # Token-level output (one dict per tagged token, "entity" and "index" present), which
        # is what spec.NER_SIGNATURE declares; the gateway groups tokens into entities.
        aggregation_strategy="none",
        device=device,
        model_kwargs={"local_files_only": True},
    )


def load_model(
    model_dirs: Iterable[str],
    *,
    labels: Sequence[str] = spec.NER_LABELS,
    loader: Callable[[str], Any] = load_pipeline,
) -> NerModel:
    """``NerModel`` over checkpoints in local directories; fails on unusable labels."""
    return NerModel([PipelineTagger(loader(path)) for path in model_dirs], labels=labels)
