"""API Gateway (REST, proxy integration) in front of the template's Api-event functions.

Each HTTP request becomes the proxy event API Gateway sends (resource, path, httpMethod,
headers and multiValueHeaders, query string parameters, pathParameters, body with
isBase64Encoded, requestContext with requestId and identity), routed by the functions' ``Api``
events (``{name}`` and ``{proxy+}`` path parameters, ``ANY`` method); the function's
``statusCode``/``headers``/``multiValueHeaders``/``body`` become the HTTP answer. Like API
Gateway, an integration that does not answer within 29 s gives 504, an invalid answer 502.

Not emulated: IAM (SigV4) authorization (the caller is a fixed local identity), stages,
throttling, request validation at the gateway.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from ..serving import ThreadedServer
from .runner import FunctionPool
from .template import FunctionDef

STAGE = "local"
INTEGRATION_TIMEOUT_S = 29.0
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")


class Route:
    def __init__(self, path: str, method: str, function: FunctionDef, pool: FunctionPool) -> None:
        self.resource = path
        self.method = method.upper()
        self.function = function
        self.pool = pool
        pattern = ""
        self.params: list[str] = []
        for part in [p for p in path.strip("/").split("/") if p]:
            match = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", part)
            if match:
                self.params.append(match.group(1))
                pattern += f"/(?P<p{len(self.params) - 1}>{'.+' if match.group(2) else '[^/]+'})"
            else:
                pattern += "/" + re.escape(part)
        self._regex = re.compile((pattern or "/") + "/?")
        self.literal_parts = len([p for p in path.split("/") if p and not p.startswith("{")])

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method.upper()):
            return None
        found = self._regex.fullmatch(path)
        if found is None:
            return None
        return {name: found.group(f"p{i}") for i, name in enumerate(self.params)}


def _is_text(content_type: str | None) -> bool:
    return not content_type or content_type.startswith(_TEXT_TYPES)


def build_event(
    request: Request, route: Route, params: dict[str, str], account_id: str
) -> dict[str, Any]:
    """The REST API proxy event for one HTTP request."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        headers[key] = value
        multi_headers.setdefault(key, []).append(value)
    query = {k: request.args.getlist(k)[-1] for k in request.args}
    multi_query = {k: request.args.getlist(k) for k in request.args}
    raw = request.get_data(cache=False)
    text = _is_text(request.content_type)
    body: str | None
    if not raw:
        body = None
    elif text:
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body, text = base64.b64encode(raw).decode("ascii"), False
    else:
        body = base64.b64encode(raw).decode("ascii")
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": route.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{request.path}",
            "accountId": account_id,
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "stage": STAGE,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": account_id,
                "cognitoIdentityId": None,
                "caller": "LOCALCALLER",
                "sourceIp": request.remote_addr or "127.0.0.1",
                "principalOrgId": None,
                "accessKey": "LOCALACCESSKEY",
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": f"arn:aws:iam::{account_id}:user/local-caller",
                "userAgent": request.headers.get("User-Agent"),
                "user": "LOCALCALLER",
            },
            "domainName": request.host,
            "apiId": "local",
        },
        "body": body,
        "isBase64Encoded": bool(body is not None and not text),
    }


def _gateway_error(status: int, message: str, request_id: str | None = None) -> Response:
    headers = {
        "x-amzn-ErrorType": "InternalServerErrorException" if status >= 500 else "NotFoundException"
    }
    if request_id:
        headers["x-amzn-RequestId"] = request_id
    return Response(
        json.dumps({"message": message}),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def to_response(payload: bytes, request_id: str) -> Response:
    """The function's proxy answer as HTTP (API Gateway answers 502 to anything else)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return _gateway_error(502, "Internal server error", request_id)
    if not isinstance(answer, dict) or not isinstance(answer.get("statusCode"), int):
        return _gateway_error(502, "Internal server error", request_id)
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    response = Response(data, status=int(answer["statusCode"]))
    response.headers.pop("Content-Type", None)
    for key, value in (answer.get("headers") or {}).items():
        response.headers[key] = str(value)
    for key, values in (answer.get("multiValueHeaders") or {}).items():
        response.headers.pop(key, None)
        for value in values or []:
            response.headers.add(key, str(value))
    response.headers.setdefault("x-amzn-RequestId", request_id)
    return response


class LocalApiGateway:
    """Threaded werkzeug server on loopback routing to the API functions' containers."""

    def __init__(
        self,
        functions: Sequence[tuple[FunctionDef, FunctionPool]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account_id: str = "123456789012",
        timeout_s: float = INTEGRATION_TIMEOUT_S,
    ) -> None:
        self.routes = [
            Route(api.path, api.method, fn, pool) for fn, pool in functions for api in fn.apis
        ]
        # Most specific first: more literal segments, then fewer greedy parameters.
        self.routes.sort(key=lambda r: (-r.literal_parts, "+" in r.resource, r.method == "ANY"))
        self._host, self._port = host, port
        self._account = account_id
        self._timeout = timeout_s
        self._server: ThreadedServer | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local API is not started")
        return self._server.url

    def start(self) -> None:
        self._server = ThreadedServer(
            self._app, host=self._host, port=self._port, name="api-gateway"
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        self.requests += 1
        for route in self.routes:
            params = route.match(request.method, request.path)
            if params is None:
                continue
            event = build_event(request, route, params, self._account)
            request_id = event["requestContext"]["requestId"]
            response = self._invoke(route.pool, event, request_id)
            return response(environ, start_response)
        return _gateway_error(404, "Missing Authentication Token")(environ, start_response)

    def _invoke(self, pool: FunctionPool, event: dict[str, Any], request_id: str) -> Response:
        box: dict[str, Any] = {}

        def call() -> None:
            box["result"] = pool.invoke(event)

        began = time.monotonic()
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(self._timeout)
        if "result" not in box:
            # API Gateway gives up at 29 s; the function keeps running to its own timeout.
            return _gateway_error(504, "Endpoint request timed out", request_id)
        result = box["result"]
        if not result.ok:
            return _gateway_error(502, "Internal server error", request_id)
        response = to_response(result.payload, request_id)
        response.headers.setdefault(
            "X-Local-Integration-Latency", str(int((time.monotonic() - began) * 1000))
        )
        return response
