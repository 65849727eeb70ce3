"""Token-classification output -> whole-word entity spans with offsets into the input. Pure.

The service answers one dict per tagged token (HuggingFace pipeline, no aggregation):
``{"word", "score", "entity", "index", "start", "end"}`` with IOB labels (``B-DISEASE``,
``I-DISEASE``; ``O`` is untagged). Grouping rules:

* a token continues the open span when it has the same type and either says ``I-`` or is a
  piece of the same word (WordPiece ``##``, or no gap to the previous token inside a word):
  models do tag word pieces ``B-`` now and then;
* an ``I-`` token joins the open span of its type only across a gap without words (untagged
  tokens are missing from the output); otherwise it starts a span (the pipeline does the same);
* a span is widened to whole words, so a model that tagged only ``amox`` of ``amoxicillin``
  still yields the word; widening stops at the neighbouring span;
* ``start``/``end`` come from the token when they are valid offsets into the text, otherwise the
  word is searched after the previous token (older models answer without offsets);
* ``score`` is the mean of the span's token scores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_JOINERS = frozenset("'\u2019-")


@dataclass(frozen=True)
class EntitySpan:
    label: str
    start: int
    end: int
    text: str = field(repr=False)
    score: float


@dataclass(frozen=True)
class _Token:
    prefix: str  # "B", "I" or "" (IO scheme)
    label: str
    start: int
    end: int
    score: float
    piece: bool  # a WordPiece continuation ("##...")


@dataclass
class _Open:
    label: str
    start: int
    end: int
    scores: list[float]


def _is_word_char(text: str, i: int) -> bool:
    """Letters and digits, plus an apostrophe or hyphen between two of them ("Crohn's")."""
    if not 0 <= i < len(text):
        return False
    ch = text[i]
    if ch.isalnum():
        return True
    return (
        ch in _JOINERS and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
    )


def _split_label(raw: str) -> tuple[str, str] | None:
    """``B-X`` -> ("B", "X"); ``X`` -> ("", "X"); ``O`` or empty -> None."""
    value = raw.strip()
    if not value or value.upper() == "O":
        return None
    if len(value) > 2 and value[1] in "-_" and value[0].upper() in "BIES":
        head = value[0].upper()
        # BIOES/BILOU: S (single) and E (end) behave like B and I here.
        return ("B" if head in "BS" else "I", value[2:])
    return ("", value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _locate(text: str, item: Mapping[str, Any], cursor: int) -> tuple[int, int, bool] | None:
    word = item.get("word")
    piece = isinstance(word, str) and word.startswith("##")
    start, end = item.get("start"), item.get("end")
    if (
        isinstance(start, int)
        and isinstance(end, int)
        and not isinstance(start, bool)
        and not isinstance(end, bool)
        and 0 <= start < end <= len(text)
    ):
        return start, end, piece
    if not isinstance(word, str):
        return None
    needle = word[2:] if piece else word
    if not needle.strip():
        return None
    # Case-insensitive (uncased models answer lower case) without changing offsets.
    match = re.compile(re.escape(needle), re.IGNORECASE).search(text, cursor)
    if match is None:
        return None
    return match.start(), match.end(), piece


def _tokens(text: str, output: Iterable[Any]) -> list[_Token]:
    tokens: list[_Token] = []
    cursor = 0
    for item in output:
        if not isinstance(item, Mapping):
            continue
        raw = item.get("entity", item.get("entity_group"))
        parsed = _split_label(raw) if isinstance(raw, str) else None
        if parsed is None:
            continue
        where = _locate(text, item, cursor)
        if where is None:
            continue
        start, end, piece = where
        cursor = end
        score = _number(item.get("score"))
        tokens.append(_Token(parsed[0], parsed[1], start, end, score or 0.0, piece))
    tokens.sort(key=lambda t: (t.start, t.end))
    return tokens


def _continues(span: _Open, token: _Token, text: str) -> bool:
    if token.label != span.label:
        return False
    if token.start < span.end:  # overlaps the span: another piece of what is already in it
        return True
    if token.prefix == "I":
        # Untagged tokens are not in the output: only merge across a gap with no word in it.
        return not any(ch.isalnum() for ch in text[span.end : token.start])
    # Same word: a WordPiece, or no gap between the two tokens inside a word.
    adjacent = token.start == span.end and _is_word_char(text, span.end - 1)
    return token.piece or (adjacent and _is_word_char(text, token.start))


def _widen(text: str, start: int, end: int, low: int, high: int) -> tuple[int, int]:
    while start > low and _is_word_char(text, start - 1) and _is_word_char(text, start):
        start -= 1
    while end < high and _is_word_char(text, end) and _is_word_char(text, end - 1):
        end += 1
    return start, end


def group_entities(text: str, output: Sequence[Any] | None) -> list[EntitySpan]:
    """Whole-word entity spans, in text order, from one text's token-classification output."""
    if not output:
        return []
    spans: list[_Open] = []
    for token in _tokens(text, output):
        current = spans[-1] if spans else None
        if current is not None and _continues(current, token, text):
            current.end = max(current.end, token.end)
            current.scores.append(token.score)
        else:
            spans.append(_Open(token.label, token.start, token.end, [token.score]))

    result: list[EntitySpan] = []
    for i, span in enumerate(spans):
        low = result[-1].end if result else 0
        high = spans[i + 1].start if i + 1 < len(spans) else len(text)
        start, end = _widen(text, max(span.start, low), span.end, low, high)
        if start >= end:
            continue
        score = round(sum(span.scores) / len(span.scores), 4)
        result.append(EntitySpan(span.label, start, end, text[start:end], score))
    return result
