"""The reference route against the running emulator, through the real connector: one MERGE runs
the model inside "Snowflake" (the service function, with the ingress's backends and signature
rules), writes rows of the inline route's shape, and answers only counts and missing ids."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from gateway_sql import gateway_sql

from spcs_gateway.errors import ErrorCode, FailureKind, TransientError
from spcs_gateway.events import parse_any_event
from spcs_gateway.reference.route import ReferenceRoute
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.sql import SnowflakeSql

pytestmark = pytest.mark.emulator

NOTES = "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"  # infra/snowflake/11, versioned
OFF_LIST = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"  # holds notes, not allow-listed
IMAGES = "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES"
VERSIONED = "PEDIATRIC_ML.CLINICAL_DATA.NOTE_VERSIONS"
CANARY = "CANARY-REF-7f3a"


def _admin(emulator: Any, sql: str, bindings: list[Any] | None = None, role: str = "") -> Any:
    body: dict[str, Any] = {"sql": sql, "role": role or "SYSADMIN"}
    if bindings is not None:
        body["bindings"] = bindings
    return emulator.admin_post("sql", body)


@pytest.fixture(scope="module")
def registry(emulator: Any) -> Registry:
    _admin(
        emulator,
        f"CREATE TABLE IF NOT EXISTS {VERSIONED} "
        "(NOTE_KEY STRING, NOTE_VERSION NUMBER, BODY STRING)",
    )
    _admin(
        emulator,
        f"GRANT SELECT ON TABLE {VERSIONED} TO ROLE SPCS_GATEWAY_ROLE",
        role="SECURITYADMIN",
    )
    rows = [
        ("REF-N1", 1, f"Started amoxicillin for otitis media. {CANARY}"),
        ("REF-N2", 1, "Asthma exacerbation treated with albuterol."),
        ("REF-N3", 1, "Cough."),
        ("REF-N3", 2, "Cough; started azithromycin."),
    ]
    for key, version, text in rows:
        _admin(
            emulator,
            f"INSERT INTO {NOTES} (NOTE_ID, NOTE_VERSION, NOTE_TEXT) VALUES (?, ?, ?)",
            [key, version, text],
        )
    for version, text in ((1, "Fever."), (2, "Fever and seizure; started ibuprofen.")):
        _admin(
            emulator,
            f"INSERT INTO {VERSIONED} (NOTE_KEY, NOTE_VERSION, BODY) VALUES ('REF-V', ?, ?)",
            [version, text],
        )
    image = _png().hex().upper()
    _admin(emulator, f"INSERT INTO {IMAGES} (IMAGE_ID, IMAGE) VALUES ('REF-I1', X'{image}')")
    # Bytes that are no image: the model refuses this row.
    _admin(emulator, f"INSERT INTO {IMAGES} (IMAGE_ID, IMAGE) VALUES ('REF-I2', X'00FF00FF')")
    document = json.loads(json.dumps(emulator.config))
    # The emulator's allow-list (EHR_NOTES, MEDICAL_IMAGES) plus a table of other column names.
    document["references"]["note_tables"].append(
        {
            "table": VERSIONED,
            "key_column": "NOTE_KEY",
            "text_column": "BODY",
            "version_column": "NOTE_VERSION",
        }
    )
    return parse_registry(document)


@pytest.fixture
def sql(registry: Registry) -> Iterator[SnowflakeSql]:
    with gateway_sql(registry) as conn:
        yield conn


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _note_ref(event_id: str, table: str, key: str, version: int | None = None) -> Any:
    note: dict[str, Any] = {"table": table, "key": key}
    if version is not None:
        note["version"] = version
    return parse_any_event(
        json.dumps(
            {
                "schema": "clinical-note-ref.v1",
                "event_id": event_id,
                "source": "ehr-test",
                "occurred_at": "2025-01-15T09:30:00Z",
                "note": note,
            }
        )
    )


def test_reference_batch_runs_the_model_in_snowflake_and_answers_ids_only(
    emulator: Any, registry: Registry, sql: SnowflakeSql
) -> None:
    service = registry.service("biobert_ner")
    table = registry.snowflake.results_table
    route = ReferenceRoute(
        sql, table, registry.references, clock=lambda: datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    )
    events = [
        _note_ref("ref-e1", NOTES, "REF-N1"),
        _note_ref("ref-e2", NOTES, "REF-N2"),
        _note_ref("ref-e3", NOTES, "REF-MISSING"),
        _note_ref("ref-e4", VERSIONED, "REF-V", version=2),
        _note_ref("ref-e5", VERSIONED, "REF-V", version=9),
        _note_ref("ref-e6", OFF_LIST, "x"),
        _note_ref("ref-e7", NOTES, "REF-N3"),  # no version: the highest, one row only
        _note_ref("ref-e1", NOTES, "REF-N1"),  # a duplicate shares the first one's outcome
    ]
    outcomes = route.run(service, events)

    codes = {o.event_id: (o.error.code if o.error else None) for o in outcomes}
    assert codes == {
        "ref-e1": None,
        "ref-e2": None,
        "ref-e3": ErrorCode.REFERENCE_NOT_FOUND,
        "ref-e4": None,
        "ref-e5": ErrorCode.REFERENCE_NOT_FOUND,
        "ref-e6": ErrorCode.REFERENCE_NOT_ALLOWED,
        "ref-e7": None,
    }
    assert all(o.error.kind is FailureKind.POISON for o in outcomes if o.error)
    # Two tables: two MERGEs, each followed by one SELECT of ids (each had a missing row).
    assert route.statements == 4

    rows = sql.execute(
        f"SELECT EVENT_ID, KIND, SUBJECT_ID, SERVICE, STATUS, OUTPUT, LATENCY_MS FROM {table} "
        "WHERE EVENT_ID IN (?, ?, ?, ?, ?, ?) ORDER BY EVENT_ID",
        ["ref-e1", "ref-e2", "ref-e3", "ref-e4", "ref-e5", "ref-e7"],
    )
    assert [r[:5] for r in rows] == [
        ("ref-e1", "clinical-note", "REF-N1", service.service, "SUCCEEDED"),
        ("ref-e2", "clinical-note", "REF-N2", service.service, "SUCCEEDED"),
        ("ref-e4", "clinical-note", "REF-V", service.service, "SUCCEEDED"),
        ("ref-e7", "clinical-note", "REF-N3", service.service, "SUCCEEDED"),
    ]
    by_id = {r[0]: json.loads(r[5]) for r in rows}
    # The inline route's OUTPUT shape: the model's entity list (same backend as the ingress).
    words = {e["word"].lower() for e in by_id["ref-e1"]}
    assert "amoxicillin" in words
    assert {e["word"].lower() for e in by_id["ref-e4"]} >= {"ibuprofen"}  # version 2's text
    assert {e["word"].lower() for e in by_id["ref-e7"]} >= {"azithromycin"}  # the latest
    assert all(r[6] is None for r in rows)

    # A redelivery writes nothing new and is done without a second look at the ids.
    before = route.statements
    again = route.run(service, [_note_ref("ref-e1", NOTES, "REF-N1")])
    assert [o.done for o in again] == [True]
    assert route.statements == before + 2  # MERGE inserted 0, then the id check found it


def test_statement_refused_by_the_signature_rules_is_not_poison(
    registry: Registry, sql: SnowflakeSql
) -> None:
    # A service function call without every parameter column is a compilation error, as a
    # short flat row is a 400 at the ingress.
    with pytest.raises(TransientError) as caught:
        sql.execute(
            "SELECT PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE!PREDICT(TO_BINARY('00', 'HEX'), "
            "PARSE_JSON('[\"a\"]'))"
        )
    assert "errno 938" in caught.value.detail


def test_image_references_run_the_image_service_in_snowflake(
    registry: Registry, sql: SnowflakeSql
) -> None:
    service = registry.service("biomedclip")
    table = registry.snowflake.results_table
    route = ReferenceRoute(sql, table, registry.references)
    events = [
        parse_any_event(
            json.dumps(
                {
                    "schema": "medical-image-ref.v1",
                    "event_id": event_id,
                    "source": "pacs-test",
                    "occurred_at": "2025-01-15T09:30:00Z",
                    "image": {"table": IMAGES, "key": key},
                    "candidate_labels": ["pneumonia", "normal chest"],
                }
            )
        )
        for event_id, key in (("ref-i1", "REF-I1"), ("ref-i2", "REF-I2"))
    ]
    good, bad = route.run(service, events)
    assert good.done
    # The refused row is isolated (the statement halved), as the inline route isolates a 400.
    assert bad.error is not None
    assert bad.error.code is ErrorCode.MODEL_REJECTED_INPUT
    assert route.statements == 3
    [(kind, output)] = sql.execute(
        f"SELECT KIND, OUTPUT FROM {table} WHERE EVENT_ID = ?", ["ref-i1"]
    )
    assert kind == "medical-image"
    labels = json.loads(output)
    assert sorted(item["label"] for item in labels) == ["normal chest", "pneumonia"]


@pytest.mark.parametrize(
    ("sql", "role", "code"),
    [
        # Not the deployment's method: no such function.
        ("SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!EXPLAIN('x')", "SYSADMIN", "002140"),
        # A role that cannot see the service: "does not exist or not authorized".
        ("SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!PREDICT('x')", "USERADMIN", "002003"),
        # Too many arguments: the NER signature has one input and no parameter.
        ("SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!PREDICT('x', 'y')", "SYSADMIN", "000938"),
    ],
)
def test_service_function_calls_are_checked_like_snowflake(
    emulator: Any, sql: str, role: str, code: str
) -> None:
    import httpx

    with pytest.raises(httpx.HTTPStatusError) as caught:
        _admin(emulator, sql, role=role)
    answer = caught.value.response.json()
    assert answer["code"] == code
