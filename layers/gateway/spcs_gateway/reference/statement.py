"""The reference route's statement: one MERGE that reads the referenced rows, runs the model
inside Snowflake through its service function and writes the results. Pure: no I/O.

Shape (notes; images add the candidate labels as the second input)::

    MERGE INTO <results> AS t
    USING (SELECT p.EVENT_ID, ? AS KIND, p.SUBJECT_ID, ? AS SERVICE, ? AS MODEL_VERSION,
                  ? AS STATUS,
                  COALESCE(PARSE_JSON(AS_VARCHAR(GET(p.R, ?))), GET(p.R, ?)) AS OUTPUT,
                  NULL AS LATENCY_MS, TO_TIMESTAMP_TZ(?) AS PROCESSED_AT
           FROM (SELECT q.EVENT_ID, q.SUBJECT_ID,
                        <DB.SCHEMA.SERVICE>!<METHOD>(q.INPUT, <one ? per parameter>) AS R
                 FROM (SELECT r.EVENT_ID, r.REF_KEY AS SUBJECT_ID, n.<text> AS INPUT
                       FROM (SELECT column1 AS EVENT_ID, column2 AS REF_KEY,
                                    column3 AS REF_VERSION FROM VALUES (?, ?, ?), ...) AS r
                       JOIN <note table> AS n ON n.<key> = r.REF_KEY
                        AND (r.REF_VERSION IS NULL OR n.<version> = r.REF_VERSION)
                       WHERE n.<text> IS NOT NULL
                       QUALIFY ROW_NUMBER() OVER (PARTITION BY r.EVENT_ID
                                                  ORDER BY n.<version> DESC NULLS LAST) = 1
                      ) AS q) AS p) AS s
    ON t.EVENT_ID = s.EVENT_ID
    WHEN NOT MATCHED THEN INSERT (...) VALUES (...)

* One source row per event (``QUALIFY``): a reference without a version takes the highest
  version, and a key held by several rows cannot make two result rows (a MERGE inserts every
  unmatched source row). The model runs on that one row only.
* The result row has the inline route's shape (``results.py``): OUTPUT is the service's first
  output column, a JSON string parsed as the inline codec does; LATENCY_MS is NULL (no per-row
  timing exists inside a statement).
* Interpolated: the results table, the allow-listed table and its columns, the service and
  its method, all validated as plain identifiers by the registry. Every value is a qmark bind.
* The service function takes every input, then every parameter, in signature order (the
  same rule as the ingress's flat rows; ``codec.py``).
* Images on a stage (``stage_image_merge``): the same MERGE, its rows from the stage's
  directory table joined on the bound relative path, the bytes read by the reader UDF from
  ``BUILD_SCOPED_FILE_URL(@<stage>, <path>)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spcs_gateway.reference.allow_list import ImageStage, ImageTable, NoteTable
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.results import STATUS_SUCCEEDED, check_table_name

# Bindings per reference: event id, key, version (+ labels for images): 200 references stay
# far below any bind limit. The route also bounds a statement by the service's own batch
# settings (``statement_rows``).
MAX_REFS_PER_STATEMENT = 200
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

_TEMPLATE = (
    "MERGE INTO {results} AS t\n"
    "USING (SELECT p.EVENT_ID AS EVENT_ID, ? AS KIND, p.SUBJECT_ID AS SUBJECT_ID, ? AS SERVICE,\n"
    "              ? AS MODEL_VERSION, ? AS STATUS,\n"
    "              COALESCE(PARSE_JSON(AS_VARCHAR(GET(p.R, ?))), GET(p.R, ?)) AS OUTPUT,\n"
    "              NULL AS LATENCY_MS, TO_TIMESTAMP_TZ(?) AS PROCESSED_AT\n"
    "       FROM (SELECT q.EVENT_ID AS EVENT_ID, q.SUBJECT_ID AS SUBJECT_ID,\n"
    "                    {call} AS R\n"
    "             FROM (SELECT r.EVENT_ID AS EVENT_ID, r.REF_KEY AS SUBJECT_ID, "
    "n.{input} AS INPUT{labels_pick}\n"
    "                   FROM (SELECT column1 AS EVENT_ID, column2 AS REF_KEY, "
    "column3 AS REF_VERSION{labels_col}\n"
    "                         FROM VALUES {values}) AS r\n"
    "                   JOIN {source} AS n ON n.{key} = r.REF_KEY{version_match}\n"
    "                   WHERE n.{input} IS NOT NULL\n"
    "                   QUALIFY ROW_NUMBER() OVER (PARTITION BY r.EVENT_ID ORDER BY {order}) = 1"
    ") AS q) AS p) AS s\n"
    "ON t.EVENT_ID = s.EVENT_ID\n"
    "WHEN NOT MATCHED THEN INSERT (EVENT_ID, KIND, SUBJECT_ID, SERVICE, MODEL_VERSION, STATUS,\n"
    "  OUTPUT, LATENCY_MS, PROCESSED_AT)\n"
    "VALUES (s.EVENT_ID, s.KIND, s.SUBJECT_ID, s.SERVICE, s.MODEL_VERSION, s.STATUS, s.OUTPUT,\n"
    "  s.LATENCY_MS, s.PROCESSED_AT)"
)


@dataclass(frozen=True)
class RowRef:
    """One reference in a statement: the event, the row's key and optional version."""

    event_id: str
    key: str
    version: str | None = None
    labels: Sequence[str] | None = field(default=None, repr=False)  # image references only


