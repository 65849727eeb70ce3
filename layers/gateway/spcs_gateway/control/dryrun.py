"""``spcs-gateway --dry-run``: what a command would do, without doing it.

``dry_run(plane)`` reads the world through ``plane``'s real ports once (each registry service's
status and readiness, its pool, its record, its queues' depths and mapping states), copies it
into the in-memory adapters and returns a control plane over those copies: the command then
runs the real control-plane code, and only the copies change. ``DryRun.planned`` lists the
changes it made there (statements for Snowflake, mapping switches for AWS).

A read that fails is kept as a failure (observe) or as unknown (queue depth), so the dry run
decides as the real run would. A dry run never waits for a service to start.
"""

from __future__ import annotations

from dataclasses import dataclass

from spcs_gateway.control.memory import MemoryMappings, MemoryQueues, MemoryStateStore
from spcs_gateway.control.memory_spcs import MemorySpcsServices
from spcs_gateway.control.plane import ControlPlane
from spcs_gateway.control.ports import CALL_ERRORS
from spcs_gateway.queues import QueueDepth
from spcs_gateway.status import ServiceObservation

_NEVER = 10 * 365 * 86_400.0  # a dry run's resume does not complete while it runs

_STATEMENTS = {
    "resume": "ALTER SERVICE {} RESUME",
    "suspend": "ALTER SERVICE {} SUSPEND",
    "scale": "ALTER SERVICE {} SET MIN_INSTANCES / MAX_INSTANCES (scaling.py's count)",
    "resume_pool": "ALTER COMPUTE POOL {} RESUME",
    "suspend_pool": "ALTER COMPUTE POOL {} SUSPEND",
}


@dataclass(frozen=True)
class DryRun:
    services: MemorySpcsServices
    store: MemoryStateStore
    mappings: MemoryMappings

    def planned(self) -> list[str]:
        """What the command would have changed, in order."""
        lines = [_STATEMENTS[op].format(name) for op, name in self.services.changes]
        for action, queues in self.mappings.changes:
            verb = "enable" if action == "resume" else "disable"
            lines.append(f"{verb} the event source mappings of {', '.join(queues)}")
        return lines


def dry_run(plane: ControlPlane) -> tuple[ControlPlane, DryRun]:
    ctx = plane.context
    configs = list(ctx.registry.services)
    services = MemorySpcsServices(ctx.clock, resume_seconds=_NEVER, start_seconds=0.0)
    failures: dict[str, BaseException] = {}
    observed: dict[str, ServiceObservation] = {}
    for config in configs:
        try:
            observed[config.name] = ctx.services.observe(config.service)
        except CALL_ERRORS as exc:
            failures[config.service.upper()] = exc
    for pool in sorted({c.compute_pool.upper() for c in configs}):
        try:
            real = ctx.services.pool(pool)
        except CALL_ERRORS as exc:
            failures[pool] = exc
            continue
        mine = sum(
            1
            for c in configs
            if c.compute_pool.upper() == pool
            and c.name in observed
            and observed[c.name].status in ("RUNNING", "PENDING")
        )
        services.add_pool(
            pool,
            real.state,
            other_running=max((real.running or 0) - mine, 0),
            reports_count=real.running is not None,
        )
    for config in configs:
        obs = observed.get(config.name)
        if obs is not None:
            services.add_service(
                config.service,
                config.compute_pool,
                obs.status,
                instances=max(obs.instances_total, 1),
                ready=obs.ready or obs.status != "RUNNING",
            )

    def replay_failure(operation: str, name: str) -> None:
        if name in failures:
            raise failures[name]

    services.hook = replay_failure
    store = MemoryStateStore(ctx.store.get_all([c.name for c in configs]).values())
    queues = sorted({q for c in configs for q in c.queues})
    depths: dict[str, QueueDepth] = {}
    for queue in queues:
        try:
            depths[queue] = ctx.backlog.depth(queue)
        except (KeyError, *CALL_ERRORS):
            continue  # unknown, as in the real run
    mappings = MemoryMappings({m.queue: m.enabled for m in ctx.mappings.states(queues)})
    copy = ControlPlane(
        ctx.registry,
        services,
        store,
        MemoryQueues(depths),
        mappings,
        settings=ctx.settings,
        clock=ctx.clock,
        sleep=lambda _seconds: None,
        logger=ctx.log,
    )
    return copy, DryRun(services, store, mappings)
