"""The reference route: a batch of reference events becomes one MERGE per source table (and
per ``statement_rows`` references) that runs the model inside Snowflake; neither the model's
input nor its output comes back to Lambda, only counts and, when some row was not written, the
ids of the references that found no row.

Per event the answer is a ``RefOutcome``: done (its result row exists), or an error:

* ``PoisonError``: ``REFERENCE_NOT_ALLOWED`` (the table or stage is not on the registry's
  allow-list), ``REFERENCE_NOT_FOUND`` (no row with that key and version, its note/image is
  NULL, or no file at that path on the stage),
  ``MODEL_REJECTED_INPUT`` (the model refused the row: isolated by halving the statement),
  ``UNKNOWN_LABEL_SET`` / ``INVALID_EVENT`` (image labels, as inline), ``UNKNOWN_SCHEMA`` (a
  reference of the other kind than this service's task);
* ``ServiceUnavailableError(SERVICE_UNAVAILABLE)``: Snowflake refused the statement because the
  service is suspended or starting (the caller fires the readiness hook, as for inline calls);
* any other ``GatewayError`` from ``SnowflakeSql`` (transient, or ``PRIVILEGE_MISSING``).

A statement that fails otherwise fails every reference in it; statements are idempotent (MERGE
on EVENT_ID), so a retry of the whole batch cannot double a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from spcs_gateway.clock import Clock, utc_now
from spcs_gateway.errors import (
    ErrorCode,
    GatewayError,
    PoisonError,
    ServiceUnavailableError,
)
from spcs_gateway.events import ImageRefEvent, NoteRefEvent, ReferenceEvent, StageFileRef
from spcs_gateway.model_signature import Task
from spcs_gateway.reference.allow_list import (
    ImageStage,
    ImageTable,
    NoteTable,
    ReferenceSettings,
)
from spcs_gateway.reference.statement import (
    RowRef,
    Statement,
    image_merge,
    note_merge,
    stage_image_merge,
    statement_rows,
)
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.results import SELECT_IDS_PER_STATEMENT, ResultsSink

# errnos with which Snowflake refuses a service-function call because the service is suspended
# or still starting. The real numbers are not documented (docs/REFERENCE_ROUTE.md); 90010 is
# the local emulator's. Anything else stays a transient fault and is retried with backoff.
SERVICE_NOT_READY_ERRNOS = frozenset({90010})
# errnos with which a statement fails because the model refused a row (the inline route's HTTP
# 400). Not documented either; 100357 is the local emulator's. Such a chunk is split in halves
# until the refused rows stand alone: those are poison, the others are written.
MODEL_REJECTED_ERRNOS = frozenset({100357})
# Errors the rows themselves raise while a statement runs: Snowflake's 100xxx user errors (a
# key or version that does not convert to its column's type, a function that raises on a
# row). The statement is split until each such row is alone (``ReferenceRoute._isolate``).
ROW_ERRNOS = range(100000, 101000)


class Sql(Protocol):
    def execute(
        self, sql: str, params: Sequence[Any] = (), *, error_code: ErrorCode = ...
    ) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class RefOutcome:
    event_id: str
    error: GatewayError | None = None

    @property
    def done(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Group:
    table: str
    build: Callable[[Sequence[RowRef]], Statement]
    refs: list[RowRef]


def classify_statement_error(error: GatewayError) -> GatewayError:
    """A failed statement's error for its references: "service not ready" becomes
    ``SERVICE_UNAVAILABLE`` (the same path as an inline 503)."""
    if error.errno in SERVICE_NOT_READY_ERRNOS:
        return ServiceUnavailableError(
            ErrorCode.SERVICE_UNAVAILABLE, "service function: the service is not ready"
        )
    return error


class ReferenceRoute:
    def __init__(
        self,
        sql: Sql,
        results_table: str,
        references: ReferenceSettings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._sql = sql
        self._results = results_table
        self._sink = ResultsSink(sql, results_table)  # the id check after a short MERGE
        self._refs = references
        self._clock = clock
        self.statements = 0  # statements issued (tests, metrics)

    def run(self, service: ServiceConfig, events: Sequence[ReferenceEvent]) -> list[RefOutcome]:
        """One outcome per distinct event id, in first-seen order."""
        outcomes: dict[str, RefOutcome] = {}
        groups: dict[str, _Group] = {}
        seen: set[str] = set()
        processed_at = self._clock()
        for event in events:
            if event.event_id in seen:
                continue  # a duplicate shares the first one's outcome
            seen.add(event.event_id)
            try:
                group, ref = self._resolve(service, event, groups, processed_at)
            except PoisonError as exc:
                outcomes[event.event_id] = RefOutcome(event.event_id, exc)
                continue
            group.refs.append(ref)
        size = statement_rows(service)
        for group in groups.values():
            for start in range(0, len(group.refs), size):
                chunk = group.refs[start : start + size]
                for outcome in self._run_chunk(service, group, chunk):
                    outcomes[outcome.event_id] = outcome
        order = list(dict.fromkeys(e.event_id for e in events))
        return [outcomes[event_id] for event_id in order]

    def _resolve(
        self,
        service: ServiceConfig,
        event: ReferenceEvent,
        groups: dict[str, _Group],
        processed_at: datetime,
    ) -> tuple[_Group, RowRef]:
        if service.task is Task.TOKEN_CLASSIFICATION:
            if not isinstance(event, NoteRefEvent):
                raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "schema not handled by this router")
            note = self._refs.note_table(event.note.table)
            if note is None:
                raise PoisonError(ErrorCode.REFERENCE_NOT_ALLOWED, "table is not allow-listed")
            if event.note.version is not None and note.version_column is None:
                raise PoisonError(ErrorCode.INVALID_EVENT, "table has no version column")
            key = note.table.upper()
            if key not in groups:

                def build_note(refs: Sequence[RowRef], table: NoteTable = note) -> Statement:
                    return note_merge(self._results, service, table, refs, processed_at)

                groups[key] = _Group(key, build_note, [])
            version = event.note.version
            ref = RowRef(event.event_id, event.note.key, None if version is None else str(version))
            return groups[key], ref
        if not isinstance(event, ImageRefEvent):
            raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "schema not handled by this router")
        if isinstance(event.image, StageFileRef):
            return self._resolve_staged(service, event, event.image, groups, processed_at)
        image = self._refs.image_table(event.image.table)
        if image is None:
            raise PoisonError(ErrorCode.REFERENCE_NOT_ALLOWED, "table is not allow-listed")
        if event.image.version is not None and image.version_column is None:
            raise PoisonError(ErrorCode.INVALID_EVENT, "table has no version column")
        # Imported here: only image services get here, and images.py pulls in Pillow.
        from spcs_gateway.images import resolve_labels

        labels = resolve_labels(event, service)
        key = image.table.upper()
        if key not in groups:

            def build_image(refs: Sequence[RowRef], table: ImageTable = image) -> Statement:
                return image_merge(self._results, service, table, refs, processed_at)

            groups[key] = _Group(key, build_image, [])
        version = event.image.version
        ref = RowRef(
            event.event_id,
            event.image.key,
            None if version is None else str(version),
            labels=tuple(labels),
        )
        return groups[key], ref

    def _resolve_staged(
        self,
        service: ServiceConfig,
        event: ImageRefEvent,
        file: StageFileRef,
        groups: dict[str, _Group],
        processed_at: datetime,
    ) -> tuple[_Group, RowRef]:
        stage = self._refs.image_stage(file.stage)
        if stage is None:
            raise PoisonError(ErrorCode.REFERENCE_NOT_ALLOWED, "stage is not allow-listed")
        from spcs_gateway.images import resolve_labels

        labels = resolve_labels(event, service)
        key = "@" + stage.stage.upper()  # "@": a stage never shares a group with a table
        if key not in groups:
            reader = self._refs.reader_for(stage)

            def build_staged(refs: Sequence[RowRef], where: ImageStage = stage) -> Statement:
                return stage_image_merge(self._results, service, where, reader, refs, processed_at)

            groups[key] = _Group(key, build_staged, [])
        return groups[key], RowRef(event.event_id, file.path, None, labels=tuple(labels))

    def _run_chunk(
        self, service: ServiceConfig, group: _Group, chunk: Sequence[RowRef]
    ) -> list[RefOutcome]:
        statement = group.build(chunk)
        try:
            self.statements += 1
            rows = self._sql.execute(
                statement.sql, statement.params, error_code=ErrorCode.SERVICE_ERROR
            )
            inserted = _inserted(rows)
            if inserted >= len(chunk):
                return [RefOutcome(r.event_id) for r in chunk]
            written = self._written([r.event_id for r in chunk])
        except GatewayError as exc:
            errno = exc.errno
            if errno is not None and errno in ROW_ERRNOS:
                return self._isolate(service, group, chunk, errno)
            error = classify_statement_error(exc)
            return [RefOutcome(r.event_id, error) for r in chunk]
        missing = PoisonError(ErrorCode.REFERENCE_NOT_FOUND, "no row with that key and version")
        return [RefOutcome(r.event_id, None if r.event_id in written else missing) for r in chunk]

    def _isolate(
        self, service: ServiceConfig, group: _Group, chunk: Sequence[RowRef], errno: int
    ) -> list[RefOutcome]:
        """A row of ``chunk`` failed the statement: halves until each failing row is alone, so
        one bad reference never fails the others (about 2 log2(n) extra statements)."""
        if len(chunk) == 1:
            error = (
                PoisonError(ErrorCode.MODEL_REJECTED_INPUT, "the model refused the row")
                if errno in MODEL_REJECTED_ERRNOS
                else PoisonError(
                    ErrorCode.INVALID_EVENT,
                    f"the reference's values do not fit its source row (errno {errno})",
                )
            )
            return [RefOutcome(chunk[0].event_id, error)]
        middle = len(chunk) // 2
        return [
            *self._run_chunk(service, group, chunk[:middle]),
            *self._run_chunk(service, group, chunk[middle:]),
        ]

    def _written(self, event_ids: Sequence[str]) -> set[str]:
        """Which events have a result row: after a MERGE that inserted fewer rows than it was
        given, the others either already had one (a redelivery) or found no source row."""
        self.statements += -(-len(event_ids) // SELECT_IDS_PER_STATEMENT)
        return self._sink.existing(event_ids)


def _inserted(rows: Sequence[tuple[Any, ...]]) -> int:
    """``number of rows inserted`` from a MERGE's answer (its first column)."""
    if not rows or not rows[0]:
        return 0
    try:
        return int(rows[0][0])
    except (TypeError, ValueError):
        return 0
