"""The control plane: resumes managed SPCS services on demand, suspends them when idle.

``lifecycle.py`` decides (resume, suspend, finish a resume, wait); this package observes, asks
the policy and carries the decision out through its ports. Only services named in the registry
are ever touched. Results, reports, logs and metrics carry names, statuses, reason codes,
counts and timings: no PHI ever reaches this package.

Which module to open:

==================  ===========================================================================
``plane.py``        ``ControlPlane``, the facade: ``ensure_ready``, ``suspend``, ``scale``,
                    ``reconcile``, ``status``
``resume.py``       the resume protocol (lease, pool, paused mappings, RESUME, poll, finish)
``reconcile.py``    one scheduled round over the services
``pools.py``        compute pools: resume before a service, suspend when everything sleeps
``suspend.py``      the operator's suspend (refused while work waits)
``scale.py``        instance counts: a round's backlog-driven scaling (``scaling.py`` decides),
                    the operator's manual scale, mapping concurrency following ready instances
``overview.py``     ``status``: one ``ServiceOverview`` per service
``results.py``      ``Outcome``, ``ControlCode``, the result types and their JSON
``handler.py``      the control function's events (``handle_control_event``)
``ports.py``        the protocols the control plane runs on, and which adapter implements each
``memory.py``       in-memory adapters (tests, the idle-cost simulator, ``--dry-run``)
``dryrun.py``       the CLI's ``--dry-run``: a snapshot of the real world in memory
``settings.py``     ``ControlSettings``: the environment contract, read once
``wiring.py``       ``build_control_plane``: settings + registry + production adapters
``metrics.py``      ``EmfMetrics`` / ``NullMetrics``
``context.py``      ``ControlContext``: what every module above works with
==================  ===========================================================================

Not to be confused with ``spcs_services.py`` (Snowflake SQL for services and pools: the
control plane's Snowflake adapter) or ``control_invoke.py`` (how other functions invoke the
control function).
"""

from __future__ import annotations

from spcs_gateway.control.handler import ControlRequest, handle_control_event, is_schedule_event
from spcs_gateway.control.metrics import EmfMetrics, NullMetrics
from spcs_gateway.control.plane import ControlPlane
from spcs_gateway.control.ports import ControlMetrics
from spcs_gateway.control.results import (
    ControlCode,
    ControlResult,
    Outcome,
    PoolRound,
    ReconcileReport,
    ServiceOverview,
    ServiceRound,
    SuspendTrigger,
    UnknownServiceError,
)
from spcs_gateway.control.settings import (
    BUDGET_MARGIN_ENV,
    LEASE_SECONDS_ENV,
    MIN_UPTIME_ENV,
    OWNER_ID_ENV,
    POLL_SECONDS_ENV,
    QUEUE_ARNS_ENV,
    QUEUE_URLS_ENV,
    SUSPEND_IDLE_POOLS_ENV,
    WARM_LEAD_ENV,
    ControlSettings,
)
from spcs_gateway.control.wiring import AwsClients, build_control_plane

__all__ = [
    "BUDGET_MARGIN_ENV",
    "LEASE_SECONDS_ENV",
    "MIN_UPTIME_ENV",
    "OWNER_ID_ENV",
    "POLL_SECONDS_ENV",
    "QUEUE_ARNS_ENV",
    "QUEUE_URLS_ENV",
    "SUSPEND_IDLE_POOLS_ENV",
    "WARM_LEAD_ENV",
    "AwsClients",
    "ControlCode",
    "ControlMetrics",
    "ControlPlane",
    "ControlRequest",
    "ControlResult",
    "ControlSettings",
    "EmfMetrics",
    "NullMetrics",
    "Outcome",
    "PoolRound",
    "ReconcileReport",
    "ServiceOverview",
    "ServiceRound",
    "SuspendTrigger",
    "UnknownServiceError",
    "build_control_plane",
    "handle_control_event",
    "is_schedule_event",
]
