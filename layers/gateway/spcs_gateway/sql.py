"""``SnowflakeSql``: one snowflake-connector-python connection per container, bound parameters only.

* Opened lazily on the first statement and reused across warm invocations (a login costs a
  round trip plus key-pair auth; a kept session costs nothing).
* ``paramstyle="qmark"``: values travel as server-side bindings, never inside the SQL text.
* A closed or expired session is reopened once and the statement retried; the gateway only
  issues idempotent statements (SELECT, MERGE on EVENT_ID), so a retry cannot double a row.
* Connector errors become ``TransientError`` with a fixed detail and the connector's errno: the
  connector's message is dropped because it may echo SQL values. A missing grant (002003
  "does not exist or not authorized", 003001 "insufficient privileges") is a
  ``ConfigurationError(PRIVILEGE_MISSING)`` instead: retrying cannot fix it, an operator can.

Lambda: the connector writes caches under ``$HOME`` (OCSP responses, token cache). Lambda's
home is read-only, so the template sets ``HOME=/tmp``; ``ensure_writable_home()`` does the same
when it finds ``$HOME`` unwritable, before the connector is imported.

SnapStart (``snapshot.py``): the connector is imported before the snapshot (not at plain init,
where a function that never reaches SQL would pay for it), and after a restore the session is
forgotten without a logout: a session captured in the snapshot would be shared by every
restored environment, and logging it out from one would end it for all. The next statement
logs in again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from spcs_gateway import snapshot
from spcs_gateway.errors import ConfigurationError, ErrorCode, GatewayError, TransientError
from spcs_gateway.settings import env_str

if TYPE_CHECKING:
    from snowflake.connector import SnowflakeConnection

    from spcs_gateway.auth import TokenProvider

LOGIN_TIMEOUT_S = 20
# Connector 5.x splits the classic ``network_timeout`` into these two (wall clock, retries
# included); the classic name still works but is deprecated.
QUERY_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 30
# errnos that mean "this session is gone, log in again" (connector 5.x keeps the classic codes).
_SESSION_GONE_ERRNOS = frozenset({250002, 390111, 390112, 390114})
# "Object does not exist or not authorized" and "Insufficient privileges to operate on ...".
PRIVILEGE_ERRNOS = frozenset({2003, 3001})

Connect = Callable[[], "SnowflakeConnection"]


def ensure_writable_home() -> None:
    home = env_str(os.environ, "HOME")
    if home and os.access(home, os.W_OK):
        return
    os.environ["HOME"] = tempfile.gettempdir()


def warm_connector_import() -> None:
    """Import the connector (a SnapStart before-snapshot hook: paid once, at publish)."""
    ensure_writable_home()
    import snowflake.connector  # noqa: F401


def make_connect(
    tokens: TokenProvider,
    *,
    login_timeout: int = LOGIN_TIMEOUT_S,
    query_timeout: int = QUERY_TIMEOUT_S,
    request_timeout: int = REQUEST_TIMEOUT_S,
) -> Connect:
    """A ``connect()`` for ``SnowflakeSql``; credentials are read at each (re)connect, so a
    rotated key or PAT is picked up by the next login."""

    def connect() -> SnowflakeConnection:
        ensure_writable_home()
        import snowflake.connector

        return snowflake.connector.connect(
            **tokens.connector_kwargs(),
            paramstyle="qmark",
            client_session_keep_alive=False,
            # No async queries are ever left running: closing may always log the session out.
            enable_server_session_keep_alive_auto_detection=False,
            login_timeout=login_timeout,
            query_timeout=query_timeout,
            request_timeout=request_timeout,
        )

    return connect


# Login refusals that retrying cannot fix (an operator can): the user or its key/PAT is not
# accepted, the requested role is not granted to the user, the network policy refuses the IP.
LOGIN_REFUSED = {
    390100: ErrorCode.AUTH_FAILED,  # incorrect user or credential
    390144: ErrorCode.AUTH_FAILED,  # JWT token is invalid
    390189: ErrorCode.PRIVILEGE_MISSING,  # role not granted to this user
    390422: ErrorCode.CONFIGURATION_ERROR,  # IP not allowed by the network policy
}


def login_error(exc: BaseException) -> GatewayError:
    """The gateway error for a failed login: errno only, never the connector's message."""
    errno = _errno(exc)
    code = LOGIN_REFUSED.get(errno)
    if code is not None:
        return ConfigurationError(code, f"Snowflake refused the login (errno {errno})")
    return TransientError(ErrorCode.DEPENDENCY_ERROR, f"Snowflake login failed (errno {errno})")


