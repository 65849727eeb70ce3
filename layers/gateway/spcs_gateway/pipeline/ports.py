"""What the pipeline needs from the outside world, as protocols (real adapters in
``spcs_client.py``, ``results.py``, ``dlq.py`` and ``visibility.py``; in-memory fakes in tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from spcs_gateway.errors import ErrorCode
from spcs_gateway.events import ReferenceEvent
from spcs_gateway.reference.route import RefOutcome
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import Inference as Inference  # shared with the doctor


class Sink(Protocol):
    def existing(self, event_ids: Iterable[str]) -> set[str]: ...

    def merge(self, rows: Sequence[ResultRow]) -> None: ...


class DeadLetterQueue(Protocol):
    """Poison out of the way: raises ``GatewayError`` when the DLQ cannot take it."""

    def send_poison(self, record: SQSRecord, code: ErrorCode) -> None: ...


class Visibility(Protocol):
    """When the source queue shows a retried record again. Best effort: returns the number of
    records whose visibility could not be changed, never raises."""

    def change_visibility_many(self, items: Sequence[tuple[SQSRecord, int]]) -> int: ...


class ImageLoader(Protocol):
    def load(self, image: Any) -> Any: ...


class Subjects(Protocol):
    """Source identifier -> SUBJECT_ID (``ehr.subjects.SubjectIds``)."""

    def __call__(self, kind: str, value: str) -> str: ...


class References(Protocol):
    """The reference route (``reference.route.ReferenceRoute``): one MERGE per batch that runs
    the model inside Snowflake; one outcome per distinct event id (done, or its error)."""

    def run(
        self, service: ServiceConfig, events: Sequence[ReferenceEvent]
    ) -> Sequence[RefOutcome]: ...


class Activity(Protocol):
    """Records that work arrived for a service (service_activity.ActivityRecorder)."""

    def record(self, name: str) -> bool: ...
