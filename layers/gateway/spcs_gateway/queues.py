"""Queue backlog and event-source-mapping control: the AWS side of the lifecycle.

The control plane must know whether work is waiting (never suspend with a backlog) and must be
able to pause the event source mappings that feed a service while it resumes, so waiting
messages burn no receive counts. Both adapters take boto3 clients, so tests pass moto clients.
``QueueMonitor`` implements the control plane's ``control.ports.QueueBacklog`` and
``EventSourceMappings`` its ``control.ports.MappingSwitch`` (in memory: ``control.memory``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types_boto3_lambda import LambdaClient
    from types_boto3_sqs import SQSClient

_DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


class QueueMonitor:
    """Reads queue depth (visible, in flight, delayed) for logical queue names."""

    def __init__(self, sqs: SQSClient, queue_urls: Mapping[str, str]) -> None:
        self._sqs = sqs
        self._urls = dict(queue_urls)

    @property
    def queue_names(self) -> list[str]:
        return sorted(self._urls)

    def depth(self, queue: str) -> QueueDepth:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self._urls[queue],
            AttributeNames=_DEPTH_ATTRIBUTES,  # type: ignore[arg-type]
        )["Attributes"]
        return QueueDepth(
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        )


# Lambda's bounds of an SQS event source mapping's ScalingConfig.MaximumConcurrency
# (docs/SNOWFLAKE_FACTS.md, "Scaling a service").
MIN_MAPPING_CONCURRENCY = 2
MAX_MAPPING_CONCURRENCY = 1000


def clamp_concurrency(value: int) -> int:
    """``value`` within the bounds Lambda accepts for ``MaximumConcurrency``."""
    return min(max(int(value), MIN_MAPPING_CONCURRENCY), MAX_MAPPING_CONCURRENCY)


@dataclass(frozen=True)
class MappingState:
    uuid: str
    queue: str
    enabled: bool
    state: str  # Lambda's State: Enabled, Disabled, Enabling, Disabling, Updating, ...


class EventSourceMappings:
    """Pause and resume the SQS event source mappings that feed a service.

    Mappings are discovered by queue ARN (SAM creates them implicitly), once per container.
    """

    def __init__(self, lambda_client: LambdaClient, queue_arns: Mapping[str, str]) -> None:
        self._lambda = lambda_client
        self._arns = dict(queue_arns)
        self._uuids: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def _mapping_uuids(self, queue: str) -> list[str]:
        with self._lock:
            if queue not in self._uuids:
                uuids: list[str] = []
                paginator = self._lambda.get_paginator("list_event_source_mappings")
                for page in paginator.paginate(EventSourceArn=self._arns[queue]):
                    uuids.extend(m["UUID"] for m in page.get("EventSourceMappings", []))
                self._uuids[queue] = uuids
            return self._uuids[queue]

    def states(self, queues: Iterable[str]) -> list[MappingState]:
        result: list[MappingState] = []
        for queue in queues:
            if queue not in self._arns:
                continue
            for uuid in self._mapping_uuids(queue):
                conf = self._lambda.get_event_source_mapping(UUID=uuid)
                state = str(conf.get("State", "Unknown"))
                result.append(MappingState(uuid, queue, state in ("Enabled", "Enabling"), state))
        return result

    def set_enabled(self, queues: Iterable[str], enabled: bool) -> int:
        """Enable or disable every mapping of the queues; returns how many were changed."""
        changed = 0
        for mapping in self.states(queues):
            if mapping.enabled == enabled:
                continue
            self._lambda.update_event_source_mapping(UUID=mapping.uuid, Enabled=enabled)
            changed += 1
        return changed

    def pause(self, queues: Iterable[str]) -> int:
        return self.set_enabled(queues, False)

    def resume(self, queues: Iterable[str]) -> int:
        return self.set_enabled(queues, True)

    def set_concurrency(self, queues: Iterable[str], maximum: int) -> int:
        """Set ``ScalingConfig.MaximumConcurrency`` (clamped to 2..1000) on every mapping of the
        queues, so the routers' concurrency follows the service's ready instances; returns how
        many were changed."""
        value = clamp_concurrency(maximum)
        changed = 0
        for queue in queues:
            if queue not in self._arns:
                continue
            for uuid in self._mapping_uuids(queue):
                conf = self._lambda.get_event_source_mapping(UUID=uuid)
                if conf.get("ScalingConfig", {}).get("MaximumConcurrency") == value:
                    continue
                self._lambda.update_event_source_mapping(
                    UUID=uuid, ScalingConfig={"MaximumConcurrency": value}
                )
                changed += 1
        return changed