def statement_error(exc: BaseException, error_code: ErrorCode) -> GatewayError:
    """The gateway error for a failed statement: errno only, never the connector's message."""
    errno = _errno(exc)
    known = None if errno == -1 else errno
    if errno in PRIVILEGE_ERRNOS:
        return ConfigurationError(
            ErrorCode.PRIVILEGE_MISSING,
            f"the role lacks a privilege or the object is missing (errno {errno})",
            errno=known,
        )
    return TransientError(error_code, f"Snowflake statement failed (errno {errno})", errno=known)


def _errno(exc: BaseException) -> int:
    value = getattr(exc, "errno", None)
    return value if isinstance(value, int) else -1


class SnowflakeSql:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: SnowflakeConnection | None = None
        self._lock = threading.Lock()
        self.connects = 0  # logins performed (tests, metrics)
        snapshot.before_snapshot(self._before_snapshot, name="sql.before_snapshot")
        snapshot.after_restore(self.forget_session, name="sql.forget_session")

    def _before_snapshot(self) -> None:
        warm_connector_import()
        self.close()  # no session in the snapshot (init opens none; a hook might have)

    def forget_session(self) -> None:
        """Drop the session without logging it out (after a restore); the next statement
        logs in again."""
        with self._lock:
            self._conn = None

    def execute(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        error_code: ErrorCode = ErrorCode.RESULTS_WRITE_FAILED,
    ) -> list[tuple[Any, ...]]:
        """Run one statement with qmark bindings; return its rows (empty for DML)."""
        rows = self._run(sql, params, error_code, dict_rows=False)
        return [tuple(row) for row in rows]

    def query(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        error_code: ErrorCode = ErrorCode.DEPENDENCY_ERROR,
    ) -> list[dict[str, Any]]:
        """Run one statement; rows as dicts keyed by lower-case column name (``SHOW`` output,
        ``spcs_services.QueryRunner``). Same session reuse, retry and error rules as
        ``execute``."""
        rows = self._run(sql, params, error_code, dict_rows=True)
        return [{str(k).lower(): v for k, v in row.items()} for row in rows]

    def _run(
        self, sql: str, params: Sequence[Any], error_code: ErrorCode, *, dict_rows: bool
    ) -> list[Any]:
        """One statement on the shared session; a session found dead is reopened once and the
        statement re-run (every statement the gateway sends is safe to repeat: SELECT, SHOW,
        MERGE on EVENT_ID, ALTER ... RESUME/SUSPEND/SET)."""
        from snowflake.connector import DictCursor
        from snowflake.connector import errors as sf_errors

        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    with conn.cursor(DictCursor) if dict_rows else conn.cursor() as cursor:
                        cursor.execute(sql, list(params))
                        return list(cursor.fetchall()) if cursor.description else []
                except sf_errors.Error as exc:
                    if attempt == 1 and self._session_gone(exc, conn):
                        self._drop()
                        continue
                    raise statement_error(exc, error_code) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connection(self) -> SnowflakeConnection:
        if self._conn is not None and not self._is_closed(self._conn):
            return self._conn
        self._drop()
        from snowflake.connector import errors as sf_errors

        try:
            self._conn = self._connect()
        except GatewayError:
            raise  # credentials: already PHI-free and classified
        except sf_errors.Error as exc:
            raise login_error(exc) from None
        self.connects += 1
        return self._conn

    @staticmethod
    def _is_closed(conn: SnowflakeConnection) -> bool:
        try:
            return bool(conn.is_closed())
        except Exception:  # noqa: BLE001 - an unreadable state counts as closed
            return True

    def _session_gone(self, exc: BaseException, conn: SnowflakeConnection) -> bool:
        from snowflake.connector import errors as sf_errors

        if isinstance(exc, sf_errors.OperationalError | sf_errors.InterfaceError):
            return True
        if type(exc).__name__ == "ReauthenticationRequest":
            return True
        return _errno(exc) in _SESSION_GONE_ERRNOS or self._is_closed(conn)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing a dead session may fail; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()
