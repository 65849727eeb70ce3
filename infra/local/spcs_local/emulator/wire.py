"""The snowflake-connector-python wire protocol, as a werkzeug request handler.

Written against connector 5.2.0 (its Rust core speaks the classic Snowflake REST protocol):

- ``POST /session/v1/login-request``: ``data.AUTHENTICATOR`` is ``SNOWFLAKE_JWT`` (JWT in
  ``data.TOKEN``) or ``PROGRAMMATIC_ACCESS_TOKEN`` (PAT in ``data.TOKEN``); role, database,
  schema and warehouse come as query parameters. Once the credential checks out, the account
  decides the rest as Snowflake does (``SqlEngine.open_session``): the user must exist, its
  network policy must allow the client address, a requested role must be granted to the user
  (else the user's default role, else PUBLIC), and the warehouse / database / schema are kept
  only when that role may use them. Answers opaque session and master tokens.
- ``POST /queries/v1/query-request``: ``sqlText`` and ``bindings``
  (``{"1": {"type": "TEXT", "value": "x"}}``, values as strings, converted here by type).
  Always answers ``queryResultFormat: "json"`` (rowtype + rowset of strings), which the
  connector converts to Arrow itself; never Arrow.
- ``POST /session?delete=true`` (logout), ``/session/heartbeat``, ``/session/token-request``
  (renew with the master token), ``/telemetry/send``, ``/queries/v1/abort-request``,
  ``GET /queries/<id>/result`` and ``/monitoring/queries/<id>`` for ids of this session.

Errors are answered as Snowflake does: HTTP 200 with ``success: false``, ``code`` and
``message`` (and ``data.sqlState``), which the connector raises as ProgrammingError /
DatabaseError. Nothing here logs SQL text or bound values.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import logging
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from .sqlengine import (
    Column,
    LoginError,
    ResultSet,
    SessionInfo,
    SqlEngine,
    SqlError,
    new_query_id,
)

__all__ = ["AuthRejected", "LoginRequest", "WireProtocol", "to_wire"]

log = logging.getLogger(__name__)

SESSION_TTL_SECONDS = 3600
MASTER_TTL_SECONDS = 4 * 3600
_RESULTS_KEPT = 64  # per session, for GET /queries/<id>/result


class AuthRejected(Exception):  # noqa: N818 - the name server.py and auth use
    """Raised by the injected ``authenticate`` to refuse a login (message is shown)."""

    def __init__(self, message: str = "Authentication failed.", code: int = 390144) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class LoginRequest:
    account: str | None
    login_name: str | None
    authenticator: str | None
    token: str | None = field(repr=False)
    password: str | None = field(repr=False)
    role: str | None
    database: str | None
    schema: str | None
    warehouse: str | None
    client_ip: str | None = None


@dataclass
class _Session:
    info: SessionInfo
    token: str
    master_token: str
    expires_at: float
    master_expires_at: float
    results: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)


# -- value encoding -----------------------------------------------------------------------

_EPOCH_DATE = dt.date(1970, 1, 1)


def _epoch_text(stamp: dt.datetime, scale: int) -> str:
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    delta = stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, micro = divmod(micros, 1_000_000)
    if scale <= 0:
        return str(seconds)
    fraction = f"{micro:06d}{'0' * max(0, scale - 6)}"[:scale]
    return f"{seconds}.{fraction}"


def to_wire(value: Any, column: Column) -> str | None:
    """Python value -> the string Snowflake's JSON result format carries for its type."""
    if value is None:
        return None
    kind = column.type
    if kind == "fixed":
        if isinstance(value, bool):
            return "1" if value else "0"
        scale = column.scale or 0
        if scale and isinstance(value, Decimal | float | int):
            return f"{Decimal(str(value)):.{scale}f}"
        return str(int(value)) if isinstance(value, float | Decimal) else str(value)
    if kind == "real":
        return repr(float(value))
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "date":
        day = value.date() if isinstance(value, dt.datetime) else value
        return str((day - _EPOCH_DATE).days)
    if kind in {"timestamp_ltz", "timestamp_ntz", "timestamp_tz"}:
        stamp: dt.datetime = value
        scale = 9 if column.scale is None else column.scale
        if kind == "timestamp_ntz":
            naive = stamp.replace(tzinfo=None)
            return _epoch_text(naive.replace(tzinfo=dt.UTC), scale)
        if kind == "timestamp_tz":
            aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
            offset = aware.utcoffset() or dt.timedelta(0)
            return f"{_epoch_text(aware, scale)} {int(offset.total_seconds() // 60) + 1440}"
        return _epoch_text(stamp, scale)
    if kind == "binary":
        raw = value if isinstance(value, bytes | bytearray) else str(value).encode()
        return bytes(raw).hex().upper()
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def _rowtype(column: Column) -> dict[str, Any]:
    text_like = column.type in {"text", "variant", "object", "array", "binary"}
    return {
        "name": column.name,
        "database": "",
        "schema": "",
        "table": "",
        "nullable": column.nullable,
        "type": column.type,
        "length": column.length if text_like else None,
        "byteLength": column.length if text_like else None,
        "precision": column.precision,
        "scale": column.scale,
        "collation": None,
    }


