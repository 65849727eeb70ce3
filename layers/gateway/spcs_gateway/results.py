"""``ResultsSink``: the results table, written with one MERGE per batch, idempotent on EVENT_ID.

The SQL shapes are exactly those in docs/ARCHITECTURE.md (the local emulator implements them).
Only the table name is interpolated, and only after it validated as a plain identifier; every
value is a qmark binding. OUTPUT is bound as JSON text (``PARSE_JSON``), PROCESSED_AT as an
ISO-8601 string (``TO_TIMESTAMP_TZ``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from spcs_gateway.errors import ErrorCode

STATUS_SUCCEEDED = "SUCCEEDED"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")
# 9 bindings per row: 200 rows = 1,800 bindings per MERGE, far below any binding limit and
# above any realistic Lambda batch of successes.
MERGE_ROWS_PER_STATEMENT = 200
SELECT_IDS_PER_STATEMENT = 1_000

_MERGE_HEAD = (
    "MERGE INTO {table} AS t\n"
    "USING (SELECT column1 AS EVENT_ID, column2 AS KIND, column3 AS SUBJECT_ID, "
    "column4 AS SERVICE,\n"
    "              column5 AS MODEL_VERSION, column6 AS STATUS, PARSE_JSON(column7) AS OUTPUT,\n"
    "              column8 AS LATENCY_MS, TO_TIMESTAMP_TZ(column9) AS PROCESSED_AT\n"
    "       FROM VALUES {values}{where}) AS s\n"
    "ON t.EVENT_ID = s.EVENT_ID\n"
    "WHEN NOT MATCHED THEN INSERT (EVENT_ID, KIND, SUBJECT_ID, SERVICE, MODEL_VERSION, STATUS,\n"
    "  OUTPUT, LATENCY_MS, PROCESSED_AT)\n"
    "VALUES (s.EVENT_ID, s.KIND, s.SUBJECT_ID, s.SERVICE, s.MODEL_VERSION, s.STATUS, s.OUTPUT,\n"
    "  s.LATENCY_MS, s.PROCESSED_AT)"
)
_ROW_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"


class Sql(Protocol):
    def execute(
        self, sql: str, params: Sequence[Any] = (), *, error_code: ErrorCode = ...
    ) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class ResultRow:
    event_id: str
    kind: str  # "clinical-note" | "medical-image"
    subject_id: str  # note_id / image_id
    service: str  # fully qualified service name
    model_version: str | None
    output: Any = field(repr=False)  # PHI-bearing model output: never logged
    latency_ms: int
    processed_at: datetime
    status: str = STATUS_SUCCEEDED

    def bindings(self) -> tuple[Any, ...]:
        return (
            self.event_id,
            self.kind,
            self.subject_id,
            self.service,
            self.model_version,
            self.status,
            json.dumps(self.output, separators=(",", ":"), ensure_ascii=False),
            self.latency_ms,
            self.processed_at.isoformat(),
        )


def check_table_name(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError("results table must be an unquoted identifier, DB.SCHEMA.TABLE")
    return name


_SELECT_EXISTING = "SELECT EVENT_ID FROM {table} WHERE EVENT_ID IN ({marks})"


def select_existing_sql(table: str, count: int) -> str:
    marks = ", ".join("?" * count)
    # As merge_sql: a template, the table name checked against an identifier pattern, every
    # value a qmark bind (so no string-built SQL for bandit B608 / ruff S608 to flag).
    return _SELECT_EXISTING.format(table=check_table_name(table), marks=marks)


def merge_sql(table: str, count: int, *, dry_run: bool = False) -> str:
    """The MERGE of ``count`` rows. ``dry_run``: the same statement with a source that selects
    nothing (``WHERE 1 = 0``): Snowflake compiles it, checking every privilege the real write
    needs, and writes no row (``ResultsSink.check_writable``)."""
    values = ", ".join([_ROW_PLACEHOLDERS] * count)
    where = "\n       WHERE 1 = 0" if dry_run else ""
    return _MERGE_HEAD.format(table=check_table_name(table), values=values, where=where)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ResultsSink:
    def __init__(self, sql: Sql, table: str) -> None:
        self._sql = sql
        self._table = check_table_name(table)

    @property
    def table(self) -> str:
        return self._table

    def existing(self, event_ids: Iterable[str]) -> set[str]:
        """The subset of ``event_ids`` that already has a row (one SELECT per 1,000 ids)."""
        wanted = list(dict.fromkeys(event_ids))
        found: set[str] = set()
        for chunk in _chunks(wanted, SELECT_IDS_PER_STATEMENT):
            rows = self._sql.execute(
                select_existing_sql(self._table, len(chunk)),
                list(chunk),
                error_code=ErrorCode.DEPENDENCY_ERROR,
            )
            found.update(str(row[0]) for row in rows)
        return found

    def check_writable(self) -> None:
        """Run the MERGE the gateway issues, selecting no source row: raises the error a real
        write would meet (a missing INSERT or SELECT grant: ``PRIVILEGE_MISSING``)."""
        probe = ResultRow(
            event_id="spcs-gateway-doctor",
            kind="doctor",
            subject_id="doctor",
            service="doctor",
            model_version=None,
            output=[],
            latency_ms=0,
            processed_at=datetime.now(UTC),
        )
        self._sql.execute(
            merge_sql(self._table, 1, dry_run=True),
            list(probe.bindings()),
            error_code=ErrorCode.RESULTS_WRITE_FAILED,
        )

    def merge(self, rows: Sequence[ResultRow]) -> None:
        """Insert rows whose EVENT_ID is new; existing rows are left untouched."""
        # Snowflake inserts every unmatched source row: duplicate EVENT_IDs in one statement
        # would make two rows, so keep the first of each.
        first: dict[str, ResultRow] = {}
        for row in rows:
            first.setdefault(row.event_id, row)
        unique = list(first.values())
        for chunk in _chunks(unique, MERGE_ROWS_PER_STATEMENT):
            params = [value for row in chunk for value in row.bindings()]
            self._sql.execute(
                merge_sql(self._table, len(chunk)),
                params,
                error_code=ErrorCode.RESULTS_WRITE_FAILED,
            )
