"""Account-level SQL: the statements infra/snowflake/*.sql and an operator run.

Databases, schemas, warehouses, roles, users (``ALTER USER ... SET``), network rules and
policies, compute pools, ``CREATE SERVICE``, Cortex Search services, SQL functions (stored;
a service function they call, ``<service>!<METHOD>(...)``, must exist), image repositories;
``GRANT`` / ``REVOKE`` of privileges, roles, service roles and ownership; ``SHOW GRANTS``,
``SHOW ROLES``, ``SHOW MODELS``, ``SHOW VERSIONS IN MODEL`` (with ``model_spec`` when the
session sets ``SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL``), ``SHOW FUNCTIONS IN MODEL``;
``ALTER SESSION``.

Every statement is checked against the session's roles the way Snowflake does it: an object
the roles cannot see "does not exist or not authorized" (002003), a visible one without the
privilege is an access control error (003001). ``privileges.py`` holds the model.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .privileges import (
    ACCOUNT,
    COMPUTE_POOL,
    CORTEX_SEARCH_SERVICE,
    DATABASE,
    FUNCTION,
    IMAGE_REPOSITORY,
    MODEL,
    NETWORK_POLICY,
    NETWORK_RULE,
    OWNERSHIP,
    PRIVILEGES,
    ROLE,
    SCHEMA,
    SCHEMA_OBJECTS,
    SERVICE,
    SERVICE_ROLE,
    STAGE,
    TABLE,
    USER,
    WAREHOUSE,
    AccessError,
    Grant,
    already_exists,
    insufficient,
    not_found,
)
from .state import InvalidPropertyError, ServiceSpec, service_role_name, split_identifier

if TYPE_CHECKING:
    from .sqlengine import ResultSet, SessionInfo, SqlEngine

__all__ = ["AccountStatements", "parse_properties"]

_FLAGS = re.IGNORECASE | re.DOTALL
_ID = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QID = rf"{_ID}(?:\s*\.\s*{_ID}){{0,2}}"
_STR = r"'(?:[^'\\]|''|\\.)*'"
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"

# -- property lists ------------------------------------------------------------------------

_TOKEN = re.compile(
    rf"\s*(?:(?P<str>{_STR})|(?P<dollar>\$\$.*?\$\$)|(?P<num>-?\d+(?:\.\d+)?)(?![\w$])"
    rf"|(?P<word>{_QID})|(?P<op>[=(),]))",
    re.DOTALL,
)


def _unquote_str(token: str) -> str:
    return token[1:-1].replace("''", "'").replace("\\'", "'")


def _word(token: str) -> str:
    try:
        return ".".join(split_identifier(token))
    except ValueError:
        return token.upper()


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    body = text.strip()
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None or m.end() == pos:
            raise _syntax()
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            out.append(("str", _unquote_str(raw)))
        elif kind == "dollar":
            out.append(("str", raw[2:-2]))
        elif kind == "num":
            out.append(("num", float(raw) if "." in raw else int(raw)))
        elif kind == "word":
            out.append(("word", _word(raw)))
        else:
            out.append(("op", raw))
        pos = m.end()
    return out


def parse_properties(text: str) -> dict[str, Any]:
    """``NAME = value`` pairs (optionally comma-separated): quoted strings, numbers, words
    (upper-cased identifiers) and parenthesised lists of them."""
    tokens = _tokens(text)
    props: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "op" and value == ",":
            i += 1
            continue
        if kind != "word" or i + 2 > len(tokens) or tokens[i + 1] != ("op", "="):
            raise _syntax()
        name = str(value)
        i += 2
        if i >= len(tokens):
            raise _syntax()
        kind, value = tokens[i]
        if kind == "op" and value == "(":
            items: list[Any] = []
            i += 1
            while i < len(tokens) and tokens[i] != ("op", ")"):
                if tokens[i] != ("op", ","):
                    items.append(tokens[i][1])
                i += 1
            if i >= len(tokens):
                raise _syntax()
            props[name] = items
        elif kind == "op":
            raise _syntax()
        else:
            props[name] = value
        i += 1
    return props


def _syntax(detail: str = "") -> AccessError:
    suffix = f" {detail}" if detail else ""
    return AccessError(
        1003, "42000", f"SQL compilation error:\nsyntax error line 1 at position 0{suffix}."
    )


def _invalid_property(name: str, kind: str) -> InvalidPropertyError:
    return InvalidPropertyError(f"invalid property '{name}' for '{kind.replace(' ', '_')}'")


def _bool(value: Any, prop: str) -> bool:
    text = str(value).strip().upper()
    if text in {"TRUE", "1", "YES", "ON"}:
        return True
    if text in {"FALSE", "0", "NO", "OFF"}:
        return False
    raise InvalidPropertyError(f"invalid value [{value!r}] for parameter '{prop}'")


# Properties each object type accepts (others: "invalid property").
_PROPS: dict[str, frozenset[str]] = {
    DATABASE: frozenset(
        {"COMMENT", "DATA_RETENTION_TIME_IN_DAYS", "MAX_DATA_EXTENSION_TIME_IN_DAYS"}
    ),
    SCHEMA: frozenset(
        {"COMMENT", "DATA_RETENTION_TIME_IN_DAYS", "MAX_DATA_EXTENSION_TIME_IN_DAYS"}
    ),
    WAREHOUSE: frozenset(
        {
            "WAREHOUSE_SIZE",
            "WAREHOUSE_TYPE",
            "AUTO_SUSPEND",
            "AUTO_RESUME",
            "INITIALLY_SUSPENDED",
            "MIN_CLUSTER_COUNT",
            "MAX_CLUSTER_COUNT",
            "SCALING_POLICY",
            "RESOURCE_MONITOR",
            "STATEMENT_TIMEOUT_IN_SECONDS",
            "COMMENT",
        }
    ),
    ROLE: frozenset({"COMMENT"}),
    USER: frozenset(
        {
            "TYPE",
            "LOGIN_NAME",
            "DISPLAY_NAME",
            "FIRST_NAME",
            "LAST_NAME",
            "EMAIL",
            "PASSWORD",
            "MUST_CHANGE_PASSWORD",
            "DISABLED",
            "DEFAULT_ROLE",
            "DEFAULT_WAREHOUSE",
            "DEFAULT_NAMESPACE",
            "DEFAULT_SECONDARY_ROLES",
            "RSA_PUBLIC_KEY",
            "RSA_PUBLIC_KEY_2",
            "NETWORK_POLICY",
            "COMMENT",
        }
    ),
    COMPUTE_POOL: frozenset(
        {
            "MIN_NODES",
            "MAX_NODES",
            "INSTANCE_FAMILY",
            "AUTO_RESUME",
            "AUTO_SUSPEND_SECS",
            "INITIALLY_SUSPENDED",
            "COMMENT",
        }
    ),
    NETWORK_RULE: frozenset({"MODE", "TYPE", "VALUE_LIST", "COMMENT"}),
    NETWORK_POLICY: frozenset(
        {
            "ALLOWED_NETWORK_RULE_LIST",
            "BLOCKED_NETWORK_RULE_LIST",
            "ALLOWED_IP_LIST",
            "BLOCKED_IP_LIST",
            "COMMENT",
        }
    ),
    IMAGE_REPOSITORY: frozenset({"COMMENT"}),
    STAGE: frozenset({"DIRECTORY", "ENCRYPTION", "COMMENT"}),  # internal stages (stages.py)
    SERVICE: frozenset(
        {
            "MIN_INSTANCES",
            "MAX_INSTANCES",
            "MIN_READY_INSTANCES",
            "AUTO_RESUME",
            "AUTO_SUSPEND_SECS",
            "QUERY_WAREHOUSE",
            "EXTERNAL_ACCESS_INTEGRATIONS",
            "COMMENT",
        }
    ),
}
# Created with CREATE <kind> privilege on the account (else: on the schema they live in).
_ACCOUNT_CREATE = {
    DATABASE: "CREATE DATABASE",
    WAREHOUSE: "CREATE WAREHOUSE",
    ROLE: "CREATE ROLE",
    USER: "CREATE USER",
    COMPUTE_POOL: "CREATE COMPUTE POOL",
    NETWORK_POLICY: "CREATE NETWORK POLICY",
}
_KINDS = (
    "DATABASE|SCHEMA|WAREHOUSE|ROLE|USER|COMPUTE\\s+POOL|NETWORK\\s+RULE|NETWORK\\s+POLICY"
    "|IMAGE\\s+REPOSITORY|CORTEX\\s+SEARCH\\s+SERVICE|FUNCTION|SERVICE|TABLE|MODEL"
    "|INTEGRATION|STAGE"
)
_TYPE_NAMES = {
    "DATABASE": DATABASE,
    "SCHEMA": SCHEMA,
    "WAREHOUSE": WAREHOUSE,
    "ROLE": ROLE,
    "USER": USER,
    "COMPUTE POOL": COMPUTE_POOL,
    "NETWORK RULE": NETWORK_RULE,
    "NETWORK POLICY": NETWORK_POLICY,
    "IMAGE REPOSITORY": IMAGE_REPOSITORY,
    "CORTEX SEARCH SERVICE": CORTEX_SEARCH_SERVICE,
    "FUNCTION": FUNCTION,
    "SERVICE": SERVICE,
    "TABLE": TABLE,
    "MODEL": MODEL,
    "STAGE": STAGE,
}
_SESSION_FLAGS = {"SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL"}
_TYPE_ALIASES = {"STRING": "VARCHAR", "TEXT": "VARCHAR", "INT": "NUMBER", "INTEGER": "NUMBER"}


def _kind(text: str) -> str:
    return _TYPE_NAMES[re.sub(r"\s+", " ", text.strip().upper())]


@dataclass(frozen=True)
class _Target:
    on_type: str
    name: str  # canonical: DB, DB.SCHEMA, DB.SCHEMA.NAME, account name, role name ...
    display: str


class AccountStatements:
    """Handles account-level statements for a ``SqlEngine`` (``handle`` answers None for the
    statements it does not own)."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self.account = engine.account
        self.catalog = engine.account.catalog

    # -- helpers ----------------------------------------------------------------------------
    def roles(self, session: SessionInfo) -> frozenset[str]:
        return self.engine.roles(session)

    def _status(self, message: str = "Statement executed successfully.") -> ResultSet:
        from .sqlengine import ResultSet, text

        return ResultSet([text("status")], [(message,)], 1, "DDL")

    def qualify(self, name: str, session: SessionInfo, parts_wanted: int) -> str:
        """Fill a partial name from the session's database and schema."""
        try:
            parts = split_identifier(name)
        except ValueError:
            raise _syntax() from None
        if len(parts) > parts_wanted:
            raise _syntax()
        missing = parts_wanted - len(parts)
        context = [session.database, session.schema][: parts_wanted - 1][:missing]
        if missing and (len(context) != missing or not all(context)):
            raise AccessError(
                90105,
                "22000",
                "Cannot perform operation. This session does not have a current database or "
                "schema. Call 'USE DATABASE', or use a qualified name.",
            )
        return ".".join([*(str(c) for c in context), *parts])

    def _name_for(self, kind: str, name: str, session: SessionInfo) -> str:
        if kind in SCHEMA_OBJECTS:
            return self.qualify(name, session, 3)
        if kind == SCHEMA:
            return self.qualify(name, session, 2)
        if kind == COMPUTE_POOL:
            return self.qualify(name, session, 1)
        return self.qualify(name, session, 1)

    def _exists(self, kind: str, name: str) -> bool:
        if kind == COMPUTE_POOL:
            return self.account.has_pool(name)
        if kind == SERVICE:
            try:
                self.account.resolve(name)
            except KeyError:
                return False
            return True
        if kind == TABLE:
            return name in self.engine.store.tables()
        if kind == ACCOUNT:
            return True
        return self.catalog.exists(kind, name)

    def _require_schema(self, schema: str, roles: frozenset[str], privilege: str) -> None:
        """The schema exists, is visible, and the roles may create in it."""
        if not self.catalog.exists(SCHEMA, schema) or not self.catalog.schema_visible(
            roles, schema
        ):
            raise not_found(SCHEMA, schema)
        if not self.catalog.holds(roles, SCHEMA, schema, (privilege,)):
            raise insufficient(SCHEMA, schema.rsplit(".", 1)[-1])

    def require_create(self, kind: str, name: str, roles: frozenset[str]) -> None:
        if kind in _ACCOUNT_CREATE:
            if not self.catalog.account_privilege(roles, _ACCOUNT_CREATE[kind]):
                raise insufficient(ACCOUNT, self.account.account_name)
        elif kind == SCHEMA:
            database = name.split(".")[0]
            if not self.catalog.exists(DATABASE, database) or not self.catalog.visible(
                roles, DATABASE, database
            ):
                raise not_found(DATABASE, database)
            if not self.catalog.holds(roles, DATABASE, database, ("CREATE SCHEMA",)):
                raise insufficient(DATABASE, database)
        else:
            schema = name.rsplit(".", 1)[0]
            self._require_schema(schema, roles, f"CREATE {kind}")

    def _owned(
        self, kind: str, name: str, roles: frozenset[str], also: tuple[str, ...] = ()
    ) -> None:
        """The object exists and is visible, and the roles own it (or hold one of ``also``)."""
        if not self._exists(kind, name) or not self.catalog.visible(roles, kind, name):
            raise not_found(kind, name)
        if not self.catalog.holds(roles, kind, name, also or (OWNERSHIP,)):
            raise insufficient(kind, name.rsplit(".", 1)[-1])

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, sql: str, session: SessionInfo) -> ResultSet | None:
        head = re.match(r"\s*(\w+)(?:\s+(\w+))?(?:\s+(\w+))?(?:\s+(\w+))?", sql)
        if head is None:
            return None
        words = [w.upper() for w in head.groups() if w]
        first = words[0]
        rest = words[1:]
        if first == "CREATE":
            return self._create(sql, session)
        if first == "ALTER" and rest and rest[0] == "SESSION":
            return self._alter_session(sql, session)
        if (
            first == "ALTER"
            and rest
            and rest[0]
            in {
                "USER",
                "WAREHOUSE",
                "DATABASE",
                "SCHEMA",
                "ROLE",
                "NETWORK",
            }
        ):
            return self._alter(sql, session)
        if first == "DROP" and rest and rest[0] not in {"TABLE", "VIEW"}:
            return self._drop(sql, session)
        if first == "GRANT":
            return self._grant(sql, session)
        if first == "REVOKE":
            return self._revoke(sql, session)
        if first == "SHOW" and rest:
            if rest[0] == "GRANTS":
                return self._show_grants(sql, session)
            if rest[0] == "ROLES":
                return self._show_roles(sql, session)
            if rest[0] == "MODELS":
                return self._show_models(sql, session)
            if rest[0] == "VERSIONS":
                return self._show_versions(sql, session)
            if rest[0] == "FUNCTIONS" and re.search(r"\bIN\s+MODEL\b", sql, _FLAGS):
                return self._show_model_functions(sql, session)
            if rest[0] in {"DATABASES", "SCHEMAS", "WAREHOUSES", "USERS"}:
                return self._show_objects(rest[0], sql, session)
        return None

    # -- ALTER SESSION ---------------------------------------------------------------------
    def _alter_session(self, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, text

        m = re.match(r"\s*ALTER\s+SESSION\s+(SET|UNSET)\s+(.*)$", sql, _FLAGS)
        if not m:
            raise _syntax()
        if m.group(1).upper() == "SET":
            for key, value in parse_properties(m.group(2)).items():
                session.parameters[key] = value
        else:
            for name in re.split(r"\s*,\s*", m.group(2).strip()):
                session.parameters.pop(name.upper(), None)
        return ResultSet(
            [text("status")], [("Statement executed successfully.",)], 1, "ALTER_SESSION"
        )

    # -- CREATE ------------------------------------------------------------------------------
    def _create(self, sql: str, session: SessionInfo) -> ResultSet | None:
        m = re.match(
            rf"\s*CREATE\s+(?:OR\s+(?P<mode>REPLACE|ALTER)\s+)?(?:(?:SECURE|TRANSIENT)\s+)?"
            rf"(?P<kind>{_KINDS})\b(?P<rest>.*)$",
            sql,
            _FLAGS,
        )
        if not m:
            return None
        kind_text = re.sub(r"\s+", " ", m.group("kind").upper())
        if kind_text == "TABLE":
            return None  # the SQL engine's (sqlglot) path
        if kind_text in {"MODEL", "INTEGRATION"}:
            raise _unsupported(f"CREATE {kind_text}")
        kind = _kind(kind_text)
        mode = (m.group("mode") or "").upper()
        rest = m.group("rest")
        if kind == CORTEX_SEARCH_SERVICE:
            return self._create_search(rest, mode, session)
        if kind == FUNCTION:
            return self._create_function(rest, mode, session)
        if kind == SERVICE:
            return self._create_service(rest, mode, session)
        if mode == "ALTER" or (mode == "REPLACE" and kind in {DATABASE, SCHEMA, COMPUTE_POOL}):
            raise _unsupported(f"CREATE OR {mode} {kind_text}")
        nm = re.match(
            rf"\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_QID})(?P<props>.*)$", rest, _FLAGS
        )
        if not nm:
            raise _syntax()
        name = self._name_for(kind, nm.group("name"), session)
        props_text = nm.group("props")
        if kind == SCHEMA:
            props_text = re.sub(r"\bWITH\s+MANAGED\s+ACCESS\b", " ", props_text, flags=_FLAGS)
        props = parse_properties(props_text)
        unknown = [p for p in props if p not in _PROPS.get(kind, frozenset())]
        if unknown:
            raise _invalid_property(unknown[0], kind)
        roles = self.roles(session)
        self.require_create(kind, name, roles)
        if_not_exists = bool(nm.group("ine"))
        short = name.rsplit(".", 1)[-1]
        if self._exists(kind, name) and if_not_exists and mode != "REPLACE":
            return self._status(f"{short} already exists, statement succeeded.")
        if kind == COMPUTE_POOL:
            for required in ("MIN_NODES", "MAX_NODES", "INSTANCE_FAMILY"):
                if required not in props:
                    raise AccessError(
                        1008, "22023", f"SQL compilation error:\nmissing property '{required}'"
                    )
            self.account.create_pool(
                name,
                session.role,
                min_nodes=props["MIN_NODES"],
                max_nodes=props["MAX_NODES"],
                instance_family=str(props["INSTANCE_FAMILY"]),
                auto_resume=props.get("AUTO_RESUME", True),
                auto_suspend_secs=props.get("AUTO_SUSPEND_SECS", 3600),
                initially_suspended=props.get("INITIALLY_SUSPENDED", False),
                comment=props.get("COMMENT"),
            )
            return self._status(f"Compute Pool {short} successfully created.")
        self._validate(kind, name, props)
        self.catalog.create(kind, name, session.role, props, replace=mode == "REPLACE")
        if kind == DATABASE:
            self.catalog.create(SCHEMA, f"{name}.PUBLIC", session.role, {}, if_not_exists=True)
        labels = {
            DATABASE: "Database",
            SCHEMA: "Schema",
            WAREHOUSE: "Warehouse",
            ROLE: "Role",
            USER: "User",
        }
        if kind in labels:
            return self._status(f"{labels[kind]} {short} successfully created.")
        return self._status()

    def _validate(self, kind: str, name: str, props: dict[str, Any]) -> None:
        if kind == USER:
            if "PASSWORD" in props and str(props.get("TYPE", "")).upper() == "SERVICE":
                raise InvalidPropertyError("a user of TYPE = SERVICE cannot have a password")
            policy = props.get("NETWORK_POLICY")
            if policy and not self.catalog.exists(NETWORK_POLICY, _word(str(policy))):
                raise not_found(NETWORK_POLICY, str(policy))
        elif kind == NETWORK_RULE:
            mode = str(props.get("MODE", "INGRESS")).upper()
            rule_type = str(props.get("TYPE", "IPV4")).upper()
            values = props.get("VALUE_LIST", [])
            if not isinstance(values, list):
                raise InvalidPropertyError("VALUE_LIST must be a list")
            if rule_type == "IPV4" and mode in {"INGRESS", "INTERNAL_STAGE"}:
                for value in values:
                    try:
                        ipaddress.ip_network(str(value), strict=False)
                    except ValueError:
                        raise InvalidPropertyError(
                            "invalid value in VALUE_LIST for a TYPE = IPV4 network rule"
                        ) from None
        elif kind == NETWORK_POLICY:
            for key in ("ALLOWED_NETWORK_RULE_LIST", "BLOCKED_NETWORK_RULE_LIST"):
                for rule in props.get(key) or []:
                    if not self.catalog.exists(NETWORK_RULE, _word(str(rule))):
                        raise not_found(NETWORK_RULE, str(rule))
        elif kind == WAREHOUSE and "AUTO_RESUME" in props:
            _bool(props["AUTO_RESUME"], "AUTO_RESUME")

    # CREATE CORTEX SEARCH SERVICE ...........................................................
    def _create_search(self, rest: str, mode: str, session: SessionInfo) -> ResultSet:
        import sqlglot
        from sqlglot import exp

        m = re.match(
            rf"\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_QID})\s+ON\s+(?P<col>{_ID})"
            rf"(?P<props>.*?)\s+AS\s*(?P<query>\(.*\)|SELECT\b.*)$",
            rest,
            _FLAGS,
        )
        if not m or mode == "ALTER":
            raise _syntax()
        name = self.qualify(m.group("name"), session, 3)
        search_column = _word(m.group("col"))
        props_text = m.group("props")
        attributes: list[str] = []
        am = re.search(rf"\bATTRIBUTES\s+({_ID}(?:\s*,\s*{_ID})*)", props_text, _FLAGS)
        if am:
            attributes = [_word(a) for a in re.split(r"\s*,\s*", am.group(1).strip())]
            props_text = props_text[: am.start()] + " " + props_text[am.end() :]
        props = parse_properties(props_text)
        allowed = {"WAREHOUSE", "TARGET_LAG", "EMBEDDING_MODEL", "COMMENT", "REFRESH_MODE"}
        unknown = [p for p in props if p not in allowed]
        if unknown:
            raise _invalid_property(unknown[0], CORTEX_SEARCH_SERVICE)
        for required in ("WAREHOUSE", "TARGET_LAG"):
            if required not in props:
                raise AccessError(
                    1008, "22023", f"SQL compilation error:\nmissing property '{required}'"
                )
        roles = self.roles(session)
        self.require_create(CORTEX_SEARCH_SERVICE, name, roles)
        if self.catalog.exists(CORTEX_SEARCH_SERVICE, name) and m.group("ine") and not mode:
            return self._status(f"{name.rsplit('.', 1)[-1]} already exists, statement succeeded.")
        warehouse = _word(str(props["WAREHOUSE"]))
        if not self.catalog.exists(WAREHOUSE, warehouse) or not self.catalog.visible(
            roles, WAREHOUSE, warehouse
        ):
            raise not_found(WAREHOUSE, warehouse)
        if not self.catalog.holds(roles, WAREHOUSE, warehouse, ("USAGE",)):
            raise insufficient(WAREHOUSE, warehouse)
        query = m.group("query").strip()
        if query.startswith("("):
            query = query[1:-1]
        tree = sqlglot.parse_one(query, read="snowflake")
        tables = list(tree.find_all(exp.Table))
        if not isinstance(tree, exp.Select) or len(tables) != 1:
            raise _unsupported("CORTEX SEARCH SERVICE over anything but one table")
        source = self.engine.resolve_table(tables[0], session)
        self.catalog.check(roles, TABLE, source, ("SELECT",))
        columns: list[str] = []
        for projection in tree.expressions:
            node = projection.this if isinstance(projection, exp.Alias) else projection
            if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
                raise _unsupported("CORTEX SEARCH SERVICE columns other than plain columns")
            columns.append(node.name.upper() if not node.this.quoted else node.name)
        declared = {c.name.upper() for c in self.engine.store.table_columns(source) or []}
        for column in [*columns, search_column, *attributes]:
            if column.upper() not in declared or column not in columns:
                raise AccessError(
                    904,
                    "42000",
                    f"SQL compilation error: error line 1 at position 0\ninvalid identifier "
                    f"'{column}'",
                )
        self.catalog.create(
            CORTEX_SEARCH_SERVICE,
            name,
            session.role,
            {
                "source_table": source,
                "search_column": search_column,
                "attributes": attributes,
                "columns": columns,
                "warehouse": warehouse,
                "target_lag": props["TARGET_LAG"],
                "comment": props.get("COMMENT"),
            },
            replace=mode == "REPLACE",
        )
        return self._status(
            f"Cortex search service {name.rsplit('.', 1)[-1]} successfully created."
        )

    # CREATE FUNCTION ...........................................................................
    def _create_function(self, rest: str, mode: str, session: SessionInfo) -> ResultSet:
        m = re.match(
            rf"\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_QID})\s*\((?P<args>[^)]*)\)\s*"
            rf"RETURNS\s+(?P<returns>TABLE\s*\([^)]*\)|\w+(?:\s*\([^)]*\))?)(?P<props>.*?)"
            rf"\s+AS\s*(?P<body>\$\$.*\$\$|{_STR})\s*$",
            rest,
            _FLAGS,
        )
        if not m:
            raise _syntax()
        name = self.qualify(m.group("name"), session, 3)
        types = []
        for arg in filter(None, (a.strip() for a in m.group("args").split(","))):
            parts = arg.split()
            if len(parts) < 2:
                raise _syntax()
            base = parts[1].upper().split("(")[0]
            types.append(_TYPE_ALIASES.get(base, base))
        key = f"{name}({', '.join(types)})"
        body = m.group("body")
        body = body[2:-2] if body.startswith("$$") else _unquote_str(body)
        props_text = m.group("props")
        language = re.search(r"\bLANGUAGE\s+(\w+)", props_text, _FLAGS)
        comment = re.search(rf"\bCOMMENT\s*=\s*({_STR})", props_text, _FLAGS)
        roles = self.roles(session)
        exists = self.catalog.exists(FUNCTION, key)
        if exists and m.group("ine") and not mode:
            return self._status(f"{name.rsplit('.', 1)[-1]} already exists, statement succeeded.")
        if exists and not mode:
            raise already_exists(name)
        if exists and mode == "ALTER":
            self._owned(FUNCTION, key, roles)
        else:
            self.require_create(FUNCTION, name, roles)
        self._check_service_functions(body, name, session, roles)
        props = {
            "arguments": m.group("args").strip(),
            "returns": re.sub(r"\s+", " ", m.group("returns").upper()),
            "language": (language.group(1).upper() if language else "SQL"),
            "comment": _unquote_str(comment.group(1)) if comment else None,
            "body": body,
        }
        if exists and mode == "ALTER":
            self.catalog.update(FUNCTION, key, props)  # CREATE OR ALTER keeps the grants
        else:
            self.catalog.create(FUNCTION, key, session.role, props, replace=mode == "REPLACE")
        return self._status(f"Function {name.rsplit('.', 1)[-1]} successfully created.")

    def _check_service_functions(
        self, body: str, function: str, session: SessionInfo, roles: frozenset[str]
    ) -> None:
        """A SQL body's service function calls ``<service>!<METHOD>(args)`` must name a visible
        service whose model version has that function, with the signature's argument count
        (inputs, or inputs + params)."""
        database, schema = function.split(".")[:2]
        for m in re.finditer(rf"({_QID})\s*!\s*({_ID})\s*\(", body):
            service_name, method = m.group(1), m.group(2)
            try:
                parts = split_identifier(service_name)
            except ValueError:
                raise _syntax() from None
            qualified = ".".join([database, schema][: 3 - len(parts)] + parts)
            try:
                fqn = self.account.resolve(qualified)
            except KeyError:
                raise not_found(SERVICE, qualified) from None
            if not self.catalog.visible(roles, SERVICE, fqn):
                raise not_found(SERVICE, qualified)
            wanted = method[1:-1].replace('""', '"') if method.startswith('"') else method.upper()
            row = self.account.service(fqn)
            functions = {row.method.upper()} if row.model_name else set()
            if wanted not in functions:
                raise AccessError(
                    2140, "42601", f"SQL compilation error:\nUnknown function {fqn}!{wanted}"
                )
            signature = self.account.service_signature(fqn) or {}
            count = _count_args(body, m.end())
            inputs = len(signature.get("inputs") or [])
            params = len(signature.get("params") or [])
            if signature and count not in {inputs, inputs + params}:
                raise AccessError(
                    1044,
                    "42P13",
                    f"SQL compilation error:\nerror line 0 at position -1\nInvalid argument "
                    f"types for function '{fqn}!{wanted}': {count} argument(s), the signature "
                    f"takes {inputs}" + (f" (+{params} params)" if params else ""),
                )

    # CREATE SERVICE ...........................................................................
    def _create_service(self, rest: str, mode: str, session: SessionInfo) -> ResultSet:
        m = re.match(
            rf"\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_QID})\s+IN\s+COMPUTE\s+POOL\s+"
            rf"(?P<pool>{_ID})\s+FROM\s+SPECIFICATION\s*(?P<spec>\$\$.*?\$\$|{_STR})(?P<props>.*)$",
            rest,
            _FLAGS,
        )
        if not m or mode:
            raise _unsupported("CREATE SERVICE (other than FROM SPECIFICATION)")
        import yaml

        name = self.qualify(m.group("name"), session, 3)
        pool = _word(m.group("pool"))
        raw = m.group("spec")
        spec_text = raw[2:-2] if raw.startswith("$$") else _unquote_str(raw)
        try:
            document = yaml.safe_load(spec_text) or {}
        except yaml.YAMLError:
            raise AccessError(
                395018, "22023", "Invalid spec: the specification is not valid YAML."
            ) from None
        spec = document.get("spec") if isinstance(document, dict) else None
        if not isinstance(spec, dict) or not spec.get("containers"):
            raise AccessError(395018, "22023", "Invalid spec: missing 'spec.containers'.")
        endpoints = spec.get("endpoints") or []
        public = any(isinstance(e, dict) and e.get("public") for e in endpoints)
        endpoint_name = next(
            (str(e.get("name")) for e in endpoints if isinstance(e, dict) and e.get("name")),
            "endpoint",
        )
        props = parse_properties(m.group("props"))
        unknown = [p for p in props if p not in _PROPS[SERVICE]]
        if unknown:
            raise _invalid_property(unknown[0], SERVICE)
        roles = self.roles(session)
        self.require_create(SERVICE, name, roles)
        if self._exists(SERVICE, name) and m.group("ine"):
            return self._status(f"{name.rsplit('.', 1)[-1]} already exists, statement succeeded.")
        if not self.account.has_pool(pool) or not self.catalog.visible(roles, COMPUTE_POOL, pool):
            raise not_found(COMPUTE_POOL, pool)
        if not self.catalog.holds(roles, COMPUTE_POOL, pool, ("USAGE",)):
            raise insufficient(COMPUTE_POOL, pool)
        if public and not self.catalog.account_privilege(roles, "BIND SERVICE ENDPOINT"):
            raise insufficient(ACCOUNT, self.account.account_name)
        self.account.create_service(
            ServiceSpec(fqn=name, compute_pool=pool, endpoint_name=endpoint_name, public=public),
            session.role,
            min_instances=props.get("MIN_INSTANCES", 1),
            max_instances=props.get("MAX_INSTANCES", props.get("MIN_INSTANCES", 1)),
            auto_resume=props.get("AUTO_RESUME", True),
            auto_suspend_secs=props.get("AUTO_SUSPEND_SECS", 0),
            comment=props.get("COMMENT"),
        )
        return self._status(f"Service {name.rsplit('.', 1)[-1]} successfully created.")

    # -- ALTER <object> SET / UNSET ------------------------------------------------------------
    def _alter(self, sql: str, session: SessionInfo) -> ResultSet:
        m = re.match(
            rf"\s*ALTER\s+(?P<kind>USER|WAREHOUSE|DATABASE|SCHEMA|ROLE|NETWORK\s+RULE|NETWORK\s+"
            rf"POLICY)\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_QID})\s+(?P<action>SET|UNSET|SUSPEND|"
            rf"RESUME)\b(?P<rest>.*)$",
            sql,
            _FLAGS,
        )
        if not m:
            raise _unsupported("ALTER (this form)")
        kind = _kind(m.group("kind"))
        name = self._name_for(kind, m.group("name"), session)
        roles = self.roles(session)
        if not self._exists(kind, name) or not self.catalog.visible(roles, kind, name):
            if m.group("ie"):
                return self._status()
            raise not_found(kind, name)
        action = m.group("action").upper()
        if action in {"SUSPEND", "RESUME"}:
            if kind != WAREHOUSE:
                raise _syntax()
            self._owned(kind, name, roles, ("OPERATE",))
            return self._status()
        modify = ("MODIFY",) if kind in {WAREHOUSE, DATABASE, SCHEMA} else ()
        self._owned(kind, name, roles, (OWNERSHIP, *modify))
        found = self.catalog.get(kind, name)
        assert found is not None
        props = dict(found.props)
        if action == "SET":
            changes = parse_properties(m.group("rest"))
            unknown = [p for p in changes if p not in _PROPS.get(kind, frozenset())]
            if unknown:
                raise _invalid_property(unknown[0], kind)
            merged = {**props, **changes}
            for key in ("RSA_PUBLIC_KEY", "RSA_PUBLIC_KEY_2"):
                if merged.get(key) == "":
                    merged.pop(key)
            self._validate(kind, name, merged)
            props = merged
        else:
            for item in re.split(r"\s*,\s*", m.group("rest").strip()):
                props.pop(item.strip().upper(), None)
        self.catalog.update(kind, name, props)
        return self._status()

    # -- DROP ------------------------------------------------------------------------------------
    def _drop(self, sql: str, session: SessionInfo) -> ResultSet:
        m = re.match(
            rf"\s*DROP\s+(?P<kind>{_KINDS})\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_QID})\s*"
            rf"(?:\((?P<args>[^)]*)\))?\s*(?:CASCADE|RESTRICT)?\s*$",
            sql,
            _FLAGS,
        )
        if not m:
            raise _syntax()
        kind = _kind(m.group("kind"))
        if kind in {DATABASE, SCHEMA, COMPUTE_POOL, SERVICE, MODEL}:
            raise _unsupported(f"DROP {kind}")
        name = self._name_for(kind, m.group("name"), session)
        if kind == FUNCTION:
            types = [
                _TYPE_ALIASES.get(t.strip().upper(), t.strip().upper())
                for t in (m.group("args") or "").split(",")
                if t.strip()
            ]
            name = f"{name}({', '.join(types)})"
        roles = self.roles(session)
        if not self._exists(kind, name) or not self.catalog.visible(roles, kind, name):
            if m.group("ie"):
                return self._status("Drop statement executed successfully.")
            raise not_found(kind, name)
        self._owned(kind, name, roles)
        self.catalog.drop(kind, name)
        return self._status(f"{name.rsplit('.', 1)[-1]} successfully dropped.")

    # -- GRANT / REVOKE --------------------------------------------------------------------------
    def _target(self, on: str, session: SessionInfo) -> _Target:
        on = on.strip()
        if re.fullmatch(r"ACCOUNT", on, _FLAGS):
            return _Target(ACCOUNT, self.account.account_name, self.account.account_name)
        if re.match(r"(ALL|FUTURE)\s", on, _FLAGS):
            raise _unsupported("GRANT ON ALL / FUTURE")
        m = re.fullmatch(
            rf"(?P<kind>{_KINDS})\s+(?P<name>{_QID})\s*(?:\((?P<args>[^)]*)\))?", on, _FLAGS
        )
        if not m:
            raise _syntax()
        kind = _kind(m.group("kind"))
        name = self._name_for(kind, m.group("name"), session)
        if kind == SERVICE:
            with contextlib.suppress(KeyError):
                name = self.account.resolve(name)
        if kind == FUNCTION:
            types = [
                _TYPE_ALIASES.get(t.strip().upper(), t.strip().upper())
                for t in (m.group("args") or "").split(",")
                if t.strip()
            ]
            name = f"{name}({', '.join(types)})"
        return _Target(kind, name, name)

    @staticmethod
    def _privilege_list(text: str, on_type: str) -> list[str]:
        words = [re.sub(r"\s+", " ", p.strip().upper()) for p in text.split(",")]
        if words in (["ALL"], ["ALL PRIVILEGES"]):
            return sorted(PRIVILEGES.get(on_type, frozenset()))
        valid = PRIVILEGES.get(on_type, frozenset()) | {OWNERSHIP}
        for word in words:
            if word not in valid:
                raise AccessError(
                    3011,
                    "42601",
                    f"SQL compilation error:\nInvalid privilege {word} for object type "
                    f"{on_type.replace(' ', '_')}.",
                )
        return words

    def _may_grant(
        self, roles: frozenset[str], target: _Target, privileges: list[str] | None
    ) -> None:
        """MANAGE GRANTS, ownership, or the grant option on each privilege."""
        catalog = self.catalog
        if target.on_type != ACCOUNT and (
            not self._exists(target.on_type, target.name)
            or not catalog.visible(roles, target.on_type, target.name)
        ):
            raise not_found(target.on_type, target.display)
        if catalog.manages_grants(roles):
            return
        if target.on_type != ACCOUNT and catalog.holds(
            roles, target.on_type, target.name, (OWNERSHIP,)
        ):
            return
        if privileges and OWNERSHIP not in privileges:
            with_option = {
                g.privilege
                for g in catalog.grants_on(target.on_type, target.name)
                if g.grant_option and g.grantee_type == ROLE and g.grantee in roles
            }
            if set(privileges) <= with_option:
                return
        raise insufficient(target.on_type, target.display.rsplit(".", 1)[-1])

    def _grantee_role(self, name: str) -> str:
        role = _word(name)
        if not self.catalog.role_exists(role):
            raise not_found(ROLE, role)
        return role

    def _grant(self, sql: str, session: SessionInfo) -> ResultSet:
        roles = self.roles(session)
        m = re.match(
            rf"\s*GRANT\s+ROLE\s+(?P<role>{_ID})\s+TO\s+(?P<gt>ROLE|USER)\s+(?P<to>{_ID})\s*$",
            sql,
            _FLAGS,
        )
        if m:
            role = self._grantee_role(m.group("role"))
            self._may_grant_role(roles, role)
            grantee_type = m.group("gt").upper()
            if grantee_type == ROLE:
                to = self._grantee_role(m.group("to"))
                if role == to or to in self.catalog.effective_roles(role):
                    raise AccessError(
                        3103,
                        "42601",
                        f"SQL compilation error:\nGranting role '{role}' to role '{to}' would "
                        "create a cycle.",
                    )
            else:
                to = _word(m.group("to"))
                if not self.catalog.exists(USER, to):
                    raise not_found(USER, to)
            self.catalog.grant(
                "USAGE", ROLE, role, to, grantee_type=grantee_type, granted_by=session.role
            )
            return self._status()
        m = re.match(
            rf"\s*GRANT\s+SERVICE\s+ROLE\s+(?P<svc>{_QID})\s*!\s*(?P<srole>{_ID})\s+TO\s+ROLE\s+"
            rf"(?P<to>{_ID})\s*$",
            sql,
            _FLAGS,
        )
        if m:
            fqn, service_role = self._service_role(m.group("svc"), m.group("srole"), session, roles)
            to = self._grantee_role(m.group("to"))
            self.catalog.grant("USAGE", SERVICE_ROLE, service_role, to, granted_by=session.role)
            del fqn
            return self._status()
        m = re.match(
            rf"\s*GRANT\s+(?P<privs>.+?)\s+ON\s+(?P<on>.+?)\s+TO\s+(?:ROLE\s+)?(?P<to>{_ID})"
            r"(?P<opts>(?:\s+WITH\s+GRANT\s+OPTION|\s+(?:COPY|REVOKE)\s+CURRENT\s+GRANTS)?)\s*$",
            sql,
            _FLAGS,
        )
        if not m:
            raise _syntax()
        target = self._target(m.group("on"), session)
        privileges = self._privilege_list(m.group("privs"), target.on_type)
        to = self._grantee_role(m.group("to"))
        if OWNERSHIP in privileges:
            if privileges != [OWNERSHIP] or target.on_type == ACCOUNT:
                raise _syntax()
            self._may_grant(roles, target, None)
            self.catalog.set_owner(target.on_type, target.name, to, granted_by=session.role)
            return self._status()
        self._may_grant(roles, target, privileges)
        option = "GRANT OPTION" in m.group("opts").upper()
        for privilege in privileges:
            self.catalog.grant(
                privilege,
                target.on_type,
                target.name,
                to,
                granted_by=session.role,
                grant_option=option,
            )
        return self._status()

    def _may_grant_role(self, roles: frozenset[str], role: str) -> None:
        if self.catalog.manages_grants(roles) or self.catalog.holds(
            roles, ROLE, role, (OWNERSHIP,)
        ):
            return
        raise insufficient(ROLE, role)

    def _service_role(
        self, service: str, service_role: str, session: SessionInfo, roles: frozenset[str]
    ) -> tuple[str, str]:
        """(service FQN, ``FQN!ROLE``) of a service role the roles may grant: only the
        service's owner grants its service roles."""
        name = self.qualify(service, session, 3)
        try:
            fqn = self.account.resolve(name)
        except KeyError:
            raise not_found(SERVICE, name) from None
        if not self.catalog.visible(roles, SERVICE, fqn):
            raise not_found(SERVICE, name)
        role_name = _word(service_role)
        row = self.account.service(fqn)
        if role_name != "ALL_ENDPOINTS_USAGE" or not row.public:
            raise not_found(SERVICE_ROLE, f"{fqn}!{role_name}")
        if not self.catalog.holds(roles, SERVICE, fqn, (OWNERSHIP,)):
            raise insufficient(SERVICE, fqn.rsplit(".", 1)[-1])
        return fqn, service_role_name(fqn)

    def _revoke(self, sql: str, session: SessionInfo) -> ResultSet:
        roles = self.roles(session)
        m = re.match(
            rf"\s*REVOKE\s+ROLE\s+(?P<role>{_ID})\s+FROM\s+(?P<gt>ROLE|USER)\s+(?P<to>{_ID})\s*$",
            sql,
            _FLAGS,
        )
        if m:
            role = self._grantee_role(m.group("role"))
            self._may_grant_role(roles, role)
            self.catalog.revoke(
                "USAGE", ROLE, role, _word(m.group("to")), grantee_type=m.group("gt").upper()
            )
            return self._status()
        m = re.match(
            rf"\s*REVOKE\s+SERVICE\s+ROLE\s+(?P<svc>{_QID})\s*!\s*(?P<srole>{_ID})\s+FROM\s+ROLE\s+"
            rf"(?P<to>{_ID})\s*$",
            sql,
            _FLAGS,
        )
        if m:
            _, service_role = self._service_role(m.group("svc"), m.group("srole"), session, roles)
            self.catalog.revoke("USAGE", SERVICE_ROLE, service_role, _word(m.group("to")))
            return self._status()
        m = re.match(
            rf"\s*REVOKE\s+(?P<go>GRANT\s+OPTION\s+FOR\s+)?(?P<privs>.+?)\s+ON\s+(?P<on>.+?)\s+"
            rf"FROM\s+(?:ROLE\s+)?(?P<to>{_ID})(?:\s+(?:CASCADE|RESTRICT))?\s*$",
            sql,
            _FLAGS,
        )
        if not m:
            raise _syntax()
        target = self._target(m.group("on"), session)
        privileges = self._privilege_list(m.group("privs"), target.on_type)
        if OWNERSHIP in privileges:
            raise AccessError(
                3008, "42601", "SQL compilation error:\nOWNERSHIP is transferred, not revoked."
            )
        self._may_grant(roles, target, privileges)
        to = _word(m.group("to"))
        for privilege in privileges:
            if m.group("go"):
                self.catalog.revoke(privilege, target.on_type, target.name, to)
                self.catalog.grant(
                    privilege, target.on_type, target.name, to, granted_by=session.role
                )
            else:
                self.catalog.revoke(privilege, target.on_type, target.name, to)
        return self._status()

    # -- SHOW GRANTS -----------------------------------------------------------------------------
    def _show_grants(self, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, text, ts_ltz

        roles = self.roles(session)
        object_columns = [
            ts_ltz("created_on"),
            text("privilege"),
            text("granted_on"),
            text("name"),
            text("granted_to"),
            text("grantee_name"),
            text("grant_option"),
            text("granted_by"),
        ]
        role_columns = [
            ts_ltz("created_on"),
            text("role"),
            text("granted_to"),
            text("grantee_name"),
            text("granted_by"),
        ]
        m = re.match(
            rf"\s*SHOW\s+GRANTS\s+TO\s+(?P<gt>ROLE|USER)\s+(?P<who>{_ID})\s*$", sql, _FLAGS
        )
        if m:
            who = _word(m.group("who"))
            if m.group("gt").upper() == "ROLE":
                if not self.catalog.role_exists(who):
                    raise not_found(ROLE, who)
                if not (
                    who in roles
                    or self.catalog.manages_grants(roles)
                    or self.catalog.holds(roles, ROLE, who, (OWNERSHIP,))
                ):
                    raise insufficient(ROLE, who)
                grants = self.catalog.grants_to(who)
                rows = [self._grant_row(g) for g in grants]
                return ResultSet(object_columns, rows, len(rows), "SHOW")
            if not self.catalog.exists(USER, who):
                raise not_found(USER, who)
            if who != session.user and not (
                self.catalog.manages_grants(roles)
                or self.catalog.holds(roles, USER, who, (OWNERSHIP,))
            ):
                raise insufficient(USER, who)
            grants = [g for g in self.catalog.grants_to(who, USER) if g.on_type == ROLE]
            rows = [(_ts(g.created_on), g.on_name, USER, g.grantee, g.granted_by) for g in grants]
            return ResultSet(role_columns, rows, len(rows), "SHOW")
        m = re.match(rf"\s*SHOW\s+GRANTS\s+OF\s+ROLE\s+(?P<role>{_ID})\s*$", sql, _FLAGS)
        if m:
            role = self._grantee_role(m.group("role"))
            rows = [
                (_ts(g.created_on), role, g.grantee_type, g.grantee, g.granted_by)
                for g in self.catalog.grants_of_role(role)
            ]
            return ResultSet(role_columns, rows, len(rows), "SHOW")
        m = re.match(r"\s*SHOW\s+GRANTS\s+ON\s+(?P<on>.+?)\s*$", sql, _FLAGS)
        if m:
            target = self._target(m.group("on"), session)
            if target.on_type != ACCOUNT and (
                not self._exists(target.on_type, target.name)
                or not self.catalog.visible(roles, target.on_type, target.name)
            ):
                raise not_found(target.on_type, target.display)
            if target.on_type == ACCOUNT and not self.catalog.manages_grants(roles):
                raise insufficient(ACCOUNT, target.name)
            rows = [
                self._grant_row(g)
                for g in self.catalog.grants_on(target.on_type, target.name)
                if g.grantee_type == ROLE
            ]
            return ResultSet(object_columns, rows, len(rows), "SHOW")
        raise _unsupported("SHOW GRANTS (this form)")

    @staticmethod
    def _grant_row(g: Grant) -> tuple[Any, ...]:
        privilege = "USAGE" if g.on_type == ROLE else g.privilege
        return (
            _ts(g.created_on),
            privilege,
            g.on_type.replace(" ", "_"),
            g.on_name,
            g.grantee_type,
            g.grantee,
            "true" if g.grant_option else "false",
            g.granted_by,
        )

    # -- SHOW ROLES / DATABASES / SCHEMAS / WAREHOUSES / USERS -----------------------------------
    def _show_roles(self, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, fixed, text, ts_ltz

        like = _like_of(sql)
        available = self.catalog.available_roles(session.user)
        rows = []
        for role in self.catalog.objects(ROLE):
            if not _like(role.name, like):
                continue
            granted_roles = sum(1 for g in self.catalog.grants_to(role.name) if g.on_type == ROLE)
            of = self.catalog.grants_of_role(role.name)
            rows.append(
                (
                    _ts(role.created_on),
                    role.name,
                    "Y" if role.name == self.catalog.user_default_role(session.user) else "N",
                    "Y" if role.name == session.role else "N",
                    "Y" if role.name in available and role.name != session.role else "N",
                    sum(1 for g in of if g.grantee_type == USER),
                    sum(1 for g in of if g.grantee_type == ROLE),
                    granted_roles,
                    self.catalog.owner(ROLE, role.name) or "",
                    role.props.get("COMMENT"),
                )
            )
        columns = [
            ts_ltz("created_on"),
            text("name"),
            text("is_default"),
            text("is_current"),
            text("is_inherited"),
            fixed("assigned_to_users"),
            fixed("granted_to_roles"),
            fixed("granted_roles"),
            text("owner"),
            text("comment"),
        ]
        return ResultSet(columns, rows, len(rows), "SHOW")

    def _show_objects(self, what: str, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, text, ts_ltz

        kind = {"DATABASES": DATABASE, "SCHEMAS": SCHEMA, "WAREHOUSES": WAREHOUSE, "USERS": USER}[
            what
        ]
        roles = self.roles(session)
        like = _like_of(sql)
        scope = re.search(rf"\bIN\s+(?:DATABASE\s+)?(?P<db>{_ID})\s*$", sql, _FLAGS)
        rows = []
        for obj in self.catalog.objects(kind):
            if kind == USER:
                if not (
                    obj.name == session.user
                    or self.catalog.manages_grants(roles)
                    or self.catalog.holds(roles, USER, obj.name)
                ):
                    continue
            elif not self.catalog.visible(roles, kind, obj.name):
                continue
            short = obj.name.rsplit(".", 1)[-1]
            if not _like(short, like):
                continue
            database = obj.name.split(".")[0] if kind == SCHEMA else None
            if kind == SCHEMA:
                wanted = _word(scope.group("db")) if scope else session.database
                if wanted and database != wanted:
                    continue
            rows.append(
                (
                    _ts(obj.created_on),
                    short,
                    database,
                    self.catalog.owner(kind, obj.name) or "",
                    obj.props.get("COMMENT"),
                    obj.props.get("DEFAULT_ROLE") if kind == USER else None,
                )
            )
        columns = [
            ts_ltz("created_on"),
            text("name"),
            text("database_name"),
            text("owner"),
            text("comment"),
            text("default_role"),
        ]
        return ResultSet(columns, rows, len(rows), "SHOW")

    # -- models -----------------------------------------------------------------------------------
    def _model(self, name: str, session: SessionInfo) -> str:
        fqn = self.qualify(name, session, 3)
        roles = self.roles(session)
        if not self.catalog.exists(MODEL, fqn) or not self.catalog.visible(roles, MODEL, fqn):
            raise not_found(MODEL, fqn)
        return fqn

    def _show_models(self, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, text, ts_ltz

        roles = self.roles(session)
        like = _like_of(sql)
        scope = re.search(rf"\bIN\s+(?:SCHEMA\s+)?(?P<schema>{_QID})\s*$", sql, _FLAGS)
        rows = []
        for obj in self.catalog.objects(MODEL):
            if not self.catalog.visible(roles, MODEL, obj.name):
                continue
            database, schema, short = obj.name.split(".")
            if not _like(short, like):
                continue
            if scope and scope.group("schema").upper() != "ACCOUNT":
                wanted = self.qualify(scope.group("schema"), session, 2)
                if f"{database}.{schema}" != wanted:
                    continue
            versions = sorted((obj.props.get("versions") or {}).keys())
            rows.append(
                (
                    _ts(obj.created_on),
                    short,
                    "USER_MODEL",
                    database,
                    schema,
                    obj.props.get("comment"),
                    self.catalog.owner(MODEL, obj.name) or "",
                    obj.props.get("default_version"),
                    json.dumps(versions),
                    json.dumps({}),
                )
            )
        columns = [
            ts_ltz("created_on"),
            text("name"),
            text("model_type"),
            text("database_name"),
            text("schema_name"),
            text("comment"),
            text("owner"),
            text("default_version_name"),
            text("versions"),
            text("aliases"),
        ]
        return ResultSet(columns, rows, len(rows), "SHOW")

    def _show_versions(self, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, text, ts_ltz

        m = re.match(
            rf"\s*SHOW\s+VERSIONS(?:\s+LIKE\s+(?P<like>{_STR}))?\s+IN\s+MODEL\s+(?P<model>{_QID})"
            r"\s*$",
            sql,
            _FLAGS,
        )
        if not m:
            raise _syntax()
        model = self._model(m.group("model"), session)
        like = _unquote_str(m.group("like")) if m.group("like") else None
        details = _truthy(session.parameters.get("SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL"))
        database, schema, short = model.split(".")
        columns = [
            ts_ltz("created_on"),
            text("name"),
            text("aliases"),
            text("comment"),
            text("database_name"),
            text("schema_name"),
            text("model_name"),
            text("is_default_version"),
            text("functions"),
            text("metadata"),
            text("user_data"),
        ]
        if details:
            import yaml

            columns.append(text("model_spec"))
        rows = []
        for v in self.account.model_versions(model):
            if not _like(v.version, like):
                continue
            row: list[Any] = [
                _ts(v.created_on),
                v.version,
                json.dumps(list(v.aliases)),
                v.comment,
                database,
                schema,
                short,
                "true" if v.is_default else "false",
                json.dumps(list(v.functions)),
                json.dumps(v.metadata),
                json.dumps(v.user_data),
            ]
            if details:
                row.append(yaml.safe_dump({"signatures": v.signatures}, sort_keys=False))
            rows.append(tuple(row))
        return ResultSet(columns, rows, len(rows), "SHOW")

    def _show_model_functions(self, sql: str, session: SessionInfo) -> ResultSet:
        from .sqlengine import ResultSet, fixed, text

        m = re.match(
            rf"\s*SHOW\s+FUNCTIONS\s+IN\s+MODEL\s+(?P<model>{_QID})\s+VERSION\s+(?P<v>{_ID})\s*$",
            sql,
            _FLAGS,
        )
        if not m:
            raise _syntax()
        model = self._model(m.group("model"), session)
        wanted = _word(m.group("v"))
        versions = {v.version: v for v in self.account.model_versions(model)}
        if wanted not in versions:
            raise AccessError(
                2003,
                "02000",
                f"SQL compilation error:\nVersion '{wanted}' does not exist in model '{model}'.",
            )
        version = versions[wanted]
        rows = []
        for method, signature in version.signatures.items():
            inputs = [f"{i.get('name')} {_sql_type(i)}" for i in signature.get("inputs") or []]
            rows.append(
                (
                    method.upper(),
                    f"{method.upper()}({', '.join(inputs)}) RETURN TABLE",
                    len(signature.get("inputs") or []),
                    len(signature.get("inputs") or []) + len(signature.get("params") or []),
                    "PYTHON",
                    "TABLE_FUNCTION" if signature.get("outputs") else "FUNCTION",
                )
            )
        columns = [
            text("name"),
            text("arguments"),
            fixed("min_num_arguments"),
            fixed("max_num_arguments"),
            text("language"),
            text("target_method_function_type"),
        ]
        return ResultSet(columns, rows, len(rows), "SHOW")

    # -- login ----------------------------------------------------------------------------------
    def network_policy_allows(self, user: str, client_ip: str | None) -> bool:
        """Does the user's network policy (ALLOWED/BLOCKED rule and IP lists) let ``client_ip``
        in? No policy, or no client address to judge: yes."""
        found = self.catalog.user(user)
        if found is None or client_ip is None:
            return True
        policy_name = found.props.get("NETWORK_POLICY")
        if not policy_name:
            return True
        policy = self.catalog.get(NETWORK_POLICY, _word(str(policy_name)))
        if policy is None:
            return True
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False

        def networks(rule_key: str, ip_key: str) -> list[Any]:
            out: list[Any] = []
            for rule in policy.props.get(rule_key) or []:
                found_rule = self.catalog.get(NETWORK_RULE, _word(str(rule)))
                if found_rule is None:
                    continue
                props = found_rule.props
                if str(props.get("MODE", "INGRESS")).upper() != "INGRESS":
                    continue
                if str(props.get("TYPE", "IPV4")).upper() != "IPV4":
                    continue
                out.extend(props.get("VALUE_LIST") or [])
            out.extend(policy.props.get(ip_key) or [])
            return [ipaddress.ip_network(str(v), strict=False) for v in out]

        allowed = networks("ALLOWED_NETWORK_RULE_LIST", "ALLOWED_IP_LIST")
        blocked = networks("BLOCKED_NETWORK_RULE_LIST", "BLOCKED_IP_LIST")
        if any(address in n for n in blocked):
            return False
        return not allowed or any(address in n for n in allowed)


def _sql_type(feature: dict[str, Any]) -> str:
    dtype = str(feature.get("type", "STRING")).upper()
    base = {"STRING": "VARCHAR", "BYTES": "BINARY", "DOUBLE": "FLOAT", "INT64": "NUMBER"}.get(
        dtype, dtype
    )
    return "ARRAY" if feature.get("shape") else base


def _count_args(text_: str, start: int) -> int:
    """Top-level arguments of the call whose '(' ends at ``start``."""
    depth, count, seen = 1, 0, False
    i = start
    while i < len(text_) and depth:
        c = text_[i]
        if c == "'":
            j = i + 1
            while j < len(text_) and not (text_[j] == "'" and text_[j - 1] != "\\"):
                j += 1
            i = j
            seen = True
        elif c in "([":
            depth += 1
            seen = True
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 1:
            count += 1
        elif not c.isspace():
            seen = True
        i += 1
    return count + 1 if seen else 0


def _ts(epoch: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _truthy(value: Any) -> bool:
    return str(value).strip().upper() in {"TRUE", "1", "YES", "ON"}


def _like_of(sql: str) -> str | None:
    m = re.search(rf"\bLIKE\s+({_STR})", sql, _FLAGS)
    return _unquote_str(m.group(1)) if m else None


def _like(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


def _unsupported(what: str) -> AccessError:
    return AccessError(2, "0A000", f"Unsupported feature '{what}' (not emulated by spcs-local).")
