"""SQL text + bindings -> result set, or a Snowflake-style error.

Three families of statements:

- the SPCS control surface (ALTER SERVICE, SHOW SERVICES, DESCRIBE SERVICE, SHOW SERVICE
  CONTAINERS / INSTANCES, SHOW ENDPOINTS, ALTER COMPUTE POOL, SHOW COMPUTE POOLS, USE ...,
  SYSTEM$ functions, CURRENT_*()), answered from ``state.Account``;
- account-level statements (databases, schemas, warehouses, roles, users, network rules and
  policies, compute pools, CREATE SERVICE, Cortex Search services, functions, GRANT / REVOKE,
  SHOW GRANTS, SHOW VERSIONS IN MODEL ...), in ``ddl.py``;
- DDL/DML/queries on user tables (CREATE TABLE, INSERT, SELECT, UPDATE, DELETE, MERGE),
  parsed with sqlglot (Snowflake dialect), rewritten for SQLite and run on the shared store.
  Snowflake functions without a faithful SQLite translation (PARSE_JSON, TO_TIMESTAMP_TZ,
  DATEADD, CURRENT_TIMESTAMP) become SQLite user functions, so the emulator clock applies.

Access control (``privileges.py``): every statement runs with the session's roles. SHOW lists
only what they can see; a statement naming an object they cannot see fails with 002003
("does not exist or not authorized", ``ALTER ... IF EXISTS`` then succeeds silently), one
without the needed privilege with 003001. Table statements need the table privilege of each
table they touch (checked before running, so also when no row would change) and a current
warehouse the roles may use.

Bound values never enter the SQL text that sqlglot sees: each placeholder becomes a sentinel
literal that is turned back into a SQLite ``?`` after transpiling. Error messages never echo
bound values or string literals (they may hold PHI).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from .privileges import (
    COMPUTE_POOL,
    DATABASE,
    OWNERSHIP,
    PUBLIC,
    SCHEMA,
    SERVICE,
    TABLE,
    WAREHOUSE,
    AccessError,
    insufficient,
    not_found,
)
from .state import (
    Account,
    InvalidPropertyError,
    LifecycleError,
    PoolRow,
    PoolSuspendedError,
    ServiceRow,
    split_identifier,
)
from .store import Store, TableColumn, quote_ident

__all__ = [
    "STATEMENT_TYPE_IDS",
    "Column",
    "LoginError",
    "ResultSet",
    "SessionInfo",
    "SqlEngine",
    "SqlError",
]

# Snowflake statementTypeId values (families as the connector classifies them).
STATEMENT_TYPE_IDS: dict[str, int] = {
    "SELECT": 0x1000,
    "INSERT": 0x3100,
    "UPDATE": 0x3200,
    "DELETE": 0x3300,
    "MERGE": 0x3400,
    "ALTER_SESSION": 0x4100,
    "USE": 0x4300,
    "SHOW": 0x4400,
    "DESCRIBE": 0x4500,
    "DDL": 0x6000,
    "CREATE_TABLE": 0x6100,
    "DROP": 0x6200,
    "ALTER": 0x6300,
}

# sqlglot logs unparsed SQL at WARNING ("contains unsupported syntax"): SQL may hold PHI.
logging.getLogger("sqlglot").setLevel(logging.ERROR)
log = logging.getLogger(__name__)

ENDPOINT_PORT = 5000  # container port of the model inference server behind the endpoint


class SqlError(Exception):
    """A statement Snowflake would reject; the wire layer answers it as a failed query."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message

    @property
    def code_str(self) -> str:
        return f"{self.code:06d}"


class LoginError(Exception):
    """A login Snowflake refuses after the credential checked out (unknown or disabled user,
    role not granted, network policy); the wire layer answers it as a failed login."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _syntax_error(detail: str = "") -> SqlError:
    suffix = f" {detail}" if detail else ""  # never SQL fragments: they may hold PHI
    return SqlError(
        1003, "42000", f"SQL compilation error:\nsyntax error line 1 at position 0{suffix}."
    )


def _unsupported(what: str) -> SqlError:
    return SqlError(2, "0A000", f"Unsupported feature '{what}' (not emulated by spcs-local).")


def _not_found(kind: str, name: str) -> SqlError:
    return SqlError(
        2003, "02000", f"SQL compilation error:\n{kind} '{name}' does not exist or not authorized."
    )


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Snowflake wire type: fixed, real, text, boolean, date, timestamp_ltz, ...
    nullable: bool = True
    precision: int | None = None
    scale: int | None = None
    length: int | None = None


@dataclass
class ResultSet:
    columns: list[Column]
    rows: list[tuple[Any, ...]]
    rowcount: int
    statement_type: str = "SELECT"  # key of STATEMENT_TYPE_IDS
    stats: dict[str, int] = field(default_factory=dict)  # numRowsInserted/Updated/Deleted

    @property
    def statement_type_id(self) -> int:
        return STATEMENT_TYPE_IDS.get(self.statement_type, 0x6000)


@dataclass
class SessionInfo:
    """Per-connection context; USE statements change it."""

    account: str
    user: str
    role: str = "PUBLIC"
    database: str | None = None
    schema: str | None = None
    warehouse: str | None = None
    session_id: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    # Secondary roles: "ALL" (every role granted to the user), a list of roles, or None.
    secondary_roles: Any = None


# -- Snowflake types ----------------------------------------------------------------------

_TEXT_MAX = 16_777_216


def text(name: str, nullable: bool = True) -> Column:
    return Column(name, "text", nullable, length=_TEXT_MAX)


def fixed(name: str, nullable: bool = True, scale: int = 0) -> Column:
    return Column(name, "fixed", nullable, precision=38, scale=scale)


def ts_ltz(name: str, nullable: bool = True) -> Column:
    return Column(name, "timestamp_ltz", nullable, precision=0, scale=9)


def column_for(name: str, sf_type: str, nullable: bool = True) -> Column:
    """Result column for a declared Snowflake type."""
    base, _, args = sf_type.upper().partition("(")
    base = base.strip()
    numbers = [int(a) for a in re.findall(r"\d+", args)]
    if base in {"NUMBER", "NUMERIC", "DECIMAL"}:
        scale = numbers[1] if len(numbers) > 1 else 0
        precision = numbers[0] if numbers else 38
        return Column(name, "fixed", nullable, precision=precision, scale=scale)
    if base in {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"}:
        return fixed(name, nullable)
    if base in {"FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"}:
        return Column(name, "real", nullable)
    if base == "BOOLEAN":
        return Column(name, "boolean", nullable)
    if base == "DATE":
        return Column(name, "date", nullable)
    if base in {"TIMESTAMP_TZ", "TIMESTAMPTZ"}:
        return Column(name, "timestamp_tz", nullable, precision=0, scale=9)
    if base in {"TIMESTAMP_LTZ", "TIMESTAMPLTZ"}:
        return ts_ltz(name, nullable)
    if base in {"TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMPNTZ", "DATETIME"}:
        return Column(name, "timestamp_ntz", nullable, precision=0, scale=9)
    if base in {"VARIANT", "OBJECT", "ARRAY"}:
        return Column(name, base.lower(), nullable, length=_TEXT_MAX)
    if base in {"BINARY", "VARBINARY"}:
        return Column(name, "binary", nullable, length=8_388_608)
    length = numbers[0] if numbers else _TEXT_MAX
    return Column(name, "text", nullable, length=length)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """Lenient timestamp parsing; naive values are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if abs(seconds) > 1e14:  # nanoseconds (the connector binds datetimes this way)
            seconds /= 1e9
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    else:
        raw = str(value).strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", raw):
            return parse_timestamp(float(raw) if "." in raw else int(raw))
        raw = raw.replace("Z", "+00:00").replace("z", "+00:00")
        raw = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", raw)
        raw = re.sub(r"\s+([+-]\d{2}:\d{2})$", r"\1", raw)
        stamp = dt.datetime.fromisoformat(raw)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _iso(stamp: dt.datetime) -> str:
    return stamp.isoformat(timespec="microseconds")


def from_store(value: Any, col: Column) -> Any:
    """SQLite value -> Python value of the column's Snowflake type."""
    if value is None:
        return None
    kind = col.type
    try:
        if kind == "fixed":
            if col.scale:
                return Decimal(str(value))
            if isinstance(value, float) and not value.is_integer():
                return Decimal(str(value))
            return int(Decimal(str(value)))
        if kind == "real":
            return float(value)
        if kind == "boolean":
            if isinstance(value, str):
                return value.strip().lower() in {"true", "1", "yes", "on"}
            return bool(value)
        if kind == "date":
            if isinstance(value, int | float):
                return dt.date(1970, 1, 1) + dt.timedelta(days=int(value))
            return dt.date.fromisoformat(str(value)[:10])
        if kind in {"timestamp_tz", "timestamp_ltz"}:
            return parse_timestamp(value)
        if kind == "timestamp_ntz":
            stamp = parse_timestamp(value)
            return stamp.replace(tzinfo=None) if stamp else None
        if kind == "binary":
            return bytes(value) if not isinstance(value, str) else bytes.fromhex(value)
        if kind in {"variant", "object", "array"} and isinstance(value, str):
            # Snowflake prints semi-structured values as indented JSON.
            return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except (ValueError, ArithmeticError, TypeError):
        return str(value)
    return value if isinstance(value, str) else str(value)


