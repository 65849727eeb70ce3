"""Internal stages with files: what the reference route needs to read an image file on a stage
inside a statement (docs/REFERENCE_ROUTE.md).

* ``CREATE STAGE ... DIRECTORY = (ENABLE = TRUE)`` is ``ddl.py``'s (a catalog object of kind
  STAGE; privileges READ / WRITE / USAGE in ``privileges.py``). Files arrive through
  ``Stages.put`` (the admin API's ``POST /admin/stages/<stage>/files``; there is no ``PUT``).
* ``DIRECTORY(@stage)`` is a table of the stage's files (RELATIVE_PATH, SIZE, LAST_MODIFIED,
  MD5, ETAG, FILE_URL). It needs READ on the stage and an enabled directory table.
* ``BUILD_SCOPED_FILE_URL(@stage, path)`` needs READ on the stage (the caller's right, as the
  function's usage notes say for an internal stage) and answers an opaque scoped URL.
* The reader UDF is a Python function of the catalog whose body opens a file with
  ``SnowflakeFile.open``: calling it needs USAGE on the function, and the emulator answers the
  file's bytes for a scoped URL. A URL to a file that does not exist fails the statement with
  errno ``UDF_ERRNO`` (Snowflake's errno for an error raised inside a Python UDF).

Errors name stages and functions, never file contents (PHI).
"""

from __future__ import annotations

import hashlib
import sqlite3
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from .privileges import FUNCTION, STAGE, AccessError, insufficient, not_found

if TYPE_CHECKING:
    from .privileges import Catalog
    from .store import Store

UDF_ERRNO = 100357
# The SQLite table of staged files. The "_emu_tf_" prefix: the SQL engine leaves such tables
# alone when it maps user tables (they stand for table functions).
FILES_TABLE = "_emu_tf_stage_files"
_SCOPED_PREFIX = "https://spcs-local.snowflakecomputing.local/api/files/"
SCOPED_URL_FN = "SF_BUILD_SCOPED_FILE_URL"
READ_FN = "SF_READ_STAGED_FILE"
_READER_MARK = "SnowflakeFile.open"


def directory_enabled(props: dict[str, Any]) -> bool:
    """``DIRECTORY = (ENABLE = TRUE)`` as ``parse_properties`` stores it."""
    items = [str(v).upper() for v in props.get("DIRECTORY") or []]
    return any(items[i : i + 3] == ["ENABLE", "=", "TRUE"] for i in range(max(0, len(items) - 2)))


