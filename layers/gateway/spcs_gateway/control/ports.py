"""The control plane's ports: what it needs from the outside world, as protocols.

=====================  =====================================  ==================================
port                   production adapter                     in memory (``control.memory``)
=====================  =====================================  ==================================
``StateStore``         ``service_state.ServiceStateStore``    ``MemoryStateStore``
                       (DynamoDB)
``SpcsServices``       ``spcs_services.SqlSpcsServices``      ``MemorySpcsServices``
                       (Snowflake SQL)
``QueueBacklog``       ``queues.QueueMonitor`` (SQS)          ``MemoryQueues``
``MappingSwitch``      ``queues.EventSourceMappings``         ``MemoryMappings``
                       (Lambda)
``Clock`` / ``Sleep``  ``clock.utc_now`` / ``time.sleep``     ``ManualClock``
``ControlMetrics``     ``metrics.EmfMetrics``                 ``metrics.NullMetrics``
=====================  =====================================  ==================================

Errors: a failed call raises ``GatewayError`` (Snowflake, via sql.py) or botocore's
``ClientError`` / ``BotoCoreError`` (AWS): ``CALL_ERRORS``. The control plane turns them into
coded results (``call_error_code``) and never lets them escape ``ensure_ready``, ``suspend``,
``reconcile`` or ``status``. ``QueueBacklog.depth`` raises ``KeyError`` for a queue it has no
address for; the backlog is then unknown, which never suspends.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.adaptive import IdleModel
from spcs_gateway.aws_errors import aws_error_code
from spcs_gateway.clock import Clock, Sleep
from spcs_gateway.errors import GatewayError
from spcs_gateway.queues import MappingState, QueueDepth
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.status import Observation, PoolObservation, ServiceObservation

__all__ = [
    "CALL_ERRORS",
    "Clock",
    "ControlMetrics",
    "MappingSwitch",
    "QueueBacklog",
    "Sleep",
    "SpcsServices",
    "StateStore",
    "call_error_code",
]

CALL_ERRORS = (GatewayError, ClientError, BotoCoreError)


def call_error_code(exc: BaseException) -> str:
    """The code of a failed Snowflake or AWS call: ``GatewayError.code``, else the AWS code."""
    if isinstance(exc, GatewayError):
        return str(exc.code)
    return aws_error_code(exc)


class StateStore(Protocol):
    """One ``ServiceRecord`` per managed service. Writes are atomic per service; the lease is a
    conditional write that exactly one of concurrent callers wins."""

    def get(self, name: str) -> ServiceRecord: ...

    def get_all(self, names: Iterable[str]) -> dict[str, ServiceRecord]: ...

    def try_acquire_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool: ...

    def release_lease(self, name: str, owner: str) -> bool: ...

    def record_observation(self, name: str, observation: Observation, now: datetime) -> bool: ...

    def record_resume(self, name: str, now: datetime) -> None: ...

    def record_suspend(self, name: str, now: datetime) -> None: ...

    def set_mappings_paused(self, name: str, paused: bool) -> None: ...

    def save_idle_model(self, name: str, model: IdleModel, previous: IdleModel | None) -> bool: ...

    def record_scale(self, name: str, instances: int, reason: str, now: datetime) -> None: ...

    def set_manual_range(self, name: str, low: int | None, high: int | None) -> None: ...

    def record_backlog(
        self, name: str, backlog: int, rate: float | None, now: datetime
    ) -> None: ...


class SpcsServices(Protocol):
    """SPCS services and compute pools, by fully qualified name / pool name."""

    def observe(self, fqn: str) -> ServiceObservation: ...

    def resume(self, fqn: str) -> None: ...

    def suspend(self, fqn: str) -> None: ...

    def scale(self, fqn: str, min_instances: int, max_instances: int) -> None: ...

    def pool(self, name: str) -> PoolObservation: ...

    def resume_pool(self, name: str) -> None: ...

    def suspend_pool(self, name: str) -> None: ...


class QueueBacklog(Protocol):
    """Depth (visible, in flight, delayed) of the logical queues in ``ServiceConfig.queues``."""

    def depth(self, queue: str) -> QueueDepth: ...


class MappingSwitch(Protocol):
    """The event source mappings that feed a service's queues: pause while it resumes; their
    ``MaximumConcurrency`` follows the service's ready instances."""

    def states(self, queues: Iterable[str]) -> list[MappingState]: ...

    def pause(self, queues: Iterable[str]) -> int: ...

    def resume(self, queues: Iterable[str]) -> int: ...

    def set_concurrency(self, queues: Iterable[str], maximum: int) -> int: ...


class ControlMetrics(Protocol):
    def emit(
        self, name: str, value: float, unit: MetricUnit, *, service: str, outcome: str | None = None
    ) -> None: ...
