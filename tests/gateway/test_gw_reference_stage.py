"""Image references to files on an allow-listed stage: the event form, the allow-list, the
statement builder and the route's grouping, with plain values and a fake SQL port (the emulator
tests run the same statements for real)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from gw_support import registry_doc
from test_gw_reference import FakeSql

from spcs_gateway.errors import ErrorCode, FailureKind, PoisonError
from spcs_gateway.events import (
    MAX_STAGE_PATH_CHARS,
    ImageRefEvent,
    StageFileRef,
    TableRowRef,
    parse_any_event,
)
from spcs_gateway.reference.allow_list import ImageStage
from spcs_gateway.reference.route import ReferenceRoute
from spcs_gateway.reference.statement import RowRef, stage_image_merge
from spcs_gateway.registry import Registry, RegistryError, parse_registry

STAGE = "EHR.PACS.IMAGE_FILES"
IMAGES = "EHR.PACS.IMAGES"
RESULTS = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
CANARY = "CANARY-5b2c-path"


def _registry(**extra: Any) -> Registry:
    doc = registry_doc()
    doc["references"] = {
        "image_tables": [{"table": IMAGES, "key_column": "IMAGE_ID", "image_column": "PIXELS"}],
        "image_stages": [{"stage": STAGE}],
        **extra,
    }
    return parse_registry(doc)


def _staged(event_id: str, path: str = "scans/a.png", stage: str = STAGE, **image: Any) -> str:
    return json.dumps(
        {
            "schema": "medical-image-ref.v1",
            "event_id": event_id,
            "source": "pacs",
            "occurred_at": "2025-01-15T09:30:00Z",
            "image": {"stage": stage, "path": path, **image},
            "candidate_labels": ["pneumonia", "normal"],
        }
    )


# -- the event ---------------------------------------------------------------------------------


def test_an_image_reference_names_a_table_row_or_a_staged_file() -> None:
    staged = parse_any_event(_staged("e1", "2025/01/15/study-9/img_01.dcm.png"))
    assert isinstance(staged, ImageRefEvent)
    assert isinstance(staged.image, StageFileRef)
    assert (staged.image.stage, staged.image.path) == (STAGE, "2025/01/15/study-9/img_01.dcm.png")
    assert staged.subject_id == "2025/01/15/study-9/img_01.dcm.png"
    body = json.loads(_staged("e2"))
    body["image"] = {"table": "A.B.C", "key": "K"}
    row = parse_any_event(json.dumps(body))
    assert isinstance(row, ImageRefEvent)
    assert isinstance(row.image, TableRowRef)
    assert row.subject_id == "K"


@pytest.mark.parametrize(
    "path",
    [
        "../secret.png",
        "scans/../../etc/passwd",
        "a..b.png",  # no ".." anywhere
        "/scans/a.png",  # no leading "/"
        "scans//a.png",  # no empty segment
        "scans/a.png/",
        "./a.png",
        "scans/.hidden",
        "has space.png",
        "semi;colon.png",
        "quote'.png",
        "back\\slash.png",
        "pct%2e.png",
        "é.png",
        "",
        "a" * (MAX_STAGE_PATH_CHARS + 1),
    ],
)
def test_stage_paths_are_strict(path: str) -> None:
    with pytest.raises(PoisonError) as caught:
        parse_any_event(_staged("e1", path))
    assert caught.value.code is ErrorCode.INVALID_EVENT


def test_the_longest_path_allowed_parses() -> None:
    path = "a/" * ((MAX_STAGE_PATH_CHARS - 1) // 2) + "b"
    assert len(path) <= MAX_STAGE_PATH_CHARS
    event = parse_any_event(_staged("e1", path))
    assert isinstance(event, ImageRefEvent)
    assert event.subject_id == path


@pytest.mark.parametrize(
    "image",
    [
        {"stage": STAGE, "path": "a.png", "key": "K"},  # a mix of both forms
        {"stage": STAGE, "path": "a.png", "table": IMAGES, "key": "K"},
        {"stage": STAGE, "path": "a.png", "version": 2},  # a staged file has no version
        {"stage": STAGE, "path": "a.png", "url": "https://x"},
        {"stage": STAGE},
        {"path": "a.png"},
        {"stage": "IMAGE_FILES", "path": "a.png"},  # not DB.SCHEMA.STAGE
        {"stage": "@EHR.PACS.IMAGE_FILES", "path": "a.png"},
        {"stage": 'EHR.PACS."X"; DROP TABLE T', "path": "a.png"},
    ],
)
def test_staged_reference_refuses_unknown_fields_and_mixed_forms(image: dict[str, Any]) -> None:
    body = json.loads(_staged("e1"))
    body["image"] = image
    with pytest.raises(PoisonError) as caught:
        parse_any_event(json.dumps(body))
    assert caught.value.code is ErrorCode.INVALID_EVENT


def test_a_refused_path_is_not_echoed() -> None:
    with pytest.raises(PoisonError) as caught:
        parse_any_event(_staged("e1", f"../{CANARY}"))
    assert CANARY not in str(caught.value)
    assert CANARY not in caught.value.detail


# -- the allow-list ----------------------------------------------------------------------------


def test_allow_list_finds_stages_case_insensitively_and_names_the_reader() -> None:
    references = _registry().references
    stage = references.image_stage(STAGE.lower())
    assert stage == ImageStage(stage=STAGE)
    assert references.image_stage("EHR.PACS.OTHER") is None
    assert references.reader_for(stage) == "EHR.PACS.READ_STAGED_FILE"
    custom = _registry(file_reader="UTIL.FILES.READ_BYTES").references
    assert custom.reader_for(stage) == "UTIL.FILES.READ_BYTES"


@pytest.mark.parametrize(
    "extra",
    [
        {"image_stages": [{"stage": STAGE}, {"stage": STAGE.lower()}]},  # listed twice
        {"image_stages": [{"stage": "IMAGE_FILES"}]},
        {"image_stages": [{"stage": STAGE, "url": "s3://bucket/"}]},
        {"file_reader": "READ_STAGED_FILE"},  # not DB.SCHEMA.NAME
        {"file_reader": "A.B.C(X)"},
    ],
)
def test_registry_refuses_bad_stage_settings(extra: dict[str, Any]) -> None:
    with pytest.raises(RegistryError):
        _registry(**extra)


# -- the statement -----------------------------------------------------------------------------


def test_stage_statement_binds_paths_and_inlines_only_validated_names() -> None:
    registry = _registry()
    service = registry.service("zsc")
    stage = registry.references.image_stages[0]
    reader = registry.references.reader_for(stage)
    refs = [
        RowRef("e1", f"scans/{CANARY}.png", labels=("a", "b")),
        RowRef("e2", "scans/b.png", labels=("c",)),
    ]
    at = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    stmt = stage_image_merge(RESULTS, service, stage, reader, refs, at)

    assert CANARY not in stmt.sql  # the path is a bound value
    assert stmt.sql.count("?") == len(stmt.params)
    assert stmt.params[-6:] == [
        "e1",
        f"scans/{CANARY}.png",
        '["a","b"]',
        "e2",
        "scans/b.png",
        '["c"]',
    ]
    assert stmt.params[0] == "medical-image"
    assert stmt.event_ids == ("e1", "e2")
    # The stage and the reader are identifiers the registry validated, placed in the text.
    assert f"JOIN DIRECTORY(@{STAGE}) AS d ON d.RELATIVE_PATH = r.REF_PATH" in stmt.sql
    assert f"{reader}(BUILD_SCOPED_FILE_URL(@{STAGE}, f.RELATIVE_PATH)) AS INPUT" in stmt.sql
    params = [name for name, _ in service.param_columns]
    marks = ", ".join(["?"] * len(params))
    assert f"!{service.method.upper()}(q.INPUT, PARSE_JSON(q.LABELS_JSON), {marks})" in stmt.sql
    assert "WHERE q.INPUT IS NOT NULL" in stmt.sql
    assert re.search(r"ON t\.EVENT_ID = s\.EVENT_ID\s+WHEN NOT MATCHED THEN INSERT", stmt.sql)


def test_stage_statement_refuses_unchecked_names_and_bad_batches() -> None:
    registry = _registry()
    service = registry.service("zsc")
    stage = registry.references.image_stages[0]
    at = datetime(2025, 1, 15, tzinfo=UTC)
    one = [RowRef("e1", "a.png", labels=("a",))]
    bad_stage = ImageStage.model_construct(stage="EHR.PACS.X; DROP TABLE T")
    with pytest.raises(ValueError, match="identifier"):
        stage_image_merge(RESULTS, service, bad_stage, "EHR.PACS.READ", one, at)
    with pytest.raises(ValueError, match="identifier"):
        stage_image_merge(RESULTS, service, stage, "EHR.PACS.READ()--", one, at)
    with pytest.raises(ValueError, match="at least one"):
        stage_image_merge(RESULTS, service, stage, "EHR.PACS.READ", [], at)
    with pytest.raises(ValueError, match="no version"):
        stage_image_merge(
            RESULTS, service, stage, "EHR.PACS.READ", [RowRef("e1", "a.png", "3")], at
        )


# -- the route ---------------------------------------------------------------------------------


def test_route_groups_stage_and_table_references_into_one_statement_each() -> None:
    registry = _registry()
    sql = FakeSql(written={"e1"}, inserted=1)
    table_ref = json.loads(_staged("e3"))
    table_ref["image"] = {"table": IMAGES, "key": "I-1"}
    events = [
        parse_any_event(_staged("e1", "scans/a.png")),
        parse_any_event(_staged("e2", "scans/missing.png")),
        parse_any_event(json.dumps(table_ref)),
        parse_any_event(_staged("e4", stage="EHR.PACS.OTHER_FILES")),
    ]
    route = ReferenceRoute(sql, RESULTS, registry.references)
    outcomes = route.run(registry.service("zsc"), events)
    codes = [(o.event_id, o.error.code if o.error else None) for o in outcomes]
    assert codes == [
        ("e1", None),
        ("e2", ErrorCode.REFERENCE_NOT_FOUND),
        ("e3", None),  # its own statement: 1 row inserted of 1
        ("e4", ErrorCode.REFERENCE_NOT_ALLOWED),
    ]
    assert all(o.error.kind is FailureKind.POISON for o in outcomes if o.error)
    merges = [call for call in sql.calls if call[0].startswith("MERGE")]
    assert len(merges) == 2
    staged_sql = next(s for s, _ in merges if "DIRECTORY(@" in s)
    assert "EHR.PACS.READ_STAGED_FILE(BUILD_SCOPED_FILE_URL(@EHR.PACS.IMAGE_FILES" in staged_sql
    table_sql = next(s for s, _ in merges if "DIRECTORY(@" not in s)
    assert f"JOIN {IMAGES} AS n" in table_sql


def test_a_stage_reference_sent_to_the_notes_service_is_unknown_schema() -> None:
    registry = _registry()
    sql = FakeSql(written=set())
    route = ReferenceRoute(sql, RESULTS, registry.references)
    [outcome] = route.run(registry.service("ner"), [parse_any_event(_staged("e1"))])
    assert outcome.error is not None
    assert outcome.error.code is ErrorCode.UNKNOWN_SCHEMA
    assert sql.calls == []
