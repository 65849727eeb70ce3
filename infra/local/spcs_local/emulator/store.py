"""SQLite storage shared by the emulator's account model, SQL engine and Cortex Search.

One file, ``emulator.sqlite3`` in the state dir (or an in-memory database when no dir is
given). The connection is shared across the threaded servers behind one re-entrant lock;
``Store.connection()`` is the only way to touch it.

User tables keep a small catalog (``_emu_tables``) with the Snowflake column types so the SQL
engine can answer with Snowflake row types (VARIANT, TIMESTAMP_TZ, ...) and convert values.
No table exists until the set-up SQL (infra/snowflake) creates it. ``_emu_meta`` holds small
key/value facts (layout version, whether the set-up ran); a state dir written by an older
layout of the emulator is reset on open (logged), never half-read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DB_FILENAME = "emulator.sqlite3"

# The emulator's layout of its own tables; a state dir from another layout is reset.
LAYOUT_VERSION = "2"


@dataclass(frozen=True)
class TableColumn:
    name: str  # as stored (unquoted identifiers upper-cased by the caller)
    type: str  # Snowflake type as declared, upper-case: "VARCHAR", "NUMBER(38,0)", "VARIANT"
    nullable: bool = True
    primary_key: bool = False


_INT_TYPES = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"}
_REAL_TYPES = {"FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"}


def sqlite_affinity(sf_type: str) -> str:
    """SQLite column type for a Snowflake type (values keep Snowflake semantics via the engine)."""
    base, _, args = sf_type.upper().partition("(")
    base = base.strip()
    if base in _INT_TYPES or base == "BOOLEAN":
        return "INTEGER"
    if base in {"NUMBER", "NUMERIC", "DECIMAL"}:
        scale = args.rstrip(")").split(",")[1].strip() if "," in args else "0"
        return "INTEGER" if scale in {"", "0"} else "REAL"
    if base in _REAL_TYPES:
        return "REAL"
    if base in {"BINARY", "VARBINARY"}:
        return "BLOB"
    return "TEXT"  # strings, VARIANT/OBJECT/ARRAY as JSON text, dates and times as ISO text


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Store:
    """Locked SQLite connection plus the user-table catalog."""

    def __init__(self, state_dir: str | os.PathLike[str] | None) -> None:
        self.path: Path | None
        if state_dir is None:
            self.path = None
            target = ":memory:"
        else:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            self.path = Path(state_dir) / DB_FILENAME
            target = str(self.path)
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._depth = 0
        self._rollback_hooks: list[Callable[[], None]] = []
        with self.lock:
            if self.path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._check_layout()
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS _emu_tables "
                "(fqn TEXT PRIMARY KEY, columns TEXT NOT NULL)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS _emu_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            self._conn.execute(
                "INSERT OR REPLACE INTO _emu_meta (key, value) VALUES ('layout', ?)",
                (LAYOUT_VERSION,),
            )

    def _check_layout(self) -> None:
        """Reset a database written by another layout of the emulator (or by none)."""
        names = [
            r[0]
            for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        if not names:
            return
        layout = None
        if "_emu_meta" in names:
            row = self._conn.execute("SELECT value FROM _emu_meta WHERE key = 'layout'").fetchone()
            layout = row[0] if row else None
        if layout == LAYOUT_VERSION:
            return
        log.warning("emulator state dir has an older layout: starting from an empty account")
        for name in names:
            self._conn.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")

    # -- small facts ------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self.connection() as conn:
            row = conn.execute("SELECT value FROM _emu_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO _emu_meta (key, value) VALUES (?, ?)", (key, value)
            )

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` after every rolled-back transaction (in-memory caches drop stale data)."""
        self._rollback_hooks.append(hook)

    # -- connection -------------------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The shared connection under the store lock, inside a transaction.

        The outermost use commits on success and rolls back on an exception; nested uses
        (same thread) join the outer transaction.
        """
        with self.lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if outer:
                    for hook in self._rollback_hooks:
                        hook()
                raise
            self._depth -= 1
            if outer and self._conn.in_transaction:  # a caller may have committed already
                self._conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    # -- user tables ------------------------------------------------------------------------
    @staticmethod
    def table_name(fqn: str) -> str:
        """SQLite name of a Snowflake table: ``DB.SCHEMA.T`` -> ``DB__SCHEMA__T``."""
        parts = [p.strip().strip('"') for p in fqn.split(".")]
        if len(parts) != 3 or not all(parts):
            raise ValueError("a table name must be fully qualified: DATABASE.SCHEMA.TABLE")
        return "__".join(p.upper() if re.fullmatch(r"[A-Za-z_][\w$]*", p) else p for p in parts)

    def table_columns(self, fqn: str) -> list[TableColumn] | None:
        with self.connection() as conn:
            row = conn.execute("SELECT columns FROM _emu_tables WHERE fqn = ?", (fqn,)).fetchone()
        if row is None:
            return None
        return [TableColumn(**c) for c in json.loads(row["columns"])]

    def tables(self) -> list[str]:
        with self.connection() as conn:
            return [r["fqn"] for r in conn.execute("SELECT fqn FROM _emu_tables ORDER BY fqn")]

    def create_table(
        self,
        fqn: str,
        columns: Sequence[TableColumn],
        *,
        replace: bool = False,
        if_not_exists: bool = False,
    ) -> bool:
        """Create a user table; returns False when it existed and ``if_not_exists`` was set.

        Raises FileExistsError when it exists and neither flag is set.
        """
        if not columns:
            raise ValueError("a table needs at least one column")
        name = self.table_name(fqn)
        with self.connection() as conn:
            exists = (
                conn.execute("SELECT 1 FROM _emu_tables WHERE fqn = ?", (fqn,)).fetchone()
                is not None
            )
            if exists and if_not_exists and not replace:
                return False
            if exists and not replace:
                raise FileExistsError(fqn)
            conn.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
            defs = [
                f"{quote_ident(c.name)} {sqlite_affinity(c.type)}"
                + ("" if c.nullable else " NOT NULL")
                for c in columns
            ]
            conn.execute(f"CREATE TABLE {quote_ident(name)} ({', '.join(defs)})")
            # Snowflake does not enforce PRIMARY KEY (only NOT NULL): index it, no UNIQUE.
            pk = [c.name for c in columns if c.primary_key]
            if pk:
                conn.execute(
                    f"CREATE INDEX {quote_ident(name + '__PK')} ON {quote_ident(name)} "
                    f"({', '.join(quote_ident(p) for p in pk)})"
                )
            conn.execute(
                "INSERT OR REPLACE INTO _emu_tables (fqn, columns) VALUES (?, ?)",
                (fqn, json.dumps([c.__dict__ for c in columns])),
            )
        return True

    def drop_table(self, fqn: str, *, if_exists: bool = False) -> bool:
        with self.connection() as conn:
            if conn.execute("SELECT 1 FROM _emu_tables WHERE fqn = ?", (fqn,)).fetchone() is None:
                if if_exists:
                    return False
                raise KeyError(fqn)
            conn.execute(f"DROP TABLE IF EXISTS {quote_ident(self.table_name(fqn))}")
            conn.execute("DELETE FROM _emu_tables WHERE fqn = ?", (fqn,))
        return True
