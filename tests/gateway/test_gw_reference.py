"""Reference events, the allow-list, the statement builder and the route's outcomes, with plain
values and a fake SQL port (the emulator tests run the same statements for real)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from gw_support import registry_doc

from spcs_gateway.errors import (
    ConfigurationError,
    ErrorCode,
    FailureKind,
    PoisonError,
    TransientError,
)
from spcs_gateway.events import (
    ImageRefEvent,
    NoteRefEvent,
    parse_any_event,
    parse_event,
    parse_message,
)
from spcs_gateway.reference.route import ReferenceRoute
from spcs_gateway.reference.statement import (
    MAX_REFS_PER_STATEMENT,
    RowRef,
    image_merge,
    note_merge,
    service_function,
    statement_rows,
)
from spcs_gateway.registry import Registry, RegistryError, parse_registry
from spcs_gateway.sql import statement_error

NOTES = "EHR.CLARITY.NOTES"
IMAGES = "EHR.PACS.IMAGES"
RESULTS = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
AT = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
CANARY = "CANARY-8d1e-note-text"


def _registry(**references: Any) -> Registry:
    doc = registry_doc()
    doc["references"] = references or {
        "note_tables": [
            {
                "table": NOTES,
                "key_column": "NOTE_ID",
                "text_column": "NOTE_TEXT",
                "version_column": "UPDATED_AT",
            }
        ],
        "image_tables": [{"table": IMAGES, "key_column": "IMAGE_ID", "image_column": "PIXELS"}],
    }
    return parse_registry(doc)


def _note(event_id: str, key: str = "N-1", table: str = NOTES, **note: Any) -> str:
    return json.dumps(
        {
            "schema": "clinical-note-ref.v1",
            "event_id": event_id,
            "source": "clarity",
            "occurred_at": "2025-01-15T09:30:00Z",
            "note": {"table": table, "key": key, **note},
        }
    )


def _image(event_id: str, key: str = "I-1", **extra: Any) -> str:
    body = {
        "schema": "medical-image-ref.v1",
        "event_id": event_id,
        "source": "pacs",
        "occurred_at": "2025-01-15T09:30:00Z",
        "image": {"table": IMAGES, "key": key},
        "candidate_labels": ["pneumonia", "normal"],
    }
    body.update(extra)
    return json.dumps(body)


# -- schemas -----------------------------------------------------------------------------------


def test_reference_events_carry_ids_only() -> None:
    note = parse_any_event(_note("e1", version="2025-01-15T09:00:00Z"))
    assert isinstance(note, NoteRefEvent)
    assert (note.note.table, note.note.key, note.subject_id) == (NOTES, "N-1", "N-1")
    image = parse_any_event(_image("e2"))
    assert isinstance(image, ImageRefEvent)
    assert image.subject_id == "I-1"


@pytest.mark.parametrize(
    "body",
    [
        _note("e1", text="inline text smuggled in"),  # unknown field inside the reference
        json.dumps({**json.loads(_note("e1")), "text": "x"}),  # unknown top-level field
        _note("e1", table="NOTES"),  # not DB.SCHEMA.TABLE
        _note("e1", table='EHR.CLARITY."NOTES"; DROP TABLE X'),
        _note("e1", key="has space"),
        _note("e1", version="a b"),
        _image("e2", label_set="chest"),  # both label sources
    ],
)
def test_reference_events_are_as_strict_as_inline(body: str) -> None:
    with pytest.raises(PoisonError) as caught:
        parse_any_event(body)
    assert caught.value.code is ErrorCode.INVALID_EVENT
    assert "smuggled" not in str(caught.value)


def test_routers_without_the_reference_route_refuse_reference_schemas() -> None:
    for parse in (parse_event, parse_message):
        with pytest.raises(PoisonError) as caught:
            parse(_note("e1"))
        assert caught.value.code is ErrorCode.UNKNOWN_SCHEMA
    assert isinstance(parse_message(_note("e1"), references=True)[0], NoteRefEvent)


# -- allow-list --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"note_tables": [{"table": "NOTES", "key_column": "K", "text_column": "T"}]},
        {"note_tables": [{"table": "A.B.C", "key_column": "K; --", "text_column": "T"}]},
        {"image_tables": [{"table": "A.B.C", "key_column": "K", "image_column": '"X"'}]},
        {
            "note_tables": [
                {"table": "A.B.C", "key_column": "K", "text_column": "T"},
                {"table": "a.b.c", "key_column": "K", "text_column": "T"},
            ]
        },
    ],
)
def test_allow_list_names_are_plain_identifiers(bad: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        _registry(**bad)


def test_allow_list_lookup_folds_case() -> None:
    refs = _registry().references
    assert refs.note_table("ehr.clarity.notes") is not None
    assert refs.note_table(IMAGES) is None
    assert refs.image_table(IMAGES) is not None


# -- statement ---------------------------------------------------------------------------------


def test_note_statement_binds_every_value_and_calls_the_service_function() -> None:
    registry = _registry()
    service = registry.service("ner")
    table = registry.references.note_tables[0]
    refs = [RowRef("e1", "N-1"), RowRef("e2", CANARY, "7")]
    stmt = note_merge(RESULTS, service, table, refs, AT)
    assert CANARY not in stmt.sql  # keys and versions are bindings, never SQL text
    assert stmt.sql.count("?") == len(stmt.params)
    fn = f"{service.service}!{service.method.upper()}("
    assert fn in stmt.sql
    assert service_function(service) == fn[:-1]
    assert f"JOIN {NOTES} AS n ON n.NOTE_ID = r.REF_KEY" in stmt.sql
    assert "n.UPDATED_AT = r.REF_VERSION" in stmt.sql
    # One source row per event: the highest version when the reference names none.
    assert (
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY r.EVENT_ID ORDER BY n.UPDATED_AT DESC NULLS LAST)"
        " = 1" in stmt.sql
    )
    assert stmt.params[:7] == [
        "clinical-note",
        service.service,
        service.model_version,
        "SUCCEEDED",
        service.out_column,
        service.out_column,
        AT.isoformat(),
    ]
    assert stmt.params[-6:] == ["e1", "N-1", None, "e2", CANARY, "7"]
    assert stmt.event_ids == ("e1", "e2")
    assert re.search(r"ON t\.EVENT_ID = s\.EVENT_ID\s+WHEN NOT MATCHED THEN INSERT", stmt.sql)


def test_image_statement_passes_inputs_then_every_parameter() -> None:
    registry = _registry()
    service = registry.service("zsc")
    table = registry.references.image_tables[0]
    stmt = image_merge(RESULTS, service, table, [RowRef("e1", "I-1", labels=("a", "b"))], AT)
    params = [name for name, _ in service.param_columns]
    assert params  # the zero-shot signature has parameter columns
    marks = ", ".join(["?"] * len(params))
    assert f"!{service.method.upper()}(q.INPUT, PARSE_JSON(q.LABELS_JSON), {marks})" in stmt.sql
    assert "n.PIXELS AS INPUT" in stmt.sql
    assert stmt.params[7 : 7 + len(params)] == [v for _, v in service.param_columns]
    assert stmt.params[-4:] == ["e1", "I-1", None, '["a","b"]']
    assert stmt.sql.count("?") == len(stmt.params)


def test_statement_limits() -> None:
    registry = _registry()
    service = registry.service("ner")
    table = registry.references.note_tables[0]
    assert statement_rows(service) == min(
        MAX_REFS_PER_STATEMENT, service.max_batch_rows * service.max_concurrency
    )
    with pytest.raises(ValueError, match="at least one"):
        note_merge(RESULTS, service, table, [], AT)
    many = [RowRef(f"e{i}", "k") for i in range(MAX_REFS_PER_STATEMENT + 1)]
    with pytest.raises(ValueError, match="too many"):
        note_merge(RESULTS, service, table, many, AT)


# -- route -------------------------------------------------------------------------------------


class FakeSql:
    """Answers a MERGE with ``inserted`` (or raises ``fail``), a SELECT with ``written``."""

    def __init__(
        self, written: set[str], inserted: int | None = None, fail: Exception | None = None
    ) -> None:
        self.written = written
        self.inserted = inserted
        self.fail = fail
        self.calls: list[tuple[str, list[Any]]] = []

    def execute(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        error_code: ErrorCode = ErrorCode.SERVICE_ERROR,
    ) -> list[tuple[Any, ...]]:
        self.calls.append((sql, list(params)))
        if sql.startswith("MERGE"):
            if self.fail is not None:
                raise self.fail
            ids = [p for p in params[7:] if isinstance(p, str) and p.startswith("e")]
            count = self.inserted if self.inserted is not None else len(ids)
            return [(count,)]
        return [(p,) for p in params if p in self.written]


def _route(sql: FakeSql, registry: Registry) -> ReferenceRoute:
    return ReferenceRoute(sql, RESULTS, registry.references, clock=lambda: AT)


def test_route_one_statement_when_every_reference_is_found() -> None:
    registry = _registry()
    sql = FakeSql(written=set())
    events = [parse_any_event(_note(f"e{i}", key=f"N-{i}")) for i in range(5)]
    outcomes = _route(sql, registry).run(registry.service("ner"), events)
    assert [o.done for o in outcomes] == [True] * 5
    assert len(sql.calls) == 1


def test_route_names_missing_references_and_refused_tables() -> None:
    registry = _registry()
    sql = FakeSql(written={"e1"}, inserted=1)
    events = [
        parse_any_event(_note("e1")),
        parse_any_event(_note("e2", key="GONE")),
        parse_any_event(_note("e3", table="EHR.OTHER.NOTES")),
        parse_any_event(_image("e4")),  # an image reference sent to the notes service
        parse_any_event(_note("e1")),
    ]
    outcomes = _route(sql, registry).run(registry.service("ner"), events)
    codes = [(o.event_id, o.error.code if o.error else None) for o in outcomes]
    assert codes == [
        ("e1", None),
        ("e2", ErrorCode.REFERENCE_NOT_FOUND),
        ("e3", ErrorCode.REFERENCE_NOT_ALLOWED),
        ("e4", ErrorCode.UNKNOWN_SCHEMA),
    ]
    assert all(o.error.kind is FailureKind.POISON for o in outcomes if o.error)
    assert [c[0].split()[0] for c in sql.calls] == ["MERGE", "SELECT"]


def test_route_splits_large_batches() -> None:
    registry = _registry()
    service = registry.service("ner")
    size = statement_rows(service)
    sql = FakeSql(written=set())
    events = [parse_any_event(_note(f"e{i}", key=f"N-{i}")) for i in range(size * 2 + 1)]
    outcomes = _route(sql, registry).run(service, events)
    assert all(o.done for o in outcomes)
    assert len(sql.calls) == 3


def test_route_maps_a_not_ready_service_to_unavailable() -> None:
    registry = _registry()
    not_ready = statement_error(
        type("E", (Exception,), {"errno": 90010})(), ErrorCode.SERVICE_ERROR
    )
    sql = FakeSql(written=set(), fail=not_ready)
    [outcome] = _route(sql, registry).run(registry.service("ner"), [parse_any_event(_note("e1"))])
    assert outcome.error is not None
    assert outcome.error.kind is FailureKind.UNAVAILABLE
    assert outcome.error.code is ErrorCode.SERVICE_UNAVAILABLE


@pytest.mark.parametrize(
    "error",
    [
        TransientError(ErrorCode.SERVICE_ERROR, "statement failed (errno 604)", errno=604),
        ConfigurationError(ErrorCode.PRIVILEGE_MISSING, "missing grant (errno 2003)", errno=2003),
    ],
)
def test_route_other_statement_failures_fail_every_reference_in_it(error: Exception) -> None:
    registry = _registry()
    sql = FakeSql(written=set(), fail=error)
    events = [parse_any_event(_note(f"e{i}")) for i in range(3)]
    outcomes = _route(sql, registry).run(registry.service("ner"), events)
    assert [o.error for o in outcomes] == [error] * 3


def test_route_image_labels_follow_the_inline_rules() -> None:
    registry = _registry()
    sql = FakeSql(written=set())
    events = [
        parse_any_event(_image("e1")),
        parse_any_event(_image("e2", candidate_labels=None, label_set="unknown-set")),
    ]
    outcomes = _route(sql, registry).run(registry.service("zsc"), events)
    assert [o.error.code if o.error else None for o in outcomes] == [
        None,
        ErrorCode.UNKNOWN_LABEL_SET,
    ]
    [(_, params)] = sql.calls
    assert '["pneumonia","normal"]' in params


def test_route_refuses_a_version_on_an_unversioned_table() -> None:
    registry = _registry(
        note_tables=[{"table": NOTES, "key_column": "NOTE_ID", "text_column": "NOTE_TEXT"}]
    )
    sql = FakeSql(written=set())
    [outcome] = _route(sql, registry).run(
        registry.service("ner"), [parse_any_event(_note("e1", version=3))]
    )
    assert outcome.error is not None
    assert outcome.error.code is ErrorCode.INVALID_EVENT
    assert sql.calls == []


class RefusingSql(FakeSql):
    """A MERGE over a chunk that holds a refused key fails as Snowflake fails the statement."""

    def __init__(self, refused: set[str], errno: int = 100357) -> None:
        super().__init__(written=set())
        self.refused = refused
        self.errno = errno

    def execute(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        error_code: ErrorCode = ErrorCode.SERVICE_ERROR,
    ) -> list[tuple[Any, ...]]:
        if sql.startswith("MERGE") and self.refused & set(params):
            self.calls.append((sql, list(params)))
            raise TransientError(
                ErrorCode.SERVICE_ERROR,
                f"Snowflake statement failed (errno {self.errno})",
                errno=self.errno,
            )
        return super().execute(sql, params, error_code=error_code)


def test_route_isolates_rows_the_model_refuses() -> None:
    registry = _registry()
    sql = RefusingSql(refused={"N-BAD-3", "N-BAD-6"})
    keys = [f"N-{i}" if i not in (3, 6) else f"N-BAD-{i}" for i in range(8)]
    events = [parse_any_event(_note(f"e{i}", key=k)) for i, k in enumerate(keys)]
    outcomes = _route(sql, registry).run(registry.service("ner"), events)
    codes = {o.event_id: o.error.code if o.error else None for o in outcomes}
    assert codes == {
        f"e{i}": ErrorCode.MODEL_REJECTED_INPUT if i in (3, 6) else None for i in range(8)
    }
    assert all(o.error.kind is FailureKind.POISON for o in outcomes if o.error)
    # 8 -> 4 + 4 -> 2 + 2 + 2 + 2 -> the two refused pairs split to singles: 1 + 2 + 4 + 4.
    assert len(sql.calls) == 11


def test_the_reference_package_re_exports_the_schemas_of_events() -> None:
    from spcs_gateway import events, reference

    assert reference.NoteRefEvent is events.NoteRefEvent
    assert reference.ImageRefEvent is events.ImageRefEvent
    with pytest.raises(AttributeError):
        _ = reference.NoSuchName


def test_route_isolates_a_reference_whose_values_do_not_fit_its_table() -> None:
    # e.g. a version "v2" against a NUMBER column: Snowflake fails the whole statement with a
    # 100xxx conversion error (100038 "Numeric value ... is not recognized"). One bad reference
    # must not keep the others of its chunk from their rows, nor send them to the DLQ.
    registry = _registry()
    sql = RefusingSql(refused={"N-BAD"}, errno=100038)
    keys = ["N-0", "N-BAD", "N-2", "N-3"]
    events = [parse_any_event(_note(f"e{i}", key=k)) for i, k in enumerate(keys)]
    outcomes = _route(sql, registry).run(registry.service("ner"), events)
    codes = {o.event_id: o.error.code if o.error else None for o in outcomes}
    assert codes == {"e0": None, "e1": ErrorCode.INVALID_EVENT, "e2": None, "e3": None}
    bad = next(o.error for o in outcomes if o.error)
    assert bad.kind is FailureKind.POISON
    assert "N-BAD" not in str(bad)  # the reference's values are not echoed
