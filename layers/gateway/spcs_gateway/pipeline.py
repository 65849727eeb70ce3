"""The routing pipeline both queue routers share: SQS batch in, SPCS out, results table, DLQ.

Per invocation (one SQS batch), decided up front so inference is batched and the results are
written with one MERGE:

1. expand every record into its events (``events.parse_message``): one for the gateway's own
   envelope, one per note for a FHIR resource or an HL7 v2 message (``spcs_gateway.ehr``), each
   with a deterministic event_id; a record that cannot be expanded is poison: DLQ with its
   reason code, handled;
2. dedupe event_ids inside the batch: later copies share the first copy's outcome;
3. ``ResultsSink.existing()`` (one SELECT): events that already have a row skip inference;
4. build inference rows (images: checked bytes + resolved labels) and call ``SpcsClient.infer``;
5. write every success with ``ResultsSink.merge`` (one MERGE), except the rows of a record that
   goes to the DLQ; if the MERGE fails, those records are retried (nothing is lost, and MERGE on
   EVENT_ID keeps a retry from doubling a row);
6. a record's outcome is its events': all done -> handled; any poison -> the record goes to
   the DLQ; else any transient/throttled/configuration failure -> the record is retried with a
   visibility backoff by receive count (honouring Retry-After), its rows already written are
   skipped next time by step 3; unavailable -> the readiness hook once per invocation, then
   retried with a longer delay.

The record handler given to Powertools' ``BatchProcessor`` only looks up the outcome decided
above and raises for the records SQS must redeliver, so ``process_partial_response`` builds the
``batchItemFailures`` answer.

Exactly-once effect: the MERGE guarantees one row per event_id; the ``existing()`` pre-check
keeps a redelivered event from a second inference, at the cost of one SELECT per batch and no
extra state store (bench/idempotency_cost.py compares it with Powertools Idempotency).

Log lines, metrics and trace annotations carry ids, counts, codes and timings only.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from spcs_gateway.backoff import BackoffPolicy, Rng
from spcs_gateway.ehr.note import EhrNote
from spcs_gateway.errors import (
    ConfigurationError,
    ErrorCode,
    FailureKind,
    GatewayError,
    PoisonError,
    TransientError,
)
from spcs_gateway.events import Event, ImageEvent, NoteEvent, parse_message
from spcs_gateway.readiness import NoopReadinessHook, ReadinessHook
from spcs_gateway.registry import Registry, ServiceConfig, Task, load_registry
from spcs_gateway.results import ResultRow
from spcs_gateway.service_state import SERVICE_STATE_TABLE_ENV
from spcs_gateway.spcs_client import InferenceInput, RowResult

if TYPE_CHECKING:
    import httpx
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.sql import SnowflakeSql

KIND_BY_TASK: dict[Task, str] = {
    Task.TOKEN_CLASSIFICATION: "clinical-note",
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: "medical-image",
}
_EVENT_TYPES: dict[Task, tuple[type[NoteEvent | ImageEvent | EhrNote], ...]] = {
    Task.TOKEN_CLASSIFICATION: (NoteEvent, EhrNote),
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: (ImageEvent,),
}

# Metric ``outcome`` values.
OUTCOME_SUCCEEDED = "succeeded"  # a new result row was written
OUTCOME_ALREADY_DONE = "already_processed"  # a row existed: no inference, no write
OUTCOME_DUPLICATE = "duplicate_in_batch"  # a later copy of an event_id in the same batch
OUTCOME_POISON = "poison"  # sent to the DLQ


# -- the adapters the pipeline needs (real ones in spcs_client/results/dlq; fakes in tests) ------


class Inference(Protocol):
    def infer(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput]
    ) -> list[RowResult]: ...


class Sink(Protocol):
    def existing(self, event_ids: Iterable[str]) -> set[str]: ...

    def merge(self, rows: Sequence[ResultRow]) -> None: ...


class DeadLetterQueue(Protocol):
    def send_poison(self, record: SQSRecord, code: ErrorCode) -> None: ...

    def change_visibility_many(self, items: Sequence[tuple[SQSRecord, int]]) -> int: ...


class ImageLoader(Protocol):
    def load(self, image: Any) -> Any: ...


class Subjects(Protocol):
    """Source identifier -> SUBJECT_ID (``ehr.subjects.SubjectIds``)."""

    def __call__(self, kind: str, value: str) -> str: ...


@dataclass(frozen=True)
class _Outcome:
    label: str  # metric outcome
    error: GatewayError | None = None  # set: SQS must redeliver the record
    cause: GatewayError | None = None  # the failure behind it (also set for handled poison)


@dataclass
class _Work:
    """One event (the first copy of an event_id in the batch) and the record it came in."""

    record: SQSRecord
    event: Event | EhrNote


def _receive_count(record: SQSRecord) -> int:
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


def _ms(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)


class Activity(Protocol):
    """Records that work arrived for a service (service_state.ActivityRecorder)."""

    def record(self, name: str) -> bool: ...


class Pipeline:
    def __init__(
        self,
        service: ServiceConfig,
        *,
        spcs: Inference,
        sink: Sink,
        dead_letters: DeadLetterQueue,
        images: ImageLoader | None = None,
        subjects: Subjects | None = None,
        readiness: ReadinessHook | None = None,
        activity: Activity | None = None,
        backoff: BackoffPolicy | None = None,
        logger: Logger | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        rng: Rng | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if service.task is Task.ZERO_SHOT_IMAGE_CLASSIFICATION and images is None:
            raise ValueError("an image service needs an image loader")
        self.service = service
        self._kind = KIND_BY_TASK[service.task]
        self._event_types = _EVENT_TYPES[service.task]
        # Notes services take EHR messages (FHIR, HL7 v2); their subjects need the keyer.
        self._subjects = subjects if service.task is Task.TOKEN_CLASSIFICATION else None
        self._spcs = spcs
        self._sink = sink
        self._dlq = dead_letters
        self._images = images
        self._readiness = readiness or NoopReadinessHook()
        self._activity = activity
        self._backoff = backoff or BackoffPolicy()
        self._logger = logger
        self._metrics = metrics
        self._tracer = tracer
        self._rng: Rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._now = now

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        records = [SQSRecord(raw) for raw in event.get("Records", [])]
        try:
            outcomes = self._decide(records)
        except Exception:  # noqa: BLE001 - a bug must not lose records or leak a message
            self._log_exception("batch failed unexpectedly; all records returned for retry")
            error = TransientError(ErrorCode.DEPENDENCY_ERROR, "unexpected pipeline error")
            outcomes = {
                r.message_id: _Outcome(FailureKind.TRANSIENT.value, error, error) for r in records
            }
            self._report(records, outcomes, {})

        def record_handler(record: SQSRecord) -> None:
            outcome = outcomes[record.message_id]
            if outcome.error is not None:
                raise outcome.error

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    # -- decisions -----------------------------------------------------------------------------

    def _decide(self, records: list[SQSRecord]) -> dict[str, _Outcome]:
        started = time.perf_counter()
        timings: dict[str, int] = {}
        outcomes: dict[str, _Outcome] = {}
        retries: list[tuple[SQSRecord, GatewayError]] = []

        # 1. expand each record into its events; 2. dedupe event_ids inside the batch
        works: dict[str, _Work] = {}  # event_id -> its first copy
        events_of: dict[str, list[str]] = {}  # message_id -> its event_ids, in order
        for record in records:
            try:
                events = self._expand(record)
            except GatewayError as err:
                outcomes[record.message_id] = self._failure(record, err, None, retries)
                continue
            ids = events_of[record.message_id] = []
            for event in events:
                if event.event_id not in ids:
                    ids.append(event.event_id)
                    works.setdefault(event.event_id, _Work(record, event))
        timings["parse_ms"] = _ms(started)
        if works and self._activity is not None:
            # Work arrived for the service: keeps the control plane's idle timer from running
            # out mid-stream. Throttled per container; never fails the batch.
            self._activity.record(self.service.name)

        # 3. skip events that already have a result row
        failed: dict[str, GatewayError] = {}  # event_id -> why it has no row (yet)
        done: set[str] = set()
        if works:
            step = time.perf_counter()
            try:
                done = self._sink.existing(list(works))
            except GatewayError as err:
                # Snowflake unreachable: the MERGE would fail too, so spend no inference on it.
                failed = dict.fromkeys(works, err)
            timings["existing_ms"] = _ms(step)
        pending = [w for key, w in works.items() if key not in done and key not in failed]

        # 4. inference
        inputs: list[InferenceInput] = []
        step = time.perf_counter()
        for work in pending:
            try:
                values = self._values(work.event)
            except GatewayError as err:
                failed[work.event.event_id] = err
                continue
            inputs.append(InferenceInput(key=work.event.event_id, values=values))
        timings["prepare_ms"] = _ms(step)

        rows: list[ResultRow] = []
        if inputs:
            step = time.perf_counter()
            results = self._spcs.infer(self.service, inputs)
            timings["infer_ms"] = _ms(step)
            processed_at = self._now()
            for result in results:
                if result.error is not None:
                    failed[result.key] = result.error
                else:
                    rows.append(self._row(works[result.key].event, result, processed_at))

        # 5. one MERGE for every success, but none for a record the DLQ will hold
        dead = {
            message_id
            for message_id, ids in events_of.items()
            if any(failed[i].kind is FailureKind.POISON for i in ids if i in failed)
        }
        live = {i for message_id, ids in events_of.items() if message_id not in dead for i in ids}
        rows = [row for row in rows if row.event_id in live]
        written: set[str] = set()
        if rows:
            step = time.perf_counter()
            try:
                self._sink.merge(rows)
            except GatewayError as err:
                failed.update((row.event_id, err) for row in rows)
            else:
                written = {row.event_id for row in rows}
            timings["merge_ms"] = _ms(step)

        # 6. each record's outcome from its events'
        for record in records:
            if record.message_id not in events_of:
                continue  # refused at step 1
            ids = events_of[record.message_id]
            errors = [(i, failed[i]) for i in ids if i in failed]
            if errors:
                event_id, error = next(
                    ((i, e) for i, e in errors if e.kind is FailureKind.POISON), errors[0]
                )
                outcomes[record.message_id] = self._failure(record, error, event_id, retries)
                continue
            own = [i for i in ids if works[i].record is record]
            if any(i in written for i in own):
                outcomes[record.message_id] = _Outcome(OUTCOME_SUCCEEDED)
            elif own:
                outcomes[record.message_id] = _Outcome(OUTCOME_ALREADY_DONE)
            else:
                outcomes[record.message_id] = _Outcome(OUTCOME_DUPLICATE)

        # retries: readiness hook once, then visibility backoff per record
        self._schedule_retries(retries)
        timings["total_ms"] = _ms(started)
        self._report(records, outcomes, timings, events=len(works))
        return outcomes

    def _expand(self, record: SQSRecord) -> list[Event | EhrNote]:
        """The events a record holds, each of a kind this router handles."""
        events = parse_message(record.body, subjects=self._subjects)
        if not all(isinstance(event, self._event_types) for event in events):
            raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "schema not handled by this router")
        return events

    def _failure(
        self,
        record: SQSRecord,
        error: GatewayError,
        event_id: str | None,
        retries: list[tuple[SQSRecord, GatewayError]],
    ) -> _Outcome:
        if error.kind is FailureKind.POISON:
            try:
                self._dlq.send_poison(record, error.code)
            except GatewayError as dlq_error:
                self._log_record("poison could not reach the DLQ", record, event_id, dlq_error)
                retries.append((record, dlq_error))
                return _Outcome(dlq_error.kind.value, dlq_error, cause=error)
            self._log_record("record sent to DLQ", record, event_id, error)
            return _Outcome(OUTCOME_POISON, cause=error)
        self._log_record("record returned for retry", record, event_id, error)
        retries.append((record, error))
        return _Outcome(error.kind.value, error, cause=error)

    def _schedule_retries(self, retries: list[tuple[SQSRecord, GatewayError]]) -> None:
        if not retries:
            return
        if any(err.kind is FailureKind.UNAVAILABLE for _, err in retries):
            try:
                self._readiness.service_unavailable(self.service)
            except Exception:  # noqa: BLE001 - the hook is best effort; records are retried anyway
                self._log_exception("readiness hook failed")
        items = [
            (
                record,
                self._backoff.delay(
                    err.kind, _receive_count(record), self._rng, retry_after=err.retry_after
                ),
            )
            for record, err in retries
        ]
        failed = self._dlq.change_visibility_many(items)
        if failed and self._logger is not None:
            self._logger.warning("visibility change failed", extra={"records_failed": failed})

    # -- building rows -------------------------------------------------------------------------

    def _values(self, event: Event | EhrNote) -> tuple[Any, ...]:
        """Column values in signature order, positional per task (names may be customised)."""
        if isinstance(event, NoteEvent | EhrNote):
            return (event.text,)
        assert self._images is not None
        # Imported here: only the image router gets here, and images.py pulls in Pillow.
        from spcs_gateway.images import resolve_labels

        labels = resolve_labels(event, self.service)
        image = self._images.load(event.image)
        return (image.data, labels)

    def _row(self, event: Event | EhrNote, result: RowResult, processed_at: datetime) -> ResultRow:
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

    # -- observability -------------------------------------------------------------------------

    def _log_record(
        self, message: str, record: SQSRecord, event_id: str | None, error: GatewayError
    ) -> None:
        if self._logger is None:
            return
        self._logger.set_correlation_id(event_id or record.message_id)
        try:
            self._logger.warning(
                message,
                extra={
                    "message_id": record.message_id,
                    "event_id": event_id,
                    "error_code": str(error.code),
                    "failure_kind": error.kind.value,
                    "http_status": error.status,
                    "receive_count": _receive_count(record),
                },
            )
        finally:
            self._logger.set_correlation_id(None)

    def _log_exception(self, message: str) -> None:
        if self._logger is not None:
            self._logger.exception(message)  # the formatter withholds exception messages

    def _report(
        self,
        records: list[SQSRecord],
        outcomes: Mapping[str, _Outcome],
        timings: dict[str, int],
        *,
        events: int | None = None,
    ) -> None:
        counts = Counter(outcomes[r.message_id].label for r in records if r.message_id in outcomes)
        if self._logger is not None:
            self._logger.info(
                "batch processed",
                extra={
                    "service_name": self.service.name,
                    "records": len(records),
                    "events": events,
                    "outcomes": dict(counts),
                    "timings_ms": timings,
                },
            )
        if self._metrics is not None:
            from spcs_gateway.observability import emit_outcome_counts

            self._metrics.add_metric(name="BatchRecords", unit=MetricUnit.Count, value=len(records))
            causes = [o.cause for o in outcomes.values() if o.cause is not None]
            alarmable = {
                # Snowflake refused the gateway's credentials (bad key, PAT, role).
                "AuthFailures": sum(1 for c in causes if c.code is ErrorCode.AUTH_FAILED),
                # Records kept back by a configuration fault (signature mismatch, a missing
                # grant, a wrong method URL, refused credentials), never dead-lettered.
                "ConfigurationFaults": sum(
                    1 for c in causes if c.kind is FailureKind.CONFIGURATION
                ),
            }
            for name, value in alarmable.items():
                if value:
                    self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            if "infer_ms" in timings:
                self._metrics.add_metric(
                    name="InferenceTime", unit=MetricUnit.Milliseconds, value=timings["infer_ms"]
                )
            emit_outcome_counts(self.service.name, counts)
        if self._tracer is not None:
            retried = sum(1 for o in outcomes.values() if o.error is not None)
            # Annotations (indexed, searchable): ids and counts only. No metadata is recorded.
            self._tracer.put_annotation(key="service", value=self.service.name)
            self._tracer.put_annotation(key="records", value=cast(Any, len(records)))
            self._tracer.put_annotation(key="retried", value=cast(Any, retried))


# -- wiring ------------------------------------------------------------------------------------


def build_pipeline(
    service_name: str,
    *,
    task: Task | None = None,
    environ: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    credentials: CredentialSource | None = None,
    tokens: TokenProvider | None = None,
    http: httpx.Client | None = None,
    spcs: Inference | None = None,
    sql: SnowflakeSql | None = None,
    sink: Sink | None = None,
    sqs_client: SQSClient | None = None,
    s3_client: S3Client | None = None,
    dead_letters: DeadLetterQueue | None = None,
    images: ImageLoader | None = None,
    subjects: Subjects | None = None,
    readiness: ReadinessHook | None = None,
    activity: Activity | None = None,
    backoff: BackoffPolicy | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
    rng: Rng | None = None,
) -> Pipeline:
    """Build the container's pipeline (called once, at module level, by each router).

    Every collaborator can be passed in (tests pass fakes); the defaults are the production
    wiring: registry from the environment, Secrets Manager credentials, one httpx client, the
    SPCS client, the Snowflake connector sink, the source queue's DLQ and Powertools
    observability.
    """
    from spcs_gateway import observability

    env: Mapping[str, str] = os.environ if environ is None else environ
    registry = registry or load_registry(dict(env))
    try:
        service = registry.service(service_name)
    except KeyError:
        raise ConfigurationError(
            ErrorCode.CONFIGURATION_ERROR, "SERVICE_NAME is not in the service registry"
        ) from None
    if task is not None and service.task is not task:
        raise ConfigurationError(
            ErrorCode.CONFIGURATION_ERROR, f"service {service.name} is not a {task.value} service"
        )

    if spcs is None or sink is None:
        from spcs_gateway.auth import TokenProvider
        from spcs_gateway.http import build_http_client
        from spcs_gateway.secrets import CredentialSource

        http = http or build_http_client()
        credentials = credentials or CredentialSource(registry.snowflake)
        tokens = tokens or TokenProvider(registry.snowflake, credentials, http)
        if spcs is None:
            from spcs_gateway.spcs_client import SpcsClient

            startup = None
            if env.get(SERVICE_STATE_TABLE_ENV):
                from spcs_gateway.service_state import ResumeWindow, ServiceStateStore

                # A 401 while the control plane resumes the service is "starting", not auth.
                startup = ResumeWindow(ServiceStateStore.from_env(environ=env))
            spcs = SpcsClient(registry, tokens, http, startup=startup)
        if sink is None:
            from spcs_gateway.results import ResultsSink
            from spcs_gateway.sql import SnowflakeSql, make_connect

            sql = sql or SnowflakeSql(make_connect(tokens))
            sink = ResultsSink(sql, registry.snowflake.results_table)

    if dead_letters is None:
        from spcs_gateway.dlq import DeadLetters

        # Without a client, DeadLetters builds its SQS client on first use: a batch without
        # poison or retries never calls SQS.
        dead_letters = DeadLetters(sqs_client, environ=env)

    if images is None and service.task is Task.ZERO_SHOT_IMAGE_CLASSIFICATION:
        from spcs_gateway.images import ImageSource

        images = ImageSource(registry.images, s3_client, dicom_size=service.image_size)

    if subjects is None and service.task is Task.TOKEN_CLASSIFICATION:
        from spcs_gateway.ehr.subjects import SubjectIds

        # The key is read on the first EHR message only (an envelope-only feed never reads it).
        subjects = SubjectIds(registry.ehr, registry.snowflake.secret)

    if readiness is None and (control_function := env.get("CONTROL_FUNCTION_NAME")):
        # Unavailable service -> async ensure_ready on the control function (control_client.py).
        # The Lambda client is built on the first such call (None here): healthy batches never
        # invoke the control function.
        from spcs_gateway.control_client import ControlReadinessHook, LambdaControlClient

        readiness = ControlReadinessHook(
            LambdaControlClient(None, control_function),
            logger or observability.get_logger(),
        )

    if activity is None and env.get(SERVICE_STATE_TABLE_ENV):
        from spcs_gateway.service_state import ActivityRecorder, ServiceStateStore

        activity = ActivityRecorder(ServiceStateStore.from_env(environ=env))

    return Pipeline(
        service,
        spcs=spcs,
        sink=sink,
        dead_letters=dead_letters,
        images=images,
        subjects=subjects,
        readiness=readiness,
        activity=activity,
        backoff=backoff or BackoffPolicy.from_env(env),
        logger=logger or observability.get_logger(),
        metrics=metrics or observability.get_metrics(service.name),
        tracer=tracer or observability.get_tracer(),
        rng=rng,
    )
