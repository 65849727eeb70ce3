"""``spcs-gateway doctor``: a preflight of everything the gateway needs from a Snowflake account.

Each check returns rows (check, target, result, detail, fix) and never raises: a failing check
says what it saw and the statement or setting that fixes it. The checks use the production code
paths (credential source, token exchange, connector session, SPCS client, Cortex Search client,
results sink), so a passing doctor means the functions will work with the same registry.

Checks, in order: credentials (secret, SQL login as the registry's role, ingress token
exchange), the role's grants (``SHOW GRANTS TO ROLE``, following granted roles), the compute
pool (visible, with the pool-level facts pool suspension needs), per service: status and its
own auto-suspend (``MIN_INSTANCES`` >= 1, ``AUTO_SUSPEND_SECS`` = 0), endpoint (the registry's
URL is the service's public endpoint), signature (the registry's method and columns against the
model version's ``model_spec``), one synthetic probe row (``probes.py``) and, for NER, the
entity labels it returns against the declared set; Cortex Search with explicit columns; the
results table (readable, and the gateway's MERGE compiles with a source that selects nothing).

Nothing here reads or prints PHI: probes are synthetic, outputs are reduced to label names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from spcs_gateway.errors import ErrorCode, GatewayError
from spcs_gateway.probes import PROBE_LABELS, probe_values
from spcs_gateway.registry import (
    FeatureGroupSpec,
    FeatureSpec,
    Registry,
    ServiceConfig,
    Signature,
    Task,
)
from spcs_gateway.service_control import checked_identifier
from spcs_gateway.spcs_client import InferenceInput, RowResult

__all__ = ["Check", "Doctor", "Result", "format_table"]


class Result(StrEnum):
    PASS = "PASS"  # noqa: S105 (a check result, not a secret)
    WARN = "WARN"  # works, but something is worth knowing; does not fail the run
    FAIL = "FAIL"
    SKIP = "SKIP"  # could not be checked (an earlier check failed, or the service sleeps)


@dataclass(frozen=True)
class Check:
    check: str
    target: str
    result: Result
    detail: str = ""
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


class Sql(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Inference(Protocol):
    def infer(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput]
    ) -> list[RowResult]: ...


class Search(Protocol):
    def query(
        self,
        query: str,
        *,
        columns: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> tuple[list[dict[str, Any]], str | None]: ...


class Results(Protocol):
    def existing(self, event_ids: Iterable[str]) -> set[str]: ...

    def check_writable(self) -> None: ...


class Tokens(Protocol):
    def ingress_token(self, scope_host: str) -> str: ...


def _norm(name: Any) -> str:
    return str(name or "").replace('"', "").strip().upper()


def _fail_text(err: GatewayError) -> str:
    return str(err)  # code + fixed detail: PHI-free by construction


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


# -- signatures ------------------------------------------------------------------------------


def _columns(specs: Sequence[FeatureSpec | FeatureGroupSpec]) -> list[str]:
    return [_norm(s.name) for s in specs]


def _feature_types(specs: Sequence[FeatureSpec | FeatureGroupSpec]) -> list[str]:
    return [
        f"{_norm(s.name)}:{s.type if isinstance(s, FeatureSpec) else 'GROUP'}"
        f"{'[]' if s.shape else ''}"
        for s in specs
    ]


def compare_signatures(registry_sig: Signature, deployed: dict[str, Any]) -> list[str]:
    """Differences (names and types only) between the registry's signature and the model's."""
    try:
        model = Signature.model_validate(
            {
                "inputs": deployed.get("inputs") or [],
                "outputs": deployed.get("outputs") or [],
                "params": deployed.get("params") or [],
            }
        )
    except ValueError:
        return ["the model's signature could not be read"]
    problems: list[str] = []
    if _feature_types(registry_sig.inputs) != _feature_types(model.inputs):
        problems.append(
            f"inputs: registry {', '.join(_feature_types(registry_sig.inputs))}; "
            f"model {', '.join(_feature_types(model.inputs))}"
        )
    ours = [f"{_norm(p.name)}:{p.dtype}" for p in registry_sig.params]
    theirs = [f"{_norm(p.name)}:{p.dtype}" for p in model.params]
    if ours != theirs:
        problems.append(
            f"params: registry {', '.join(ours) or 'none'}; model {', '.join(theirs) or 'none'}"
        )
    if _columns(registry_sig.outputs)[:1] != _columns(model.outputs)[:1]:
        problems.append(
            f"output: registry {', '.join(_columns(registry_sig.outputs))}; "
            f"model {', '.join(_columns(model.outputs))}"
        )
    return problems


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
        status = _norm(row.get("status"))
        out: list[Check] = []
        if status in {"FAILED", "INTERNAL_ERROR", "DELETED", "DELETING", "DONE"}:
            out.append(
                Check(
                    "status",
                    svc.name,
                    Result.FAIL,
                    f"service is {status}",
                    f"SHOW SERVICE CONTAINERS IN SERVICE {fqn}; recreate or fix the service",
                )
            )
        else:
            out.append(Check("status", svc.name, Result.PASS, f"service is {status}"))
        min_instances = _int(row.get("min_instances"))
        auto_suspend = _int(row.get("auto_suspend_secs"))
        if min_instances == 0 or (auto_suspend or 0) > 0:
            out.append(
                Check(
                    "auto-suspend",
                    svc.name,
                    Result.FAIL,
                    f"Snowflake suspends it on its own timer (min_instances {min_instances}, "
                    f"auto_suspend_secs {auto_suspend}), behind the control plane",
                    f"ALTER SERVICE {fqn} SET MIN_INSTANCES = 1 AUTO_SUSPEND_SECS = 0;",
                )
            )
        else:
            out.append(
                Check("auto-suspend", svc.name, Result.PASS, "off: the control plane decides")
            )
        return status, out

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
        public = [r for r in rows if str(r.get("is_public", "")).lower() in {"true", "1", "yes"}]
        wanted = (urlsplit(svc.url).netloc or "").lower()
        hosts = [str(r.get("ingress_url") or "").lower() for r in public]
        if not public:
            return [
                Check(
                    "endpoint",
                    svc.name,
                    Result.FAIL,
                    "the service has no public endpoint",
                    "recreate the service with ingress enabled (spcs-models deploy)",
                )
            ]
        if any(h == wanted or h.split("/")[0] == wanted for h in hosts):
            return [Check("endpoint", svc.name, Result.PASS, wanted)]
        if not any("." in h or ":" in h for h in hosts):
            return [Check("endpoint", svc.name, Result.WARN, "ingress URL not provisioned yet")]
        return [
            Check(
                "endpoint",
                svc.name,
                Result.FAIL,
                f"the registry's url is not the service's endpoint ({', '.join(hosts)})",
                "set the registry's url (template NerServiceUrl / ClipServiceUrl) to "
                "https://<ingress_url>",
            )
        ]

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
        row = next((r for r in rows if _norm(r.get("name")) == version), None)
        if row is None or not row.get("model_spec"):
            return [
                Check(
                    "signature",
                    svc.name,
                    Result.FAIL,
                    f"model version {model} {version} not found or not visible",
                    f"GRANT USAGE ON MODEL {model} TO ROLE {self._role}; check model_version",
                )
            ]
        import yaml  # operator-side only (the doctor), never on a request path

        try:
            spec = yaml.safe_load(str(row["model_spec"]))
            signatures = {_norm(k): v for k, v in (spec.get("signatures") or {}).items()}
        except (yaml.YAMLError, AttributeError):
            return [Check("signature", svc.name, Result.FAIL, "model_spec is not readable")]
        deployed = signatures.get(_norm(svc.method))
        if deployed is None:
            methods = ", ".join(sorted(k.lower() for k in signatures)) or "none"
            return [
                Check(
                    "signature",
                    svc.name,
                    Result.FAIL,
                    f"the model has no method {svc.method} (it has: {methods})",
                    "set the registry's method (template NerServiceMethod / ClipServiceMethod)",
                )
            ]
        problems = compare_signatures(svc.effective_signature, deployed)
        if problems:
            return [
                Check(
                    "signature",
                    svc.name,
                    Result.FAIL,
                    "; ".join(problems),
                    "set the registry's signature to the model's (spcs-models registry prints "
                    "it) or redeploy the model",
                )
            ]
        return [
            Check("signature", svc.name, Result.PASS, f"{svc.method} matches {model} {version}")
        ]

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


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _probe_fix(svc: ServiceConfig, error: GatewayError) -> str:
    fqn = _norm(svc.service)
    return {
        ErrorCode.ENDPOINT_NOT_FOUND: (
            f"no method {svc.method} at {svc.url}{svc.method_path}: set the registry's method "
            "to one of the model's (SHOW VERSIONS ... IN MODEL, column functions)"
        ),
        ErrorCode.PRIVILEGE_MISSING: (
            f"GRANT SERVICE ROLE {fqn}!ALL_ENDPOINTS_USAGE TO ROLE <the gateway's role>;"
        ),
        ErrorCode.SIGNATURE_MISMATCH: (
            "the service refuses the registry's columns: set the registry's signature to the "
            "model's (spcs-models registry prints it)"
        ),
        ErrorCode.AUTH_FAILED: "the credential is refused by the endpoint: check the secret",
        ErrorCode.SERVICE_UNAVAILABLE: f"the service is not ready: spcs-gateway resume {svc.name}",
    }.get(error.code, "")


def _ner_labels(svc: ServiceConfig, output: Any) -> Check:
    labels = sorted(
        {str(e.get("entity") or e.get("entity_group") or "") for e in output if isinstance(e, dict)}
    )
    if not svc.entity_labels:
        return Check("labels", svc.name, Result.WARN, "registry declares no entity_labels")
    declared = set(svc.entity_labels)
    declared |= {label.split("-", 1)[-1] for label in declared}  # aggregated: DISEASE
    unknown = [label for label in labels if label not in declared]
    if unknown:
        return Check(
            "labels",
            svc.name,
            Result.FAIL,
            f"labels outside the declared set: {', '.join(unknown[:6])} (a model without a "
            "trained NER head answers LABEL_0/LABEL_1)",
            "deploy a checkpoint fine-tuned for biomedical NER (spcs-models deploy)",
        )
    if not labels:
        return Check("labels", svc.name, Result.WARN, "no entity found in the probe sentence")
    return Check("labels", svc.name, Result.PASS, ", ".join(labels))


def _image_labels(svc: ServiceConfig, output: Any) -> Check:
    try:
        got = {str(item["label"]) for item in output}
        total = sum(float(item["score"]) for item in output)
    except (TypeError, KeyError, ValueError):
        return Check("labels", svc.name, Result.FAIL, "labels are not a list of {label, score}")
    if got != set(PROBE_LABELS) or abs(total - 1.0) > 0.01:
        return Check(
            "labels",
            svc.name,
            Result.FAIL,
            "the answer does not score exactly the candidate labels (scores summing to 1)",
            "check the model's method and output column",
        )
    return Check("labels", svc.name, Result.PASS, "scores the candidate labels")


def format_table(rows: Sequence[Check]) -> str:
    """One line per check (CHECK, TARGET, RESULT, DETAIL), the fix indented under a failure."""
    headers = ("CHECK", "TARGET", "RESULT")
    cells = [(r.check, r.target, r.result.value) for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    indent = " " * (sum(widths) + 6)

    def line(values: Sequence[str], detail: str) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + "  " + detail

    lines = [line(headers, "DETAIL")]
    for row, values in zip(rows, cells, strict=True):
        lines.append(line(values, row.detail))
        if row.fix and row.result in (Result.FAIL, Result.SKIP):
            lines.append(f"{indent}fix: {row.fix}")
    not_passed = sum(1 for r in rows if r.result in (Result.FAIL, Result.SKIP))
    lines.append("")
    lines.append("all checks passed" if not not_passed else f"{not_passed} check(s) did not pass")
    return "\n".join(lines)


def passed(rows: Sequence[Check]) -> bool:
    return all(r.result in (Result.PASS, Result.WARN) for r in rows)
