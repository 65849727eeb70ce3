"""The pipeline's per-record steps with in-memory ports: the pre-check only on a redelivery,
dedupe, poison first, the DLQ and the source queue's visibility as separate ports."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from gw_support import note_body, registry_doc

from spcs_gateway.errors import ErrorCode, GatewayError, PoisonError, TransientError
from spcs_gateway.pipeline import Pipeline, RecordOutcome, steps
from spcs_gateway.registry import ServiceConfig, parse_registry
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import InferenceInput, RowResult

ARN = "arn:aws:sqs:us-east-1:123456789012:spcs-gateway-notes"


def _record(message_id: str, body: str, receive_count: str | None = "1") -> dict[str, Any]:
    attributes = {} if receive_count is None else {"ApproximateReceiveCount": receive_count}
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "us-east-1",
    }


class _Model:
    def __init__(self, reject: str | None = None) -> None:
        self.keys: list[str] = []
        self.reject = reject

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        self.keys += [i.key for i in inputs]
        poison = PoisonError(ErrorCode.MODEL_REJECTED_INPUT, "rejected")
        return [
            RowResult(i.key, None, poison, 1)
            if i.key == self.reject
            else RowResult(i.key, [], None, 1)
            for i in inputs
        ]


class _Table:
    def __init__(self, rows: Iterable[str] = ()) -> None:
        self.rows = set(rows)
        self.selects: list[list[str]] = []
        self.merges: list[list[str]] = []

    def existing(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        self.selects.append(ids)
        return self.rows & set(ids)

    def merge(self, rows: Sequence[ResultRow]) -> None:
        self.merges.append([r.event_id for r in rows])
        self.rows |= {r.event_id for r in rows}


class _Dlq:
    def __init__(self) -> None:
        self.sent: list[tuple[str, ErrorCode]] = []

    def send_poison(self, record: SQSRecord, code: ErrorCode) -> None:
        self.sent.append((record.message_id, code))


class _Visibility:
    def __init__(self) -> None:
        self.changed: list[tuple[str, int]] = []

    def change_visibility_many(self, items: Sequence[tuple[SQSRecord, int]]) -> int:
        self.changed += [(r.message_id, s) for r, s in items]
        return 0


class _Run:
    def __init__(self, table: _Table | None = None, model: _Model | None = None) -> None:
        self.table = table or _Table()
        self.model = model or _Model()
        self.dlq = _Dlq()
        self.visibility = _Visibility()
        self.pipeline = Pipeline(
            parse_registry(registry_doc()).service("ner"),
            spcs=self.model,
            sink=self.table,
            dead_letters=self.dlq,
            visibility=self.visibility,
            rng=random.Random(3),
            now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        )

    def handle(self, *records: dict[str, Any]) -> set[str]:
        answer = self.pipeline.handle({"Records": list(records)})
        return {f["itemIdentifier"] for f in answer["batchItemFailures"]}


def test_first_receive_batch_issues_no_precheck_select() -> None:
    run = _Run()
    assert run.handle(_record("m1", note_body("e1")), _record("m2", note_body("e2"))) == set()
    assert run.table.selects == []
    assert run.table.merges == [["e1", "e2"]]
    assert run.model.keys == ["e1", "e2"]


def test_a_batch_with_one_redelivered_record_is_prechecked_once() -> None:
    run = _Run()
    run.handle(_record("m1", note_body("e1")), _record("m2", note_body("e2"), receive_count="2"))
    assert run.table.selects == [["e1", "e2"]]  # one SELECT for the whole batch


def test_an_unknown_receive_count_is_treated_as_a_redelivery() -> None:
    run = _Run()
    run.handle(_record("m1", note_body("e1"), receive_count=None))
    assert len(run.table.selects) == 1


def test_a_redelivered_record_whose_row_exists_is_not_inferred_again() -> None:
    run = _Run(table=_Table(rows={"e1"}))
    decisions = run.pipeline.decide(
        [
            SQSRecord(_record("m1", note_body("e1"), receive_count="3")),
            SQSRecord(_record("m2", note_body("e2"))),
        ]
    )
    assert run.model.keys == ["e2"]  # e1 had its row: no second inference
    assert run.table.merges == [["e2"]]
    assert decisions["m1"].outcome is RecordOutcome.ALREADY_PROCESSED
    assert decisions["m2"].outcome is RecordOutcome.SUCCEEDED


def test_poison_goes_to_the_dlq_port_and_retries_to_the_visibility_port() -> None:
    class _Failing(_Table):
        def merge(self, rows: Sequence[ResultRow]) -> None:
            raise TransientError(ErrorCode.RESULTS_WRITE_FAILED, "write failed")

    run = _Run(table=_Failing(), model=_Model(reject="e2"))
    failures = run.handle(
        _record("m1", note_body("e1")), _record("m2", note_body("e2")), _record("m3", "{")
    )
    assert failures == {"m1"}  # the MERGE failed: retried; m2 and m3 are poison, handled
    assert run.dlq.sent == [("m3", ErrorCode.INVALID_JSON), ("m2", ErrorCode.MODEL_REJECTED_INPUT)]
    assert [m for m, _ in run.visibility.changed] == ["m1"]
    assert run.visibility.changed[0][1] >= 1


# -- the pure steps ----------------------------------------------------------------------------


def test_expand_batch_refuses_a_record_and_shares_a_repeated_event() -> None:
    records = [
        SQSRecord(_record(m, b)) for m, b in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "!")]
    ]

    class _Ev:
        def __init__(self, event_id: str) -> None:
            self.event_id = event_id

    def expand(record: SQSRecord) -> list[Any]:
        if record.body == "!":
            raise PoisonError(ErrorCode.INVALID_JSON, "bad")
        return [_Ev(record.body), _Ev(record.body)]  # a repeated id inside one record too

    batch = steps.expand_batch(records, expand)
    assert batch.events_of == {"a": ["x"], "b": ["y"], "c": ["x"]}
    assert batch.works["x"].record.message_id == "a"  # the first copy does the work
    assert set(batch.refused) == {"d"}


def test_record_failure_prefers_poison_and_success_outcome_names_the_copy() -> None:
    transient = TransientError(ErrorCode.DEPENDENCY_ERROR, "t")
    poison = PoisonError(ErrorCode.INVALID_EVENT, "p")
    failed: dict[str, GatewayError] = {"e1": transient, "e2": poison}
    assert steps.record_failure(["e1", "e2"], failed) == ("e2", poison)
    assert steps.record_failure(["e1"], failed) == ("e1", transient)
    assert steps.record_failure(["e3"], failed) is None
    assert steps.dead_records({"m1": ["e1"], "m2": ["e1", "e2"]}, failed) == {"m2"}

    first, later = SQSRecord(_record("m1", "")), SQSRecord(_record("m2", ""))
    works = {"e1": steps.Work(first, None)}  # type: ignore[arg-type]
    assert steps.success_outcome(first, ["e1"], works, {"e1"}) is RecordOutcome.SUCCEEDED
    assert steps.success_outcome(first, ["e1"], works, set()) is RecordOutcome.ALREADY_PROCESSED
    assert steps.success_outcome(later, ["e1"], works, set()) is RecordOutcome.DUPLICATE_IN_BATCH


def test_outcome_vocabulary_names_retries_by_failure_kind() -> None:
    assert {o.value for o in RecordOutcome} == {
        "succeeded", "already_processed", "duplicate_in_batch", "poison",
        "transient", "throttled", "unavailable", "configuration",
    }  # fmt: skip
    error = TransientError(ErrorCode.DEPENDENCY_ERROR, "t")
    assert RecordOutcome.retried(error.kind) is RecordOutcome.TRANSIENT