def _value_column(name: str, values: Sequence[Any]) -> Column:
    """Result column for an expression with no declared type, from its values."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return Column(name, "boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return fixed(name)
    if present and all(isinstance(v, Decimal | int) and not isinstance(v, bool) for v in present):
        scale = max(max(0, -int(v.as_tuple().exponent)) for v in present if isinstance(v, Decimal))
        return fixed(name, scale=scale)
    if present and all(isinstance(v, int | float) for v in present):
        return Column(name, "real")
    if present and all(isinstance(v, bytes) for v in present):
        return column_for(name, "BINARY")  # e.g. a staged file's bytes (stages.py)
    return text(name)


# -- placeholders -------------------------------------------------------------------------

_SENTINEL = "__sfemu_bind_{}__"
_SENTINEL_RE = re.compile(r"'__sfemu_bind_(\d+)__'")
_SENTINEL_ANY_CASE = re.compile(r"'__sfemu_bind_\d+__'", re.IGNORECASE)


def _scan(sql: str, on_placeholder: Callable[[int | None], str]) -> str:
    """Rewrite qmark (``?``) and numeric (``:1``) placeholders outside literals/comments."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif c == '"':
            j = sql.find('"', i + 1)
            j = n - 1 if j < 0 else j
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("$$", i):
            j = sql.find("$$", i + 2)
            j = n - 2 if j < 0 else j
            out.append(sql[i : j + 2])
            i = j + 2
        elif sql.startswith("--", i) or sql.startswith("//", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(" ")
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n - 2 if j < 0 else j
            out.append(" ")
            i = j + 2
        elif c == "?":
            out.append(on_placeholder(None))
            i += 1
        elif (
            c == ":"
            and i + 1 < n
            and sql[i + 1].isdigit()
            and (i == 0 or sql[i - 1] not in ":")
            and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$"))
        ):
            m = re.match(r":(\d+)", sql[i:])
            assert m is not None
            out.append(on_placeholder(int(m.group(1))))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


class _Bound:
    """SQL text with placeholders replaced by sentinels, and the values they stand for."""

    def __init__(self, sql: str, bindings: Sequence[Any] | None) -> None:
        self.values = list(bindings or [])
        counter = itertools.count()

        def sentinel(index: int | None) -> str:
            position = next(counter) if index is None else index - 1
            if position < 0 or position >= len(self.values):
                raise SqlError(
                    2049, "42601", "SQL compilation error: Bind variable count does not match."
                )
            return "'" + _SENTINEL.format(position) + "'"

        self.text = _scan(sql, sentinel)

    def inline(self) -> str:
        """The text with bound values as SQL literals (control statements only)."""
        return _SENTINEL_RE.sub(lambda m: _sql_literal(self.values[int(m.group(1))]), self.text)

    def value_of(self, literal: exp.Literal) -> tuple[bool, Any]:
        m = re.fullmatch(r"__sfemu_bind_(\d+)__", literal.this) if literal.is_string else None
        return (True, self.values[int(m.group(1))]) if m else (False, None)

    def to_sqlite(self, sql: str) -> tuple[str, list[Any]]:
        params: list[Any] = []

        def repl(m: re.Match[str]) -> str:
            params.append(_sqlite_param(self.values[int(m.group(1))]))
            return "?"

        return _SENTINEL_RE.sub(repl, sql), params


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return _iso(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


# -- control statements -------------------------------------------------------------------

_ID = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QID = rf"{_ID}(?:\s*\.\s*{_ID}){{0,2}}"
_STR = r"'((?:[^'\\]|''|\\.)*)'"


def _unquote(s: str) -> str:
    return s.replace("''", "'").replace("\\'", "'")


def _upper_ident(name: str) -> str:
    """An identifier with Snowflake's case rules (unquoted: upper-cased)."""
    try:
        return ".".join(split_identifier(name))
    except ValueError:
        return name.upper()


def _role_not_assigned(role: str) -> SqlError:
    return SqlError(
        3013,
        "42501",
        f"SQL compilation error:\nRequested role '{role}' is not assigned to the executing "
        "user. Specify another role to activate.",
    )


def _cannot_use() -> SqlError:
    return SqlError(
        2043,
        "02000",
        "SQL compilation error:\nObject does not exist, or operation cannot be performed.",
    )


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _zulu(epoch: float | None) -> str | None:
    """ISO 8601 UTC text as SPCS status functions print it."""
    return None if epoch is None else _at(epoch).isoformat().replace("+00:00", "Z")


_SERVICE_COLUMNS: list[Column] = [
    text("name", False),
    text("status"),
    text("database_name", False),
    text("schema_name", False),
    text("owner"),
    text("compute_pool"),
    text("dns_name"),
    fixed("current_instances"),
    fixed("target_instances"),
    fixed("min_ready_instances"),
    fixed("min_instances"),
    fixed("max_instances"),
    text("auto_resume"),
    text("external_access_integrations"),
    ts_ltz("created_on"),
    ts_ltz("updated_on"),
    ts_ltz("resumed_on"),
    ts_ltz("suspended_on"),
    fixed("auto_suspend_secs"),
    text("comment"),
    text("owner_role_type"),
    text("query_warehouse"),
    text("is_job"),
    text("is_async_job"),
    text("spec_digest"),
    text("is_upgrading"),
    text("managing_object_domain"),
    text("managing_object_name"),
]


def _show_row(columns: Sequence[Column], row: Any, given: Mapping[str, Any]) -> tuple[Any, ...]:
    """One SHOW/DESCRIBE row: ``given[name]`` where present, else the row's attribute of the
    column's name (timestamps as datetimes, booleans as 'true'/'false' text)."""
    values: list[Any] = []
    for col in columns:
        if col.name in given:
            values.append(given[col.name])
            continue
        value = getattr(row, col.name)
        if col.type == "timestamp_ltz":
            value = _ts(value)
        elif isinstance(value, bool):
            value = _bool_text(value)
        values.append(value)
    return tuple(values)


# SHOW SERVICES columns the emulator has no state for.
_SERVICE_CONSTANTS: dict[str, Any] = {
    "external_access_integrations": "[]",
    "owner_role_type": "ROLE",
    "query_warehouse": None,
    "is_async_job": "false",
    "is_upgrading": "false",
    "managing_object_domain": None,
    "managing_object_name": None,
}


def _service_values(s: ServiceRow) -> tuple[Any, ...]:
    return _show_row(_SERVICE_COLUMNS, s, _SERVICE_CONSTANTS)


def _service_spec_yaml(s: ServiceRow) -> str:
    model = (s.model_name.rsplit(".", 1)[-1] or s.name).lower()
    return (
        "spec:\n"
        "  containers:\n"
        f'  - name: "{s.containers[0].container_name if s.containers else "model-inference"}"\n'
        f'    image: "/spcs-local/images/{model}:{(s.model_version or "latest").lower()}"\n'
        "  endpoints:\n"
        f'  - name: "{s.endpoint_name}"\n'
        f"    port: {ENDPOINT_PORT}\n"
        f"    public: {_bool_text(s.public)}\n"
    )


_POOL_COLUMNS: list[Column] = [
    text("name", False),
    text("state"),
    fixed("min_nodes"),
    fixed("max_nodes"),
    text("instance_family"),
    fixed("num_services"),
    fixed("num_jobs"),
    fixed("auto_suspend_secs"),
    text("auto_resume"),
    fixed("active_nodes"),
    fixed("idle_nodes"),
    fixed("target_nodes"),
    ts_ltz("created_on"),
    ts_ltz("resumed_on"),
    ts_ltz("updated_on"),
    text("owner"),
    text("comment"),
    text("is_exclusive"),
    text("application"),
    text("budget"),
    text("error_code"),
    text("status_message"),
]


_POOL_CONSTANTS: dict[str, Any] = {
    "is_exclusive": "false",
    "application": None,
    "budget": None,
    "error_code": None,
}


def _pool_values(p: PoolRow) -> tuple[Any, ...]:
    message = "Compute pool is idle." if p.state == "IDLE" else None
    return _show_row(_POOL_COLUMNS, p, {**_POOL_CONSTANTS, "status_message": message})


# The leading columns of SHOW SERVICE CONTAINERS / INSTANCES IN SERVICE.
_IN_SERVICE_COLUMNS: list[Column] = [
    text("database_name"),
    text("schema_name"),
    text("service_name"),
    text("service_status"),
]


def _in_service(s: ServiceRow) -> tuple[Any, ...]:
    return (s.database_name, s.schema_name, s.name, s.status)


def _status(message: str = "Statement executed successfully.") -> ResultSet:
    return ResultSet([text("status")], [(message,)], 1, "DDL")


def _like(name: str, pattern: str | None) -> bool:
    """SQL LIKE, case-insensitive as SHOW ... LIKE is."""
    if pattern is None:
        return True
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


# -- the engine ---------------------------------------------------------------------------


@dataclass
class _Ctx:
    """State of one user-table statement while it is rewritten for SQLite."""

    session: SessionInfo
    bound: _Bound
    tables: dict[str, list[TableColumn]] = field(default_factory=dict)  # alias/name -> cols
    temp_tables: list[str] = field(default_factory=list)


class SqlEngine:
    def __init__(
        self, account: Account, store: Store, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.account = account
        self.store = store
        self._sleep = sleep
        self._temp_ids = itertools.count(1)
        self._udf_error: SqlError | None = None  # set by a failing SQLite user function
        from .service_functions import ServiceFunctions

        # Model services callable from SQL (svc!METHOD(...)); the server registers each one.
        self.service_functions = ServiceFunctions(account)
        from .stages import Stages

        # Staged files: DIRECTORY(@stage), BUILD_SCOPED_FILE_URL and the reader UDF (stages.py).
        self.stages = Stages(account.catalog, store)
        with store.connection() as conn:
            self._register_functions(conn)
        from .ddl import AccountStatements  # imports this module: after it is loaded

        self.ddl = AccountStatements(self)
        self.catalog = account.catalog

    # -- sessions -------------------------------------------------------------------------
    def roles(self, session: SessionInfo) -> frozenset[str]:
        """The roles whose privileges the session has (primary hierarchy + secondary)."""
        return self.catalog.active_roles(session.user, session.role, session.secondary_roles)

    def open_session(
        self,
        user: str,
        *,
        role: str | None = None,
        warehouse: str | None = None,
        database: str | None = None,
        schema: str | None = None,
        client_ip: str | None = None,
        session_id: int = 0,
    ) -> SessionInfo:
        """A new session for an authenticated user, as Snowflake sets it up at login: the
        user must exist and not be disabled, its network policy must allow ``client_ip``, the
        role is the requested one (which must be granted to the user) or the user's default
        role (else PUBLIC); warehouse, database and schema are kept when the role may use them
        (else the session has none), defaulting to the user's DEFAULT_WAREHOUSE and
        DEFAULT_NAMESPACE. Raises LoginError."""
        catalog = self.catalog
        name = user.upper()
        found = catalog.user(name)
        if found is None or str(found.props.get("DISABLED", "FALSE")).upper() == "TRUE":
            raise LoginError(390100, "Incorrect username or password was specified.")
        if not self.ddl.network_policy_allows(name, client_ip):
            raise LoginError(
                390422,
                f"Incoming request with IP/Token {client_ip} is not allowed to access Snowflake. "
                "Contact your account administrator.",
            )
        if role:
            try:
                wanted = ".".join(split_identifier(role))
            except ValueError:
                wanted = role.upper()
            if not catalog.role_exists(wanted) or wanted not in catalog.available_roles(name):
                raise LoginError(
                    390189,
                    f"Role '{wanted}' specified in the connect string is not granted to this "
                    "user. Contact your local system administrator, or attempt to login with "
                    "another role, e.g. PUBLIC.",
                )
        else:
            wanted = catalog.user_default_role(name) or PUBLIC
        secondary_default = found.props.get("DEFAULT_SECONDARY_ROLES", ["ALL"])
        secondary: Any = (
            "ALL"
            if isinstance(secondary_default, list)
            and [str(r).upper() for r in secondary_default] == ["ALL"]
            else None
        )
        info = SessionInfo(
            account=self.account.account_name,
            user=name,
            role=wanted,
            session_id=session_id,
            secondary_roles=secondary,
        )
        roles = self.roles(info)
        wh = warehouse or found.props.get("DEFAULT_WAREHOUSE")
        if wh:
            wh_name = _upper_ident(str(wh))
            if catalog.exists(WAREHOUSE, wh_name) and catalog.holds(
                roles, WAREHOUSE, wh_name, ("USAGE",)
            ):
                info.warehouse = wh_name
        namespace = found.props.get("DEFAULT_NAMESPACE")
        if not database and isinstance(namespace, str) and namespace:
            database, _, schema_default = namespace.partition(".")
            schema = schema or schema_default or None
        if database:
            db = _upper_ident(database)
            if catalog.exists(DATABASE, db) and catalog.visible(roles, DATABASE, db):
                info.database = db
                sc = _upper_ident(schema) if schema else "PUBLIC"
                if catalog.exists(SCHEMA, f"{db}.{sc}") and catalog.visible(
                    roles, SCHEMA, f"{db}.{sc}"
                ):
                    info.schema = sc
        return info

    def _require_warehouse(self, session: SessionInfo) -> None:
        wh = session.warehouse
        if wh and self.catalog.holds(self.roles(session), WAREHOUSE, wh, ("USAGE",)):
            return
        raise SqlError(
            606,
            "57P03",
            "No active warehouse selected in the current session.  Select an active warehouse "
            "with the 'use warehouse' command.\n",
        )

    def resolve_table(self, table: exp.Table, session: SessionInfo) -> str:
        return self._resolve_table(table, session)

    # -- entry point ----------------------------------------------------------------------
    def execute(
        self, sql: str, bindings: Sequence[Any] | None, *, session: SessionInfo
    ) -> ResultSet:
        """Run one statement. Raises SqlError for anything Snowflake would reject."""
        try:
            bound = _Bound(sql, bindings)
            body = bound.text.strip()
            while body.endswith(";"):
                body = body[:-1].rstrip()
            if not body:
                raise SqlError(900, "42000", "SQL compilation error:\nEmpty SQL statement.")
            flat = re.sub(r"\$\$.*?\$\$", "''", body, flags=re.DOTALL)
            if ";" in _SENTINEL_RE.sub("''", re.sub(_STR, "''", flat)):
                raise SqlError(
                    8,
                    "0A000",
                    "Actual statement count did not match the desired statement count 1.",
                )
            bound.text = body
            control = self._control(bound, session)
            if control is not None:
                return control
            return self._user_sql(bound, session)
        except SqlError:
            raise
        except AccessError as exc:
            raise SqlError(exc.code, exc.sqlstate, exc.message) from None
        except LifecycleError as exc:
            raise self._lifecycle_error(exc) from None
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from None
        except (SqlglotError, ValueError, KeyError) as exc:
            # Messages of these may quote the statement: keep only the class name.
            raise SqlError(
                1003,
                "42000",
                f"SQL compilation error:\nunsupported or invalid SQL ({type(exc).__name__}).",
            ) from None
        except Exception as exc:  # noqa: BLE001 - an emulator bug must not become an HTTP 500
            log.warning("sql engine: unexpected %s", type(exc).__name__)
            raise SqlError(
                90999, "XX000", "Internal error in the emulated SQL engine (see emulator log)."
            ) from None

    # -- error mapping --------------------------------------------------------------------
    @staticmethod
    def _lifecycle_error(exc: LifecycleError) -> SqlError:
        if isinstance(exc, InvalidPropertyError):
            return SqlError(1008, "22023", f"SQL compilation error:\n{exc.message}")
        if isinstance(exc, PoolSuspendedError):
            return SqlError(90001, "55000", exc.message)
        return SqlError(90000, "55000", exc.message)

    def _sqlite_error(self, exc: sqlite3.Error) -> SqlError:
        msg = str(exc)
        udf_error = self._udf_error
        self._udf_error = None
        if udf_error is not None:
            return udf_error
        if isinstance(exc, sqlite3.IntegrityError) and "NOT NULL" in msg:
            column = msg.rsplit(".", 1)[-1]
            return SqlError(100072, "22000", f"NULL result in a non-nullable column '{column}'")
        m = re.match(r"no such column: (\S+)", msg)
        if m and len(m.group(1)) < 128:
            name = m.group(1).split(".")[-1].upper()
            return SqlError(
                904,
                "42000",
                f"SQL compilation error: error line 1 at position 0\ninvalid identifier '{name}'",
            )
        m = re.match(r"table \S+ has no column named (\S+)", msg)
        if m and len(m.group(1)) < 128:
            return SqlError(
                904,
                "42000",
                "SQL compilation error: error line 1 at position 0\n"
                f"invalid identifier '{m.group(1).upper()}'",
            )
        if "no such function" in msg:
            return _unsupported("function")
        return SqlError(
            1003, "42000", "SQL compilation error:\nstatement not supported by the emulator."
        )

    # -- control surface ------------------------------------------------------------------
    def _control(self, bound: _Bound, session: SessionInfo) -> ResultSet | None:
        sql = bound.inline()
        flags = re.IGNORECASE | re.DOTALL
        head = re.match(r"\s*(\w+)(?:\s+(\w+))?(?:\s+(\w+))?", sql)
        if head is None:
            raise _syntax_error()
        words = [w.upper() for w in head.groups() if w]
        first = words[0]
        second = words[1] if len(words) > 1 else ""

        if first == "ALTER" and second == "SERVICE":
            account = self.account
            return self._alter(
                sql,
                "SERVICE",
                _QID,
                lambda name: self._service_fqn(name, session),
                lambda fqn: self._authorize(session, SERVICE, fqn, ("OPERATE",)),
                (account.suspend_service, account.resume_service, account.alter_service),
            )
        if first == "ALTER" and second == "COMPUTE":
            account = self.account
            return self._alter(
                sql,
                "COMPUTE POOL",
                _ID,
                lambda name: self._pool_name(name, session),
                lambda pool: self._authorize(session, COMPUTE_POOL, pool, ("OPERATE", "MODIFY")),
                (account.suspend_pool, account.resume_pool, account.alter_pool),
            )
        handled = self.ddl.handle(sql, session)
        if handled is not None:
            return handled
        if first == "SHOW":
            return self._show(sql, session)
        if first in {"DESC", "DESCRIBE"}:
            m = re.match(rf"\s*DESC(?:RIBE)?\s+SERVICE\s+({_QID})\s*$", sql, flags)
            if m:
                row = self._service(m.group(1), session)
                columns = [*_SERVICE_COLUMNS, text("spec")]
                return ResultSet(
                    columns, [(*_service_values(row), _service_spec_yaml(row))], 1, "DESCRIBE"
                )
            m = re.match(rf"\s*DESC(?:RIBE)?\s+COMPUTE\s+POOL\s+({_ID})\s*$", sql, flags)
            if m:
                pool = self._pool(m.group(1), session)
                return ResultSet(_POOL_COLUMNS, [_pool_values(pool)], 1, "DESCRIBE")
            return None if second == "TABLE" else self._raise_unsupported(sql)
        if first == "USE":
            return self._use(sql, session)
        if first in {"BEGIN", "COMMIT", "ROLLBACK"} or (
            first == "START" and second == "TRANSACTION"
        ):
            return _status()
        if first in {"SELECT", "CALL"} and re.search(
            r"SYSTEM\$|CURRENT_\w+\s*\(|COMPUTE_POOL_USAGE_HISTORY", sql, flags
        ):
            return None  # handled with the parsed statement (needs expressions)
        return None

    def _raise_unsupported(self, sql: str) -> ResultSet:
        # Leading keywords only, from before any literal: the rest may hold PHI.
        prefix = re.split(r"['\"$(]", sql, maxsplit=1)[0]
        words = re.findall(r"[A-Za-z_]+", prefix)[:3] or ["statement"]
        raise _unsupported(" ".join(w.upper() for w in words))

    def _authorize(
        self, session: SessionInfo, object_type: str, name: str, privileges: Sequence[str]
    ) -> None:
        """003001 unless the session's roles hold one of ``privileges`` (or OWNERSHIP)."""
        if not self.catalog.holds(self.roles(session), object_type, name, privileges):
            raise insufficient(object_type, name.rsplit(".", 1)[-1])

    def _service_fqn(self, name: str, session: SessionInfo) -> str:
        """A service the session's roles can see (any privilege on it), else 002003."""
        try:
            fqn = self.account.resolve(name, database=session.database, schema=session.schema)
        except KeyError:
            try:
                fqn = self.account.resolve(name)
            except KeyError:
                raise not_found(SERVICE, self._display(name)) from None
        if not self.catalog.visible(self.roles(session), SERVICE, fqn):
            raise not_found(SERVICE, self._display(name))
        return fqn

    def _service(
        self, name: str, session: SessionInfo, privileges: Sequence[str] = ()
    ) -> ServiceRow:
        fqn = self._service_fqn(name, session)
        if privileges:
            self._authorize(session, SERVICE, fqn, privileges)
        return self.account.service(fqn)

    def _pool_name(self, name: str, session: SessionInfo) -> str:
        try:
            pool = self.account.resolve_pool(name)
        except KeyError:
            raise not_found(COMPUTE_POOL, self._display(name)) from None
        if not self.catalog.visible(self.roles(session), COMPUTE_POOL, pool):
            raise not_found(COMPUTE_POOL, self._display(name))
        return pool

    def _pool(self, name: str, session: SessionInfo) -> PoolRow:
        return self.account.pool(self._pool_name(name, session))

    @staticmethod
    def _display(name: str) -> str:
        try:
            return ".".join(split_identifier(name))
        except ValueError:
            return "?"

    def _alter(
        self,
        sql: str,
        object_type: str,
        name_re: str,
        find: Callable[[str], str],
        authorize: Callable[[str], None],
        actions: tuple[Callable[[str], None], Callable[[str], None], Callable[..., None]],
    ) -> ResultSet:
        """ALTER <object_type> [IF EXISTS] <name> SUSPEND | RESUME | SET <prop> = <value> ...

        ``find`` maps the name to the account's key, raising 002003 when the object does not
        exist or the session's roles cannot see it (then IF EXISTS succeeds doing nothing, as
        in Snowflake); ``authorize`` raises 003001 when they may not operate it; ``actions``
        are the account's (suspend, resume, alter) for that object type.
        """
        flags = re.IGNORECASE | re.DOTALL
        keyword = r"\s+".join(object_type.split())
        m = re.match(rf"\s*ALTER\s+{keyword}\s+(IF\s+EXISTS\s+)?({name_re})\s+(.*)$", sql, flags)
        if not m:
            raise _syntax_error()
        if_exists, name, rest = bool(m.group(1)), m.group(2), m.group(3).strip()
        try:
            key = find(name)
        except AccessError:
            if if_exists:
                return _status()
            raise
        suspend, resume, alter = actions
        action = rest.upper()
        sm = re.match(r"SET\s+(.*)$", rest, flags)
        if action not in {"SUSPEND", "RESUME"} and not sm:
            return self._raise_unsupported(f"ALTER {object_type} {rest}")
        authorize(key)
        if action == "SUSPEND":
            suspend(key)
        elif action == "RESUME":
            resume(key)
        elif sm:
            alter(key, **self._properties(sm.group(1)))
        return _status()

    @staticmethod
    def _properties(text_: str) -> dict[str, Any]:
        props: dict[str, Any] = {}
        pattern = re.compile(rf"\s*,?\s*(\w+)\s*=\s*({_STR}|[^\s,]+)", re.IGNORECASE | re.DOTALL)
        pos = 0
        body = text_.strip()
        while pos < len(body):
            m = pattern.match(body, pos)
            if not m:
                raise _syntax_error()
            key, raw = m.group(1).upper(), m.group(2)
            props[key] = _unquote(m.group(3)) if m.group(3) is not None else raw
            pos = m.end()
        if not props:
            raise _syntax_error()
        return props

    def _use(self, sql: str, session: SessionInfo) -> ResultSet:
        flags = re.IGNORECASE | re.DOTALL
        sm = re.match(r"\s*USE\s+SECONDARY\s+ROLES?\s+(.*?)\s*$", sql, flags)
        if sm:
            value = sm.group(1).strip().upper()
            if value == "ALL":
                session.secondary_roles = "ALL"
            elif value == "NONE":
                session.secondary_roles = None
            else:
                wanted = [_upper_ident(r) for r in re.split(r"\s*,\s*", sm.group(1).strip())]
                available = self.catalog.available_roles(session.user)
                for role in wanted:
                    if role not in available:
                        raise _role_not_assigned(role)
                session.secondary_roles = wanted
            return ResultSet([text("status")], [("Statement executed successfully.",)], 1, "USE")
        m = re.match(rf"\s*USE\s+(?:(ROLE|WAREHOUSE|DATABASE|SCHEMA)\s+)?({_QID})\s*$", sql, flags)
        if not m:
            raise _syntax_error()
        kind = (m.group(1) or "DATABASE").upper()
        parts = split_identifier(m.group(2))
        catalog = self.catalog
        if kind == "ROLE":
            role = ".".join(parts)
            if not catalog.role_exists(role):
                raise not_found("ROLE", role)
            if role not in catalog.available_roles(session.user):
                raise _role_not_assigned(role)
            session.role = role
        elif kind == "WAREHOUSE":
            name = ".".join(parts)
            if not catalog.exists(WAREHOUSE, name) or not catalog.holds(
                self.roles(session), WAREHOUSE, name, ("USAGE",)
            ):
                raise _cannot_use()
            session.warehouse = name
        elif kind == "DATABASE":
            if len(parts) != 1:
                raise _syntax_error()
            if not catalog.exists(DATABASE, parts[0]) or not catalog.visible(
                self.roles(session), DATABASE, parts[0]
            ):
                raise _cannot_use()
            session.database, session.schema = parts[0], "PUBLIC"
        elif kind == "SCHEMA":
            if len(parts) == 2:
                database, schema = parts
            elif len(parts) == 1 and session.database:
                database, schema = session.database, parts[0]
            else:
                raise _syntax_error()
            name = f"{database}.{schema}"
            if not catalog.exists(SCHEMA, name) or not catalog.visible(
                self.roles(session), SCHEMA, name
            ):
                raise _cannot_use()
            session.database, session.schema = database, schema
        return ResultSet([text("status")], [("Statement executed successfully.",)], 1, "USE")

    def _show(self, sql: str, session: SessionInfo) -> ResultSet:
        flags = re.IGNORECASE | re.DOTALL
        m = re.match(
            rf"\s*SHOW\s+SERVICE\s+(CONTAINERS|INSTANCES)\s+IN\s+SERVICE\s+({_QID})\s*$", sql, flags
        )
        if m:
            row = self._service(m.group(2), session, ("MONITOR",))
            return (
                self._containers(row)
                if m.group(1).upper() == "CONTAINERS"
                else self._instances(row)
            )
        m = re.match(rf"\s*SHOW\s+ENDPOINTS\s+IN\s+SERVICE\s+({_QID})\s*$", sql, flags)
        if m:
            return self._endpoints(self._service(m.group(1), session, ("USAGE",)))
        m = re.match(
            rf"\s*SHOW\s+(JOB\s+)?SERVICES(\s+EXCLUDE\s+JOBS)?(?:\s+LIKE\s+{_STR})?"
            rf"(?:\s+IN\s+(ACCOUNT|DATABASE(?:\s+(?!STARTS\b|LIMIT\b){_ID})?|SCHEMA(?:\s+(?!STARTS\b|LIMIT\b){_QID})?"
            rf"|COMPUTE\s+POOL\s+{_ID}|(?!STARTS\b|LIMIT\b){_QID}))?"
            rf"(?:\s+STARTS\s+WITH\s+{_STR})?(?:\s+LIMIT\s+(\d+))?\s*$",
            sql,
            flags,
        )
        if m:
            return self._show_services(
                session,
                like=_unquote(m.group(3)) if m.group(3) is not None else None,
                scope=m.group(4),
                starts=_unquote(m.group(5)) if m.group(5) is not None else None,
                limit=int(m.group(6)) if m.group(6) else None,
                jobs="only" if m.group(1) else ("exclude" if m.group(2) else "include"),
            )
        m = re.match(
            rf"\s*SHOW\s+COMPUTE\s+POOLS(?:\s+LIKE\s+{_STR})?(?:\s+LIMIT\s+(\d+))?\s*$", sql, flags
        )
        if m:
            like = _unquote(m.group(1)) if m.group(1) is not None else None
            roles = self.roles(session)
            pools = [
                p
                for p in self.account.pools()
                if _like(p.name, like) and self.catalog.visible(roles, COMPUTE_POOL, p.name)
            ]
            if m.group(2):
                pools = pools[: int(m.group(2))]
            return ResultSet(_POOL_COLUMNS, [_pool_values(p) for p in pools], len(pools), "SHOW")
        return self._raise_unsupported(sql)

    def _show_services(
        self,
        session: SessionInfo,
        *,
        like: str | None,
        scope: str | None,
        starts: str | None,
        limit: int | None,
        jobs: str = "include",
    ) -> ResultSet:
        roles = self.roles(session)
        rows = [r for r in self.account.services() if self.catalog.visible(roles, SERVICE, r.fqn)]
        if jobs == "only":
            rows = [r for r in rows if r.is_job]
        elif jobs == "exclude":
            rows = [r for r in rows if not r.is_job]
        if scope:
            words = scope.split(None, 1)
            kind = words[0].upper()
            arg = words[1].strip() if len(words) > 1 else None
            if kind == "ACCOUNT":
                pass
            elif kind == "DATABASE":
                database = split_identifier(arg)[-1] if arg else session.database
                if database:
                    rows = [r for r in rows if r.database_name == database]
            elif kind == "COMPUTE":
                pool = split_identifier(re.sub(r"(?i)^POOL\s+", "", arg or ""))[-1]
                rows = [r for r in rows if r.compute_pool == pool]
            else:
                target = arg if kind == "SCHEMA" else scope
                if target:
                    parts = split_identifier(target)
                    database = parts[0] if len(parts) == 2 else session.database
                    schema = parts[-1]
                else:
                    database, schema = session.database, session.schema or ""
                rows = [
                    r
                    for r in rows
                    if r.schema_name == schema and (database is None or r.database_name == database)
                ]
        rows = [r for r in rows if _like(r.name, like)]
        if starts is not None:
            rows = [r for r in rows if r.name.startswith(starts)]
        if limit is not None:
            rows = rows[:limit]
        return ResultSet(_SERVICE_COLUMNS, [_service_values(r) for r in rows], len(rows), "SHOW")

    def _containers(self, s: ServiceRow) -> ResultSet:
        columns = [
            *_IN_SERVICE_COLUMNS,
            text("instance_id"),
            text("instance_status"),
            text("container_name"),
            text("status"),
            text("message"),
            text("image_name"),
            text("image_digest"),
            fixed("restart_count"),
            text("start_time"),
            fixed("last_exit_code"),
            text("last_restart_time"),
        ]
        base = _in_service(s)
        if not s.containers:  # SUSPENDED: instance and container fields are NULL
            return ResultSet(columns, [(*base, *([None] * 11))], 1, "SHOW")
        rows = [
            (
                *base,
                c.instance_id,
                c.instance_status,
                c.container_name,
                c.status,
                c.message,
                c.image_name,
                "sha256:" + s.spec_digest[:64],
                c.restart_count,
                _zulu(c.start_time),
                None,
                None,
            )
            for c in s.containers
        ]
        return ResultSet(columns, rows, len(rows), "SHOW")

    def _instances(self, s: ServiceRow) -> ResultSet:
        columns = [
            *_IN_SERVICE_COLUMNS,
            text("instance_id"),
            text("status"),
            text("spec_digest"),
            text("creation_time"),
            text("start_time"),
        ]
        seen: dict[str, tuple[Any, ...]] = {}
        for c in s.containers:
            start = _zulu(c.start_time)
            created = _zulu(s.resumed_on or s.created_on)
            seen.setdefault(
                c.instance_id,
                (
                    *_in_service(s),
                    c.instance_id,
                    c.instance_status,
                    s.spec_digest,
                    created,
                    start,
                ),
            )
        rows = list(seen.values())
        return ResultSet(columns, rows, len(rows), "SHOW")

    def _endpoints(self, s: ServiceRow) -> ResultSet:
        columns = [
            text("name"),
            fixed("port"),
            text("port_range"),
            text("protocol"),
            text("is_public"),
            text("ingress_url"),
        ]
        url = s.ingress_url or "Endpoints provisioning in progress... check back in a few minutes"
        return ResultSet(
            columns, [(s.endpoint_name, ENDPOINT_PORT, None, "HTTP", "true", url)], 1, "SHOW"
        )

    # -- system functions -----------------------------------------------------------------
    def _service_status_json(self, row: ServiceRow) -> str:
        if not row.containers:
            entries: list[dict[str, Any]] = [
                {
                    "status": row.status,
                    "message": "Service is suspended." if row.status == "SUSPENDED" else row.status,
                    "containerName": "model-inference",
                    "instanceId": None,
                    "serviceName": row.name,
                    "image": None,
                    "restartCount": 0,
                    "startTime": None,
                }
            ]
        else:
            entries = [
                {
                    "status": c.status,
                    "message": c.message,
                    "containerName": c.container_name,
                    "instanceId": c.instance_id,
                    "serviceName": row.name,
                    "image": c.image_name,
                    "restartCount": c.restart_count,
                    "startTime": _zulu(c.start_time),
                }
                for c in row.containers
            ]
        return json.dumps(entries)

    def _wait_ready(self, fqns: Sequence[str], timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if all(self.account.service(f).status == "RUNNING" for f in fqns):
                return True
            if time.monotonic() >= deadline:
                return False
            self._sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _system_function(
        self, name: str, args: list[Any], session: SessionInfo
    ) -> tuple[Column, Any] | None:
        upper = name.upper()
        if upper == "SYSTEM$GET_SERVICE_STATUS":
            if not args or len(args) > 2:
                raise SqlError(
                    938,
                    "22023",
                    "SQL compilation error:\n"
                    "invalid number of arguments for SYSTEM$GET_SERVICE_STATUS",
                )
            row = self._service(str(args[0]), session, ("MONITOR",))
            if len(args) == 2 and args[1] is not None:
                self._wait_ready([row.fqn], float(args[1]))
                row = self.account.service(row.fqn)
            return text(upper), self._service_status_json(row)
        if upper == "SYSTEM$WAIT_FOR_SERVICES":
            if len(args) < 2:
                raise SqlError(
                    938,
                    "22023",
                    "SQL compilation error:\n"
                    "invalid number of arguments for SYSTEM$WAIT_FOR_SERVICES",
                )
            fqns = [self._service(str(a), session, ("MONITOR",)).fqn for a in args[1:]]
            if not self._wait_ready(fqns, float(args[0])):
                raise SqlError(
                    90002,
                    "57014",
                    f"Timed out after {float(args[0]):g} seconds waiting for services to be READY.",
                )
            return text(upper), "OK"
        values = {
            "CURRENT_ROLE": session.role,
            "CURRENT_USER": session.user,
            "CURRENT_DATABASE": session.database,
            "CURRENT_SCHEMA": session.schema,
            "CURRENT_WAREHOUSE": session.warehouse,
            "CURRENT_ACCOUNT": session.account,
            "CURRENT_ACCOUNT_NAME": session.account,
            "CURRENT_REGION": "LOCAL",
            "CURRENT_VERSION": "9.0.0",
            "CURRENT_CLIENT": "spcs-local",
            "CURRENT_SESSION": str(session.session_id),
        }
        if upper in values:
            return text(upper), values[upper]
        if upper in {"CURRENT_TIMESTAMP", "SYSDATE", "GETDATE", "LOCALTIMESTAMP"}:
            return Column(upper, "timestamp_ltz", precision=0, scale=9), _ts(self.account.now())
        if upper == "CURRENT_DATE":
            return Column(upper, "date"), _at(self.account.now()).date()
        if upper.startswith("SYSTEM$"):
            raise _unsupported(upper)
        return None

    # -- user tables ----------------------------------------------------------------------
    def _user_sql(self, bound: _Bound, session: SessionInfo) -> ResultSet:
        try:
            tree = sqlglot.parse_one(bound.text, read="snowflake")
        except ParseError:
            first = re.match(r"\s*([A-Za-z_]{1,30})\b", bound.text)
            raise _syntax_error(f"unexpected '{first.group(1)}'" if first else "") from None
        if tree is None or isinstance(tree, exp.Command):
            return self._raise_unsupported(bound.text)
        ctx = _Ctx(session, bound)
        # Service-function calls: checked, gated (AUTO_RESUME) and rewritten before anything runs.
        self.service_functions.prepare(tree, session, self._service_fqn, SqlError)
        if (
            isinstance(tree, exp.Select)
            and tree.args.get("from_") is None
            and not tree.args.get("with_")
        ):
            # Outside the store lock: SYSTEM$WAIT_FOR_SERVICES may wait for a while.
            return self._select_constants(tree, ctx)
        if not isinstance(tree, exp.Create | exp.Drop | exp.Describe):
            self._authorize_tables(tree, session)
            self._require_warehouse(session)
        with self.store.connection() as conn:
            try:
                if isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
                    return self._select(tree, ctx, conn)
                if isinstance(tree, exp.Create):
                    return self._create(tree, ctx)
                if isinstance(tree, exp.Drop):
                    return self._drop(tree, ctx)
                if isinstance(tree, exp.Insert):
                    return self._dml(tree, ctx, conn, "INSERT")
                if isinstance(tree, exp.Update):
                    return self._dml(tree, ctx, conn, "UPDATE")
                if isinstance(tree, exp.Delete):
                    return self._dml(tree, ctx, conn, "DELETE")
                if isinstance(tree, exp.TruncateTable):
                    return self._truncate(tree, ctx, conn)
                if isinstance(tree, exp.Merge):
                    return self._merge(tree, ctx, conn)
                if isinstance(tree, exp.Describe):
                    return self._describe_table(tree, ctx)
            finally:
                for name in ctx.temp_tables:
                    conn.execute(f"DROP TABLE IF EXISTS temp.{quote_ident(name)}")
        return self._raise_unsupported(bound.text)

    # privileges -----------------------------------------------------------------------------
    def _authorize_tables(self, tree: Any, session: SessionInfo) -> None:
        """Each table a statement touches needs its privilege, checked before anything runs:
        the target of INSERT / UPDATE / DELETE / TRUNCATE that privilege, a MERGE target
        INSERT for WHEN NOT MATCHED ... INSERT, UPDATE (and SELECT) for WHEN MATCHED ...
        UPDATE, DELETE (and SELECT) for WHEN MATCHED ... DELETE; every other table SELECT."""
        needs: dict[str, set[str]] = {}
        targets: set[int] = set()

        def need(table: exp.Table, *privileges: str) -> None:
            fqn = self._resolve_table(table, session)
            needs.setdefault(fqn, set()).update(privileges)
            targets.add(id(table))

        def target_of(node: exp.Expression | None) -> exp.Table | None:
            if isinstance(node, exp.Schema):
                node = node.this
            return node if isinstance(node, exp.Table) else None

        if isinstance(tree, exp.Insert | exp.Update | exp.Delete):
            table = target_of(tree.this)
            if table is not None:
                kind = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE"}
                need(table, kind[type(tree)])
        elif isinstance(tree, exp.TruncateTable):
            for table in tree.expressions:
                if isinstance(table, exp.Table):
                    need(table, "TRUNCATE")
        elif isinstance(tree, exp.Merge):
            table = target_of(tree.this)
            whens = tree.args.get("whens")
            wanted: set[str] = set()
            for when in whens.expressions if whens is not None else []:
                then = when.args.get("then")
                if isinstance(then, exp.Insert):
                    wanted.add("INSERT")
                elif isinstance(then, exp.Update):
                    wanted |= {"UPDATE", "SELECT"}
                else:
                    wanted |= {"DELETE", "SELECT"}
            if table is not None:
                need(table, *sorted(wanted))
        cte_names = {c.alias_or_name.upper() for c in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if id(table) in targets or not table.name:
                continue
            if table.name.upper() in cte_names and not table.db:
                continue
            if isinstance(table.this, exp.Anonymous | exp.Func):
                continue
            if isinstance(table.this, exp.DirectoryStage):
                continue  # READ on the stage: stages.py checks it
            need(table, "SELECT")
        roles = self.roles(session)
        for fqn, privileges in needs.items():
            visible = self.catalog.visible(roles, TABLE, fqn)
            if not visible:
                raise _not_found("Object", fqn)
            for privilege in sorted(privileges):
                if not self.catalog.holds(roles, TABLE, fqn, (privilege,)):
                    raise insufficient(TABLE, fqn.rsplit(".", 1)[-1])

    # table references -------------------------------------------------------------------
    def _resolve_table(self, table: exp.Table, session: SessionInfo) -> str:
        parts = [p for p in (table.catalog, table.db, table.name) if p]
        quoted = [
            bool(ident.quoted) if isinstance(ident, exp.Identifier) else False
            for ident in (table.args.get("catalog"), table.args.get("db"), table.this)
            if ident is not None
        ]
        names = (
            [p if q else p.upper() for p, q in zip(parts, quoted, strict=False)]
            if len(quoted) == len(parts)
            else [p.upper() for p in parts]
        )
        known = self.store.tables()
        if len(names) == 3:
            fqn = ".".join(names)
            if fqn in known:
                return fqn
        else:
            context = [session.database, session.schema][: 3 - len(names)]
            if all(context):
                fqn = ".".join([*(c for c in context if c), *names])
                if fqn in known:
                    return fqn
            matches = [k for k in known if k.split(".")[3 - len(names) :] == names]
            if len(matches) == 1:
                return matches[0]
        raise _not_found("Object", ".".join(names))

    def _fqn_for_create(self, table: exp.Table, session: SessionInfo) -> str:
        parts = [p.upper() for p in (table.catalog, table.db, table.name) if p]
        if len(parts) == 3:
            return ".".join(parts)
        context = [session.database, session.schema][: 3 - len(parts)]
        if not all(context):
            raise SqlError(
                90105,
                "22000",
                "Cannot perform CREATE TABLE. "
                "This session does not have a current database or schema.",
            )
        return ".".join([*(c for c in context if c), *parts])

    def _rewrite(self, node: exp.Expression, ctx: _Ctx) -> exp.Expression:
        """Map Snowflake table names and functions to their SQLite stand-ins (in place)."""
        session = ctx.session
        self.stages.prepare(
            node, self.roles(session), lambda name: self.ddl.qualify(name, session, 3)
        )
        cte_names = {c.alias_or_name.upper() for c in node.find_all(exp.CTE)}
        for tf in list(node.find_all(exp.TableFromRows)):
            self._materialize_table_function(tf, ctx)
        for table in list(node.find_all(exp.Table)):
            if table.name.upper() in cte_names and not table.db:
                continue
            if table.name.startswith("_emu_tf_"):
                continue
            fqn = self._resolve_table(table, ctx.session)
            columns = self.store.table_columns(fqn) or []
            alias = table.alias or table.name
            ctx.tables[alias.upper()] = columns
            ctx.tables.setdefault(table.name.upper(), columns)
            table.set("this", exp.to_identifier(self.store.table_name(fqn), quoted=True))
            table.set("db", None)
            table.set("catalog", None)
            if not table.alias:
                table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        now = _at(self.account.now())

        def fn(e: exp.Expression) -> exp.Expression:
            if isinstance(e, exp.GetExtract):  # GET(variant, key or index), key bound or not
                return exp.Anonymous(this="SF_GET", expressions=[e.this, e.expression])
            if isinstance(e, exp.ParseJSON):
                return exp.Anonymous(
                    this="SF_TRY_PARSE_JSON" if e.args.get("safe") else "SF_PARSE_JSON",
                    expressions=[e.this],
                )
            if isinstance(e, exp.CurrentTimestamp):
                return exp.Literal.string(_iso(now))
            if isinstance(e, exp.CurrentDate):
                return exp.Literal.string(now.date().isoformat())
            if isinstance(e, exp.Anonymous) and e.name.upper() in {
                "TO_TIMESTAMP_TZ",
                "TO_TIMESTAMP_LTZ",
                "TO_TIMESTAMP",
                "TO_TIMESTAMP_NTZ",
                "TRY_TO_TIMESTAMP",
            }:
                return exp.Anonymous(this="SF_TO_TIMESTAMP", expressions=e.expressions[:1])
            if isinstance(e, exp.Cast | exp.TryCast):
                target = e.to.this if isinstance(e.to, exp.DataType) else None
                if target in {
                    exp.DataType.Type.TIMESTAMPTZ,
                    exp.DataType.Type.TIMESTAMPLTZ,
                    exp.DataType.Type.TIMESTAMP,
                    exp.DataType.Type.TIMESTAMPNTZ,
                    exp.DataType.Type.DATETIME,
                }:
                    return exp.Anonymous(this="SF_TO_TIMESTAMP", expressions=[e.this])
                if target == exp.DataType.Type.DATE:
                    return exp.Anonymous(this="SF_TO_DATE", expressions=[e.this])
                if target in {
                    exp.DataType.Type.VARIANT,
                    exp.DataType.Type.OBJECT,
                    exp.DataType.Type.ARRAY,
                }:
                    return e.this  # type: ignore[no-any-return]
            if isinstance(e, exp.DateAdd | exp.TimestampAdd | exp.TsOrDsAdd):
                unit = e.args.get("unit")
                unit_name = unit.name if unit is not None else "DAY"
                return exp.Anonymous(
                    this="SF_DATEADD",
                    expressions=[exp.Literal.string(unit_name), e.expression, e.this],
                )
            return e

        def post_order(e: exp.Expression) -> exp.Expression:
            # Children first: sqlglot's transform() does not revisit a replaced node's children.
            for child in list(e.iter_expressions()):
                new = post_order(child)
                if new is not child:
                    child.replace(new)
            return fn(e)

        return post_order(node)

    def _sqlite(self, node: exp.Expression, ctx: _Ctx) -> tuple[str, list[Any]]:
        return ctx.bound.to_sqlite(node.sql(dialect="sqlite"))

    # table functions ------------------------------------------------------------------
    def _materialize_table_function(self, tf: exp.TableFromRows, ctx: _Ctx) -> None:
        call = tf.this.expression if isinstance(tf.this, exp.Dot) else tf.this
        name = call.name.upper() if isinstance(call, exp.Anonymous) else ""
        if name != "COMPUTE_POOL_USAGE_HISTORY":
            raise _unsupported(f"TABLE({name or 'function'})")
        kwargs: dict[str, Any] = {}
        for arg in call.expressions:
            if not isinstance(arg, exp.Kwarg):
                raise _syntax_error("(expected NAME => value arguments)")
            kwargs[arg.this.name.upper()] = self._constant(arg.expression, ctx)
        start_raw = kwargs.get("DATE_RANGE_START", kwargs.get("START_TIME"))
        end_raw = kwargs.get("DATE_RANGE_END", kwargs.get("END_TIME"))
        now = self.account.now()
        start = parse_timestamp(start_raw).timestamp() if start_raw is not None else now - 86400  # type: ignore[union-attr]
        end = parse_timestamp(end_raw).timestamp() if end_raw is not None else now  # type: ignore[union-attr]
        pool = kwargs.get("COMPUTE_POOL_NAME")
        if pool is not None:
            names = [self._pool_name(str(pool), ctx.session)]
        else:
            roles = self.roles(ctx.session)
            names = [
                p.name
                for p in self.account.pools()
                if self.catalog.visible(roles, COMPUTE_POOL, p.name)
            ]
        usage = [u for name in names for u in self.account.usage_history(name, start, end)]
        temp = f"_emu_tf_{next(self._temp_ids)}"
        columns = [
            TableColumn("START_TIME", "TIMESTAMP_LTZ"),
            TableColumn("END_TIME", "TIMESTAMP_LTZ"),
            TableColumn("COMPUTE_POOL_NAME", "VARCHAR"),
            TableColumn("CREDITS_USED", "NUMBER(38,9)"),
            TableColumn("APPLICATION_NAME", "VARCHAR"),
            TableColumn("APPLICATION_ID", "VARCHAR"),
            TableColumn("IS_EXCLUSIVE", "BOOLEAN"),
        ]
        with self.store.connection() as conn:
            conn.execute(
                f"CREATE TEMP TABLE {quote_ident(temp)} (START_TIME TEXT, END_TIME TEXT, "
                "COMPUTE_POOL_NAME TEXT, CREDITS_USED REAL, APPLICATION_NAME TEXT, "
                "APPLICATION_ID TEXT, IS_EXCLUSIVE INTEGER)"
            )
            ctx.temp_tables.append(temp)
            conn.executemany(
                f"INSERT INTO temp.{quote_ident(temp)} VALUES (?, ?, ?, ?, NULL, NULL, 0)",
                [
                    (
                        _iso(_at(u.start_time)),
                        _iso(_at(u.end_time)),
                        u.compute_pool_name,
                        round(u.credits_used, 9),
                    )
                    for u in usage
                ],
            )
        alias = tf.alias or "COMPUTE_POOL_USAGE_HISTORY"
        ctx.tables[alias.upper()] = columns
        ctx.tables.setdefault("COMPUTE_POOL_USAGE_HISTORY", columns)
        tf.replace(
            exp.Table(
                this=exp.to_identifier(temp, quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(alias)),
            )
        )

    def _constant(self, node: exp.Expression, ctx: _Ctx) -> Any:
        """Value of an argument expression (literal, bound value, or SQLite-evaluable)."""
        if isinstance(node, exp.Literal):
            is_bound, value = ctx.bound.value_of(node)
            if is_bound:
                return value
            if node.is_string:
                return node.this
            return (
                Decimal(node.this)
                if "." in node.this or "e" in node.this.lower()
                else int(node.this)
            )
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Boolean):
            return bool(node.this)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
            return -self._constant(node.this, ctx)
        expr = self._rewrite(node.copy(), ctx)
        sql, params = self._sqlite(exp.select(expr), ctx)
        with self.store.connection() as conn:
            row = conn.execute(sql, params).fetchone()
        return row[0] if row else None

    # statements -----------------------------------------------------------------------
    def _select_constants(self, tree: exp.Select, ctx: _Ctx) -> ResultSet:
        columns: list[Column] = []
        values: list[Any] = []
        for projection in tree.expressions:
            node = projection.this if isinstance(projection, exp.Alias) else projection
            display = projection.alias if isinstance(projection, exp.Alias) else None
            func_name = self._func_name(node)
            handled = None
            if func_name is not None:
                args = [self._constant(a, ctx) for a in self._func_args(node)]
                handled = self._system_function(func_name, args, ctx.session)
            if handled is not None:
                col, value = handled
                name = display.upper() if display else node.sql(dialect="snowflake").upper()
                columns.append(
                    Column(
                        name,
                        col.type,
                        col.nullable,
                        col.precision,
                        col.scale,
                        col.length,
                    )
                )
                values.append(value)
                continue
            value = self._constant(node, ctx)
            name = display.upper() if display else node.sql(dialect="snowflake").upper()
            columns.append(_value_column(name, [value]))
            values.append(value)
        if tree.args.get("where") is not None:
            raise _unsupported("SELECT ... WHERE without FROM")
        columns = [
            Column(
                _SENTINEL_ANY_CASE.sub("?", c.name),
                c.type,
                c.nullable,
                c.precision,
                c.scale,
                c.length,
            )
            for c in columns
        ]
        return ResultSet(columns, [tuple(values)], 1, "SELECT")

    @staticmethod
    def _func_name(node: exp.Expression) -> str | None:
        if isinstance(node, exp.Anonymous):
            return node.name
        if isinstance(node, exp.Func):
            return node.sql_name()
        return None

    @staticmethod
    def _func_args(node: exp.Expression) -> list[exp.Expression]:
        if isinstance(node, exp.Anonymous):
            return list(node.expressions)
        args = [node.this] if isinstance(node.this, exp.Expression) else []
        return args + list(node.expressions)

    def _select(self, tree: exp.Expression, ctx: _Ctx, conn: sqlite3.Connection) -> ResultSet:
        self._rewrite(tree, ctx)
        sql, params = self._sqlite(tree, ctx)
        cursor = conn.execute(sql, params)
        raw_rows = cursor.fetchall()
        names = [d[0] for d in cursor.description or []]
        projections = self._projections(tree)
        columns: list[Column] = []
        for i, sqlite_name in enumerate(names):
            values = [r[i] for r in raw_rows]
            columns.append(self._infer_column(projections, i, sqlite_name, values, ctx))
        rows = [tuple(from_store(r[i], columns[i]) for i in range(len(columns))) for r in raw_rows]
        return ResultSet(columns, rows, len(rows), "SELECT")

    @staticmethod
    def _projections(tree: exp.Expression) -> list[exp.Expression] | None:
        select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
        if select is None or any(
            isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
            for p in select.expressions
        ):
            return None
        return list(select.expressions)

    def _infer_column(
        self,
        projections: list[exp.Expression] | None,
        i: int,
        sqlite_name: str,
        values: list[Any],
        ctx: _Ctx,
    ) -> Column:
        if projections is None or i >= len(projections):
            declared = self._lookup(None, sqlite_name, ctx)
            if declared is not None:
                return column_for(declared.name, declared.type, declared.nullable)
            return _value_column(sqlite_name.upper(), values)
        projection = projections[i]
        node = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(projection, exp.Alias):
            alias_ident = projection.args.get("alias")
            quoted = isinstance(alias_ident, exp.Identifier) and alias_ident.quoted
            name = projection.alias if quoted else projection.alias.upper()
        elif isinstance(node, exp.Column):
            name = node.name if node.this.quoted else node.name.upper()
        else:
            name = node.sql(dialect="snowflake").upper()
        if isinstance(node, exp.Column):
            declared = self._lookup(node.table or None, node.name, ctx)
            if declared is not None:
                return column_for(name, declared.type, declared.nullable)
        if isinstance(node, exp.Count):
            return fixed(name, False)
        if isinstance(node, exp.Min | exp.Max) and isinstance(node.this, exp.Column):
            declared = self._lookup(node.this.table or None, node.this.name, ctx)
            if declared is not None:
                return column_for(name, declared.type)
        if isinstance(node, exp.Sum) and isinstance(node.this, exp.Column):
            declared = self._lookup(node.this.table or None, node.this.name, ctx)
            if declared is not None and column_for(name, declared.type).type == "fixed":
                return column_for(name, declared.type)
        return _value_column(name, values)

    @staticmethod
    def _lookup(table: str | None, column: str, ctx: _Ctx) -> TableColumn | None:
        pools = [ctx.tables.get(table.upper(), [])] if table else list(ctx.tables.values())
        for cols in pools:
            for c in cols:
                if c.name.upper() == column.upper():
                    return c
        return None

    def _create(self, tree: exp.Create, ctx: _Ctx) -> ResultSet:
        kind = (tree.args.get("kind") or "").upper()
        if kind != "TABLE":
            raise _unsupported(f"CREATE {kind}")
        schema = tree.this
        if not isinstance(schema, exp.Schema) or tree.expression is not None:
            raise _unsupported("CREATE TABLE without a column list")
        table = schema.this
        assert isinstance(table, exp.Table)
        fqn = self._fqn_for_create(table, ctx.session)
        pk_names: set[str] = set()
        for constraint in schema.expressions:
            if isinstance(constraint, exp.PrimaryKey):
                pk_names |= {e.name.upper() for e in constraint.expressions}
        columns: list[TableColumn] = []
        for coldef in schema.expressions:
            if not isinstance(coldef, exp.ColumnDef):
                continue
            name = coldef.name if coldef.this.quoted else coldef.name.upper()
            kind_node = coldef.args.get("kind")
            sf_type = (
                kind_node.sql(dialect="snowflake").upper() if kind_node is not None else "VARCHAR"
            )
            constraints = [c.args.get("kind") for c in coldef.args.get("constraints") or []]
            not_null = any(
                isinstance(c, exp.NotNullColumnConstraint) and not c.args.get("allow_null")
                for c in constraints
            )
            primary = (
                any(isinstance(c, exp.PrimaryKeyColumnConstraint) for c in constraints)
                or name.upper() in pk_names
            )
            columns.append(
                TableColumn(name, sf_type, nullable=not (not_null or primary), primary_key=primary)
            )
        replace = bool(tree.args.get("replace"))
        exists = bool(tree.args.get("exists"))
        roles = self.roles(ctx.session)
        self.ddl.require_create(TABLE, fqn, roles)
        if replace and fqn in self.store.tables():
            self.catalog.check(roles, TABLE, fqn, (OWNERSHIP,))
        try:
            created = self.store.create_table(fqn, columns, replace=replace, if_not_exists=exists)
        except FileExistsError:
            raise SqlError(
                2002, "42710", f"SQL compilation error:\nObject '{fqn}' already exists."
            ) from None
        short = fqn.rsplit(".", 1)[-1]
        if not created:
            return ResultSet(
                [text("status")],
                [(f"{short} already exists, statement succeeded.",)],
                1,
                "CREATE_TABLE",
            )
        if replace:
            self.catalog.forget(TABLE, fqn)
        self.catalog.set_owner(TABLE, fqn, ctx.session.role)
        return ResultSet(
            [text("status")], [(f"Table {short} successfully created.",)], 1, "CREATE_TABLE"
        )

    def _drop(self, tree: exp.Drop, ctx: _Ctx) -> ResultSet:
        kind = (tree.args.get("kind") or "").upper()
        if kind != "TABLE":
            raise _unsupported(f"DROP {kind}")
        table = tree.this
        assert isinstance(table, exp.Table)
        try:
            fqn = self._resolve_table(table, ctx.session)
        except SqlError:
            if tree.args.get("exists"):
                return ResultSet(
                    [text("status")], [("Drop statement executed successfully.",)], 1, "DROP"
                )
            raise
        roles = self.roles(ctx.session)
        if not self.catalog.visible(roles, TABLE, fqn):
            if tree.args.get("exists"):
                return ResultSet(
                    [text("status")], [("Drop statement executed successfully.",)], 1, "DROP"
                )
            raise _not_found("Object", fqn)
        self.catalog.check(roles, TABLE, fqn, (OWNERSHIP,))
        self.store.drop_table(fqn)
        self.catalog.forget(TABLE, fqn)
        return ResultSet(
            [text("status")], [(f"{fqn.rsplit('.', 1)[-1]} successfully dropped.",)], 1, "DROP"
        )

    def _dml(
        self, tree: exp.Expression, ctx: _Ctx, conn: sqlite3.Connection, kind: str
    ) -> ResultSet:
        self._rewrite(tree, ctx)
        sql, params = self._sqlite(tree, ctx)
        cursor = conn.execute(sql, params)
        count = max(cursor.rowcount, 0)
        label = {"INSERT": "inserted", "UPDATE": "updated", "DELETE": "deleted"}[kind]
        columns = [fixed(f"number of rows {label}", False)]
        row: tuple[Any, ...] = (count,)
        if kind == "UPDATE":
            columns.append(fixed("number of multi-joined rows updated", False))
            row = (count, 0)
        stat = {
            "INSERT": "numRowsInserted",
            "UPDATE": "numRowsUpdated",
            "DELETE": "numRowsDeleted",
        }[kind]
        return ResultSet(columns, [row], count, kind, {stat: count})

    def _truncate(self, tree: exp.TruncateTable, ctx: _Ctx, conn: sqlite3.Connection) -> ResultSet:
        for table in tree.expressions:
            fqn = self._resolve_table(table, ctx.session)
            conn.execute(f"DELETE FROM {quote_ident(self.store.table_name(fqn))}")
        return ResultSet([text("status")], [("Statement executed successfully.",)], 1, "DDL")

    def _describe_table(self, tree: exp.Describe, ctx: _Ctx) -> ResultSet:
        table = tree.this
        if not isinstance(table, exp.Table):
            raise _unsupported("DESCRIBE")
        fqn = self._resolve_table(table, ctx.session)
        if not self.catalog.visible(self.roles(ctx.session), TABLE, fqn):
            raise _not_found("Object", fqn)
        cols = self.store.table_columns(fqn) or []
        columns = [
            text("name"),
            text("type"),
            text("kind"),
            text("null?"),
            text("default"),
            text("primary key"),
            text("unique key"),
        ]
        rows = [
            (
                c.name,
                c.type,
                "COLUMN",
                "Y" if c.nullable else "N",
                None,
                "Y" if c.primary_key else "N",
                "N",
            )
            for c in cols
        ]
        return ResultSet(columns, rows, len(rows), "DESCRIBE")

    def _merge(self, tree: exp.Merge, ctx: _Ctx, conn: sqlite3.Connection) -> ResultSet:
        target = tree.this
        if not isinstance(target, exp.Table):
            raise _unsupported("MERGE target")
        t_alias = target.alias or target.name
        using = tree.args["using"]
        s_alias = using.alias or (using.name if isinstance(using, exp.Table) else "s")
        self._rewrite(tree, ctx)
        target_sql = target.sql(dialect="sqlite")  # "TABLE" AS t
        target_name = target.this.sql(dialect="sqlite")
        if isinstance(using, exp.Subquery):
            source_sql = f"({using.this.sql(dialect='sqlite')}) AS {quote_ident(s_alias)}"
        else:
            source_sql = using.sql(dialect="sqlite")
        on_sql = tree.args["on"].sql(dialect="sqlite")
        whens = tree.args.get("whens")
        clauses = list(whens.expressions) if whens is not None else []
        inserted = updated = deleted = 0
        kinds: list[str] = []
        # MATCHED clauses first: they see only rows that existed before this MERGE.
        for when in sorted(clauses, key=lambda w: not w.args.get("matched")):
            matched = bool(when.args.get("matched"))
            condition = when.args.get("condition")
            cond_sql = f" AND ({condition.sql(dialect='sqlite')})" if condition is not None else ""
            then = when.args.get("then")
            if matched and isinstance(then, exp.Update):
                sets = ", ".join(
                    f"{quote_ident(e.this.name)} = {e.expression.sql(dialect='sqlite')}"
                    for e in then.expressions
                )
                sql = f"UPDATE {target_sql} SET {sets} FROM {source_sql} WHERE ({on_sql}){cond_sql}"
                sql, params = ctx.bound.to_sqlite(sql)
                updated += max(conn.execute(sql, params).rowcount, 0)
                kinds.append("updated")
            elif matched and (
                (isinstance(then, exp.Var) and then.name.upper() == "DELETE")
                or isinstance(then, exp.Delete)
            ):
                sql = (
                    f"DELETE FROM {target_sql} WHERE EXISTS "
                    f"(SELECT 1 FROM {source_sql} WHERE ({on_sql}){cond_sql})"
                )
                sql, params = ctx.bound.to_sqlite(sql)
                deleted += max(conn.execute(sql, params).rowcount, 0)
                kinds.append("deleted")
            elif not matched and isinstance(then, exp.Insert):
                cols_node = then.this
                cols = (
                    ", ".join(quote_ident(c.name) for c in cols_node.expressions)
                    if cols_node is not None
                    else ""
                )
                values = then.expression
                if not isinstance(values, exp.Tuple):
                    values = values.expressions[0] if isinstance(values, exp.Values) else values
                vals = ", ".join(v.sql(dialect="sqlite") for v in values.expressions)
                col_list = f" ({cols})" if cols else ""
                sql = (
                    f"INSERT INTO {target_name}{col_list} SELECT {vals} FROM {source_sql} "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {target_sql} WHERE {on_sql}){cond_sql}"
                )
                sql, params = ctx.bound.to_sqlite(sql)
                inserted += max(conn.execute(sql, params).rowcount, 0)
                kinds.append("inserted")
            else:
                raise _unsupported("MERGE clause")
        del t_alias
        order = [k for k in ("inserted", "updated", "deleted") if k in kinds]
        counts = {"inserted": inserted, "updated": updated, "deleted": deleted}
        columns = [fixed(f"number of rows {k}", False) for k in order]
        stats = {f"numRows{k.title()}": counts[k] for k in order}
        return ResultSet(
            columns, [tuple(counts[k] for k in order)], sum(counts.values()), "MERGE", stats
        )

    # -- SQLite user functions ------------------------------------------------------------
    def _register_functions(self, conn: sqlite3.Connection) -> None:
        def fail(error: SqlError) -> None:
            self._udf_error = error
            raise ValueError("emulator function failed")

        def parse_json(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, str):
                return json.dumps(value)
            try:
                return json.dumps(json.loads(value), separators=(",", ":"), ensure_ascii=False)
            except ValueError:
                fail(SqlError(100069, "22P02", "Error parsing JSON: document is not valid JSON"))
                return None

        def try_parse_json(value: Any) -> Any:
            if value is None:
                return None
            try:
                return json.dumps(json.loads(value), separators=(",", ":"), ensure_ascii=False)
            except (ValueError, TypeError):
                return None

        def to_timestamp(value: Any) -> Any:
            if value is None:
                return None
            try:
                stamp = parse_timestamp(value)
            except (ValueError, OverflowError):
                fail(SqlError(100035, "22007", "Timestamp is not recognized"))
                return None
            return _iso(stamp) if stamp else None

        def to_date(value: Any) -> Any:
            if value is None:
                return None
            try:
                stamp = parse_timestamp(value)
            except (ValueError, OverflowError):
                fail(SqlError(100040, "22007", "Date is not recognized"))
                return None
            return stamp.date().isoformat() if stamp else None

        def dateadd(unit: str, amount: Any, value: Any) -> Any:
            stamp = parse_timestamp(value)
            if stamp is None or amount is None:
                return None
            unit_key = unit.strip().strip("'").lower().rstrip("s")
            seconds = {
                "second": 1,
                "minute": 60,
                "hour": 3600,
                "day": 86400,
                "week": 7 * 86400,
            }.get(unit_key)
            if seconds is None:
                fail(_unsupported(f"DATEADD unit {unit_key[:16]}"))
            return _iso(stamp + dt.timedelta(seconds=float(amount) * seconds))  # type: ignore[operator]

        def service_function(fqn: str, *args: Any) -> Any:
            from .service_functions import REFUSALS, REJECTED_ERRNO

            try:
                return self.service_functions.call(fqn, *args)
            except REFUSALS as exc:
                # The reason names rows, columns and parameters, never values.
                reason = str(getattr(exc, "reason", "")) or "input refused"
                fail(SqlError(REJECTED_ERRNO, "P0000", f"Service {fqn} refused a row: {reason}"))
                return None

        def as_varchar(value: Any) -> Any:
            # AS_VARCHAR(variant): the string a VARIANT holds, else NULL (VARIANT = JSON text).
            if not isinstance(value, str):
                return None
            try:
                held = json.loads(value)
            except ValueError:
                return None
            return held if isinstance(held, str) else None

        def get(value: Any, key: Any) -> Any:
            # GET(object, 'key') (case-sensitive) / GET(array, index); VARIANT = JSON text.
            if value is None or key is None:
                return None
            try:
                held = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                return None
            in_object = isinstance(held, dict) and isinstance(key, str) and key in held
            in_array = isinstance(held, list) and isinstance(key, int) and 0 <= key < len(held)
            if not (in_object or in_array):
                return None
            found = held[key]
            return None if found is None else json.dumps(found, ensure_ascii=False)

        conn.create_function("SF_GET", 2, get, deterministic=True)
        conn.create_function("SF_SERVICE_FN", -1, service_function)
        conn.create_function("AS_VARCHAR", 1, as_varchar, deterministic=True)
        conn.create_function("SF_PARSE_JSON", 1, parse_json, deterministic=True)
        conn.create_function("SF_TRY_PARSE_JSON", 1, try_parse_json, deterministic=True)
        conn.create_function("SF_TO_TIMESTAMP", 1, to_timestamp, deterministic=True)
        conn.create_function("SF_TO_DATE", 1, to_date, deterministic=True)
        conn.create_function("SF_DATEADD", 3, dateadd, deterministic=True)
        self.stages.register(conn, lambda code, state, text_: fail(SqlError(code, state, text_)))


def new_query_id() -> str:
    """Snowflake-looking query id."""
    return str(uuid.uuid4())