def _from_binding(kind: str, value: Any) -> Any:
    """A bound value as the connector sends it (strings) -> Python value."""
    if value is None:
        return None
    if isinstance(value, list):  # array binding: not used by the gateway
        return [_from_binding(kind, v) for v in value]
    kind = kind.upper()
    text_value = str(value)
    if kind == "FIXED":
        number = Decimal(text_value)
        return int(number) if number == number.to_integral_value() else number
    if kind == "REAL":
        return float(text_value)
    if kind == "BOOLEAN":
        return text_value.strip().lower() in {"true", "1"}
    if kind in {"TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "TIMESTAMP"}:
        parts = text_value.split()
        nanos = int(parts[0])
        stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=nanos // 1000)
        if len(parts) == 2:  # TIMESTAMP_TZ: "<nanos> <offset minutes + 1440>"
            stamp = stamp.astimezone(dt.timezone(dt.timedelta(minutes=int(parts[1]) - 1440)))
        return stamp
    if kind == "DATE":
        millis = int(text_value)
        return _EPOCH_DATE + dt.timedelta(milliseconds=millis)
    if kind == "BINARY":
        return bytes.fromhex(text_value)
    return text_value  # TEXT, ANY, VARIANT, ...


def _bindings(raw: Any) -> list[Any] | None:
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise SqlError(2049, "42601", "SQL compilation error: Invalid bindings.")
    values: list[Any] = []
    try:
        for key in sorted(raw, key=lambda k: int(k)):
            item = raw[key]
            values.append(_from_binding(str(item.get("type", "TEXT")), item.get("value")))
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        raise SqlError(2049, "42601", "SQL compilation error: Invalid bindings.") from None
    return values


# -- responses ----------------------------------------------------------------------------


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _failure(code: int | str, message: str, data: dict[str, Any] | None = None) -> Response:
    code_text = code if isinstance(code, str) else f"{code:06d}"
    return _json(
        {"data": data, "code": code_text, "message": message, "success": False, "headers": None}
    )


def _ok(data: Any = None) -> Response:
    return _json({"data": data, "code": None, "message": None, "success": True})


class WireProtocol:
    """Connector endpoints over a SqlEngine; ``dispatch`` answers None for other paths."""

    def __init__(
        self,
        engine: SqlEngine,
        authenticate: Callable[[LoginRequest], str],
        *,
        now: Callable[[], float] = time.time,
        session_ttl: float = SESSION_TTL_SECONDS,
    ) -> None:
        self.engine = engine
        self._authenticate = authenticate
        self._now = now
        self._ttl = session_ttl
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}  # by session token
        self._by_master: dict[str, _Session] = {}
        self._session_ids = iter(range(1_000_001, 2**62))

    # -- routing --------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response | None:
        path = request.path.rstrip("/") or "/"
        if not (
            path == "/session"
            or path.startswith(("/session/", "/queries/", "/telemetry/", "/monitoring/queries/"))
        ):
            return None
        try:
            if request.method == "POST" and path == "/session/v1/login-request":
                return self._login(request)
            if request.method == "POST" and path == "/session/token-request":
                return self._renew(request)
            if request.method == "POST" and path == "/telemetry/send":
                return _ok()
            if (
                request.method == "POST"
                and path == "/session"
                and request.args.get("delete") == "true"
            ):
                return self._logout(request)
            session, failure = self._session(request)
            if session is None:
                return failure
            if request.method == "POST" and path == "/queries/v1/query-request":
                return self._query(request, session)
            if request.method == "POST" and path == "/session/heartbeat":
                return _ok()
            if request.method == "POST" and path == "/queries/v1/abort-request":
                return _ok()
            if (
                request.method == "GET"
                and path.startswith("/queries/")
                and path.endswith("/result")
            ):
                return self._stored_result(session, path.split("/")[2])
            if request.method == "GET" and path.startswith("/monitoring/queries/"):
                return self._query_status(session, path.rsplit("/", 1)[-1])
            return _failure(390400, "Unsupported request for the emulated account.")
        except _BadRequestError as exc:
            return _failure(390400, exc.message)

    # -- request bodies -------------------------------------------------------------------
    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.get_data(cache=False)
        encoding = (request.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip" or raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            payload = json.loads(raw or b"{}")
        except (OSError, ValueError, zlib.error):
            raise _BadRequestError("Request body is not valid (gzip) JSON.") from None
        if not isinstance(payload, dict):
            raise _BadRequestError("Request body must be a JSON object.")
        return payload

    @staticmethod
    def _token(request: Request) -> str | None:
        header = request.headers.get("Authorization") or ""
        prefix = "Snowflake Token="
        if not header.startswith(prefix):
            return None
        return header[len(prefix) :].strip().strip('"') or None

    # -- sessions -------------------------------------------------------------------------
    def _login(self, request: Request) -> Response:
        data = self._body(request).get("data") or {}
        if not isinstance(data, dict):
            raise _BadRequestError("login request data must be an object")
        args = request.args

        def arg(name: str) -> str | None:
            value = args.get(name)
            return value or None

        login = LoginRequest(
            account=data.get("ACCOUNT_NAME"),
            login_name=data.get("LOGIN_NAME"),
            authenticator=data.get("AUTHENTICATOR"),
            token=data.get("TOKEN"),
            password=data.get("PASSWORD"),
            role=arg("roleName"),
            database=arg("databaseName"),
            schema=arg("schemaName"),
            warehouse=arg("warehouse"),
            client_ip=request.remote_addr,
        )
        try:
            user = self._authenticate(login)
        except AuthRejected as exc:
            return _failure(
                exc.code,
                exc.message,
                {"nextAction": None, "inFlightCtx": None, "authnMethod": login.authenticator},
            )
        now = self._now()
        try:
            info = self.engine.open_session(
                user,
                role=login.role,
                warehouse=login.warehouse,
                database=login.database,
                schema=login.schema,
                client_ip=login.client_ip,
                session_id=next(self._session_ids),
            )
        except LoginError as exc:
            return _failure(
                exc.code,
                exc.message,
                {"nextAction": None, "inFlightCtx": None, "authnMethod": login.authenticator},
            )
        session = _Session(
            info=info,
            token=self._new_token("ST"),
            master_token=self._new_token("MT"),
            expires_at=now + self._ttl,
            master_expires_at=now + max(self._ttl, MASTER_TTL_SECONDS),
        )
        with self._lock:
            self._sessions[session.token] = session
            self._by_master[session.master_token] = session
        return _ok(
            {
                "masterToken": session.master_token,
                "token": session.token,
                "validityInSeconds": int(self._ttl),
                "masterValidityInSeconds": int(session.master_expires_at - now),
                "displayUserName": info.user,
                "serverVersion": "9.0.0",
                "firstLogin": False,
                "remMeToken": None,
                "remMeValidityInSeconds": 0,
                "healthCheckInterval": 45,
                "newClientForUpgrade": None,
                "sessionId": info.session_id,
                "parameters": self._parameters(),
                "sessionInfo": self._session_info(info),
                "idToken": None,
                "idTokenValidityInSeconds": 0,
                "responseData": None,
                "mfaToken": None,
                "mfaTokenValidityInSeconds": 0,
            }
        )

    @staticmethod
    def _new_token(prefix: str) -> str:
        return f"{prefix}:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")

    @staticmethod
    def _parameters() -> list[dict[str, Any]]:
        return [
            {"name": "TIMEZONE", "value": "UTC"},
            {"name": "AUTOCOMMIT", "value": True},
            {"name": "CLIENT_SESSION_KEEP_ALIVE", "value": False},
            {"name": "CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY", "value": 3600},
            {"name": "CLIENT_RESULT_PREFETCH_THREADS", "value": 1},
            {"name": "QUERY_RESULT_FORMAT", "value": "JSON"},
        ]

    @staticmethod
    def _session_info(info: SessionInfo) -> dict[str, Any]:
        return {
            "databaseName": info.database,
            "schemaName": info.schema,
            "warehouseName": info.warehouse,
            "roleName": info.role,
        }

    def _session(self, request: Request) -> tuple[_Session | None, Response]:
        token = self._token(request)
        with self._lock:
            session = self._sessions.get(token or "")
        if session is None:
            return None, _failure(
                390111, "Session no longer exists.  New login required to access the service."
            )
        if self._now() >= session.expires_at:
            return None, _failure(390112, "Your session has expired. Please login again.")
        return session, _ok()

    def _renew(self, request: Request) -> Response:
        body = self._body(request)
        master = self._token(request)
        with self._lock:
            session = self._by_master.get(master or "")
            if session is None or self._now() >= session.master_expires_at:
                return _failure(
                    390114, "Authentication token has expired.  The user must authenticate again."
                )
            if body.get("oldSessionToken") not in (None, session.token):
                return _failure(
                    390111, "Session no longer exists.  New login required to access the service."
                )
            self._sessions.pop(session.token, None)
            session.token = self._new_token("ST")
            session.expires_at = self._now() + self._ttl
            self._sessions[session.token] = session
        return _ok(
            {
                "sessionToken": session.token,
                "validityInSecondsST": int(self._ttl),
                "masterToken": session.master_token,
                "validityInSecondsMT": int(session.master_expires_at - self._now()),
                "sessionId": session.info.session_id,
            }
        )

    def _logout(self, request: Request) -> Response:
        token = self._token(request)
        with self._lock:
            session = self._sessions.pop(token or "", None)
            if session is not None:
                self._by_master.pop(session.master_token, None)
        return _ok()

    # -- queries --------------------------------------------------------------------------
    def _query(self, request: Request, session: _Session) -> Response:
        body = self._body(request)
        sql = body.get("sqlText")
        query_id = new_query_id()
        if not isinstance(sql, str):
            return _failure(
                1003,
                "SQL compilation error:\nsyntax error line 1 at position 0.",
                self._error_data(query_id, "42000"),
            )
        try:
            bindings = _bindings(body.get("bindings"))
            result = self.engine.execute(sql, bindings, session=session.info)
        except SqlError as exc:
            return _failure(exc.code, exc.message, self._error_data(query_id, exc.sqlstate))
        data = self._result_data(result, query_id, session.info, len(bindings or []))
        with self._lock:
            session.results[query_id] = data
            while len(session.results) > _RESULTS_KEPT:
                session.results.popitem(last=False)
        return _ok(data)

    @staticmethod
    def _error_data(query_id: str, sqlstate: str) -> dict[str, Any]:
        return {
            "internalError": False,
            "errorCode": None,
            "age": 0,
            "sqlState": sqlstate,
            "queryId": query_id,
            "line": -1,
            "pos": -1,
            "type": "COMPILATION",
        }

    def _result_data(
        self, result: ResultSet, query_id: str, info: SessionInfo, binds: int
    ) -> dict[str, Any]:
        rowset = [
            [to_wire(v, c) for v, c in zip(row, result.columns, strict=True)] for row in result.rows
        ]
        data: dict[str, Any] = {
            "parameters": self._parameters(),
            "rowtype": [_rowtype(c) for c in result.columns],
            "rowset": rowset,
            "total": len(rowset),
            "returned": len(rowset),
            "queryId": query_id,
            "databaseProvider": None,
            "finalDatabaseName": info.database,
            "finalSchemaName": info.schema,
            "finalWarehouseName": info.warehouse,
            "finalRoleName": info.role,
            "numberOfBinds": binds,
            "arrayBindSupported": False,
            "statementTypeId": result.statement_type_id,
            "version": 1,
            "sendResultTime": int(self._now() * 1000),
            "queryResultFormat": "json",
            "queryContext": {"entries": []},
        }
        if result.stats:
            data["stats"] = dict(result.stats)
        return data

    def _stored_result(self, session: _Session, query_id: str) -> Response:
        with self._lock:
            data = session.results.get(query_id)
        if data is None:
            return _failure(
                2003,
                "SQL compilation error:\n"
                f"Query '{query_id[:64]}' does not exist or not authorized.",
            )
        return _ok(data)

    def _query_status(self, session: _Session, query_id: str) -> Response:
        with self._lock:
            known = query_id in session.results
        if not known:
            return _failure(2003, "Query does not exist or not authorized.")
        return _ok({"queries": [{"id": query_id, "status": "SUCCESS", "state": "SUCCEEDED"}]})


class _BadRequestError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