@dataclass(frozen=True)
class Statement:
    sql: str
    params: list[Any] = field(repr=False)
    event_ids: tuple[str, ...]


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError("not a plain identifier")
    return name


def service_function(service: ServiceConfig) -> str:
    """``DB.SCHEMA.SERVICE!METHOD``: the model service's method as a SQL function."""
    return f"{check_table_name(service.service)}!{_ident(service.method).upper()}"


def statement_rows(service: ServiceConfig) -> int:
    """References per statement: one wave of the inline route's requests (rows per request
    times concurrent requests), so a statement's model work fits the time one inline wave
    takes, capped by ``MAX_REFS_PER_STATEMENT``."""
    return max(1, min(MAX_REFS_PER_STATEMENT, service.max_batch_rows * service.max_concurrency))


def _param_args(service: ServiceConfig) -> tuple[list[str], list[Any]]:
    marks: list[str] = []
    values: list[Any] = []
    for _, value in service.param_columns:
        if isinstance(value, list | dict):
            marks.append("PARSE_JSON(?)")
            values.append(json.dumps(value, separators=(",", ":")))
        else:
            marks.append("?")
            values.append(value)
    return marks, values


def _order(version_column: str | None) -> str:
    """Which row of a key the model runs on: the highest version (any row when unversioned)."""
    if version_column is None:
        return "r.EVENT_ID"
    return f"n.{_ident(version_column)} DESC NULLS LAST"


def _merge(
    *,
    results_table: str,
    service: ServiceConfig,
    kind: str,
    source_table: str,
    key_column: str,
    version_column: str | None,
    input_column: str,
    refs: Sequence[RowRef],
    processed_at: datetime,
    with_labels: bool,
) -> Statement:
    if not refs:
        raise ValueError("a statement needs at least one reference")
    if len(refs) > MAX_REFS_PER_STATEMENT:
        raise ValueError("too many references for one statement")
    if any(r.version is not None for r in refs) and version_column is None:
        raise ValueError("a versioned reference needs the table's version column")
    param_marks, param_values = _param_args(service)
    inputs = ["q.INPUT", "PARSE_JSON(q.LABELS_JSON)"] if with_labels else ["q.INPUT"]
    call = f"{service_function(service)}({', '.join([*inputs, *param_marks])})"
    width = 4 if with_labels else 3
    row_marks = "(" + ", ".join(["?"] * width) + ")"
    version_match = (
        f"\n                    AND (r.REF_VERSION IS NULL OR n.{_ident(version_column)} = "
        "r.REF_VERSION)"
        if version_column is not None
        else ""
    )
    # A template, as results.py: names checked as identifiers, every value a qmark bind.
    sql = _TEMPLATE.format(
        results=check_table_name(results_table),
        call=call,
        input=_ident(input_column),
        labels_pick=", r.LABELS_JSON AS LABELS_JSON" if with_labels else "",
        labels_col=", column4 AS LABELS_JSON" if with_labels else "",
        values=", ".join([row_marks] * len(refs)),
        source=check_table_name(source_table),
        key=_ident(key_column),
        version_match=version_match,
        order=_order(version_column),
    )
    out = service.out_column
    head = [kind, service.service, service.model_version, STATUS_SUCCEEDED, out, out]
    head.append(processed_at.isoformat())
    rows: list[Any] = []
    for ref in refs:
        rows.extend((ref.event_id, ref.key, ref.version))
        if with_labels:
            rows.append(json.dumps(list(ref.labels or ()), separators=(",", ":")))
    return Statement(sql, [*head, *param_values, *rows], tuple(r.event_id for r in refs))


