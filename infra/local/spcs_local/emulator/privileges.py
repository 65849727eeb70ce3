"""Roles, users, grants and ownership of the emulated account, persisted in the SQLite store.

Access control as Snowflake describes it (docs/SNOWFLAKE_FACTS.md), simplified where said:

- Privileges are granted to roles; roles to roles (``GRANT ROLE a TO ROLE b``: b inherits a)
  and to users. Every role inherits PUBLIC. Built-in: ACCOUNTADMIN > SECURITYADMIN >
  USERADMIN and ACCOUNTADMIN > SYSADMIN, with their default account privileges (SYSADMIN:
  CREATE DATABASE / WAREHOUSE; SECURITYADMIN: MANAGE GRANTS, CREATE NETWORK POLICY;
  USERADMIN: CREATE USER / ROLE; ACCOUNTADMIN: CREATE COMPUTE POOL, BIND SERVICE ENDPOINT).
- Simplification: ACCOUNTADMIN may do everything and sees everything (in Snowflake it sees
  only what its hierarchy holds). MANAGE GRANTS lets its holder grant anything and see every
  object, as documented.
- Ownership is the OWNERSHIP grant (one role per object), given to the creating role.
- An object is *visible* to a role that holds any privilege on it; a schema object also needs
  a privilege on its database and schema ("does not exist or not authorized" otherwise).
- Service roles: ``GRANT SERVICE ROLE <svc>!ALL_ENDPOINTS_USAGE TO ROLE r`` is stored (and
  shown by SHOW GRANTS) as privilege USAGE, granted_on SERVICE_ROLE, name
  ``DB.SCHEMA.SVC!ALL_ENDPOINTS_USAGE``.
- Secondary roles: a session's privileges are those of its primary role plus, with secondary
  roles ALL, every role granted to the user (Snowflake's default for new users); objects are
  owned by the primary role.

Rows: ``_emu_objects`` (kind, name, JSON props) for databases, schemas, warehouses, roles,
users, network rules and policies, models, functions and Cortex Search services (tables,
services and compute pools live in their own tables, their grants here); ``_emu_grants`` for
every grant, ownership included. A snapshot of the grants is cached in memory and dropped on
every change and on every rolled-back transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .store import Store

__all__ = [
    "ACCOUNT",
    "ACCOUNTADMIN",
    "ADMIN_USER",
    "ALL_ENDPOINTS_USAGE",
    "PRIVILEGES",
    "PUBLIC",
    "SECURITYADMIN",
    "SYSADMIN",
    "USERADMIN",
    "AccessError",
    "Catalog",
    "CatalogObject",
    "Grant",
    "insufficient",
    "not_found",
]

ACCOUNTADMIN, SECURITYADMIN, USERADMIN, SYSADMIN, PUBLIC = (
    "ACCOUNTADMIN",
    "SECURITYADMIN",
    "USERADMIN",
    "SYSADMIN",
    "PUBLIC",
)
SYSTEM_ROLES = (ACCOUNTADMIN, SECURITYADMIN, USERADMIN, SYSADMIN, PUBLIC)
# The emulator's own administrator (the account's first user): runs the set-up SQL.
ADMIN_USER = "SPCS_LOCAL_ADMIN"
ALL_ENDPOINTS_USAGE = "ALL_ENDPOINTS_USAGE"

# Object types (canonical spelling with spaces; SHOW GRANTS prints them with underscores).
ACCOUNT = "ACCOUNT"
DATABASE, SCHEMA, WAREHOUSE, TABLE, SERVICE, MODEL, FUNCTION, ROLE, USER = (
    "DATABASE",
    "SCHEMA",
    "WAREHOUSE",
    "TABLE",
    "SERVICE",
    "MODEL",
    "FUNCTION",
    "ROLE",
    "USER",
)
COMPUTE_POOL = "COMPUTE POOL"
CORTEX_SEARCH_SERVICE = "CORTEX SEARCH SERVICE"
NETWORK_RULE = "NETWORK RULE"
NETWORK_POLICY = "NETWORK POLICY"
IMAGE_REPOSITORY = "IMAGE REPOSITORY"
SERVICE_ROLE = "SERVICE ROLE"
STAGE = "STAGE"
OWNERSHIP = "OWNERSHIP"
MANAGE_GRANTS = "MANAGE GRANTS"

# Which privileges exist on which object type (GRANT refuses others).
PRIVILEGES: dict[str, frozenset[str]] = {
    ACCOUNT: frozenset(
        {
            "CREATE DATABASE",
            "CREATE WAREHOUSE",
            "CREATE ROLE",
            "CREATE USER",
            "CREATE COMPUTE POOL",
            "CREATE NETWORK POLICY",
            "CREATE INTEGRATION",
            "MANAGE GRANTS",
            "MONITOR USAGE",
            "MONITOR EXECUTION",
            "EXECUTE TASK",
            "BIND SERVICE ENDPOINT",
        }
    ),
    DATABASE: frozenset({"USAGE", "MONITOR", "MODIFY", "CREATE SCHEMA"}),
    SCHEMA: frozenset(
        {
            "USAGE",
            "MONITOR",
            "MODIFY",
            "CREATE TABLE",
            "CREATE VIEW",
            "CREATE STAGE",
            "CREATE FUNCTION",
            "CREATE PROCEDURE",
            "CREATE SERVICE",
            "CREATE MODEL",
            "CREATE IMAGE REPOSITORY",
            "CREATE CORTEX SEARCH SERVICE",
            "CREATE NETWORK RULE",
        }
    ),
    WAREHOUSE: frozenset({"USAGE", "OPERATE", "MONITOR", "MODIFY"}),
    COMPUTE_POOL: frozenset({"USAGE", "OPERATE", "MONITOR", "MODIFY"}),
    SERVICE: frozenset({"USAGE", "MONITOR", "OPERATE"}),
    TABLE: frozenset(
        {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "EVOLVE SCHEMA"}
    ),
    CORTEX_SEARCH_SERVICE: frozenset({"USAGE", "MONITOR", "OPERATE"}),
    MODEL: frozenset({"USAGE", "READ", "MONITOR"}),
    FUNCTION: frozenset({"USAGE"}),
    IMAGE_REPOSITORY: frozenset({"READ", "WRITE"}),
    # READ (and WRITE) on an internal stage, USAGE on an external one.
    STAGE: frozenset({"READ", "WRITE", "USAGE"}),
    NETWORK_RULE: frozenset({"USAGE"}),
    NETWORK_POLICY: frozenset({"USAGE"}),
    ROLE: frozenset(),
    USER: frozenset({"MONITOR"}),
}
# Types whose objects live in a schema (their visibility needs the database and schema).
SCHEMA_OBJECTS = frozenset(
    {
        TABLE,
        SERVICE,
        MODEL,
        FUNCTION,
        CORTEX_SEARCH_SERVICE,
        NETWORK_RULE,
        IMAGE_REPOSITORY,
        STAGE,
    }
)
# How error messages name each type ("... on compute pool 'X'", "Compute pool 'X' does not ...").
_LABEL = {
    ACCOUNT: "account",
    DATABASE: "database",
    SCHEMA: "schema",
    WAREHOUSE: "warehouse",
    COMPUTE_POOL: "compute pool",
    SERVICE: "service",
    TABLE: "table",
    CORTEX_SEARCH_SERVICE: "Cortex Search Service",
    MODEL: "model",
    FUNCTION: "function",
    IMAGE_REPOSITORY: "image repository",
    STAGE: "stage",
    NETWORK_RULE: "network rule",
    NETWORK_POLICY: "network policy",
    ROLE: "role",
    USER: "user",
    SERVICE_ROLE: "service role",
}

_BUILTIN_ACCOUNT_PRIVILEGES: dict[str, tuple[str, ...]] = {
    SYSADMIN: ("CREATE DATABASE", "CREATE WAREHOUSE"),
    SECURITYADMIN: ("MANAGE GRANTS", "CREATE NETWORK POLICY"),
    USERADMIN: ("CREATE USER", "CREATE ROLE"),
    ACCOUNTADMIN: ("CREATE COMPUTE POOL", "BIND SERVICE ENDPOINT", "CREATE INTEGRATION"),
}
# (child, parent): the parent inherits the child.
_BUILTIN_HIERARCHY = (
    (USERADMIN, SECURITYADMIN),
    (SECURITYADMIN, ACCOUNTADMIN),
    (SYSADMIN, ACCOUNTADMIN),
)
CATALOG_VERSION = "1"


class AccessError(Exception):
    """A statement refused for access reasons; carries Snowflake's code, SQLSTATE and text."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message


