"""The control plane's settings, read from the environment once (the control function's
environment contract; the operator CLI reads the same variables).

=================================  ==========================================================
``SPCS_GATEWAY_REGISTRY[_FILE|_PARAM]``  the service registry (``registry.load_registry``; read
                                   by ``wiring.build_control_plane``, not here)
``SERVICE_STATE_TABLE``            DynamoDB table of per-service records (``service_state.py``)
``QUEUE_URLS``                     JSON ``{"<logical queue>": "<queue URL>"}``: backlog of the
                                   queues named in ``ServiceConfig.queues``
``QUEUE_ARNS``                     JSON ``{"<logical queue>": "<queue ARN>"}``: the event source
                                   mappings to pause; optional, read from the queues when unset
``QUEUE_MAX_CONCURRENCY``          JSON ``{"<logical queue>": n}``: the most concurrent router
                                   invocations a queue's mappings may get when concurrency
                                   follows ready instances (the router's reserved concurrency:
                                   above it, Lambda throttles the mapping's invocations)
``SUSPEND_IDLE_POOLS``             ``true`` (default) or ``false``: suspend a compute pool once
                                   all its services are suspended; a pool's own
                                   ``suspend_when_idle`` in the registry overrides it
``CONTROL_POLL_SECONDS``           readiness poll interval (default 5)
``CONTROL_LEASE_SECONDS``          resume lease TTL (default 300)
``CONTROL_BUDGET_MARGIN_SECONDS``  ``ensure_ready`` stops polling this long before the Lambda
                                   timeout (default 10)
``LIFECYCLE_MIN_UPTIME_SECONDS``   ``LifecyclePolicy.min_uptime`` (default 300)
``LIFECYCLE_WARM_LEAD_SECONDS``    ``LifecyclePolicy.warm_lead`` (default 900)
``CONTROL_OWNER_ID``               lease owner prefix (default: Lambda log stream, or host:pid)
=================================  ==========================================================

Values are read with the library's parsers (``spcs_gateway.settings``: one per type, one
boolean vocabulary); a malformed value raises ``ValueError`` naming the variable, never
echoing its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from spcs_gateway.lifecycle import DEFAULT_POLICY, LifecyclePolicy
from spcs_gateway.service_state import DEFAULT_LEASE_TTL, SERVICE_STATE_TABLE_ENV
from spcs_gateway.settings import env_bool, env_float, env_int_map, env_json_map, env_str

QUEUE_URLS_ENV = "QUEUE_URLS"
QUEUE_ARNS_ENV = "QUEUE_ARNS"
QUEUE_MAX_CONCURRENCY_ENV = "QUEUE_MAX_CONCURRENCY"
SUSPEND_IDLE_POOLS_ENV = "SUSPEND_IDLE_POOLS"
POLL_SECONDS_ENV = "CONTROL_POLL_SECONDS"
LEASE_SECONDS_ENV = "CONTROL_LEASE_SECONDS"
BUDGET_MARGIN_ENV = "CONTROL_BUDGET_MARGIN_SECONDS"
MIN_UPTIME_ENV = "LIFECYCLE_MIN_UPTIME_SECONDS"
WARM_LEAD_ENV = "LIFECYCLE_WARM_LEAD_SECONDS"
OWNER_ID_ENV = "CONTROL_OWNER_ID"

DEFAULT_POLL_SECONDS = 5.0
DEFAULT_BUDGET_MARGIN_S = 10.0


def _seconds(environ: Mapping[str, str], key: str, default: timedelta) -> timedelta:
    return timedelta(seconds=env_float(environ, key, default.total_seconds()))


@dataclass(frozen=True)
class ControlSettings:
    """Everything the control plane is configured with besides the registry and its adapters.
    The defaults are the control function's defaults; ``from_env`` reads the contract above."""

    state_table: str | None = None
    queue_urls: Mapping[str, str] = field(default_factory=dict)
    queue_arns: Mapping[str, str] | None = None  # None: looked up from the queues
    queue_max_concurrency: Mapping[str, int] = field(default_factory=dict)  # none: Lambda's 1000
    suspend_idle_pools: bool = True  # default for pools the registry does not configure
    poll_interval_s: float = DEFAULT_POLL_SECONDS
    lease_ttl: timedelta = DEFAULT_LEASE_TTL
    budget_margin_s: float = DEFAULT_BUDGET_MARGIN_S
    policy: LifecyclePolicy = DEFAULT_POLICY
    owner_id: str | None = None  # None: the Lambda log stream, or host:pid

    def __post_init__(self) -> None:
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ControlSettings:
        env: Mapping[str, str] = os.environ if environ is None else environ
        return cls(
            state_table=env_str(env, SERVICE_STATE_TABLE_ENV),
            queue_urls=env_json_map(env, QUEUE_URLS_ENV) or {},
            queue_arns=env_json_map(env, QUEUE_ARNS_ENV),
            queue_max_concurrency=env_int_map(env, QUEUE_MAX_CONCURRENCY_ENV) or {},
            suspend_idle_pools=env_bool(env, SUSPEND_IDLE_POOLS_ENV, True),
            poll_interval_s=env_float(env, POLL_SECONDS_ENV, DEFAULT_POLL_SECONDS),
            lease_ttl=_seconds(env, LEASE_SECONDS_ENV, DEFAULT_LEASE_TTL),
            budget_margin_s=env_float(env, BUDGET_MARGIN_ENV, DEFAULT_BUDGET_MARGIN_S),
            policy=LifecyclePolicy(
                min_uptime=_seconds(env, MIN_UPTIME_ENV, DEFAULT_POLICY.min_uptime),
                warm_lead=_seconds(env, WARM_LEAD_ENV, DEFAULT_POLICY.warm_lead),
            ),
            owner_id=env_str(env, OWNER_ID_ENV),
        )
