"""What happened to one SQS record: the ``outcome`` metric dimension and log vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from spcs_gateway.errors import FailureKind, GatewayError


class RecordOutcome(StrEnum):
    SUCCEEDED = "succeeded"  # a new result row was written
    ALREADY_PROCESSED = "already_processed"  # a row existed: no inference, no write
    DUPLICATE_IN_BATCH = "duplicate_in_batch"  # a later copy of an event_id in the same batch
    POISON = "poison"  # sent to the DLQ (handled)
    # returned to SQS for redelivery, named by the failure kind behind it
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"
    CONFIGURATION = "configuration"

    @classmethod
    def retried(cls, kind: FailureKind) -> RecordOutcome:
        """The outcome of a record SQS redelivers because of a ``kind`` failure."""
        return cls(kind.value)


@dataclass(frozen=True)
class Decision:
    """A record's outcome, decided before the batch processor runs."""

    outcome: RecordOutcome
    error: GatewayError | None = None  # set: SQS must redeliver the record
    cause: GatewayError | None = None  # the failure behind it (also set for handled poison)


# Metric ``outcome`` values by their earlier names.
OUTCOME_SUCCEEDED = RecordOutcome.SUCCEEDED
OUTCOME_ALREADY_DONE = RecordOutcome.ALREADY_PROCESSED
OUTCOME_DUPLICATE = RecordOutcome.DUPLICATE_IN_BATCH
OUTCOME_POISON = RecordOutcome.POISON
