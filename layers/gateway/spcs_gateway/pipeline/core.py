"""``Pipeline``: runs the named steps (``steps.py``) over one SQS batch and answers Lambda."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from spcs_gateway.backoff import BackoffPolicy, Rng, jitter_rng
from spcs_gateway.clock import Clock, elapsed_ms, utc_now
from spcs_gateway.ehr.note import EhrNote
from spcs_gateway.errors import ErrorCode, FailureKind, GatewayError, PoisonError, TransientError
from spcs_gateway.events import (
    ImageEvent,
    ImageRefEvent,
    NoteEvent,
    NoteRefEvent,
    parse_message,
)
from spcs_gateway.pipeline import ports, steps
from spcs_gateway.pipeline.outcomes import Decision, RecordOutcome
from spcs_gateway.pipeline.report import BatchReporter
from spcs_gateway.pipeline.steps import AnyEvent
from spcs_gateway.readiness import NoopReadinessHook, ReadinessHook
from spcs_gateway.registry import ServiceConfig, Task
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import RowResult

KIND_BY_TASK: dict[Task, str] = {
    Task.TOKEN_CLASSIFICATION: "clinical-note",
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: "medical-image",
}
_EVENT_TYPES: dict[Task, tuple[type[NoteEvent | ImageEvent | EhrNote], ...]] = {
    Task.TOKEN_CLASSIFICATION: (NoteEvent, EhrNote),
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: (ImageEvent,),
}
# Reference events (ids only) a router takes when it serves the reference route.
_REFERENCE_TYPES: dict[Task, type[NoteRefEvent | ImageRefEvent]] = {
    Task.TOKEN_CLASSIFICATION: NoteRefEvent,
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: ImageRefEvent,
}

Retries = list[tuple[SQSRecord, GatewayError]]


class Pipeline:
    def __init__(
        self,
        service: ServiceConfig,
        *,
        spcs: ports.Inference,
        sink: ports.Sink,
        dead_letters: ports.DeadLetterQueue,
        visibility: ports.Visibility,
        images: ports.ImageLoader | None = None,
        subjects: ports.Subjects | None = None,
        readiness: ReadinessHook | None = None,
        activity: ports.Activity | None = None,
        references: ports.References | None = None,
        backoff: BackoffPolicy | None = None,
        logger: Logger | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        rng: Rng | None = None,
        now: Clock = utc_now,
    ) -> None:
        if service.task is Task.ZERO_SHOT_IMAGE_CLASSIFICATION and images is None:
            raise ValueError("an image service needs an image loader")
        self.service = service
        self._kind = KIND_BY_TASK[service.task]
        self._event_types: tuple[type, ...] = _EVENT_TYPES[service.task]
        # The reference route (None: reference schemas are UNKNOWN_SCHEMA, as before).
        self._references = references
        if references is not None:
            self._event_types = (*self._event_types, _REFERENCE_TYPES[service.task])
        # Notes services take EHR messages (FHIR, HL7 v2); their subjects need the keyer.
        self._subjects = subjects if service.task is Task.TOKEN_CLASSIFICATION else None
        self._spcs = spcs
        self._sink = sink
        self._dlq = dead_letters
        self._visibility = visibility
        self._images = images
        self._readiness = readiness or NoopReadinessHook()
        self._activity = activity
        self._backoff = backoff or BackoffPolicy()
        self._report = BatchReporter(service.name, logger=logger, metrics=metrics, tracer=tracer)
        self._rng: Rng = rng or jitter_rng()
        self._now = now

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        records = [SQSRecord(raw) for raw in event.get("Records", [])]
        try:
            decisions = self.decide(records)
        except Exception:  # noqa: BLE001 - a bug must not lose records or leak a message
            self._report.exception("batch failed unexpectedly; all records returned for retry")
            error = TransientError(ErrorCode.DEPENDENCY_ERROR, "unexpected pipeline error")
            retried = RecordOutcome.retried(FailureKind.TRANSIENT)
            decisions = {r.message_id: Decision(retried, error, error) for r in records}
            self._report.batch(records, decisions, {})

        # Every decision is taken; Powertools only builds ``batchItemFailures`` from them.
        def record_handler(record: SQSRecord) -> None:
            error = decisions[record.message_id].error
            if error is not None:
                raise error

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    # -- the steps, in order -------------------------------------------------------------------

    def decide(self, records: list[SQSRecord]) -> dict[str, Decision]:
        """Every record's decision, with the batch's I/O done: one pre-check SELECT at most (on
        a redelivery), batched inference, one MERGE, DLQ sends and visibility changes."""
        started = time.perf_counter()
        timings: dict[str, int] = {}

        batch = steps.expand_batch(records, self._expand)  # 1, 2
        timings["parse_ms"] = elapsed_ms(started)
        works = batch.works
        if works and self._activity is not None:
            # Work arrived for the service: keeps the control plane's idle timer from running
            # out mid-stream. Throttled per container; never fails the batch.
            self._activity.record(self.service.name)

        done: set[str] = set()
        failed: dict[str, GatewayError] = {}  # event_id -> why it has no row (yet)
        expanded = [r for r in records if r.message_id in batch.events_of]
        if works and steps.needs_precheck(expanded):  # 3
            step = time.perf_counter()
            done, failed = steps.precheck(self._sink, list(works))
            timings["existing_ms"] = elapsed_ms(step)
        pending = [w for key, w in works.items() if key not in done and key not in failed]
        referenced: set[str] = set()  # reference events written by the reference route
        if self._references is not None:
            step = time.perf_counter()
            referenced, pending = self._run_references(pending, failed)
            timings["reference_ms"] = elapsed_ms(step)

        step = time.perf_counter()  # 4
        inputs, refused = steps.prepare_inputs(pending, self._values)
        failed.update(refused)
        timings["prepare_ms"] = elapsed_ms(step)
        rows: list[ResultRow] = []
        if inputs:
            step = time.perf_counter()
            results = self._spcs.infer(self.service, inputs)
            timings["infer_ms"] = elapsed_ms(step)
            processed_at = self._now()
            rows, unanswered = steps.collect_results(
                results, lambda result: self._row(works[result.key].event, result, processed_at)
            )
            failed.update(unanswered)

        dead = steps.dead_records(batch.events_of, failed)  # 5
        rows = steps.rows_to_write(rows, batch.events_of, dead)
        written: set[str] = set(referenced)
        if rows:
            step = time.perf_counter()
            merged, unwritten = steps.write(self._sink, rows)
            written |= merged  # the references' rows were written by their own statement
            failed.update(unwritten)
            timings["merge_ms"] = elapsed_ms(step)

        decisions: dict[str, Decision] = {}  # 6: records refused at 1 first, then the others
        retries: Retries = []
        for record in records:
            if (refusal := batch.refused.get(record.message_id)) is not None:
                decisions[record.message_id] = self._dead_letter_or_retry(
                    record, refusal, None, retries
                )
        for record in records:
            message_id = record.message_id
            if message_id in batch.refused:
                continue
            ids = batch.events_of[message_id]
            failure = steps.record_failure(ids, failed)
            if failure is not None:
                event_id, error = failure
                decisions[message_id] = self._dead_letter_or_retry(record, error, event_id, retries)
            else:
                decisions[message_id] = Decision(steps.success_outcome(record, ids, works, written))

        self._schedule_retries(retries)  # 7
        timings["total_ms"] = elapsed_ms(started)
        self._report.batch(records, decisions, timings, events=len(works))
        return decisions

    def _run_references(
        self, pending: list[steps.Work], failed: dict[str, GatewayError]
    ) -> tuple[set[str], list[steps.Work]]:
        """Reference events through the reference route (one MERGE per batch, the model inside
        Snowflake): (event ids written, the inline work left). Failures join ``failed``."""
        refs = [w for w in pending if isinstance(w.event, NoteRefEvent | ImageRefEvent)]
        if not refs or self._references is None:
            return set(), pending
        written: set[str] = set()
        events = [w.event for w in refs if isinstance(w.event, NoteRefEvent | ImageRefEvent)]
        for outcome in self._references.run(self.service, events):
            if outcome.error is None:
                written.add(outcome.event_id)
            else:
                failed[outcome.event_id] = outcome.error
        inline = [w for w in pending if not isinstance(w.event, NoteRefEvent | ImageRefEvent)]
        return written, inline

    def _expand(self, record: SQSRecord) -> list[AnyEvent]:
        """The events a record holds, each of a kind this router handles."""
        events = parse_message(
            record.body, subjects=self._subjects, references=self._references is not None
        )
        if not all(isinstance(event, self._event_types) for event in events):
            raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "schema not handled by this router")
        return events

    def _dead_letter_or_retry(
        self, record: SQSRecord, error: GatewayError, event_id: str | None, retries: Retries
    ) -> Decision:
        """Poison goes to the DLQ (handled); anything else, or poison the DLQ refused, is
        returned to SQS and joins ``retries``."""
        if error.kind is FailureKind.POISON:
            try:
                self._dlq.send_poison(record, error.code)
            except GatewayError as dlq_error:
                self._report.record("poison could not reach the DLQ", record, event_id, dlq_error)
                retries.append((record, dlq_error))
                return Decision(RecordOutcome.retried(dlq_error.kind), dlq_error, cause=error)
            self._report.record("record sent to DLQ", record, event_id, error)
            return Decision(RecordOutcome.POISON, cause=error)
        self._report.record("record returned for retry", record, event_id, error)
        retries.append((record, error))
        return Decision(RecordOutcome.retried(error.kind), error, cause=error)

    def _schedule_retries(self, retries: Retries) -> None:
        """The readiness hook once when the service is unavailable, then a visibility backoff
        per retried record."""
        if not retries:
            return
        if steps.needs_readiness(retries):
            try:
                self._readiness.service_unavailable(self.service)
            except Exception:  # noqa: BLE001 - the hook is best effort; records are retried anyway
                self._report.exception("readiness hook failed")
        items = steps.retry_delays(retries, self._backoff, self._rng)
        failed = self._visibility.change_visibility_many(items)
        if failed:
            self._report.warning("visibility change failed", records_failed=failed)

    # -- building rows -------------------------------------------------------------------------

    def _values(self, event: AnyEvent) -> tuple[Any, ...]:
        """Column values in signature order, positional per task (names may be customised)."""
        if isinstance(event, NoteEvent | EhrNote):
            return (event.text,)
        if isinstance(event, NoteRefEvent | ImageRefEvent):  # never here: the reference route
            raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "a reference event is not sent inline")
        assert self._images is not None
        # Imported here: only the image router gets here, and images.py pulls in Pillow.
        from spcs_gateway.images import resolve_labels

        labels = resolve_labels(event, self.service)
        image = self._images.load(event.image)
        return (image.data, labels)

    def _row(self, event: AnyEvent, result: RowResult, processed_at: datetime) -> ResultRow:
        return ResultRow(
            event_id=event.event_id,
            kind=self._kind,
            subject_id=event.subject_id,
            service=self.service.service,
            model_version=self.service.model_version,
            output=result.output,
            latency_ms=result.latency_ms,
            processed_at=processed_at,
        )
