"""Stored notes for the on-demand API: a note named by reference (an allow-listed table, a key,
optionally a version) runs through the model inside Snowflake, and only the model's output
comes back (``reference.statement.note_select``). The note text never leaves Snowflake.

Entity spans are built from the model's own tokens (``token_spans``): their offsets and words.
The inline route widens spans to whole words of the text it holds; here there is no text to
widen on, which is the point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spcs_gateway.errors import ErrorCode, GatewayError, PoisonError, TransientError
from spcs_gateway.reference.allow_list import NoteTable, ReferenceSettings
from spcs_gateway.reference.route import classify_statement_error
from spcs_gateway.reference.statement import note_select
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.spcs_client import InferenceInput, RowResult


class Sql(Protocol):
    def execute(
        self, sql: str, params: Sequence[Any] = (), *, error_code: ErrorCode = ...
    ) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class TokenSpan:
    label: str
    start: int
    end: int
    score: float
    text: str = field(repr=False)  # the model's words: PHI-derived, never logged


def _token(item: Any) -> tuple[str, str, int, int, float, str] | None:
    if not isinstance(item, dict):
        return None
    tag, word = item.get("entity", item.get("entity_group")), item.get("word")
    start, end, score = item.get("start"), item.get("end"), item.get("score")
    if not (isinstance(tag, str) and isinstance(word, str)):
        return None
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
        return None
    if not isinstance(score, int | float):
        return None
    prefix, _, label = tag.partition("-") if tag[:2] in {"B-", "I-"} else ("", "", tag)
    if not label or label == "O":
        return None
    return prefix, label, start, end, float(score), word


def token_spans(output: Any) -> list[TokenSpan]:
    """IOB tokens (``{"word", "entity", "start", "end", "score"}``) -> spans, in text order.

    A token continues the open span when it has the same label and is an ``I-`` tag or a
    WordPiece (``##``) piece; the span's text joins the words (a gap becomes one space);
    its score is the mean. Tokens without valid offsets are skipped.
    """
    tokens = [t for t in (_token(item) for item in output or ()) if t is not None]
    tokens.sort(key=lambda t: (t[2], t[3]))
    spans: list[tuple[str, int, int, list[float], str]] = []
    for prefix, label, start, end, score, word in tokens:
        piece = word.startswith("##")
        if spans and spans[-1][0] == label and (prefix == "I" or piece) and start >= spans[-1][2]:
            open_label, open_start, open_end, scores, text = spans[-1]
            joined = text + (word[2:] if piece else (" " if start > open_end else "") + word)
            spans[-1] = (open_label, open_start, end, [*scores, score], joined)
        else:
            spans.append((label, start, end, [score], word.removeprefix("##")))
    return [
        TokenSpan(label, start, end, round(sum(scores) / len(scores), 4), text)
        for label, start, end, scores, text in spans
    ]


class StoredNotes:
    """The API's port onto stored notes (``ApiDeps.stored``). It is also an ``Inference``
    (``infer``) whose inputs are references, so ``OnDemandInference`` gives stored notes the
    same wait for a starting service, ensure_ready and on-demand marking as inline calls."""

    def __init__(self, sql: Sql, references: ReferenceSettings) -> None:
        self._sql = sql
        self._refs = references

    @property
    def search_table(self) -> NoteTable | None:
        name = self._refs.search_table
        return self._refs.note_table(name) if name is not None else None

    def output(
        self, service: ServiceConfig, table: str, key: str, version: str | None = None
    ) -> Any:
        """The model output for one stored note. Raises ``PoisonError`` REFERENCE_NOT_ALLOWED /
        REFERENCE_NOT_FOUND / INVALID_EVENT, ``ServiceUnavailableError`` while the service
        starts, or the statement's ``GatewayError``."""
        note = self._refs.note_table(table)
        if note is None:
            raise PoisonError(ErrorCode.REFERENCE_NOT_ALLOWED, "table is not allow-listed")
        if version is not None and note.version_column is None:
            # No note of that table has versions, so none has the one asked for.
            raise PoisonError(ErrorCode.REFERENCE_NOT_FOUND, "table has no version column")
        statement = note_select(service, note, key, version)
        try:
            rows = self._sql.execute(
                statement.sql, statement.params, error_code=ErrorCode.SERVICE_ERROR
            )
        except GatewayError as exc:
            raise classify_statement_error(exc) from None
        if not rows:
            raise PoisonError(ErrorCode.REFERENCE_NOT_FOUND, "no row with that key and version")
        value = rows[0][0]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise TransientError(ErrorCode.BAD_RESPONSE, "output is not JSON") from None
        return value

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        """One result per input; an input's values are (table, key, version or None)."""
        out: list[RowResult] = []
        for item in inputs:
            table, key, version = item.values
            started = time.perf_counter()
            try:
                output = self.output(service, table, key, version)
            except GatewayError as error:
                out.append(RowResult(item.key, None, error, _ms(started)))
                continue
            out.append(RowResult(item.key, output, None, _ms(started)))
        return out


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
