"""One SPCS public endpoint: a WSGI app per service, on its own loopback port.

Order per request, like the real ingress in front of a model service:

1. auth (``Snowflake Token="..."``): 401;
2. the caller's role must hold the endpoint's service role
   (``SERVICE ROLE <svc>!ALL_ENDPOINTS_USAGE``): 403;
3. injected faults (latency, dropped connection, error answers);
4. the lifecycle gate, shaped like a proxy in front of a model server that is starting:
   a suspended service answers 503; while it resumes (PENDING) 503 with ``Retry-After``,
   then 502 for the last part of the resume (containers up, the model server still loading:
   the proxy does not wait for it), then for ``startup_unauthorized_seconds`` after it turned
   RUNNING even a valid token gets 401 (Snowflake's own ingress test helpers treat
   401/502/503/504 as transient while a service starts);
5. ``POST <method path>`` (``/predict`` for ``predict``);
6. the request format, checked against the deployment's signature (``spcs_models.spec``);
7. the backend, within the ingress request limit (``request_timeout_seconds``, 60 s like
   Snowflake's ingress): slower answers become 504 at the limit and are discarded.

Request formats (snowflake-ml-python's REST tests): flat ``{"data": [[row, in_1, ...,
in_n, p_1, ..., p_m]]}`` (every input, then EVERY parameter in signature order; any other
count is a 400, as real Snowflake answers for signatures with parameters); wide ``{"data":
[[row, {"col": v, "param": v}]]}`` (parameters by name, missing -> default);
``{"dataframe_split": {"index", "columns", "data"}}`` and ``{"dataframe_records": [...]}``
with an optional top-level ``"params": {...}`` (missing -> default, unknown name -> 400).
Parameter values are checked against their dtype. The answer is always ``{"data": [[row,
{"<output column>": value}], ...]}``. Every answer carries ``X-Emulator-Backend`` so nobody
mistakes it for the real models.

Error bodies name rows, columns and parameters, never values (PHI).
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

from spcs_models import spec
from spcs_models.spec import ModelDeployment, Param, Signature

from .auth import AuthError, EmulatorAuth, IngressCaller
from .backends import BadInput
from .clock import Clock
from .faults import Fault, FaultInjector

log = logging.getLogger(__name__)

TOKEN_CLASSIFICATION = "token-classification"  # noqa: S105 - a task name
ZERO_SHOT_IMAGE_CLASSIFICATION = "zero-shot-image-classification"
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
    # Every parameter of the signature, by name: the caller's value or the default.
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


_INT_DTYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_FLOAT_DTYPES = frozenset({"FLOAT", "DOUBLE"})
_TEXT_DTYPES = frozenset({"STRING", "BYTES", "TIMESTAMP_NTZ"})  # BYTES/TIMESTAMP: serialised


def _dtype_ok(dtype: str, value: Any) -> bool:
    if dtype in _TEXT_DTYPES:
        return isinstance(value, str)
    if dtype in _INT_DTYPES:
        return isinstance(value, int) and not isinstance(value, bool)
    if dtype in _FLOAT_DTYPES:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if dtype == "BOOL":
        return isinstance(value, bool)
    if dtype == "OBJECT":
        return isinstance(value, dict)
    return True  # a dtype this emulator does not know: not checked


def check_param(param: Param, value: Any, where: str) -> Any:
    """``value`` if it fits the parameter's dtype (and shape), else a 400 naming the
    parameter. Null is accepted only when the default is null (``ParamSpec`` semantics)."""
    if value is None:
        if param.default is None:
            return None
        raise BadRequestError(f"{where}: parameter {param.name} must not be null")
    shape = getattr(param, "shape", None)
    values = value if shape is not None else [value]
    if shape is not None and not isinstance(value, list):
        raise BadRequestError(f"{where}: parameter {param.name} must be a list")
    if not all(_dtype_ok(param.dtype, v) for v in values):
        raise BadRequestError(f"{where}: parameter {param.name} must be of type {param.dtype}")
    return value


def _same_params(
    resolved: dict[str, Any] | None, given: dict[str, Any], position: int
) -> dict[str, Any]:
    """Parameters apply to the whole request: every row must carry the same values."""
    if resolved is None:
        return given
    for name, value in given.items():
        if resolved[name] != value:
            raise BadRequestError(
                f"row {position}: parameter {name} differs from row 0 "
                "(parameters apply to the whole request)"
            )
    return resolved


def _flat_params(signature: Signature, values: Sequence[Any], position: int) -> dict[str, Any]:
    where = f"row {position}"
    return {p.name: check_param(p, v, where) for p, v in zip(signature.params, values, strict=True)}


def _wide_params(signature: Signature, record: dict[str, Any], position: int) -> dict[str, Any]:
    where = f"row {position}"
    return {
        p.name: check_param(p, record[p.name], where) if p.name in record else p.default
        for p in signature.params
    }


def _top_level_params(signature: Signature, given: dict[str, Any]) -> dict[str, Any]:
    known = {p.name for p in signature.params}
    unknown = sorted(name for name in given if name not in known)
    if unknown:
        raise BadRequestError(
            f"params: unknown parameter(s) {', '.join(n[:64] for n in unknown)}"
            + (f"; the signature has {', '.join(sorted(known))}" if known else "; it has none")
        )
    return {
        p.name: check_param(p, given[p.name], "params") if p.name in given else p.default
        for p in signature.params
    }


def _flat_shape_error(signature: Signature, position: int, got: int) -> BadRequestError:
    inputs, params = signature.input_names, signature.param_names
    expected = len(inputs) + len(params)
    what = f"the input(s) {', '.join(inputs)}"
    if params:
        what += f" then every parameter in signature order ({', '.join(params)})"
    return BadRequestError(
        f"row {position}: expected {expected} value(s) after the row index ({what}), got {got}"
    )


def parse_request(body: Any, signature: Signature) -> ParsedRequest:
    """Normalise the four accepted request formats into rows of named input columns and the
    request's parameters (all of them, defaults filled in)."""
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    top = body.get("params")
    top = {} if top is None else top
    if not isinstance(top, dict):
        raise BadRequestError("params must be an object")
    columns = signature.input_names
    n_in, n_params = len(columns), len(signature.params)
    index: list[Any] = []
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] | None = None
    if "data" in body:
        if top:
            raise BadRequestError(
                "params: with the data format, parameters travel in the rows "
                "(flat: after the inputs; wide: by name)"
            )
        data = body["data"]
        if not isinstance(data, list) or not data:
            raise BadRequestError("data must be a non-empty list of rows")
        for pos, row in enumerate(data):
            if not isinstance(row, list) or len(row) < 2:
                raise BadRequestError(f"row {pos}: expected [index, values...]")
            index.append(_row_index(row[0], pos))
            if len(row) == 2 and isinstance(row[1], dict):  # wide: [row, {"col": v}]
                rows.append(_pick(row[1], columns, pos))
                given = _wide_params(signature, row[1], pos)
            elif len(row) == 1 + n_in + n_params:  # flat: [row, in_1.., p_1..]
                rows.append(dict(zip(columns, row[1 : 1 + n_in], strict=True)))
                given = _flat_params(signature, row[1 + n_in :], pos)
            else:
                raise _flat_shape_error(signature, pos, len(row) - 1)
            params = _same_params(params, given, pos)
    elif "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict):
            raise BadRequestError("dataframe_split must be an object")
        names, data = split.get("columns"), split.get("data")
        if not isinstance(names, list) or not isinstance(data, list) or not data:
            raise BadRequestError("dataframe_split needs columns and non-empty data lists")
        given_index = split.get("index", list(range(len(data))))
        if not isinstance(given_index, list) or len(given_index) != len(data):
            raise BadRequestError("dataframe_split index must match data in length")
        for pos, (idx, values) in enumerate(zip(given_index, data, strict=True)):
            if not isinstance(values, list) or len(values) != len(names):
                raise BadRequestError(f"row {pos}: expected one value per column")
            index.append(_row_index(idx, pos))
            rows.append(_pick(dict(zip(names, values, strict=True)), columns, pos))
        params = _top_level_params(signature, top)
    elif "dataframe_records" in body:
        records = body["dataframe_records"]
        if not isinstance(records, list) or not records:
            raise BadRequestError("dataframe_records must be a non-empty list")
        for pos, record in enumerate(records):
            index.append(pos)
            rows.append(_pick(record, columns, pos))
        params = _top_level_params(signature, top)
    else:
        raise BadRequestError("expected one of data, dataframe_split or dataframe_records")
    return ParsedRequest(index=index, rows=rows, params=params or {})


