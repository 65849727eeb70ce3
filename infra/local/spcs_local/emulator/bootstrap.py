"""Build the emulated account the way an operator builds a real one: run infra/snowflake/*.sql.

``run_setup`` is the operator's sequence (infra/snowflake/README.md): an admin session (user
``SPCS_LOCAL_ADMIN``, granted ACCOUNTADMIN) runs 01 .. 07, then the model deployment step -
what the deployment tool does with snowflake-ml-python's ``create_service`` for each
deployment of ``spcs_models.spec`` - as the deployer role (``MODEL_DEPLOYER_ROLE``), then 08,
09 and 11 (the reference route's source tables). ``10_cost_report.sql`` is skipped: a read-only
report over SNOWFLAKE.ACCOUNT_USAGE, which the emulator does not have. Client-side variables
(``&{ name }``, as ``snow sql -D`` substitutes them) come from ``variables``; an undefined
one is an error, like the CLI's.

``bootstrap`` runs the set-up once per state dir (remembered in the store), in one transaction:
a statement the emulator refuses stops the start with the script, statement number and
Snowflake error, so a missing or wrong statement in the SQL shows up at once.

``Admin`` runs SQL as the emulator's administrator (what ``POST /admin/sql`` and tests use).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spcs_models import spec as model_spec

from .privileges import ACCOUNTADMIN, ADMIN_USER, WAREHOUSE
from .sqlengine import ResultSet, SessionInfo, SqlEngine, SqlError

if TYPE_CHECKING:
    from spcs_models.spec import ModelDeployment

__all__ = [
    "DEPLOYER_ROLE",
    "SQL_DIR",
    "Admin",
    "ScriptError",
    "bootstrap",
    "deployment_from_request",
    "run_setup",
    "signature_from_dict",
    "split_statements",
    "substitute",
]

SQL_DIR = Path(__file__).resolve().parents[3] / "snowflake"
DEPLOYER_ROLE = "MODEL_DEPLOYER_ROLE"
SKIPPED_SCRIPTS = frozenset({"10_cost_report.sql"})
DEPLOY_AFTER = "07"  # the deployment step runs after this script, before the next
SETUP_META_KEY = "setup"
_VARIABLE = re.compile(r"&\{\s*(\w+)\s*\}")


class ScriptError(ValueError):
    """A set-up statement failed: which script, which statement, and Snowflake's error."""

    def __init__(self, source: str, index: int, statement: str, error: SqlError) -> None:
        head = " ".join(statement.split())[:80]
        super().__init__(
            f"{source}, statement {index} ({head}): {error.code_str} {error.message}".replace(
                "\n", " "
            )
        )
        self.source = source
        self.index = index
        self.error = error


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Client-side ``&{ name }`` substitution; an undefined variable is an error."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            raise ValueError(f"variable {name!r} is not defined")
        return str(variables[name])

    return _VARIABLE.sub(value, text)


def split_statements(sql: str) -> list[str]:
    """Statements of a script, comments removed; ';' inside '...', "..." or $$...$$ does not
    split."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i) or sql.startswith("//", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if sql.startswith("$$", i):
            j = sql.find("$$", i + 2)
            j = n - 2 if j < 0 else j
            buf.append(sql[i : j + 2])
            i = j + 2
            continue
        if ch in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == "\\" and ch == "'":
                    j += 2
                    continue
                if sql[j] == ch:
                    if sql.startswith(ch * 2, j):
                        j += 2
                        continue
                    break
                j += 1
            buf.append(sql[i : j + 1])
            i = j + 1
            continue
        if ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


class Admin:
    """SQL as the emulator's administrator (``SPCS_LOCAL_ADMIN``, granted ACCOUNTADMIN),
    acting as ``role``; every statement is checked against that role like anybody's."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine

    def session(self, role: str = ACCOUNTADMIN, warehouse: str | None = None) -> SessionInfo:
        """A session of the administrator acting as ``role``: any existing role (an emulator
        convenience; inside a script, USE ROLE is checked as usual), with ``warehouse`` or
        else the first warehouse that role may use."""
        engine = self.engine
        session = engine.open_session(ADMIN_USER)
        wanted = role.upper()
        if wanted != session.role:
            if not engine.catalog.role_exists(wanted):
                raise SqlError(
                    2003, "02000", f"SQL compilation error:\nRole '{wanted}' does not exist."
                )
            session.role = wanted
        if warehouse is not None:
            engine.execute(f"USE WAREHOUSE {warehouse}", None, session=session)
        else:
            roles = engine.roles(session)
            usable = [
                w.name
                for w in engine.catalog.objects(WAREHOUSE)
                if engine.catalog.holds(roles, WAREHOUSE, w.name, ("USAGE",))
            ]
            session.warehouse = usable[0] if usable else None
        return session

    def run(
        self,
        text: str,
        *,
        role: str = ACCOUNTADMIN,
        variables: Mapping[str, str] | None = None,
        bindings: Sequence[Any] | None = None,
        session: SessionInfo | None = None,
        source: str = "<sql>",
    ) -> list[ResultSet]:
        """Run a script statement by statement in one session (``USE`` carries over); the
        first failing statement raises ScriptError."""
        session = session or self.session(role)
        statements = split_statements(substitute(text, variables or {}))
        results = []
        for index, statement in enumerate(statements, start=1):
            try:
                results.append(
                    self.engine.execute(
                        statement, bindings if len(statements) == 1 else None, session=session
                    )
                )
            except SqlError as exc:
                raise ScriptError(source, index, statement, exc) from None
        return results


