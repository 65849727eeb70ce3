"""One SPCS public endpoint: a WSGI app per service, on its own loopback port.

Order per request, like the real ingress in front of a model service: auth (``Snowflake
Token="..."``) -> injected faults -> the lifecycle gate (a suspended or resuming service
answers 503 with ``Retry-After``) -> ``POST /<method>`` -> request format -> backend.

Request formats (SNOWFLAKE.md): flat ``{"data": [[row, c1, ...]]}``, wide
``{"data": [[row, {"col": v}]]}``, ``{"dataframe_split": {"index", "columns", "data"}}`` and
``{"dataframe_records": [...]}``, each with optional ``"params"``. The answer is always
``{"data": [[row, {"<out_col>": value}], ...]}``. Every answer carries ``X-Emulator-Backend``
(``lexicon`` or ``stand-in``) so nobody mistakes it for the real models.

Error bodies name rows and columns, never values (PHI).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from .auth import AuthError, EmulatorAuth
from .backends import BadInput
from .faults import Fault, FaultInjector

log = logging.getLogger(__name__)

TOKEN_CLASSIFICATION = "token-classification"  # noqa: S105 - a task name
ZERO_SHOT_IMAGE_CLASSIFICATION = "zero-shot-image-classification"
INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    TOKEN_CLASSIFICATION: ("inputs",),
    ZERO_SHOT_IMAGE_CLASSIFICATION: ("images", "candidate_labels"),
}
OUTPUT_COLUMN = {TOKEN_CLASSIFICATION: "outputs", ZERO_SHOT_IMAGE_CLASSIFICATION: "labels"}
BACKEND_HEADER = "X-Emulator-Backend"
MAX_BODY_BYTES = 64 * 1024 * 1024
BytesEncoding = Literal["base64", "hex"]


class BadRequestError(Exception):
    """The request cannot be served; ``reason`` is PHI-free and goes into the 400 body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ConnectionDroppedError(ConnectionError):
    """Raised after the socket is shut down: werkzeug treats it as a dropped connection."""


# -- request formats (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedRequest:
    index: list[Any]
    rows: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


def _row_index(value: Any, position: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequestError(f"row {position}: the row index must be an integer")
    return value


def _pick(record: Any, columns: Sequence[str], position: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BadRequestError(f"row {position}: expected an object of columns")
    missing = [c for c in columns if c not in record]
    if missing:
        raise BadRequestError(f"row {position}: missing column(s) {', '.join(missing)}")
    return {c: record[c] for c in columns}


def parse_request(body: Any, columns: Sequence[str]) -> ParsedRequest:
    """Normalise the four accepted request formats into rows of named columns."""
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    params = body.get("params")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise BadRequestError("params must be an object")
    index: list[Any] = []
    rows: list[dict[str, Any]] = []
    if "data" in body:
        data = body["data"]
        if not isinstance(data, list) or not data:
            raise BadRequestError("data must be a non-empty list of rows")
        for pos, row in enumerate(data):
            if not isinstance(row, list) or len(row) < 2:
                raise BadRequestError(f"row {pos}: expected [index, values...]")
            index.append(_row_index(row[0], pos))
            if len(row) == 2 and isinstance(row[1], dict):  # wide: [row, {"col": v}]
                rows.append(_pick(row[1], columns, pos))
            elif len(row) == 1 + len(columns):  # flat: [row, c1, c2, ...]
                rows.append(dict(zip(columns, row[1:], strict=True)))
            else:
                raise BadRequestError(
                    f"row {pos}: expected {len(columns)} value(s) after the index"
                )
    elif "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict):
            raise BadRequestError("dataframe_split must be an object")
        names, data = split.get("columns"), split.get("data")
        if not isinstance(names, list) or not isinstance(data, list) or not data:
            raise BadRequestError("dataframe_split needs columns and non-empty data lists")
        given = split.get("index", list(range(len(data))))
        if not isinstance(given, list) or len(given) != len(data):
            raise BadRequestError("dataframe_split index must match data in length")
        for pos, (idx, values) in enumerate(zip(given, data, strict=True)):
            if not isinstance(values, list) or len(values) != len(names):
                raise BadRequestError(f"row {pos}: expected one value per column")
            index.append(_row_index(idx, pos))
            rows.append(_pick(dict(zip(names, values, strict=True)), columns, pos))
    elif "dataframe_records" in body:
        records = body["dataframe_records"]
        if not isinstance(records, list) or not records:
            raise BadRequestError("dataframe_records must be a non-empty list")
        for pos, record in enumerate(records):
            index.append(pos)
            rows.append(_pick(record, columns, pos))
    else:
        raise BadRequestError("expected one of data, dataframe_split or dataframe_records")
    return ParsedRequest(index=index, rows=rows, params=params)


def decode_bytes(value: Any, encoding: BytesEncoding, position: int, column: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError(f"row {position}: column {column} must be {encoding} text")
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"row {position}: column {column} is not valid {encoding}") from None


def _labels(value: Any, position: int) -> list[str]:
    if isinstance(value, str):  # a JSON-encoded list is accepted too
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequestError(f"row {position}: candidate_labels must be a list") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequestError(
            f"row {position}: candidate_labels must be a non-empty list of strings"
        )
    return value


# -- backends --------------------------------------------------------------------------------


class _NerLike(Protocol):
    name: str

    def predict(self, texts: list[str]) -> list[list[dict[str, Any]]]: ...


class _ImageLike(Protocol):
    name: str

    def predict(
        self,
        images: list[bytes],
        candidate_labels: list[list[str]],
        hypothesis_template: str | None,
    ) -> list[list[dict[str, Any]]]: ...


Runner = Callable[[ParsedRequest], list[Any]]


def token_classification_runner(backend: _NerLike) -> Runner:
    def run(request: ParsedRequest) -> list[Any]:
        texts: list[str] = []
        for pos, row in enumerate(request.rows):
            if not isinstance(row["inputs"], str):
                raise BadRequestError(f"row {pos}: column inputs must be a string")
            texts.append(row["inputs"])
        return list(backend.predict(texts))

    return run


def image_runner(backend: _ImageLike, encoding: BytesEncoding) -> Runner:
    def run(request: ParsedRequest) -> list[Any]:
        images = [
            decode_bytes(row["images"], encoding, pos, "images")
            for pos, row in enumerate(request.rows)
        ]
        labels = [_labels(row["candidate_labels"], pos) for pos, row in enumerate(request.rows)]
        template = request.params.get("hypothesis_template")
        if template is not None and not isinstance(template, str):
            raise BadRequestError("params.hypothesis_template must be a string")
        return list(backend.predict(images, labels, template))

    return run


# -- per-service statistics ------------------------------------------------------------------


class IngressStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.rows = 0
        self.responses: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def record(self, status: int | str, *, rows: int = 0, fault: str | None = None) -> None:
        with self._lock:
            self.requests += 1
            self.rows += rows
            self.responses[str(status)] += 1
            if fault:
                self.faults[fault] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "rows": self.rows,
                "responses": dict(self.responses),
                "faults": dict(self.faults),
            }


# -- the WSGI app ----------------------------------------------------------------------------


class _Gate(Protocol):
    def ingress_gate(self, fqn: str) -> Any: ...


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers or {}
    )


