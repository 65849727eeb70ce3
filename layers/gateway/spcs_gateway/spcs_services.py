"""SPCS services and compute pools through SQL: the Snowflake adapter of the control plane.

``SqlSpcsServices`` observes, resumes, suspends and scales the managed services and their pools
(``SHOW SERVICES``, ``SHOW SERVICE CONTAINERS``, ``SHOW COMPUTE POOLS``, ``ALTER ...``); it
implements ``control.ports.SpcsServices`` (``control.memory.MemorySpcsServices`` is the
in-memory one). Not to be confused with the control plane itself (``control/``) or with the
client other functions use to invoke the control function (``control_invoke.py``).

Only names from the service registry reach this module; they are validated again here because
identifiers cannot be bound as parameters. Observations are ids and status strings only.

No statement here says ``IF EXISTS``: Snowflake answers a missing OPERATE grant with "does not
exist or not authorized", and ``IF EXISTS`` would turn that into a silent no-op (a resume that
then waits out its budget). Without it the error surfaces as ``PRIVILEGE_MISSING`` (sql.py).

Compute pools are judged on pool-level facts (``SHOW COMPUTE POOLS``: ``num_services`` counts
every service and job running on the pool, including those the gateway's role cannot see),
never on ``SHOW SERVICES IN COMPUTE POOL``, which lists only what the role holds a privilege on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.status import PoolObservation, ServiceObservation, ServiceStatus

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


class QueryRunner(Protocol):
    """What this module needs from the SQL client: rows as dicts keyed by lower-case column."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


def _count(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def checked_identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ConfigurationError(ErrorCode.CONFIGURATION_ERROR, "invalid Snowflake identifier")
    return name.upper()


def _split(fqn: str) -> tuple[str | None, str | None, str]:
    parts = checked_identifier(fqn).split(".")
    while len(parts) < 3:
        parts.insert(0, "")
    return parts[0] or None, parts[1] or None, parts[2]


def not_visible(kind: str) -> ConfigurationError:
    """A managed object ``SHOW`` does not list: SHOW lists only what the role holds a privilege
    on, so this is a missing grant (or a registry naming an object that does not exist)."""
    return ConfigurationError(
        ErrorCode.PRIVILEGE_MISSING, f"{kind} not found or not visible to the role"
    )


class SqlSpcsServices:
    def __init__(self, sql: QueryRunner) -> None:
        self._sql = sql

    def observe(self, fqn: str) -> ServiceObservation:
        database, schema, name = _split(fqn)
        scope = f" IN SCHEMA {database}.{schema}" if database and schema else ""
        rows = self._sql.query(f"SHOW SERVICES LIKE '{name}'{scope}")
        row = next((r for r in rows if str(r.get("name", "")).upper() == name), None)
        if row is None:
            raise not_visible("managed service")
        status = str(row.get("status", "UNKNOWN")).upper()
        ready = total = 0
        if status == ServiceStatus.RUNNING:
            containers = self._sql.query(
                f"SHOW SERVICE CONTAINERS IN SERVICE {checked_identifier(fqn)}"
            )
            instances: dict[str, bool] = {}
            for c in containers:
                instance = c.get("instance_id")
                if instance is None:
                    continue
                state = str(c.get("instance_status") or c.get("status") or "").upper()
                instances[str(instance)] = instances.get(str(instance), True) and state == "READY"
            total = len(instances)
            ready = sum(1 for ok in instances.values() if ok)
        pool = row.get("compute_pool")
        return ServiceObservation(
            fqn=checked_identifier(fqn),
            status=status,
            compute_pool=str(pool).upper() if pool else None,
            instances_ready=ready,
            instances_total=total,
            min_instances=_count(row.get("min_instances")),
            max_instances=_count(row.get("max_instances")),
        )

    def resume(self, fqn: str) -> None:
        self._sql.query(f"ALTER SERVICE {checked_identifier(fqn)} RESUME")

    def suspend(self, fqn: str) -> None:
        self._sql.query(f"ALTER SERVICE {checked_identifier(fqn)} SUSPEND")

    def scale(self, fqn: str, min_instances: int, max_instances: int) -> None:
        """Set the service's instance range (OPERATE on the service; docs/SNOWFLAKE_FACTS.md)."""
        low, high = int(min_instances), int(max_instances)
        if not 1 <= low <= high:
            raise ConfigurationError(ErrorCode.CONFIGURATION_ERROR, "invalid instance range")
        name = checked_identifier(fqn)
        self._sql.query(f"ALTER SERVICE {name} SET MIN_INSTANCES = {low} MAX_INSTANCES = {high}")

    def pool(self, name: str) -> PoolObservation:
        pool = checked_identifier(name)
        rows = self._sql.query(f"SHOW COMPUTE POOLS LIKE '{pool}'")
        row = next((r for r in rows if str(r.get("name", "")).upper() == pool), None)
        if row is None:
            raise not_visible("compute pool")
        return PoolObservation(
            name=pool,
            state=str(row.get("state", "UNKNOWN")).upper(),
            running=_count(row.get("num_services")),
        )

    def resume_pool(self, name: str) -> None:
        self._sql.query(f"ALTER COMPUTE POOL {checked_identifier(name)} RESUME")

    def suspend_pool(self, name: str) -> None:
        self._sql.query(f"ALTER COMPUTE POOL {checked_identifier(name)} SUSPEND")
