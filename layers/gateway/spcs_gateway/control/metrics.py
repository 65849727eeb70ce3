"""The control plane's metrics: one EMF blob per data point, dimensions ``service`` (a service's
logical name or a compute pool) and ``outcome`` only.

Emitted (``ControlContext.emit``): ``EnsureReady`` (outcome), ``Resumes`` / ``Suspends`` /
``PoolResumes`` / ``PoolSuspends`` (reason), ``ReconcileErrors`` (code), ``ServiceStatus``
(Snowflake status), ``ServiceReady``, ``RunningSeconds``, ``ScaleOut`` / ``ScaleIn`` (reason)
and ``Instances`` (the count set) per scaling change.
"""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from spcs_gateway.settings import env_str


class NullMetrics:
    def emit(
        self, name: str, value: float, unit: MetricUnit, *, service: str, outcome: str | None = None
    ) -> None:
        return None


class EmfMetrics:
    """One EMF blob per data point (the control plane emits per service, not per invocation)."""

    def __init__(self, namespace: str | None = None) -> None:
        from spcs_gateway.observability import DEFAULT_NAMESPACE, NAMESPACE_ENV

        self._namespace = namespace or env_str(os.environ, NAMESPACE_ENV, DEFAULT_NAMESPACE)

    def emit(
        self, name: str, value: float, unit: MetricUnit, *, service: str, outcome: str | None = None
    ) -> None:
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=self._namespace,
            default_dimensions={"service": service},
        ) as metric:
            if outcome:
                metric.add_dimension(name="outcome", value=outcome)