class Stages:
    """Staged files (in the store) and the SQL that reads them."""

    def __init__(self, catalog: Catalog, store: Store) -> None:
        self._catalog = catalog
        self._store = store
        with store.connection() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {FILES_TABLE} (STAGE TEXT NOT NULL, "
                "RELATIVE_PATH TEXT NOT NULL, SIZE INTEGER NOT NULL, LAST_MODIFIED TEXT, "
                "MD5 TEXT, DATA BLOB, PRIMARY KEY (STAGE, RELATIVE_PATH))"
            )

    # -- files ------------------------------------------------------------------------------
    def put(self, stage: str, path: str, data: bytes, *, now: str = "") -> None:
        """Place (or replace) a file; ``stage`` is DB.SCHEMA.STAGE. KeyError: no such stage."""
        if self._catalog.get(STAGE, stage) is None:
            raise KeyError(stage)
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ValueError("a stage path is relative, without '..'")
        with self._store.connection() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {FILES_TABLE} "
                "(STAGE, RELATIVE_PATH, SIZE, LAST_MODIFIED, MD5, DATA) VALUES (?, ?, ?, ?, ?, ?)",
                (stage, path, len(data), now, hashlib.md5(data).hexdigest(), data),  # noqa: S324
            )

    def read(self, stage: str, path: str) -> bytes | None:
        with self._store.connection() as conn:
            row = conn.execute(
                f"SELECT DATA FROM {FILES_TABLE} WHERE STAGE = ? AND RELATIVE_PATH = ?",
                (stage, path),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def paths(self, stage: str) -> list[str]:
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT RELATIVE_PATH FROM {FILES_TABLE} WHERE STAGE = ? ORDER BY 1", (stage,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    # -- SQL --------------------------------------------------------------------------------
    def prepare(
        self,
        tree: exp.Expr,
        roles: frozenset[str],
        qualify: Callable[[str], str],
    ) -> None:
        """Check and rewrite, in place, every ``DIRECTORY(@stage)``, ``BUILD_SCOPED_FILE_URL``
        and reader-UDF call of ``tree``. ``qualify`` completes a name to DB.SCHEMA.NAME."""
        for table in list(tree.find_all(exp.Table)):
            if isinstance(table.this, exp.DirectoryStage):
                self._directory(table, roles, qualify)
        for call in list(tree.find_all(exp.Anonymous)):
            if call.name.upper() == "BUILD_SCOPED_FILE_URL" and call.parent is not None:
                self._scoped_url(call, roles, qualify)
        for node in list(tree.find_all(exp.Dot, exp.Anonymous)):
            self._reader_call(node, roles, qualify)

    def _stage(self, raw: str, roles: frozenset[str], qualify: Callable[[str], str]) -> str:
        name = qualify(raw.strip().lstrip("@$").strip())
        if self._catalog.get(STAGE, name) is None or not self._catalog.visible(roles, STAGE, name):
            raise not_found(STAGE, name)
        if not self._catalog.holds(roles, STAGE, name, ("READ",)):
            raise insufficient(STAGE, name.rsplit(".", 1)[-1])
        return name

    def _directory(
        self, table: exp.Table, roles: frozenset[str], qualify: Callable[[str], str]
    ) -> None:
        stage = self._stage(table.this.this.name, roles, qualify)
        found = self._catalog.get(STAGE, stage)
        if found is None or not directory_enabled(found.props):
            raise AccessError(
                2210,
                "22000",
                f"SQL compilation error:\nDirectory table is not enabled on stage '{stage}'",
            )
        alias = table.alias or "DIRECTORY"
        files = (
            exp.select(
                "RELATIVE_PATH",
                "SIZE",
                "LAST_MODIFIED",
                "MD5",
                exp.column("MD5").as_("ETAG"),
                exp.Null().as_("FILE_URL"),
            )
            .from_(exp.to_table(FILES_TABLE))
            .where(exp.column("STAGE").eq(exp.Literal.string(stage)))
        )
        table.replace(files.subquery(alias))

    def _scoped_url(
        self, call: exp.Anonymous, roles: frozenset[str], qualify: Callable[[str], str]
    ) -> None:
        args = list(call.expressions)
        if len(args) not in {2, 3}:
            raise AccessError(
                938, "22023", "SQL compilation error:\nBUILD_SCOPED_FILE_URL takes a stage, a path"
            )
        stage = self._stage(args[0].sql(dialect="snowflake"), roles, qualify)
        call.replace(
            exp.Anonymous(this=SCOPED_URL_FN, expressions=[exp.Literal.string(stage), args[1]])
        )

    def _reader_call(
        self, node: exp.Expression, roles: frozenset[str], qualify: Callable[[str], str]
    ) -> None:
        """``DB.SCHEMA.NAME(url)``: a reader UDF when the catalog has a Python function of that
        name over one VARCHAR whose body opens a file with SnowflakeFile."""
        if isinstance(node, exp.Dot):
            call = node.expression
            if not isinstance(call, exp.Anonymous) or node.parent is None:
                return
            prefix = node.this.sql(dialect="snowflake")
        elif isinstance(node, exp.Anonymous) and not isinstance(node.parent, exp.Dot):
            call, prefix = node, ""
        else:
            return
        if len(call.expressions) != 1:
            return
        try:
            name = qualify(f"{prefix}.{call.name}" if prefix else call.name)
        except AccessError:
            return  # not a name this session can complete: not a reader
        key = f"{name}(VARCHAR)"
        function = self._catalog.get(FUNCTION, key)
        if function is None:
            return
        body = str(function.props.get("body") or "")
        if str(function.props.get("language")) != "PYTHON" or _READER_MARK not in body:
            return
        if not self._catalog.visible(roles, FUNCTION, key):
            raise not_found(FUNCTION, name)
        if not self._catalog.holds(roles, FUNCTION, key, ("USAGE",)):
            raise insufficient(FUNCTION, name.rsplit(".", 1)[-1])
        node.replace(exp.Anonymous(this=READ_FN, expressions=list(call.expressions)))

    # -- per row ----------------------------------------------------------------------------
    def register(self, conn: sqlite3.Connection, fail: Callable[[int, str, str], None]) -> None:
        """The SQLite functions the rewritten SQL calls; ``fail(code, sqlstate, message)``
        fails the statement."""

        def scoped_url(stage: Any, path: Any) -> Any:
            if stage is None or path is None:
                return None
            return _SCOPED_PREFIX + urllib.parse.quote(f"{stage}/{path}", safe="")

        def read(url: Any) -> Any:
            if not isinstance(url, str) or not url.startswith(_SCOPED_PREFIX):
                fail(UDF_ERRNO, "P0000", "Python Interpreter Error: not a scoped URL")
                return None
            stage, _, path = urllib.parse.unquote(url[len(_SCOPED_PREFIX) :]).partition("/")
            data = self.read(stage, path)
            if data is None:
                fail(UDF_ERRNO, "P0000", "Python Interpreter Error: FileNotFoundError")
            return data

        conn.create_function(SCOPED_URL_FN, 2, scoped_url, deterministic=True)
        conn.create_function(READ_FN, 1, read)
