"""The routing pipeline both queue routers share: SQS batch in, SPCS out, results table, DLQ.

Per invocation (one SQS batch), decided up front so inference is batched and the results are
written with one MERGE. The steps (``steps.py``), run in order by ``core.Pipeline.decide``:

1. parse and validate: expand every record into its events (``events.parse_message``): one for
   the gateway's own envelope, one per note for a FHIR resource or an HL7 v2 message
   (``spcs_gateway.ehr``), each with a deterministic event_id; a record that cannot be expanded
   is poison: DLQ with its reason code, handled;
2. dedupe event_ids inside the batch: later copies share the first copy's outcome;
3. pre-check (one SELECT, ``Sink.existing``), only when a record of the batch is redelivered
   (``ApproximateReceiveCount`` > 1): events that already have a row skip inference;
4. infer: reference events (ids only; a router serving the reference route) go to
   ``References.run``, one MERGE per batch that runs the model inside Snowflake
   (``spcs_gateway.reference``); for the others build inference rows (images: checked bytes +
   resolved labels), ``Inference.infer``;
5. write every success with ``Sink.merge`` (one MERGE), except the rows of a record that goes
   to the DLQ; if the MERGE fails, those records are retried (nothing is lost, and MERGE on
   EVENT_ID keeps a retry from doubling a row);
6. classify each record from its events': all done -> handled; any poison -> dead-lettered
   (``DeadLetterQueue``); else returned to SQS;
7. retry: the readiness hook once per invocation when the service is unavailable, then a
   visibility backoff per retried record by receive count, honouring Retry-After
   (``Visibility``, the source queue's port, apart from the DLQ's).

The record handler given to Powertools' ``BatchProcessor`` only looks up the decision taken
above and raises for the records SQS must redeliver, so ``process_partial_response`` builds the
``batchItemFailures`` answer.

Exactly-once effect: the MERGE guarantees one row per event_id; the pre-check keeps a
redelivered event from a second inference at the cost of one SELECT per redelivered batch and no
extra state store (bench/idempotency_cost.py compares it with Powertools Idempotency). A first
receive skips it: the only way its event has a row already is the same event sent again in
another message, which costs one more inference and still writes one row.

Log lines, metrics and trace annotations carry ids, counts, codes and timings only
(``report.py``).
"""

from spcs_gateway.pipeline.core import KIND_BY_TASK, Pipeline
from spcs_gateway.pipeline.outcomes import (
    OUTCOME_ALREADY_DONE,
    OUTCOME_DUPLICATE,
    OUTCOME_POISON,
    OUTCOME_SUCCEEDED,
    Decision,
    RecordOutcome,
)
from spcs_gateway.pipeline.ports import (
    Activity,
    DeadLetterQueue,
    ImageLoader,
    Inference,
    Sink,
    Subjects,
    Visibility,
)
from spcs_gateway.pipeline.wiring import build_pipeline

__all__ = [
    "KIND_BY_TASK",
    "OUTCOME_ALREADY_DONE",
    "OUTCOME_DUPLICATE",
    "OUTCOME_POISON",
    "OUTCOME_SUCCEEDED",
    "Activity",
    "DeadLetterQueue",
    "Decision",
    "ImageLoader",
    "Inference",
    "Pipeline",
    "RecordOutcome",
    "Sink",
    "Subjects",
    "Visibility",
    "build_pipeline",
]
