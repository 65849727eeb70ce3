"""The checks themselves (``Doctor``), over ports the production clients satisfy."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from spcs_gateway.doctor.grants import _held, _satisfied, needed_grants
from spcs_gateway.doctor.labels import _image_labels, _ner_labels, _probe_fix
from spcs_gateway.doctor.ports import Inference, Results, Search, Sql, Tokens
from spcs_gateway.doctor.report import Check, Result, _fail_text, _norm
from spcs_gateway.doctor.service_checks import endpoint_checks, signature_checks, status_checks
from spcs_gateway.errors import ErrorCode, GatewayError
from spcs_gateway.probes import probe_values
from spcs_gateway.registry import (
    Registry,
    ServiceConfig,
    Task,
)
from spcs_gateway.spcs_client import InferenceInput
from spcs_gateway.spcs_services import checked_identifier

# -- the doctor ------------------------------------------------------------------------------


class Doctor:
    def __init__(
        self,
        registry: Registry,
        *,
        sql: Sql,
        spcs: Inference,
        tokens: Tokens,
        results: Results,
        search: Search | None = None,
        search_service: str | None = None,
        resume_wait_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.registry = registry
        self._sql = sql
        self._spcs = spcs
        self._tokens = tokens
        self._results = results
        self._search = search
        self._search_service = search_service
        self._resume_wait_s = resume_wait_s
        self._sleep = sleep
        self._role = _norm(registry.snowflake.role)
        self._closers = list(closers)

    def close(self) -> None:
        """Close the sessions and clients the doctor was given to own."""
        for close in self._closers:
            close()

    def run(self) -> list[Check]:
        rows = self.credentials()
        if any(r.result is Result.FAIL for r in rows):
            return [*rows, Check("all other checks", "-", Result.SKIP, "no Snowflake session")]
        rows += self.grants()
        rows += self.pools()
        for svc in self.registry.services:
            rows += self.service(svc)
        rows += self.search()
        rows += self.results_table()
        return rows

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self) -> list[Check]:
        sf = self.registry.snowflake
        out: list[Check] = []
        try:
            [row] = self._sql.query("SELECT CURRENT_USER() AS U, CURRENT_ROLE() AS R")
        except (GatewayError, ValueError) as err:
            detail = _fail_text(err) if isinstance(err, GatewayError) else "no answer"
            return [
                Check(
                    "credentials",
                    "sql login",
                    Result.FAIL,
                    detail,
                    "check the secret (private key or PAT), the user's RSA_PUBLIC_KEY, its "
                    "network policy and the registry's account/user",
                )
            ]
        role = _norm(row.get("r"))
        if not self._role:
            self._role = role
        if self._role and role != self._role:
            out.append(
                Check(
                    "credentials",
                    "sql login",
                    Result.FAIL,
                    f"session role is {role or 'none'}, registry says {self._role}",
                    f"GRANT ROLE {self._role} TO USER {_norm(sf.user)}; and set it as the "
                    "user's DEFAULT_ROLE",
                )
            )
        else:
            out.append(
                Check("credentials", "sql login", Result.PASS, f"{_norm(row.get('u'))} as {role}")
            )
        for svc in self.registry.services:
            try:
                self._tokens.ingress_token(svc.ingress_host)
            except GatewayError as err:
                out.append(
                    Check(
                        "credentials",
                        f"{svc.name} token",
                        Result.FAIL,
                        _fail_text(err),
                        "the key pair must be registered on the user; the OAuth scope is the "
                        "endpoint host of the registry's url",
                    )
                )
            else:
                out.append(Check("credentials", f"{svc.name} token", Result.PASS, "ingress token"))
        return out

    # -- grants --------------------------------------------------------------------------------

    def _grants_of(self, role: str) -> set[tuple[str, str, str]]:
        held: set[tuple[str, str, str]] = set()
        seen: set[str] = set()
        todo = [role]
        while todo and len(seen) < 20:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            rows = self._sql.query(f"SHOW GRANTS TO ROLE {checked_identifier(current)}")
            for on, name, privilege in _held(rows):
                held.add((on, name, privilege))
                if on == "ROLE" and privilege == "USAGE":
                    todo.append(name)
        return held

    def grants(self) -> list[Check]:
        role = self._role
        if not role:
            return [Check("grants", "-", Result.SKIP, "no role in the registry or session")]
        try:
            held = self._grants_of(role)
        except GatewayError as err:
            return [
                Check(
                    "grants",
                    role,
                    Result.WARN,
                    f"SHOW GRANTS TO ROLE failed ({err.code}); the functional checks below "
                    "still run",
                )
            ]
        out: list[Check] = []
        for need in needed_grants(self.registry, role, self._search_service):
            ok = _satisfied(need, held)
            out.append(
                Check(
                    "grants",
                    f"{need.privilege} {need.granted_on} {need.name}",
                    Result.PASS if ok else Result.FAIL,
                    need.why if ok else f"missing: {need.why}",
                    "" if ok else need.grant,
                )
            )
        return out

    # -- pools ---------------------------------------------------------------------------------

    def pools(self) -> list[Check]:
        out: list[Check] = []
        for pool in dict.fromkeys(_norm(s.compute_pool) for s in self.registry.services):
            try:
                rows = self._sql.query(f"SHOW COMPUTE POOLS LIKE '{checked_identifier(pool)}'")
            except GatewayError as err:
                out.append(Check("pool", pool, Result.FAIL, _fail_text(err)))
                continue
            row = next((r for r in rows if _norm(r.get("name")) == pool), None)
            if row is None:
                out.append(
                    Check(
                        "pool",
                        pool,
                        Result.FAIL,
                        "not visible to the role",
                        f"GRANT MONITOR, OPERATE ON COMPUTE POOL {pool} TO ROLE {self._role};",
                    )
                )
            elif row.get("num_services") is None:
                out.append(
                    Check(
                        "pool",
                        pool,
                        Result.WARN,
                        "no num_services column: the control plane will never suspend it",
                    )
                )
            else:
                out.append(
                    Check(
                        "pool",
                        pool,
                        Result.PASS,
                        f"{_norm(row.get('state'))}, {row.get('num_services')} service(s) or "
                        "job(s) running",
                    )
                )
        return out

    # -- one service -----------------------------------------------------------------------------

    def service(self, svc: ServiceConfig) -> list[Check]:
        status, rows = self._status(svc)
        if status is None:
            return rows
        rows += self._endpoint(svc)
        rows += self._signature(svc)
        if status != "RUNNING" and self._resume_wait_s > 0:
            status = self._resume(svc)
        if status != "RUNNING":
            rows.append(
                Check(
                    "probe",
                    svc.name,
                    Result.SKIP,
                    f"service is {status}",
                    f"spcs-gateway resume {svc.name}, or run doctor with --resume",
                )
            )
            return rows
        rows += self._probe(svc)
        return rows

    def _status(self, svc: ServiceConfig) -> tuple[str | None, list[Check]]:
        fqn = checked_identifier(svc.service)
        parts = fqn.split(".")
        scope = f" IN SCHEMA {parts[0]}.{parts[1]}" if len(parts) == 3 else ""
        try:
            rows = self._sql.query(f"SHOW SERVICES LIKE '{parts[-1]}'{scope}")
        except GatewayError as err:
            return None, [Check("status", svc.name, Result.FAIL, _fail_text(err))]
        row = next((r for r in rows if _norm(r.get("name")) == parts[-1]), None)
        if row is None:
            return None, [
                Check(
                    "status",
                    svc.name,
                    Result.FAIL,
                    f"{fqn} not found or not visible to the role",
                    f"create it (spcs-models deploy), then GRANT MONITOR, OPERATE ON SERVICE "
                    f"{fqn} TO ROLE {self._role};",
                )
            ]
        return status_checks(svc, fqn, row, self._role)

    def _endpoint(self, svc: ServiceConfig) -> list[Check]:
        fqn = checked_identifier(svc.service)
        try:
            rows = self._sql.query(f"SHOW ENDPOINTS IN SERVICE {fqn}")
        except GatewayError as err:
            if err.code is ErrorCode.PRIVILEGE_MISSING:
                # SHOW ENDPOINTS needs USAGE on the service, which the gateway does not need:
                # the probe below proves the URL instead.
                return [
                    Check(
                        "endpoint",
                        svc.name,
                        Result.WARN,
                        "the role cannot list endpoints (needs USAGE on the service); the probe "
                        "checks the URL",
                    )
                ]
            return [Check("endpoint", svc.name, Result.FAIL, _fail_text(err))]
        return endpoint_checks(svc, rows)

    def _signature(self, svc: ServiceConfig) -> list[Check]:
        if not svc.model or not svc.model_version:
            return [
                Check(
                    "signature",
                    svc.name,
                    Result.WARN,
                    "registry names no model/model_version: only the probe checks the columns",
                )
            ]
        model = checked_identifier(svc.model)
        version = checked_identifier(svc.model_version)
        try:
            self._sql.query("ALTER SESSION SET SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL = TRUE")
            rows = self._sql.query(f"SHOW VERSIONS LIKE '{version}' IN MODEL {model}")
        except GatewayError as err:
            return [
                Check(
                    "signature",
                    svc.name,
                    Result.FAIL,
                    _fail_text(err),
                    f"GRANT USAGE ON MODEL {model} TO ROLE {self._role};",
                )
            ]
        return signature_checks(svc, model, version, rows, self._role)

    def _resume(self, svc: ServiceConfig) -> str:
        fqn = checked_identifier(svc.service)
        try:
            self._sql.query(f"ALTER SERVICE {fqn} RESUME")
        except GatewayError:
            return "SUSPENDED"
        deadline = time.monotonic() + self._resume_wait_s
        status: str | None = "PENDING"
        while time.monotonic() < deadline:
            status, _ = self._status(svc)
            if status == "RUNNING":
                return status
            self._sleep(1.0)
        return status or "UNKNOWN"

    def _probe(self, svc: ServiceConfig) -> list[Check]:
        [result] = self._spcs.infer(svc, [InferenceInput("doctor", probe_values(svc))])
        error: GatewayError | None = result.error
        if error is not None:
            return [
                Check("probe", svc.name, Result.FAIL, _fail_text(error), _probe_fix(svc, error))
            ]
        rows = [Check("probe", svc.name, Result.PASS, "a synthetic row was answered")]
        if svc.task is Task.TOKEN_CLASSIFICATION:
            rows.append(_ner_labels(svc, result.output))
        else:
            rows.append(_image_labels(svc, result.output))
        return rows

    # -- search and results ------------------------------------------------------------------

    def search(self) -> list[Check]:
        if self._search is None or not self._search_service:
            return []
        target = self._search_service
        try:
            self._search.query("aspirin", columns=["NOTE_ID"], limit=1)
        except GatewayError as err:
            fix = ""
            if err.code in (ErrorCode.PRIVILEGE_MISSING, ErrorCode.AUTH_FAILED):
                fix = f"GRANT USAGE ON CORTEX SEARCH SERVICE {target} TO ROLE {self._role};"
            return [Check("search", target, Result.FAIL, _fail_text(err), fix)]
        return [Check("search", target, Result.PASS, "answered with explicit columns")]

    def results_table(self) -> list[Check]:
        table = _norm(self.registry.snowflake.results_table)
        fix = f"GRANT SELECT, INSERT ON TABLE {table} TO ROLE {self._role};"
        try:
            self._results.existing(["spcs-gateway-doctor"])
        except GatewayError as err:
            return [Check("results", table, Result.FAIL, f"not readable: {err}", fix)]
        try:
            self._results.check_writable()
        except GatewayError as err:
            return [Check("results", table, Result.FAIL, f"not writable: {err}", fix)]
        return [Check("results", table, Result.PASS, "readable; the MERGE compiles")]
