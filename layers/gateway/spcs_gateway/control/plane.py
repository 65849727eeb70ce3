"""``ControlPlane``: the facade the control function, the operator CLI, the API (through the
control function), the benchmarks and the demo call. It holds no logic of its own; each call
is carried out by one module of this package over a ``ControlContext``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from spcs_gateway.clock import Clock, Sleep, utc_now
from spcs_gateway.control import overview as _overview
from spcs_gateway.control import reconcile as _reconcile
from spcs_gateway.control import resume as _resume
from spcs_gateway.control import scale as _scale
from spcs_gateway.control import suspend as _suspend
from spcs_gateway.control.context import ControlContext, default_owner
from spcs_gateway.control.metrics import NullMetrics
from spcs_gateway.control.ports import (
    ControlMetrics,
    MappingSwitch,
    QueueBacklog,
    SpcsServices,
    StateStore,
)
from spcs_gateway.control.results import ControlResult, ReconcileReport, ServiceOverview
from spcs_gateway.control.settings import ControlSettings
from spcs_gateway.registry import Registry
from spcs_gateway.scaling import DEFAULT_POLICY as DEFAULT_SCALING
from spcs_gateway.scaling import ScalingPolicy

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger


class ControlPlane:
    """Carries out the lifecycle policy's decisions for the services of ``registry``; only
    those are ever touched.

    ``services`` is Snowflake (``SpcsServices``), ``store`` the per-service records,
    ``backlog`` the queue depths, ``mappings`` the SQS event source mappings (ports.py; the
    production adapters come from ``wiring.build_control_plane``, in-memory ones from
    ``memory.py``).
    """

    def __init__(
        self,
        registry: Registry,
        services: SpcsServices,
        store: StateStore,
        backlog: QueueBacklog,
        mappings: MappingSwitch,
        *,
        settings: ControlSettings | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = time.sleep,
        metrics: ControlMetrics | None = None,
        logger: Logger | logging.Logger | None = None,
        scaling: ScalingPolicy | None = None,
    ) -> None:
        settings = settings or ControlSettings()
        self._ctx = ControlContext(
            registry=registry,
            services=services,
            store=store,
            backlog=backlog,
            mappings=mappings,
            settings=settings,
            clock=clock,
            sleep=sleep,
            metrics=metrics or NullMetrics(),
            log=logger or logging.getLogger(__name__),
            owner=settings.owner_id or default_owner(),
            scaling=scaling or DEFAULT_SCALING,
        )

    @property
    def registry(self) -> Registry:
        return self._ctx.registry

    @property
    def settings(self) -> ControlSettings:
        return self._ctx.settings

    @property
    def context(self) -> ControlContext:
        """The registry, ports and settings this control plane runs on (dry run, tests)."""
        return self._ctx

    @property
    def budget_margin_s(self) -> float:
        return self._ctx.settings.budget_margin_s

    def now(self) -> datetime:
        """The control plane's clock (the CLI shows ages against it)."""
        return self._ctx.clock()

    def ensure_ready(self, name: str, *, budget_s: float) -> ControlResult:
        """Resume ``name`` (once, whoever else asks) and wait up to ``budget_s`` for READY."""
        return _resume.ensure_ready(self._ctx, name, budget_s=budget_s)

    def suspend(self, name: str, *, force: bool = False) -> ControlResult:
        """Operator suspend: refused while work waits, unless ``force``."""
        return _suspend.suspend(self._ctx, name, force=force)

    def reconcile(self) -> ReconcileReport:
        """One control round over every registry service, then every registry compute pool."""
        return _reconcile.reconcile(self._ctx)

    def scale(self, name: str, *, min_instances: int, max_instances: int) -> ControlResult:
        """Operator scale: set the instance range (within the registry's) now; the
        backlog-driven policy stays inside it until the operator changes it."""
        return _scale.manual_scale(self._ctx, name, min_instances, max_instances)

    def status(self, names: Iterable[str] | None = None) -> list[ServiceOverview]:
        """One overview per service (all, or ``names``)."""
        return _overview.overview(self._ctx, names)
