"""What every part of the control plane works with: the registry, the ports, the settings, the
clock, metrics and the logger (one ``ControlContext`` per ``ControlPlane``)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.control.ports import (
    Clock,
    ControlMetrics,
    MappingSwitch,
    QueueBacklog,
    Sleep,
    SpcsServices,
    StateStore,
)
from spcs_gateway.control.settings import ControlSettings
from spcs_gateway.lifecycle import Backlog
from spcs_gateway.queues import QueueDepth
from spcs_gateway.registry import Registry, ServiceConfig
from spcs_gateway.scaling import DEFAULT_POLICY as DEFAULT_SCALING
from spcs_gateway.scaling import ScalingPolicy
from spcs_gateway.service_record import ServiceRecord
from spcs_gateway.settings import env_str

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger


def default_owner() -> str:
    """Lease owner prefix: the Lambda log stream (one per container), else host:pid."""
    stream = env_str(os.environ, "AWS_LAMBDA_LOG_STREAM_NAME")
    return stream or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ControlContext:
    registry: Registry
    services: SpcsServices
    store: StateStore
    backlog: QueueBacklog
    mappings: MappingSwitch
    settings: ControlSettings
    clock: Clock
    sleep: Sleep
    metrics: ControlMetrics
    log: Logger | logging.Logger
    owner: str
    scaling: ScalingPolicy = DEFAULT_SCALING

    def config(self, name: str) -> ServiceConfig | None:
        try:
            return self.registry.service(name)
        except KeyError:
            return None

    def new_owner(self) -> str:
        # One owner per resume attempt: an owner may renew its own lease, so sharing one id
        # between concurrent calls in a process (threads, the CLI) would let both resume.
        return f"{self.owner}:{uuid.uuid4().hex[:12]}"

    def work_for(self, config: ServiceConfig, record: ServiceRecord, now: datetime) -> Backlog:
        """The service's backlog: its queues' depths and the on-demand calls in flight."""
        depths: dict[str, QueueDepth] = {}
        for queue in config.queues:
            try:
                depths[queue] = self.backlog.depth(queue)
            except (KeyError, ClientError, BotoCoreError):
                continue  # unreadable or unconfigured: counts as unknown, so never suspend
        return Backlog(depths, record.active_on_demand(now))

    def emit(self, name: str, value: float, service: str, outcome: str | None = None) -> None:
        unit = MetricUnit.Seconds if name.endswith("Seconds") else MetricUnit.Count
        try:
            self.metrics.emit(name, value, unit, service=service, outcome=outcome)
        except Exception:  # noqa: BLE001 - metrics must never break control
            self.log.warning("metric emit failed", extra={"metric": name})

    def info(self, message: str, **fields: Any) -> None:
        self.log.info(message, extra=fields)

    def warn(self, message: str, **fields: Any) -> None:
        self.log.warning(message, extra=fields)
