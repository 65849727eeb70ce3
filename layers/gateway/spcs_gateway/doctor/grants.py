"""The privileges the gateway's role needs, and matching them against SHOW GRANTS rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spcs_gateway.doctor.report import _norm
from spcs_gateway.registry import (
    Registry,
)

# -- grants ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Needed:
    granted_on: str  # SHOW GRANTS granted_on (TABLE, SERVICE, COMPUTE_POOL, ...)
    name: str  # fully qualified, upper-case
    privilege: str
    why: str
    grant: str  # the statement that fixes it


def needed_grants(registry: Registry, role: str, search_service: str | None) -> list[Needed]:
    """Every privilege the gateway's role needs, with the GRANT that gives it (least privilege:
    the same list infra/snowflake grants)."""
    sf = registry.snowflake
    out: list[Needed] = []
    if sf.warehouse:
        wh = _norm(sf.warehouse)
        out.append(
            Needed(
                "WAREHOUSE",
                wh,
                "USAGE",
                "run the results MERGE",
                f"GRANT USAGE ON WAREHOUSE {wh} TO ROLE {role};",
            )
        )
    for pool in dict.fromkeys(_norm(s.compute_pool) for s in registry.services):
        for privilege in ("MONITOR", "OPERATE"):
            out.append(
                Needed(
                    "COMPUTE_POOL",
                    pool,
                    privilege,
                    "observe / resume / suspend the pool",
                    f"GRANT {privilege} ON COMPUTE POOL {pool} TO ROLE {role};",
                )
            )
    for svc in registry.services:
        fqn = _norm(svc.service)
        for privilege in ("MONITOR", "OPERATE"):
            out.append(
                Needed(
                    "SERVICE",
                    fqn,
                    privilege,
                    "observe status" if privilege == "MONITOR" else "resume / suspend",
                    f"GRANT {privilege} ON SERVICE {fqn} TO ROLE {role};",
                )
            )
        out.append(
            Needed(
                "SERVICE_ROLE",
                f"{fqn}!ALL_ENDPOINTS_USAGE",
                "USAGE",
                "call the public endpoint",
                f"GRANT SERVICE ROLE {fqn}!ALL_ENDPOINTS_USAGE TO ROLE {role};",
            )
        )
    models = dict.fromkeys(_norm(s.model) for s in registry.services if s.model)
    for model in models:
        out.append(
            Needed(
                "MODEL",
                model,
                "USAGE",
                "read the model's signature (doctor)",
                f"GRANT USAGE ON MODEL {model} TO ROLE {role};",
            )
        )
    table = _norm(sf.results_table)
    for privilege in ("SELECT", "INSERT"):
        out.append(
            Needed(
                "TABLE",
                table,
                privilege,
                "skip done events / write results",
                f"GRANT SELECT, INSERT ON TABLE {table} TO ROLE {role};",
            )
        )
    if search_service:
        name = _norm(search_service)
        out.append(
            Needed(
                "CORTEX_SEARCH_SERVICE",
                name,
                "USAGE",
                "semantic search (API)",
                f"GRANT USAGE ON CORTEX SEARCH SERVICE {name} TO ROLE {role};",
            )
        )
    return out


def _held(rows: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    held: set[tuple[str, str, str]] = set()
    for row in rows:
        on = _norm(row.get("granted_on")).replace(" ", "_")
        held.add((on, _norm(row.get("name")), _norm(row.get("privilege"))))
    return held


def _satisfied(need: Needed, held: set[tuple[str, str, str]]) -> bool:
    """Held directly or through ownership. Service roles may be listed under another
    ``granted_on`` spelling; their name (``SVC!ALL_ENDPOINTS_USAGE``) is unambiguous."""
    return any(
        name == need.name
        and privilege in (need.privilege, "OWNERSHIP", "ALL", "ALL_PRIVILEGES")
        and (on == need.granted_on or need.granted_on == "SERVICE_ROLE")
        for on, name, privilege in held
    )