def decode_bytes(value: Any, encoding: BytesEncoding, position: int, column: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError(f"row {position}: column {column} must be {encoding} text")
    try:
        if encoding == "hex":
            return bytes.fromhex(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"row {position}: column {column} is not valid {encoding}") from None


def _labels(value: Any, position: int, column: str) -> list[str]:
    if isinstance(value, str):  # a JSON-encoded list is accepted too
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequestError(f"row {position}: column {column} must be a list") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequestError(
            f"row {position}: column {column} must be a non-empty list of strings"
        )
    return value


# -- backends --------------------------------------------------------------------------------


class _NerLike(Protocol):
    def predict(self, texts: list[str]) -> list[list[dict[str, Any]]]: ...


class _ImageLike(Protocol):
    def predict(
        self,
        images: list[bytes],
        candidate_labels: list[list[str]],
        hypothesis_template: str | None,
    ) -> list[list[dict[str, Any]]]: ...


Runner = Callable[[ParsedRequest], list[Any]]


def token_classification_runner(
    backend: _NerLike, signature: Signature = spec.NER_SIGNATURE
) -> Runner:
    (text_column,) = signature.input_names

    def run(request: ParsedRequest) -> list[Any]:
        texts: list[str] = []
        for pos, row in enumerate(request.rows):
            if not isinstance(row[text_column], str):
                raise BadRequestError(f"row {pos}: column {text_column} must be a string")
            texts.append(row[text_column])
        return list(backend.predict(texts))

    return run


def image_runner(
    backend: _ImageLike, encoding: BytesEncoding, signature: Signature = spec.CLIP_SIGNATURE
) -> Runner:
    image_column, labels_column = signature.input_names

    def run(request: ParsedRequest) -> list[Any]:
        images = [
            decode_bytes(row[image_column], encoding, pos, image_column)
            for pos, row in enumerate(request.rows)
        ]
        labels = [
            _labels(row[labels_column], pos, labels_column) for pos, row in enumerate(request.rows)
        ]
        template = request.params.get("hypothesis_template")
        if template is not None and not isinstance(template, str):
            raise BadRequestError("params: parameter hypothesis_template must be of type STRING")
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


@dataclass(frozen=True)
class IngressSettings:
    """Ingress limits and start-up behaviour (``EmulatorConfig`` fields of the same names)."""

    # Snowflake's ingress gives up on a request after 60 s (snowflake-ml-python's REST tests:
    # "ingress will timeout after 60 seconds"); the caller then gets 504.
    request_timeout_seconds: float = 60.0
    # After a resume turns the service RUNNING, valid tokens get 401 for this long; 0 disables.
    startup_unauthorized_seconds: float = 1.0
    # The last part of a resume (PENDING) that answers 502 instead of 503; 0 disables.
    startup_bad_gateway_fraction: float = 0.5
    # Emulated model time per row (0: none). With it, each READY instance serves
    # ``instance_concurrency`` requests at once, so N instances serve N x the rows per second.
    row_seconds: float = 0.0
    instance_concurrency: int = 1

    def __post_init__(self) -> None:
        if self.request_timeout_seconds <= 0:
            raise ValueError("request_timeout_seconds must be > 0")
        if self.startup_unauthorized_seconds < 0:
            raise ValueError("startup_unauthorized_seconds must be >= 0")
        if not 0.0 <= self.startup_bad_gateway_fraction <= 1.0:
            raise ValueError("startup_bad_gateway_fraction must be within 0..1")
        if self.row_seconds < 0 or self.instance_concurrency < 1:
            raise ValueError("row_seconds must be >= 0 and instance_concurrency >= 1")


class InstanceCapacity:
    """Requests in service at once: READY instances x per-instance concurrency. A request holds
    its slot for its rows x ``row_seconds``; one that finds no free slot waits (up to its
    deadline), as a request queued at a busy instance would."""

    POLL_S = 0.02

    def __init__(
        self,
        ready: Callable[[], int],
        settings: IngressSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ready = ready
        self._per_instance = settings.instance_concurrency
        self._row_s = settings.row_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self._busy = 0
        self._lock = threading.Condition()

    def hold(self, rows: int, deadline: float) -> bool:
        """Serve ``rows`` on a free slot; False when none freed up before ``deadline``."""
        with self._lock:
            while self._busy >= max(self._ready(), 0) * self._per_instance:
                left = deadline - self._monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(self.POLL_S, left))  # READY instances can change too
            self._busy += 1
        try:
            self._sleep(rows * self._row_s)
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify()
        return True


class _Gate(Protocol):
    def ingress_gate(self, fqn: str) -> Any: ...


class EndpointRoles(Protocol):
    """What the ingress asks the account about roles (``state.Account``; optional methods,
    looked up with ``getattr`` so an account without them lets every role through)."""

    def role_can_use_endpoint(self, role: str, fqn: str) -> bool: ...

    def user_default_role(self, user: str) -> str | None: ...


PUBLIC_ROLE = "PUBLIC"  # a session without a role (no default role) is PUBLIC
PENDING_STATUS, RUNNING_STATUS = "PENDING", "RUNNING"
FORBIDDEN_BODY = {
    "error": "forbidden",
    "message": "the caller's role lacks the endpoint's service role",
}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers or {}
    )