def note_merge(
    results_table: str,
    service: ServiceConfig,
    table: NoteTable,
    refs: Sequence[RowRef],
    processed_at: datetime,
) -> Statement:
    """The MERGE for note references into one allow-listed note table."""
    return _merge(
        results_table=results_table,
        service=service,
        kind="clinical-note",
        source_table=table.table,
        key_column=table.key_column,
        version_column=table.version_column,
        input_column=table.text_column,
        refs=refs,
        processed_at=processed_at,
        with_labels=False,
    )


def image_merge(
    results_table: str,
    service: ServiceConfig,
    table: ImageTable,
    refs: Sequence[RowRef],
    processed_at: datetime,
) -> Statement:
    """The MERGE for image references into one allow-listed image table; each reference
    carries its candidate labels (the model's second input, an ARRAY)."""
    return _merge(
        results_table=results_table,
        service=service,
        kind="medical-image",
        source_table=table.table,
        key_column=table.key_column,
        version_column=table.version_column,
        input_column=table.image_column,
        refs=refs,
        processed_at=processed_at,
        with_labels=True,
    )


# Images on a stage: the directory table keeps only files that exist (a missing file makes no
# row, so the route reports it as REFERENCE_NOT_FOUND instead of failing the statement); the
# reader UDF reads each file's bytes through a scoped URL, inside Snowflake.
_STAGE_TEMPLATE = (
    "MERGE INTO {results} AS t\n"
    "USING (SELECT p.EVENT_ID AS EVENT_ID, ? AS KIND, p.SUBJECT_ID AS SUBJECT_ID, ? AS SERVICE,\n"
    "              ? AS MODEL_VERSION, ? AS STATUS,\n"
    "              COALESCE(PARSE_JSON(AS_VARCHAR(GET(p.R, ?))), GET(p.R, ?)) AS OUTPUT,\n"
    "              NULL AS LATENCY_MS, TO_TIMESTAMP_TZ(?) AS PROCESSED_AT\n"
    "       FROM (SELECT q.EVENT_ID AS EVENT_ID, q.SUBJECT_ID AS SUBJECT_ID,\n"
    "                    {call} AS R\n"
    "             FROM (SELECT f.EVENT_ID AS EVENT_ID, f.SUBJECT_ID AS SUBJECT_ID,\n"
    "                          {reader}(BUILD_SCOPED_FILE_URL(@{stage}, f.RELATIVE_PATH))"
    " AS INPUT,\n"
    "                          f.LABELS_JSON AS LABELS_JSON\n"
    "                   FROM (SELECT r.EVENT_ID AS EVENT_ID, r.REF_PATH AS SUBJECT_ID,\n"
    "                                d.RELATIVE_PATH AS RELATIVE_PATH,"
    " r.LABELS_JSON AS LABELS_JSON\n"
    "                         FROM (SELECT column1 AS EVENT_ID, column2 AS REF_PATH, "
    "column3 AS LABELS_JSON\n"
    "                               FROM VALUES {values}) AS r\n"
    "                         JOIN DIRECTORY(@{stage}) AS d ON d.RELATIVE_PATH = r.REF_PATH"
    ") AS f\n"
    "                  ) AS q\n"
    "                  WHERE q.INPUT IS NOT NULL) AS p) AS s\n"
    "ON t.EVENT_ID = s.EVENT_ID\n"
    "WHEN NOT MATCHED THEN INSERT (EVENT_ID, KIND, SUBJECT_ID, SERVICE, MODEL_VERSION, STATUS,\n"
    "  OUTPUT, LATENCY_MS, PROCESSED_AT)\n"
    "VALUES (s.EVENT_ID, s.KIND, s.SUBJECT_ID, s.SERVICE, s.MODEL_VERSION, s.STATUS, s.OUTPUT,\n"
    "  s.LATENCY_MS, s.PROCESSED_AT)"
)


