"""Image references to files on an allow-listed stage, against the running emulator through
the real connector: the MERGE lists the stage's directory table, reads each file with the
reader UDF over a scoped URL and runs the image service on its bytes, inside "Snowflake"."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_sql import gateway_sql

from spcs_gateway.errors import ErrorCode, FailureKind
from spcs_gateway.events import parse_any_event
from spcs_gateway.reference.route import ReferenceRoute
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.sql import SnowflakeSql

pytestmark = pytest.mark.emulator

STAGE = "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGE_STAGE"  # infra/snowflake/11
UNGRANTED = "PEDIATRIC_ML.CLINICAL_DATA.UNGRANTED_IMAGE_STAGE"  # allow-listed, no grant
READER = "PEDIATRIC_ML.CLINICAL_DATA.READ_STAGED_FILE"
IMAGES = "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES"


def _admin(emulator: Any, sql: str, role: str = "SYSADMIN") -> Any:
    return emulator.admin_post("sql", {"sql": sql, "role": role})


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(out, format="PNG")
    return out.getvalue()


def _put(emulator: Any, stage: str, path: str, data: bytes) -> Any:
    body = {"path": path, "data_base64": base64.b64encode(data).decode("ascii")}
    return emulator.admin_post(f"stages/{stage}/files", body)


@pytest.fixture(scope="module")
def registry(emulator: Any) -> Registry:
    _put(emulator, STAGE, "scans/2025/chest-1.png", _png((200, 30, 30)))
    _put(emulator, STAGE, "scans/2025/chest-2.png", _png((30, 30, 200)))
    _admin(
        emulator,
        f"CREATE STAGE IF NOT EXISTS {UNGRANTED} DIRECTORY = (ENABLE = TRUE)",
    )
    _put(emulator, UNGRANTED, "chest.png", _png((10, 200, 10)))
    document = json.loads(json.dumps(emulator.config))
    stages = document["references"].setdefault("image_stages", [])
    if {"stage": STAGE} not in stages:
        stages.append({"stage": STAGE})
    stages.append({"stage": UNGRANTED})
    return parse_registry(document)


@pytest.fixture
def sql(registry: Registry) -> Iterator[SnowflakeSql]:
    with gateway_sql(registry) as conn:
        yield conn


def _staged(event_id: str, stage: str, path: str) -> Any:
    return parse_any_event(
        json.dumps(
            {
                "schema": "medical-image-ref.v1",
                "event_id": event_id,
                "source": "pacs-test",
                "occurred_at": "2025-01-15T09:30:00Z",
                "image": {"stage": stage, "path": path},
                "candidate_labels": ["pneumonia", "normal chest"],
            }
        )
    )


def test_the_emulator_allow_lists_the_stage_script_11_creates(emulator: Any) -> None:
    assert {"stage": STAGE} in emulator.config["references"]["image_stages"]


def test_staged_images_are_classified_in_snowflake_into_rows_of_the_table_route_shape(
    registry: Registry, sql: SnowflakeSql
) -> None:
    service = registry.service("biomedclip")
    table = registry.snowflake.results_table
    route = ReferenceRoute(sql, table, registry.references)
    events = [
        _staged("stg-e1", STAGE, "scans/2025/chest-1.png"),
        _staged("stg-e2", STAGE, "scans/2025/missing.png"),
        _staged("stg-e3", "PEDIATRIC_ML.CLINICAL_DATA.OTHER_STAGE", "chest.png"),
        _staged("stg-e4", STAGE.lower(), "scans/2025/chest-2.png"),  # names compare upper-cased
    ]
    outcomes = route.run(service, events)

    codes = {o.event_id: (o.error.code if o.error else None) for o in outcomes}
    assert codes == {
        "stg-e1": None,
        "stg-e2": ErrorCode.REFERENCE_NOT_FOUND,
        "stg-e3": ErrorCode.REFERENCE_NOT_ALLOWED,
        "stg-e4": None,
    }
    assert all(o.error.kind is FailureKind.POISON for o in outcomes if o.error)
    # One stage: one MERGE, then one SELECT of ids (a file was missing).
    assert route.statements == 2
    rows = sql.execute(
        f"SELECT EVENT_ID, KIND, SUBJECT_ID, SERVICE, STATUS, OUTPUT, LATENCY_MS FROM {table} "
        "WHERE EVENT_ID IN (?, ?, ?) ORDER BY EVENT_ID",
        ["stg-e1", "stg-e2", "stg-e4"],
    )
    assert [r[:5] for r in rows] == [
        ("stg-e1", "medical-image", "scans/2025/chest-1.png", service.service, "SUCCEEDED"),
        ("stg-e4", "medical-image", "scans/2025/chest-2.png", service.service, "SUCCEEDED"),
    ]
    for row in rows:
        labels = json.loads(row[5])
        assert sorted(item["label"] for item in labels) == ["normal chest", "pneumonia"]
        assert row[6] is None


def test_table_and_stage_images_in_one_batch_make_one_statement_each(
    emulator: Any, registry: Registry, sql: SnowflakeSql
) -> None:
    _admin(emulator, f"INSERT INTO {IMAGES} (IMAGE_ID, IMAGE) VALUES ('STG-T1', X'00FF')")
    service = registry.service("biomedclip")
    route = ReferenceRoute(sql, registry.snowflake.results_table, registry.references)
    table_ref = parse_any_event(
        json.dumps(
            {
                "schema": "medical-image-ref.v1",
                "event_id": "stg-mix-t",
                "source": "pacs-test",
                "occurred_at": "2025-01-15T09:30:00Z",
                "image": {"table": IMAGES, "key": "STG-MISSING"},
                "label_set": "chest_xray",
            }
        )
    )
    staged, tabled = route.run(
        service, [_staged("stg-mix-s", STAGE, "scans/2025/chest-1.png"), table_ref]
    )
    assert staged.done
    assert tabled.error is not None
    assert tabled.error.code is ErrorCode.REFERENCE_NOT_FOUND
    assert route.statements == 3  # the stage's MERGE; the table's MERGE and its id check


def test_a_stage_the_role_may_not_read_is_the_privilege_error(
    registry: Registry, sql: SnowflakeSql
) -> None:
    service = registry.service("biomedclip")
    route = ReferenceRoute(sql, registry.snowflake.results_table, registry.references)
    [outcome] = route.run(service, [_staged("stg-p1", UNGRANTED, "chest.png")])
    assert outcome.error is not None
    assert outcome.error.code is ErrorCode.PRIVILEGE_MISSING
    assert outcome.error.kind is FailureKind.CONFIGURATION
    [(count,)] = sql.execute(
        f"SELECT COUNT(*) FROM {registry.snowflake.results_table} WHERE EVENT_ID = ?",
        ["stg-p1"],
    )
    assert count == 0


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        # READ on the stage is the caller's: the gateway role holds it on 11's stage only.
        (f"SELECT RELATIVE_PATH FROM DIRECTORY(@{UNGRANTED})", "002003"),
        (
            f"SELECT BUILD_SCOPED_FILE_URL(@{UNGRANTED}, d.RELATIVE_PATH) "
            f"FROM DIRECTORY(@{STAGE}) AS d",
            "002003",
        ),
        # The reader on a file that does not exist: the UDF fails the statement (which is why
        # the MERGE joins DIRECTORY first).
        (
            f"SELECT {READER}(BUILD_SCOPED_FILE_URL(@{STAGE}, d.RELATIVE_PATH || '.gone')) "
            f"FROM DIRECTORY(@{STAGE}) AS d",
            "100357",
        ),
    ],
)
def test_stage_reads_are_checked_like_snowflake(
    registry: Registry, sql: SnowflakeSql, statement: str, code: str
) -> None:
    from spcs_gateway.errors import GatewayError

    with pytest.raises(GatewayError) as caught:
        sql.execute(statement)
    assert f"errno {int(code)}" in caught.value.detail


def test_the_reader_answers_the_staged_bytes(sql: SnowflakeSql) -> None:
    [(size, data)] = sql.execute(
        f"SELECT d.SIZE, {READER}(BUILD_SCOPED_FILE_URL(@{STAGE}, d.RELATIVE_PATH)) "
        f"FROM DIRECTORY(@{STAGE}) AS d WHERE d.RELATIVE_PATH = ?",
        ["scans/2025/chest-2.png"],
    )
    assert bytes(data) == _png((30, 30, 200))
    assert size == len(bytes(data))
