"""The pipeline's seam to the reference route, with plain fakes: reference events go to the
route, inline events to the SPCS client, and every outcome becomes the record's decision."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from gw_support import registry_doc

from spcs_gateway.errors import ErrorCode, PoisonError, ServiceUnavailableError
from spcs_gateway.events import ReferenceEvent
from spcs_gateway.pipeline.core import Pipeline
from spcs_gateway.pipeline.outcomes import RecordOutcome
from spcs_gateway.reference.route import RefOutcome
from spcs_gateway.registry import ServiceConfig, parse_registry
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import InferenceInput, RowResult

SERVICE = parse_registry(registry_doc()).service("ner")


class Spcs:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        self.keys += [i.key for i in inputs]
        return [RowResult(i.key, [{"entity": "B-DRUG"}], None, 5) for i in inputs]


class Sink:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def existing(self, event_ids: Iterable[str]) -> set[str]:
        return set()

    def merge(self, rows: Sequence[ResultRow]) -> None:
        self.rows += [r.event_id for r in rows]


class Dlq:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_poison(self, record: SQSRecord, code: ErrorCode) -> None:
        self.sent.append((record.message_id, str(code)))


class Visibility:
    def __init__(self) -> None:
        self.changed: list[str] = []

    def change_visibility_many(self, items: Sequence[tuple[SQSRecord, int]]) -> int:
        self.changed += [r.message_id for r, _ in items]
        return 0


class Hook:
    def __init__(self) -> None:
        self.calls = 0

    def service_unavailable(self, service: ServiceConfig) -> None:
        self.calls += 1


class References:
    """Answers per key: "GONE" is missing, "ASLEEP" finds the service starting."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def run(self, service: ServiceConfig, events: Sequence[ReferenceEvent]) -> list[RefOutcome]:
        out = []
        for event in events:
            self.seen.append(event.event_id)
            key = event.subject_id
            if key == "GONE":
                out.append(RefOutcome(event.event_id, PoisonError(ErrorCode.REFERENCE_NOT_FOUND)))
            elif key == "ASLEEP":
                error = ServiceUnavailableError(ErrorCode.SERVICE_UNAVAILABLE)
                out.append(RefOutcome(event.event_id, error))
            else:
                out.append(RefOutcome(event.event_id))
        return out


def _record(message_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:notes",
    }


def _ref(event_id: str, key: str) -> dict[str, Any]:
    return {
        "schema": "clinical-note-ref.v1",
        "event_id": event_id,
        "source": "ehr",
        "occurred_at": "2025-01-15T09:30:00Z",
        "note": {"table": "EHR.CLARITY.NOTES", "key": key},
    }


def _inline(event_id: str) -> dict[str, Any]:
    return {
        "schema": "clinical-note.v1",
        "event_id": event_id,
        "note_id": f"NOTE-{event_id}",
        "source": "ehr",
        "occurred_at": "2025-01-15T09:30:00Z",
        "text": "amoxicillin",
    }


def _pipeline(references: References | None) -> tuple[Pipeline, Spcs, Sink, Dlq, Visibility, Hook]:
    spcs, sink, dlq, visibility, hook = Spcs(), Sink(), Dlq(), Visibility(), Hook()
    pipeline = Pipeline(
        SERVICE,
        spcs=spcs,
        sink=sink,
        dead_letters=dlq,
        visibility=visibility,
        readiness=hook,
        references=references,
    )
    return pipeline, spcs, sink, dlq, visibility, hook


def test_reference_and_inline_events_take_their_own_route() -> None:
    refs = References()
    pipeline, spcs, sink, dlq, visibility, hook = _pipeline(refs)
    event = {
        "Records": [
            _record("m1", _ref("r1", "N-1")),
            _record("m2", _inline("i1")),
            _record("m3", _ref("r2", "GONE")),
            _record("m4", _ref("r3", "ASLEEP")),
        ]
    }
    answer = pipeline.handle(event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m4"}]}
    assert refs.seen == ["r1", "r2", "r3"]
    assert spcs.keys == ["i1"]  # only the inline event goes to the SPCS client
    assert sink.rows == ["i1"]  # the reference route wrote its own rows in Snowflake
    assert dlq.sent == [("m3", "REFERENCE_NOT_FOUND")]
    assert visibility.changed == ["m4"]
    assert hook.calls == 1  # SERVICE_UNAVAILABLE: ensure_ready, as for an inline 503


def test_a_mixed_batch_reports_both_routes_as_succeeded() -> None:
    # Outcomes feed the RecordsProcessed metric and the log: a reference whose row its own
    # statement wrote is a success, not "already processed".
    pipeline, *_ = _pipeline(References())
    records = [SQSRecord(_record("m1", _ref("r1", "N-1"))), SQSRecord(_record("m2", _inline("i1")))]
    decisions = pipeline.decide(records)
    assert {m: d.outcome for m, d in decisions.items()} == {
        "m1": RecordOutcome.SUCCEEDED,
        "m2": RecordOutcome.SUCCEEDED,
    }


def test_without_the_route_reference_schemas_stay_unknown() -> None:
    pipeline, spcs, sink, dlq, _, _ = _pipeline(None)
    answer = pipeline.handle({"Records": [_record("m1", _ref("r1", "N-1"))]})
    assert answer == {"batchItemFailures": []}
    assert dlq.sent == [("m1", "UNKNOWN_SCHEMA")]
    assert (spcs.keys, sink.rows) == ([], [])