def stage_image_merge(
    results_table: str,
    service: ServiceConfig,
    stage: ImageStage,
    reader: str,
    refs: Sequence[RowRef],
    processed_at: datetime,
) -> Statement:
    """The MERGE for image references to files on one allow-listed stage: each ``RowRef.key``
    is a path relative to the stage (bound), read by the ``reader`` UDF (``DB.SCHEMA.NAME``,
    interpolated like the stage: both validated identifiers)."""
    if not refs:
        raise ValueError("a statement needs at least one reference")
    if len(refs) > MAX_REFS_PER_STATEMENT:
        raise ValueError("too many references for one statement")
    if any(r.version is not None for r in refs):
        raise ValueError("a staged file has no version")
    param_marks, param_values = _param_args(service)
    inputs = ["q.INPUT", "PARSE_JSON(q.LABELS_JSON)"]
    call = f"{service_function(service)}({', '.join([*inputs, *param_marks])})"
    sql = _STAGE_TEMPLATE.format(
        results=check_table_name(results_table),
        call=call,
        reader=check_table_name(reader),
        stage=check_table_name(stage.stage),
        values=", ".join(["(?, ?, ?)"] * len(refs)),
    )
    out = service.out_column
    head = [
        "medical-image",
        service.service,
        service.model_version,
        STATUS_SUCCEEDED,
        out,
        out,
        processed_at.isoformat(),
    ]
    rows: list[Any] = []
    for ref in refs:
        labels = json.dumps(list(ref.labels or ()), separators=(",", ":"))
        rows.extend((ref.event_id, ref.key, labels))
    return Statement(sql, [*head, *param_values, *rows], tuple(r.event_id for r in refs))


_SELECT_TEMPLATE = (
    "SELECT COALESCE(PARSE_JSON(AS_VARCHAR(GET(p.R, ?))), GET(p.R, ?)) AS OUTPUT\n"
    "FROM (SELECT {call} AS R\n"
    "      FROM (SELECT n.{text} AS INPUT FROM {source} AS n\n"
    "            WHERE n.{key} = ?{version_match} AND n.{text} IS NOT NULL\n"
    "            ORDER BY {order} LIMIT 1) AS q) AS p"
)


def note_select(
    service: ServiceConfig, table: NoteTable, key: str, version: str | None = None
) -> Statement:
    """One stored note's model output (the on-demand API): the service function runs on the
    row inside Snowflake and only its output comes back. Without a version, the highest one.
    No row: an empty answer."""
    if version is not None and table.version_column is None:
        raise ValueError("a versioned reference needs the table's version column")
    param_marks, param_values = _param_args(service)
    call = f"{service_function(service)}({', '.join(['q.INPUT', *param_marks])})"
    version_match = (
        f" AND n.{_ident(table.version_column)} = ?"
        if version is not None and table.version_column is not None
        else ""
    )
    order = (
        f"n.{_ident(table.version_column)} DESC NULLS LAST"
        if table.version_column is not None
        else f"n.{_ident(table.key_column)}"
    )
    sql = _SELECT_TEMPLATE.format(
        call=call,
        source=check_table_name(table.table),
        key=_ident(table.key_column),
        version_match=version_match,
        text=_ident(table.text_column),
        order=order,
    )
    out = service.out_column
    params: list[Any] = [out, out, *param_values, key]
    if version is not None:
        params.append(version)
    return Statement(sql, params, ())