def method_path(method: str) -> str:
    """Model method to URL path: ``_`` -> ``-`` (``predict`` -> ``/predict``,
    ``__call__`` -> ``/--call--``)."""
    return "/" + method.replace("_", "-")


def normalize_role(role: str) -> str:
    """Snowflake identifier rules: unquoted is upper-cased, ``"Quoted"`` keeps its case."""
    role = role.strip()
    if len(role) >= 2 and role[0] == role[-1] == '"':
        return role[1:-1].replace('""', '"')
    return role.upper()


class _TimedOutError(Exception):
    """The backend (plus injected latency) did not answer within the request limit."""


class IngressApp:
    """WSGI app for one service. ``scope_host`` (``127.0.0.1:PORT``) is set once bound."""

    def __init__(
        self,
        *,
        fqn: str,
        names: Iterable[str],
        deployment: ModelDeployment,
        runner: Runner,
        backend_name: str | Callable[[], str],
        account: _Gate,
        auth: EmulatorAuth,
        faults: FaultInjector,
        settings: IngressSettings | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fqn = fqn
        self.names = (fqn, *names)
        self.deployment = deployment
        self.signature = deployment.signature
        self.path = method_path(deployment.method)
        self.task = deployment.task
        self.out_column = self.signature.output_name
        self._backend_name = backend_name
        self.scope_host = ""
        self.stats = IngressStats()
        self.settings = settings or IngressSettings()
        self._runner = runner
        self._account = account
        self._auth = auth
        self._faults = faults
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._capacity = InstanceCapacity(
            self._ready_instances, self.settings, sleep=sleep, monotonic=monotonic
        )

    def _ready_instances(self) -> int:
        row = self._service_row()
        return sum(1 for c in getattr(row, "containers", ()) if c.status == "READY")

    @property
    def backend_name(self) -> str:
        name = self._backend_name
        return name() if callable(name) else name

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

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock.now()
        now = getattr(self._account, "now", None)
        return float(now()) if callable(now) else time.time()

    def _handle(self, request: Request) -> Response:
        deadline = self._monotonic() + self.settings.request_timeout_seconds
        try:
            caller = self._auth.verify_ingress_caller(
                request.headers.get("Authorization"), self.scope_host
            )
        except AuthError as exc:
            self.stats.record(exc.status)
            return _json(exc.status, exc.body())

        if not self._role_allowed(caller):
            self.stats.record(403)
            return _json(403, FORBIDDEN_BODY)

        fault = self._faults.decide(*self.names)
        if fault is not None:
            injected = self._inject(fault, request, deadline)
            if injected is not None:
                return injected

        starting = self._lifecycle_answer(self._account.ingress_gate(self.fqn))
        if starting is not None:
            return starting

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
            parsed = parse_request(body, self.signature)
            if self.settings.row_seconds and not self._capacity.hold(len(parsed.index), deadline):
                raise _TimedOutError
            outputs = self._run(parsed, deadline)
        except BadRequestError as exc:
            self.stats.record(400)
            return _json(400, {"error": "bad_request", "message": exc.reason})
        except BadInput as exc:  # the backend rejects it; its reason is a fixed sentence
            self.stats.record(400)
            return _json(400, {"error": "bad_input", "message": exc.reason})
        except _TimedOutError:
            return self._timed_out()
        data = [
            [idx, {self.out_column: value}]
            for idx, value in zip(parsed.index, outputs, strict=True)
        ]
        self.stats.record(200, rows=len(data))
        return _json(200, {"data": data})

    # -- endpoint role ---------------------------------------------------------------------------

    def _role_allowed(self, caller: IngressCaller) -> bool:
        """Does the caller's role hold the endpoint's service role? The role is the token's
        (OAuth scope ``session:role:<ROLE>``, or the PAT's role restriction), else the user's
        default role, else PUBLIC."""
        can_use = getattr(self._account, "role_can_use_endpoint", None)
        if can_use is None:
            return True
        role = caller.role
        if role is None:
            default_role = getattr(self._account, "user_default_role", None)
            role = default_role(caller.user) if default_role is not None else None
        try:
            return bool(can_use(normalize_role(role or PUBLIC_ROLE), self.fqn))
        except KeyError:  # an unknown role or service holds nothing
            return False

    # -- lifecycle: suspended, resuming, just started ----------------------------------------------

    def _lifecycle_answer(self, decision: Any) -> Response | None:
        settings = self.settings
        if decision.ready:
            window = settings.startup_unauthorized_seconds
            if window > 0:
                since = self._running_since()
                if since is not None and self._now() < since + window:
                    self.stats.record(401)
                    return _json(
                        401,
                        {"error": "invalid_token", "message": "the token was not accepted"},
                    )
            return None
        retry_after = decision.retry_after
        if decision.status == PENDING_STATUS and retry_after is not None:
            now = self._now()
            ready_at = now + retry_after
            resumed_on = self._resumed_on()
            fraction = settings.startup_bad_gateway_fraction
            if resumed_on is not None and fraction > 0:
                loading_from = ready_at - fraction * max(ready_at - resumed_on, 0.0)
                if now >= loading_from:
                    self.stats.record(502)
                    return _json(
                        502,
                        {
                            "error": "bad_gateway",
                            "message": "the model server is not accepting requests yet",
                        },
                    )
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
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

    def _service_row(self) -> Any:
        service = getattr(self._account, "service", None)
        if service is None:
            return None
        try:
            return service(self.fqn)
        except KeyError:
            return None

    def _resumed_on(self) -> float | None:
        row = self._service_row()
        value = getattr(row, "resumed_on", None)
        return float(value) if isinstance(value, int | float) else None

    def _running_since(self) -> float | None:
        """When a resume last turned the service RUNNING (its containers' start time); None
        for a service that has run since it was created (the emulator's start is no resume)."""
        row = self._service_row()
        if row is None or getattr(row, "status", None) != RUNNING_STATUS:
            return None
        starts = [c.start_time for c in getattr(row, "containers", ()) if c.start_time]
        if not starts:
            return None
        since = float(max(starts))
        created = getattr(row, "created_on", None)
        if isinstance(created, int | float) and since <= float(created):
            return None
        return since

    # -- the backend within the request limit --------------------------------------------------

    def _run(self, parsed: ParsedRequest, deadline: float) -> list[Any]:
        """The runner on its own thread, waited for until ``deadline``: a slower answer is
        abandoned (the thread finishes on its own and its result is dropped)."""
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise _TimedOutError
        done = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = self._runner(parsed)
            except BaseException as exc:  # noqa: BLE001 - handed to the request thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name=f"model-{self.names[-1]}", daemon=True).start()
        if not done.wait(remaining):
            raise _TimedOutError
        if "error" in box:
            raise box["error"]
        value: list[Any] = box["value"]
        return value

    def _timed_out(self) -> Response:
        self.stats.record(504)
        return _json(
            504,
            {
                "error": "gateway_timeout",
                "message": "the model did not answer within the ingress request limit",
            },
        )

    def _inject(self, fault: Fault, request: Request, deadline: float) -> Response | None:
        if fault.latency_ms:
            self.stats.count_fault("latency")
            remaining = deadline - self._monotonic()
            if fault.latency_ms / 1000 >= remaining:
                self._sleep(max(remaining, 0.0))
                request.get_data(cache=False)  # leave no body behind on a kept-alive connection
                return self._timed_out()
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