def label(object_type: str) -> str:
    return _LABEL.get(object_type, object_type.lower())


def not_found(object_type: str, name: str) -> AccessError:
    """002003: the object does not exist, or the role may not see it (Snowflake says both)."""
    text = label(object_type)
    text = text[:1].upper() + text[1:]
    return AccessError(
        2003, "02000", f"SQL compilation error:\n{text} '{name}' does not exist or not authorized."
    )


def insufficient(object_type: str, name: str) -> AccessError:
    """003001: the object is visible but the role lacks the privilege the operation needs."""
    return AccessError(
        3001,
        "42501",
        f"SQL access control error:\nInsufficient privileges to operate on {label(object_type)} "
        f"'{name}'",
    )


def already_exists(name: str) -> AccessError:
    return AccessError(2002, "42710", f"SQL compilation error:\nObject '{name}' already exists.")


@dataclass(frozen=True)
class Grant:
    privilege: str
    on_type: str
    on_name: str
    grantee_type: str  # "ROLE" | "USER"
    grantee: str
    grant_option: bool
    granted_by: str
    created_on: float


@dataclass(frozen=True)
class CatalogObject:
    kind: str
    name: str
    props: dict[str, Any]
    created_on: float


@dataclass
class _Snapshot:
    grants: list[Grant]
    parents: dict[str, set[str]] = field(default_factory=dict)  # role -> roles granted to it
    user_roles: dict[str, set[str]] = field(default_factory=dict)  # user -> roles
    by_object: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    effective: dict[str, frozenset[str]] = field(default_factory=dict)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS _emu_objects (
  kind TEXT NOT NULL, name TEXT NOT NULL, props TEXT NOT NULL, created_on REAL NOT NULL,
  PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS _emu_grants (
  privilege TEXT NOT NULL, on_type TEXT NOT NULL, on_name TEXT NOT NULL,
  grantee_type TEXT NOT NULL, grantee TEXT NOT NULL, grant_option INTEGER NOT NULL,
  granted_by TEXT NOT NULL, created_on REAL NOT NULL,
  PRIMARY KEY (privilege, on_type, on_name, grantee_type, grantee))
"""


def schema_of(fqn: str) -> tuple[str, str] | None:
    """(database, DB.SCHEMA) of a schema object's ``DB.SCHEMA.NAME``."""
    parts = fqn.split(".")
    if len(parts) != 3:
        return None
    return parts[0], f"{parts[0]}.{parts[1]}"


class Catalog:
    """Roles, users, grants and catalog objects; thread-safe through the store's lock."""

    def __init__(self, store: Store, now: Callable[[], float], account_name: str) -> None:
        self._store = store
        self._now = now
        self.account_name = account_name.upper()
        # The store's lock: one lock order for the account, the catalog and SQLite.
        self._lock = store.lock
        self._snap: _Snapshot | None = None
        store.on_rollback(self._invalidate)
        with store.connection() as conn:
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(stmt)
            if store.meta("catalog") != CATALOG_VERSION:
                self._builtins()
                store.set_meta("catalog", CATALOG_VERSION)

    def _builtins(self) -> None:
        for role in SYSTEM_ROLES:
            self.create(
                ROLE, role, None if role == PUBLIC else ACCOUNTADMIN, {}, if_not_exists=True
            )
        for child, parent in _BUILTIN_HIERARCHY:
            self.grant("USAGE", ROLE, child, parent, granted_by="")
        for role, privileges in _BUILTIN_ACCOUNT_PRIVILEGES.items():
            for privilege in privileges:
                self.grant(privilege, ACCOUNT, self.account_name, role, granted_by="")
        self.create(
            USER,
            ADMIN_USER,
            ACCOUNTADMIN,
            {
                "TYPE": "PERSON",
                "DEFAULT_ROLE": ACCOUNTADMIN,
                # One role at a time: what each script's USE ROLE grants is all it may do.
                "DEFAULT_SECONDARY_ROLES": [],
                "COMMENT": "spcs-local administrator",
            },
            if_not_exists=True,
        )
        self.grant("USAGE", ROLE, ACCOUNTADMIN, ADMIN_USER, grantee_type=USER, granted_by="")

    # -- cache ------------------------------------------------------------------------------
    def _invalidate(self) -> None:
        with self._lock:
            self._snap = None

    def _snapshot(self) -> _Snapshot:
        with self._lock:
            if self._snap is not None:
                return self._snap
            with self._store.connection() as conn:
                rows = conn.execute(
                    "SELECT privilege, on_type, on_name, grantee_type, grantee, grant_option, "
                    "granted_by, created_on FROM _emu_grants ORDER BY created_on, rowid"
                ).fetchall()
            grants = [
                Grant(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], float(r[7])) for r in rows
            ]
            snap = _Snapshot(grants)
            for g in grants:
                if g.on_type == ROLE and g.privilege == "USAGE":
                    target = snap.user_roles if g.grantee_type == USER else snap.parents
                    target.setdefault(g.grantee, set()).add(g.on_name)
                elif g.grantee_type == ROLE:
                    holders = snap.by_object.setdefault((g.on_type, g.on_name), {})
                    holders.setdefault(g.grantee, set()).add(g.privilege)
            self._snap = snap
            return snap

    # -- objects ----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> CatalogObject | None:
        with self._store.connection() as conn:
            row = conn.execute(
                "SELECT props, created_on FROM _emu_objects WHERE kind = ? AND name = ?",
                (kind, name),
            ).fetchone()
        if row is None:
            return None
        return CatalogObject(kind, name, json.loads(row[0]), float(row[1]))

    def exists(self, kind: str, name: str) -> bool:
        return self.get(kind, name) is not None

    def objects(self, kind: str) -> list[CatalogObject]:
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT name, props, created_on FROM _emu_objects WHERE kind = ? ORDER BY name",
                (kind,),
            ).fetchall()
        return [CatalogObject(kind, r[0], json.loads(r[1]), float(r[2])) for r in rows]

    def create(
        self,
        kind: str,
        name: str,
        owner: str | None,
        props: Mapping[str, Any],
        *,
        if_not_exists: bool = False,
        replace: bool = False,
    ) -> bool:
        """Create an object owned by ``owner``; False when it existed and ``if_not_exists``.
        Raises AccessError 002002 when it exists and neither flag is set."""
        with self._store.connection() as conn:
            if self.exists(kind, name):
                if if_not_exists and not replace:
                    return False
                if not replace:
                    raise already_exists(name)
                self.forget(kind, name)
            conn.execute(
                "INSERT OR REPLACE INTO _emu_objects (kind, name, props, created_on) "
                "VALUES (?, ?, ?, ?)",
                (kind, name, json.dumps(dict(props)), self._now()),
            )
            if owner is not None:
                self.set_owner(kind, name, owner)
        self._invalidate()
        return True

    def update(self, kind: str, name: str, props: Mapping[str, Any]) -> CatalogObject:
        """Replace an object's properties (the caller merges)."""
        with self._store.connection() as conn:
            conn.execute(
                "UPDATE _emu_objects SET props = ? WHERE kind = ? AND name = ?",
                (json.dumps(dict(props)), kind, name),
            )
        found = self.get(kind, name)
        if found is None:
            raise KeyError(name)
        return found

    def drop(self, kind: str, name: str) -> None:
        with self._store.connection() as conn:
            conn.execute("DELETE FROM _emu_objects WHERE kind = ? AND name = ?", (kind, name))
            self.forget(kind, name)
            if kind == ROLE:
                conn.execute(
                    "DELETE FROM _emu_grants WHERE grantee_type = 'ROLE' AND grantee = ?", (name,)
                )
            if kind == USER:
                conn.execute(
                    "DELETE FROM _emu_grants WHERE grantee_type = 'USER' AND grantee = ?", (name,)
                )
        self._invalidate()

    # -- grants -----------------------------------------------------------------------------
    def grant(
        self,
        privilege: str,
        on_type: str,
        on_name: str,
        grantee: str,
        *,
        grantee_type: str = ROLE,
        granted_by: str,
        grant_option: bool = False,
    ) -> bool:
        """Record a grant; False when it was held already (a no-op, as in Snowflake)."""
        with self._store.connection() as conn:
            existing = conn.execute(
                "SELECT grant_option FROM _emu_grants WHERE privilege = ? AND on_type = ? AND "
                "on_name = ? AND grantee_type = ? AND grantee = ?",
                (privilege, on_type, on_name, grantee_type, grantee),
            ).fetchone()
            if existing is not None:
                if grant_option and not existing[0]:
                    conn.execute(
                        "UPDATE _emu_grants SET grant_option = 1 WHERE privilege = ? AND "
                        "on_type = ? AND on_name = ? AND grantee_type = ? AND grantee = ?",
                        (privilege, on_type, on_name, grantee_type, grantee),
                    )
                    self._invalidate()
                return False
            conn.execute(
                "INSERT INTO _emu_grants (privilege, on_type, on_name, grantee_type, grantee, "
                "grant_option, granted_by, created_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    privilege,
                    on_type,
                    on_name,
                    grantee_type,
                    grantee,
                    int(grant_option),
                    granted_by,
                    self._now(),
                ),
            )
        self._invalidate()
        return True

    def revoke(
        self, privilege: str, on_type: str, on_name: str, grantee: str, *, grantee_type: str = ROLE
    ) -> bool:
        with self._store.connection() as conn:
            cur = conn.execute(
                "DELETE FROM _emu_grants WHERE privilege = ? AND on_type = ? AND on_name = ? "
                "AND grantee_type = ? AND grantee = ?",
                (privilege, on_type, on_name, grantee_type, grantee),
            )
        self._invalidate()
        return cur.rowcount > 0

    def set_owner(
        self, on_type: str, on_name: str, role: str, granted_by: str | None = None
    ) -> None:
        with self._store.connection() as conn:
            conn.execute(
                "DELETE FROM _emu_grants WHERE privilege = 'OWNERSHIP' AND on_type = ? "
                "AND on_name = ?",
                (on_type, on_name),
            )
            self.grant(OWNERSHIP, on_type, on_name, role, granted_by=granted_by or role)

    def forget(self, on_type: str, on_name: str) -> None:
        """Drop every grant on an object (it was dropped or replaced)."""
        with self._store.connection() as conn:
            conn.execute(
                "DELETE FROM _emu_grants WHERE on_type = ? AND on_name = ?", (on_type, on_name)
            )
            if on_type == SERVICE:
                conn.execute(
                    "DELETE FROM _emu_grants WHERE on_type = ? AND on_name LIKE ?",
                    (SERVICE_ROLE, on_name + "!%"),
                )
        self._invalidate()

    def owner(self, on_type: str, on_name: str) -> str | None:
        holders = self._snapshot().by_object.get((on_type, on_name), {})
        for role, privileges in holders.items():
            if OWNERSHIP in privileges:
                return role
        return None

    def grants(self) -> list[Grant]:
        return list(self._snapshot().grants)

    def grants_to(self, grantee: str, grantee_type: str = ROLE) -> list[Grant]:
        return [
            g
            for g in self._snapshot().grants
            if g.grantee_type == grantee_type and g.grantee == grantee
        ]

    def grants_on(self, on_type: str, on_name: str) -> list[Grant]:
        return [g for g in self._snapshot().grants if g.on_type == on_type and g.on_name == on_name]

    def grants_of_role(self, role: str) -> list[Grant]:
        return [
            g
            for g in self._snapshot().grants
            if g.on_type == ROLE and g.on_name == role and g.privilege == "USAGE"
        ]

    # -- role hierarchy -----------------------------------------------------------------------
    def role_exists(self, role: str) -> bool:
        return self.exists(ROLE, role)

    def effective_roles(self, role: str) -> frozenset[str]:
        """The role, every role it inherits (transitively) and PUBLIC."""
        snap = self._snapshot()
        with self._lock:
            cached = snap.effective.get(role)
            if cached is not None:
                return cached
            seen = {role, PUBLIC}
            todo = [role]
            while todo:
                for child in snap.parents.get(todo.pop(), ()):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            result = frozenset(seen)
            snap.effective[role] = result
            return result

    def user_roles(self, user: str) -> frozenset[str]:
        """Roles granted to the user directly, and PUBLIC."""
        return frozenset(self._snapshot().user_roles.get(user, set()) | {PUBLIC})

    def available_roles(self, user: str) -> frozenset[str]:
        """Every role the user may USE: the granted ones and all they inherit."""
        out: set[str] = set()
        for role in self.user_roles(user):
            out |= self.effective_roles(role)
        return frozenset(out)

    def active_roles(
        self, user: str | None, role: str, secondary: Iterable[str] | str | None = None
    ) -> frozenset[str]:
        """Roles whose privileges a session has: its primary role's hierarchy, plus the
        secondary roles' (``"ALL"``: every role granted to the user)."""
        roles = set(self.effective_roles(role))
        if secondary == "ALL" and user:
            roles |= self.available_roles(user)
        elif secondary and not isinstance(secondary, str):
            for extra in secondary:
                roles |= self.effective_roles(extra)
        return frozenset(roles)

    # -- checks ---------------------------------------------------------------------------------
    @staticmethod
    def is_superuser(roles: frozenset[str]) -> bool:
        return ACCOUNTADMIN in roles

    def holds(
        self,
        roles: frozenset[str],
        on_type: str,
        on_name: str,
        privileges: Iterable[str] | None = None,
    ) -> bool:
        """Does any of ``roles`` hold one of ``privileges`` (None: any privilege) on the
        object? OWNERSHIP counts for everything; ACCOUNTADMIN holds everything."""
        if self.is_superuser(roles):
            return True
        holders = self._snapshot().by_object.get((on_type, on_name))
        if not holders:
            return False
        wanted = None if privileges is None else {*privileges, OWNERSHIP}
        for role in roles:
            held = holders.get(role)
            if held and (wanted is None or held & wanted):
                return True
        return False

    def manages_grants(self, roles: frozenset[str]) -> bool:
        return self.holds(roles, ACCOUNT, self.account_name, (MANAGE_GRANTS,))

    def account_privilege(self, roles: frozenset[str], privilege: str) -> bool:
        return self.holds(roles, ACCOUNT, self.account_name, (privilege,))

    def schema_visible(self, roles: frozenset[str], schema_fqn: str) -> bool:
        database = schema_fqn.split(".")[0]
        if self.manages_grants(roles):
            return True
        return self.holds(roles, DATABASE, database) and self.holds(roles, SCHEMA, schema_fqn)

    def visible(self, roles: frozenset[str], on_type: str, on_name: str) -> bool:
        """May the roles see the object (SHOW lists it, a statement naming it compiles)?"""
        if self.manages_grants(roles):
            return True
        if not self.holds(roles, on_type, on_name):
            return False
        if on_type in SCHEMA_OBJECTS:
            parent = schema_of(on_name)
            return parent is not None and self.schema_visible(roles, parent[1])
        if on_type == SCHEMA:
            return self.holds(roles, DATABASE, on_name.split(".")[0])
        return True

    def check(
        self,
        roles: frozenset[str],
        on_type: str,
        on_name: str,
        privileges: Iterable[str],
        display: str | None = None,
    ) -> None:
        """Raise 002003 when the object is not visible, 003001 when a privilege is missing."""
        shown = display or on_name
        if not self.visible(roles, on_type, on_name):
            raise not_found(on_type, shown)
        if not self.holds(roles, on_type, on_name, privileges):
            raise insufficient(on_type, shown.rsplit(".", 1)[-1])

    # -- users ------------------------------------------------------------------------------------
    def user(self, name: str) -> CatalogObject | None:
        return self.get(USER, name)

    def user_default_role(self, user: str) -> str | None:
        """The user's DEFAULT_ROLE when it exists and is granted to them, else None."""
        found = self.user(user)
        if found is None:
            return None
        role = found.props.get("DEFAULT_ROLE")
        if not isinstance(role, str) or not role:
            return None
        role = role.upper()
        if role in self.available_roles(user) and self.role_exists(role):
            return role
        return None