def setup_scripts(sql_dir: Path = SQL_DIR) -> list[Path]:
    return [p for p in sorted(sql_dir.glob("[0-9][0-9]_*.sql")) if p.name not in SKIPPED_SCRIPTS]


def deploy(
    engine: SqlEngine,
    deployments: Iterable[ModelDeployment],
    *,
    role: str = DEPLOYER_ROLE,
) -> list[str]:
    """The deployment tool's step: each deployment's model, version and service, as ``role``
    (existing services are left alone, as a re-run of the tool does)."""
    return [engine.account.create_model_service(d, role, if_not_exists=True) for d in deployments]


def run_setup(
    engine: SqlEngine,
    *,
    variables: Mapping[str, str],
    deployments: Sequence[ModelDeployment] = model_spec.DEPLOYMENTS,
    sql_dir: Path = SQL_DIR,
    deployer_role: str = DEPLOYER_ROLE,
) -> None:
    """01 .. 07, the deployment step, then 08 onwards, in order (idempotent: run it again)."""
    admin = Admin(engine)
    deployed = False
    for path in setup_scripts(sql_dir):
        if not deployed and path.name[:2] > DEPLOY_AFTER:
            deploy(engine, deployments, role=deployer_role)
            deployed = True
        admin.run(path.read_text(encoding="utf-8"), variables=variables, source=path.name)
    if not deployed:
        deploy(engine, deployments, role=deployer_role)


def bootstrap(
    engine: SqlEngine,
    *,
    variables: Mapping[str, str],
    deployments: Sequence[ModelDeployment] = model_spec.DEPLOYMENTS,
    sql_dir: Path = SQL_DIR,
    deployer_role: str = DEPLOYER_ROLE,
) -> bool:
    """``run_setup`` once per state dir, all or nothing; True when it ran now."""
    store = engine.store
    if store.meta(SETUP_META_KEY) == "done":
        return False
    with store.connection():
        run_setup(
            engine,
            variables=variables,
            deployments=deployments,
            sql_dir=sql_dir,
            deployer_role=deployer_role,
        )
        store.set_meta(SETUP_META_KEY, "done")
    return True


# -- signatures and deployments from JSON (the admin API) -----------------------------------


def _feature(d: Mapping[str, Any]) -> model_spec.Feature | model_spec.FeatureGroup:
    shape = tuple(d["shape"]) if d.get("shape") is not None else None
    if "specs" in d:
        return model_spec.FeatureGroup(str(d["name"]), _plain(d["specs"], "groups"), shape=shape)
    return model_spec.Feature(str(d["name"]), str(d["type"]), shape=shape)


def _plain(specs: Any, where: str) -> tuple[model_spec.Feature, ...]:
    """Features only: signature inputs and group members cannot be groups themselves."""
    features = tuple(_feature(s) for s in specs)
    plain = tuple(f for f in features if isinstance(f, model_spec.Feature))
    if len(plain) != len(features):
        raise ValueError(f"{where} must be features, not groups")
    return plain


def signature_from_dict(d: Mapping[str, Any]) -> model_spec.Signature:
    """A ``spcs_models.spec.Signature`` from its ``to_dict()`` form."""
    return model_spec.Signature(
        inputs=_plain(d.get("inputs") or [], "signature inputs"),
        outputs=tuple(_feature(s) for s in d.get("outputs") or []),
        params=tuple(
            model_spec.Param(str(p["name"]), str(p["dtype"]), p.get("default_value"))
            for p in d.get("params") or []
        ),
    )


