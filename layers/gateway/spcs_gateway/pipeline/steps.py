"""The per-record decisions of one batch, as named steps.

Each step takes plain values (and, for the two that do I/O, the port it calls) and returns
plain values; ``core.Pipeline`` runs them in order. Event ids are the unit of work (a record
may hold several events: a FHIR bundle, an HL7 v2 message), records are the unit of outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from spcs_gateway.backoff import BackoffPolicy, Rng
from spcs_gateway.ehr.note import EhrNote
from spcs_gateway.errors import FailureKind, GatewayError
from spcs_gateway.events import Event, ReferenceEvent
from spcs_gateway.pipeline.outcomes import RecordOutcome
from spcs_gateway.pipeline.ports import Sink
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import InferenceInput, RowResult

AnyEvent = Event | EhrNote | ReferenceEvent


@dataclass(frozen=True)
class Work:
    """One event (the first copy of an event_id in the batch) and the record it came in."""

    record: SQSRecord
    event: AnyEvent


@dataclass
class Expansion:
    works: dict[str, Work] = field(default_factory=dict)  # event_id -> its first copy
    events_of: dict[str, list[str]] = field(default_factory=dict)  # message_id -> event_ids
    refused: dict[str, GatewayError] = field(default_factory=dict)  # message_id -> why


# -- SQS attributes ----------------------------------------------------------------------------


def receive_count(record: SQSRecord) -> int:
    """``ApproximateReceiveCount``; 1 when missing or unreadable (backoff's first attempt)."""
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


def is_first_receive(record: SQSRecord) -> bool:
    """True only when SQS says so: a missing or unreadable count may be a redelivery."""
    try:
        return int(record.attributes.approximate_receive_count) == 1
    except (KeyError, TypeError, ValueError):
        return False


# -- 1, 2: parse and validate; dedupe inside the batch -----------------------------------------


def expand_batch(
    records: Iterable[SQSRecord], expand: Callable[[SQSRecord], Sequence[AnyEvent]]
) -> Expansion:
    """Every record's events (``expand`` raises ``GatewayError`` for a record it refuses);
    a later copy of an event_id shares its first copy's work."""
    out = Expansion()
    for record in records:
        try:
            events = expand(record)
        except GatewayError as err:
            out.refused[record.message_id] = err
            continue
        ids = out.events_of[record.message_id] = []
        for event in events:
            if event.event_id not in ids:
                ids.append(event.event_id)
                out.works.setdefault(event.event_id, Work(record, event))
    return out


# -- 3: pre-check events already processed -----------------------------------------------------


def needs_precheck(records: Iterable[SQSRecord]) -> bool:
    """The results pre-check only pays on a redelivery: a batch of first receives has no row
    yet from an earlier attempt (and the MERGE on EVENT_ID keeps one row whatever happens)."""
    return not all(is_first_receive(record) for record in records)


def precheck(sink: Sink, event_ids: Sequence[str]) -> tuple[set[str], dict[str, GatewayError]]:
    """(event_ids that already have a row, failures). Snowflake unreachable: every event fails,
    as the MERGE would fail too, so no inference is spent on them."""
    try:
        return sink.existing(event_ids), {}
    except GatewayError as err:
        return set(), dict.fromkeys(event_ids, err)


# -- 4: inference ------------------------------------------------------------------------------


def prepare_inputs(
    pending: Iterable[Work], values: Callable[[AnyEvent], tuple[Any, ...]]
) -> tuple[list[InferenceInput], dict[str, GatewayError]]:
    """One inference input per event; an event whose values cannot be built fails alone."""
    inputs: list[InferenceInput] = []
    failed: dict[str, GatewayError] = {}
    for work in pending:
        try:
            row = values(work.event)
        except GatewayError as err:
            failed[work.event.event_id] = err
            continue
        inputs.append(InferenceInput(key=work.event.event_id, values=row))
    return inputs, failed


def collect_results(
    results: Iterable[RowResult], build_row: Callable[[RowResult], ResultRow]
) -> tuple[list[ResultRow], dict[str, GatewayError]]:
    """(rows to write, failures) from the inference results."""
    rows: list[ResultRow] = []
    failed: dict[str, GatewayError] = {}
    for result in results:
        if result.error is not None:
            failed[result.key] = result.error
        else:
            rows.append(build_row(result))
    return rows, failed


# -- 5: write ----------------------------------------------------------------------------------


def dead_records(
    events_of: Mapping[str, Sequence[str]], failed: Mapping[str, GatewayError]
) -> set[str]:
    """The records that will go to the DLQ: any of their events is poison."""
    return {
        message_id
        for message_id, ids in events_of.items()
        if any(failed[i].kind is FailureKind.POISON for i in ids if i in failed)
    }


def rows_to_write(
    rows: Iterable[ResultRow], events_of: Mapping[str, Sequence[str]], dead: set[str]
) -> list[ResultRow]:
    """Every success, except the rows of a record the DLQ will hold (it is replayed whole)."""
    live = {i for message_id, ids in events_of.items() if message_id not in dead for i in ids}
    return [row for row in rows if row.event_id in live]


def write(sink: Sink, rows: Sequence[ResultRow]) -> tuple[set[str], dict[str, GatewayError]]:
    """(event_ids written, failures): a failed MERGE fails every row it held, so their records
    are retried (MERGE on EVENT_ID keeps a retry from doubling a row)."""
    try:
        sink.merge(rows)
    except GatewayError as err:
        return set(), {row.event_id: err for row in rows}
    return {row.event_id for row in rows}, {}


# -- 6: classify each record -------------------------------------------------------------------


def record_failure(
    ids: Sequence[str], failed: Mapping[str, GatewayError]
) -> tuple[str, GatewayError] | None:
    """The failure that decides a record's fate: its first poison event, else its first
    failed event; None when every event is done."""
    errors = [(i, failed[i]) for i in ids if i in failed]
    if not errors:
        return None
    return next(((i, e) for i, e in errors if e.kind is FailureKind.POISON), errors[0])


def success_outcome(
    record: SQSRecord, ids: Sequence[str], works: Mapping[str, Work], written: set[str]
) -> RecordOutcome:
    """A record none of whose events failed: written, found already done, or a later copy."""
    own = [i for i in ids if works[i].record is record]
    if any(i in written for i in own):
        return RecordOutcome.SUCCEEDED
    if own:
        return RecordOutcome.ALREADY_PROCESSED
    return RecordOutcome.DUPLICATE_IN_BATCH


# -- 7: retry ----------------------------------------------------------------------------------


def retry_delays(
    retries: Iterable[tuple[SQSRecord, GatewayError]], backoff: BackoffPolicy, rng: Rng
) -> list[tuple[SQSRecord, int]]:
    """The visibility timeout of each retried record: by failure kind and receive count,
    honouring Retry-After."""
    return [
        (
            record,
            backoff.delay(err.kind, receive_count(record), rng, retry_after=err.retry_after),
        )
        for record, err in retries
    ]


def needs_readiness(retries: Iterable[tuple[SQSRecord, GatewayError]]) -> bool:
    return any(err.kind is FailureKind.UNAVAILABLE for _, err in retries)