def method_path(method: str) -> str:
    """Model method to URL path: ``_`` -> ``-`` (``__call__`` -> ``/--call--``)."""
    return "/" + method.replace("_", "-")


class IngressApp:
    """WSGI app for one service. ``scope_host`` (``127.0.0.1:PORT``) is set once bound."""

    def __init__(
        self,
        *,
        fqn: str,
        names: Iterable[str],
        method: str,
        task: str,
        runner: Runner,
        backend_name: str,
        account: _Gate,
        auth: EmulatorAuth,
        faults: FaultInjector,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if task not in INPUT_COLUMNS:
            raise ValueError(f"unsupported task {task!r}")
        self.fqn = fqn
        self.names = (fqn, *names)
        self.path = method_path(method)
        self.task = task
        self.columns = INPUT_COLUMNS[task]
        self.out_column = OUTPUT_COLUMN[task]
        self.backend_name = backend_name
        self.scope_host = ""
        self.stats = IngressStats()
        self._runner = runner
        self._account = account
        self._auth = auth
        self._faults = faults
        self._sleep = sleep

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        try:
            response = self._handle(request)
        except _ConnectionDroppedError:
            raise
        except HTTPException as exc:  # e.g. 413 from the body size cap
            code = exc.code or 400
            response = _json(code, {"error": "bad_request", "message": exc.name})
            self.stats.record(code)
        except Exception as exc:  # noqa: BLE001 - any bug becomes a PHI-free 500, not a crash
            log.error("ingress %s: internal error (%s)", self.fqn, type(exc).__name__)
            response = _json(500, {"error": "internal_error", "message": "emulator error"})
            self.stats.record(500)
        response.headers[BACKEND_HEADER] = self.backend_name
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        try:
            self._auth.verify_ingress(request.headers.get("Authorization"), self.scope_host)
        except AuthError as exc:
            self.stats.record(exc.status)
            return _json(exc.status, exc.body())

        fault = self._faults.decide(*self.names)
        if fault is not None:
            injected = self._inject(fault, request)
            if injected is not None:
                return injected

        decision = self._account.ingress_gate(self.fqn)
        if not decision.ready:
            headers = {}
            if decision.retry_after is not None:
                headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
            self.stats.record(503)
            return _json(
                503,
                {
                    "error": "service_unavailable",
                    "message": "service is not ready",
                    "status": decision.status,
                },
                headers,
            )

        if request.path != self.path:
            self.stats.record(404)
            return _json(404, {"error": "not_found", "message": f"no route; POST {self.path}"})
        if request.method != "POST":
            self.stats.record(405)
            return _json(405, {"error": "method_not_allowed", "message": "use POST"})

        try:
            try:
                body = json.loads(request.get_data(cache=False))
            except (ValueError, UnicodeDecodeError):
                raise BadRequestError("the body is not valid JSON") from None
            parsed = parse_request(body, self.columns)
            outputs = self._runner(parsed)
        except BadRequestError as exc:
            self.stats.record(400)
            return _json(400, {"error": "bad_request", "message": exc.reason})
        except BadInput as exc:  # the backend rejects it; its reason is a fixed sentence
            self.stats.record(400)
            return _json(400, {"error": "bad_input", "message": exc.reason})
        data = [
            [idx, {self.out_column: value}]
            for idx, value in zip(parsed.index, outputs, strict=True)
        ]
        self.stats.record(200, rows=len(data))
        return _json(200, {"data": data})

    def _inject(self, fault: Fault, request: Request) -> Response | None:
        if fault.latency_ms:
            self.stats.count_fault("latency")
            self._sleep(fault.latency_ms / 1000)
        if fault.drop:
            self.stats.record("dropped", fault="drop")
            _drop_connection(request)
        if fault.status is None:
            return None
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(fault.retry_after)))
        self.stats.record(fault.status, fault=str(fault.status))
        return _json(
            fault.status,
            {"error": "injected_fault", "message": f"injected HTTP {fault.status}"},
            headers,
        )


def _drop_connection(request: Request) -> None:
    # Read the body first: left in the buffer, the server would parse it as the next request.
    request.get_data(cache=False)
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise _ConnectionDroppedError("injected dropped connection")