# What snowflake-ml-python infers for a transformers zero-shot-image-classification pipeline
# logged without an explicit signature: the pipeline's call parameters become params. An
# example of "a deployment whose signature differs from spcs_models.spec"; the exact inferred
# form is not confirmed against a real log_model.
HF_ZERO_SHOT_IMAGE_SIGNATURE = model_spec.Signature(
    inputs=(
        model_spec.Feature("images", model_spec.BYTES),
        model_spec.Feature("candidate_labels", model_spec.STRING, shape=(-1,)),
    ),
    outputs=(
        model_spec.FeatureGroup(
            "labels",
            (
                model_spec.Feature("label", model_spec.STRING),
                model_spec.Feature("score", model_spec.DOUBLE),
            ),
            shape=(-1,),
        ),
    ),
    params=(
        model_spec.Param("hypothesis_template", model_spec.STRING, "This is a photo of {}."),
        model_spec.Param("timeout", model_spec.DOUBLE, None),
    ),
)
SIGNATURE_PRESETS: dict[str, model_spec.Signature] = {"hf-zero-shot": HF_ZERO_SHOT_IMAGE_SIGNATURE}


def deployment_from_request(body: Mapping[str, Any]) -> ModelDeployment:
    """A deployment for ``POST /admin/deployments``: ``base`` (a logical name of
    spcs_models.spec.DEPLOYMENTS) with overrides ``logical_name``, ``service``,
    ``model_name``, ``version``, ``method``, ``signature`` (a ``to_dict()`` form or a preset
    name: ``hf-zero-shot``) and ``settings`` (ServiceSettings fields, e.g. min_instances)."""
    bases = {d.logical_name: d for d in model_spec.DEPLOYMENTS}
    base_name = body.get("base")
    if base_name not in bases:
        raise ValueError(f"base must be one of {', '.join(sorted(bases))}")
    base = bases[str(base_name)]
    changes: dict[str, Any] = {}
    for key in ("logical_name", "service", "model_name", "version", "method"):
        if key in body:
            if not isinstance(body[key], str) or not body[key]:
                raise ValueError(f"{key} must be a non-empty string")
            changes[key] = body[key]
    signature = body.get("signature")
    if isinstance(signature, str):
        if signature not in SIGNATURE_PRESETS:
            raise ValueError(f"signature preset must be one of {', '.join(SIGNATURE_PRESETS)}")
        changes["signature"] = SIGNATURE_PRESETS[signature]
    elif isinstance(signature, Mapping):
        try:
            changes["signature"] = signature_from_dict(signature)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"signature is not in to_dict() form ({type(exc).__name__})") from None
    elif signature is not None:
        raise ValueError("signature must be a to_dict() object or a preset name")
    settings = body.get("settings")
    if settings is not None:
        if not isinstance(settings, Mapping):
            raise ValueError("settings must be an object")
        known = {f.name for f in dataclasses.fields(model_spec.ServiceSettings)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        changes["settings"] = dataclasses.replace(base.settings, **dict(settings))
    return dataclasses.replace(base, **changes)


def jsonable(value: Any) -> Any:
    """A result value for a JSON answer."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


@dataclass(frozen=True)
class AdminAnswer:
    status: int
    body: dict[str, Any]


def admin_sql(admin: Admin, body: Any) -> AdminAnswer:
    """``POST /admin/sql`` ``{"sql": "...", "role": "ACCOUNTADMIN", "variables": {...},
    "bindings": [...]}`` (bindings: qmark values of a one-statement script)."""
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        return AdminAnswer(400, {"error": "bad_request", "message": 'expected {"sql": "..."}'})
    role = body.get("role") or ACCOUNTADMIN
    variables = body.get("variables") or {}
    bindings = body.get("bindings")
    if (
        not isinstance(role, str)
        or not isinstance(variables, dict)
        or not isinstance(bindings, list | None)
    ):
        return AdminAnswer(400, {"error": "bad_request", "message": "role / variables / bindings"})
    try:
        results = admin.run(
            body["sql"], role=role, variables=variables, bindings=bindings, source="admin"
        )
    except ScriptError as exc:
        return AdminAnswer(
            400,
            {
                "error": "sql_error",
                "statement": exc.index,
                "code": exc.error.code_str,
                "sqlstate": exc.error.sqlstate,
                "message": exc.error.message,
            },
        )
    except SqlError as exc:  # USE ROLE of the session itself
        return AdminAnswer(
            400,
            {
                "error": "sql_error",
                "statement": 0,
                "code": exc.code_str,
                "sqlstate": exc.sqlstate,
                "message": exc.message,
            },
        )
    except ValueError as exc:  # an undefined variable
        return AdminAnswer(400, {"error": "bad_request", "message": str(exc)})
    return AdminAnswer(
        200,
        {
            "results": [
                {
                    "columns": [c.name for c in r.columns],
                    "rows": [[jsonable(v) for v in row] for row in r.rows],
                    "rowcount": r.rowcount,
                }
                for r in results
            ]
        },
    )
