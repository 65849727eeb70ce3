"""A router's pipeline with the reference route, against the running emulator: one SQS batch
mixing reference and inline events; the reference events run their model inside Snowflake
(one MERGE), the inline ones through the ingress, and each record gets its decision: written,
dead-lettered with its reason code, or returned for retry with the readiness hook fired."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from gateway_sql import gateway_sql

from spcs_gateway.errors import ErrorCode
from spcs_gateway.pipeline.wiring import build_pipeline
from spcs_gateway.registry import Registry, ServiceConfig, parse_registry
from spcs_gateway.sql import SnowflakeSql

pytestmark = pytest.mark.emulator

NOTES = "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"
ARN = "arn:aws:sqs:us-east-1:123456789012:spcs-gateway-notes"


class Dlq:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_poison(self, record: SQSRecord, code: ErrorCode) -> None:
        self.sent.append((record.message_id, str(code)))


class Visibility:
    def __init__(self) -> None:
        self.changed: list[tuple[str, int]] = []

    def change_visibility_many(self, items: Sequence[tuple[SQSRecord, int]]) -> int:
        self.changed += [(r.message_id, delay) for r, delay in items]
        return 0


class Hook:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def service_unavailable(self, service: ServiceConfig) -> None:
        self.calls.append(service.name)


class Activity:
    def __init__(self) -> None:
        self.names: list[str] = []

    def record(self, name: str) -> bool:
        self.names.append(name)
        return True


def _record(message_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1741000000000"},
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "us-east-1",
    }


def _ref(event_id: str, key: str, table: str = NOTES) -> dict[str, Any]:
    return {
        "schema": "clinical-note-ref.v1",
        "event_id": event_id,
        "source": "ehr-test",
        "occurred_at": "2025-01-15T09:30:00Z",
        "note": {"table": table, "key": key},
    }


@pytest.fixture(scope="module")
def registry(emulator: Any) -> Registry:
    emulator.admin_post(
        "sql",
        {
            "sql": f"INSERT INTO {NOTES} (NOTE_ID, NOTE_TEXT) VALUES (?, ?)",
            "role": "SYSADMIN",
            "bindings": ["PIPE-N1", "Started amoxicillin for acute otitis media."],
        },
    )
    found = parse_registry(emulator.config)
    assert found.references.note_table(NOTES) is not None  # the emulator's allow-list
    return found


@pytest.fixture
def sql(registry: Registry) -> Iterator[SnowflakeSql]:
    with gateway_sql(registry) as conn:
        yield conn


def _pipeline(registry: Registry, sql: SnowflakeSql) -> tuple[Any, Dlq, Visibility, Hook]:
    dlq, visibility, hook = Dlq(), Visibility(), Hook()
    pipeline = build_pipeline(
        "biobert_ner",
        environ={},
        registry=registry,
        sql=sql,
        dead_letters=dlq,
        visibility=visibility,
        readiness=hook,
        activity=Activity(),
        logger=Logger(service="ref-pipeline-test"),
        metrics=Metrics(namespace="RefPipelineTest"),
        tracer=Tracer(disabled=True),
    )
    return pipeline, dlq, visibility, hook


def test_a_batch_mixing_reference_and_inline_events(registry: Registry, sql: SnowflakeSql) -> None:
    pipeline, dlq, visibility, hook = _pipeline(registry, sql)
    inline = {
        "schema": "clinical-note.v1",
        "event_id": "pipe-inline-1",
        "note_id": "NOTE-INLINE-1",
        "source": "ehr-test",
        "occurred_at": "2025-01-15T09:30:00Z",
        "text": "Asthma exacerbation; albuterol given.",
    }
    event = {
        "Records": [
            _record("m1", _ref("pipe-ref-1", "PIPE-N1")),
            _record("m2", _ref("pipe-ref-2", "PIPE-MISSING")),
            _record("m3", inline),
            _record(
                "m4", _ref("pipe-ref-3", "X", table="PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES")
            ),
        ]
    }
    answer = pipeline.handle(event)
    assert answer == {"batchItemFailures": []}
    assert sorted(dlq.sent) == [("m2", "REFERENCE_NOT_FOUND"), ("m4", "REFERENCE_NOT_ALLOWED")]
    table = registry.snowflake.results_table
    rows = sql.execute(
        f"SELECT EVENT_ID, KIND, SUBJECT_ID FROM {table} WHERE EVENT_ID IN (?, ?, ?) "
        "ORDER BY EVENT_ID",
        ["pipe-inline-1", "pipe-ref-1", "pipe-ref-2"],
    )
    assert rows == [
        ("pipe-inline-1", "clinical-note", "NOTE-INLINE-1"),
        ("pipe-ref-1", "clinical-note", "PIPE-N1"),
    ]
    assert hook.calls == []
    assert visibility.changed == []


def test_a_suspended_service_returns_reference_records_and_asks_for_readiness(
    emulator_factory: Any,
) -> None:
    handle = emulator_factory("--resume-seconds", "30", "--no-auto-resume")
    registry = parse_registry(handle.config)
    with gateway_sql(registry) as conn:
        handle.admin_post(
            "sql",
            {
                "sql": f"INSERT INTO {NOTES} (NOTE_ID, NOTE_TEXT) VALUES ('S-1', 'Fever.')",
                "role": "SYSADMIN",
            },
        )
        conn.query(f"ALTER SERVICE {registry.service('biobert_ner').service} SUSPEND")
        pipeline, dlq, visibility, hook = _pipeline(registry, conn)
        answer = pipeline.handle({"Records": [_record("s1", _ref("susp-1", "S-1"))]})
        assert answer == {"batchItemFailures": [{"itemIdentifier": "s1"}]}
        assert hook.calls == ["biobert_ner"]  # ensure_ready, as for an inline 503
        assert [m for m, _ in visibility.changed] == ["s1"]
        assert dlq.sent == []
