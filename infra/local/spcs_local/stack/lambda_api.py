"""The part of the Lambda API the gateway calls, served by the local runner on loopback.

Functions reach it through boto3 with ``AWS_ENDPOINT_URL_LAMBDA`` (botocore's service-specific
endpoint variable), so the production code path runs unchanged:

- ``POST /2015-03-31/functions/<name>/invocations`` (Invoke): ``X-Amz-Invocation-Type``
  ``Event`` queues the event for the function and answers 202; ``RequestResponse`` (default)
  runs it and answers 200 with its payload (``X-Amz-Function-Error: Unhandled`` on an error);
  ``DryRun`` answers 204.
- ``GET /2015-03-31/event-source-mappings/`` (ListEventSourceMappings: ``EventSourceArn``,
  ``FunctionName``, ``Marker``, ``MaxItems``),
- ``GET|PUT /2015-03-31/event-source-mappings/<uuid>`` (Get/UpdateEventSourceMapping).

Paths and shapes follow botocore's ``lambda/2015-03-31`` service model. Requests are not
signature-checked (loopback only, fake credentials).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ..serving import ThreadedServer
from .runner import FunctionPool, Mapping

log = logging.getLogger(__name__)

_DEFAULT_MAX_ITEMS = 100


def _error(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"Type": "User", "Message": message, "message": message}),
        status=status,
        mimetype="application/json",
        headers={"x-amzn-ErrorType": code},
    )


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class LocalLambdaApi:
    """Lambda API over the runner's pools and mappings (threaded werkzeug server)."""

    def __init__(
        self,
        pools: dict[str, FunctionPool],
        mappings: list[Mapping],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        async_workers: int = 8,
    ) -> None:
        self._pools = pools
        self._mappings = mappings
        self._host = host
        self._port = port
        self._server: ThreadedServer | None = None
        # Async invocations: queued here, run on the function's containers (Lambda's internal
        # queue). Not retried on error (Lambda would retry twice): the gateway never relies on it.
        self._async = ThreadPoolExecutor(
            max_workers=async_workers, thread_name_prefix="invoke-async"
        )
        self.async_invocations = 0
        self._urls = Map(
            [
                Rule(
                    "/2015-03-31/functions/<path:name>/invocations",
                    endpoint="invoke",
                    methods=["POST"],
                ),
                Rule("/2015-03-31/event-source-mappings", endpoint="list", methods=["GET"]),
                Rule("/2015-03-31/event-source-mappings/", endpoint="list", methods=["GET"]),
                Rule(
                    "/2015-03-31/event-source-mappings/<uuid>",
                    endpoint="mapping",
                    methods=["GET", "PUT"],
                ),
            ],
            strict_slashes=False,
        )

    # -- server ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local Lambda API is not started")
        return self._server.url

    def start(self) -> None:
        self._server = ThreadedServer(
            self._app, host=self._host, port=self._port, name="lambda-api"
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._async.shutdown(wait=False, cancel_futures=True)

    # -- lookups -----------------------------------------------------------------------------

    def pool(self, name_or_arn: str) -> FunctionPool | None:
        name = name_or_arn
        if name.startswith("arn:"):
            # arn:aws:lambda:region:account:function:name[:qualifier]
            parts = name.split(":")
            name = parts[6] if len(parts) >= 7 else name
        name = name.split(":")[0]
        return self._pools.get(name)

    def mapping(self, uuid: str) -> Mapping | None:
        return next((m for m in self._mappings if m.uuid == uuid), None)

    # -- WSGI --------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        adapter = self._urls.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
            response: Response = getattr(self, f"_on_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = _error(exc.code or 404, "ResourceNotFoundException", "unknown API")
        except Exception as exc:  # noqa: BLE001 - a Lambda-style 500, never a traceback page
            log.error("local Lambda API: %s", type(exc).__name__)
            response = _error(500, "ServiceException", "local Lambda API error")
        return response(environ, start_response)

    def _on_invoke(self, request: Request, name: str) -> Response:
        pool = self.pool(name)
        if pool is None:
            return _error(404, "ResourceNotFoundException", "Function not found")
        body = request.get_data(cache=False)
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return Response(status=204)
        if kind == "Event":
            self.async_invocations += 1
            self._async.submit(self._run_async, pool, event)
            return Response(status=202, headers={"X-Amz-Executed-Version": "$LATEST"})
        result = pool.invoke(event)
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if not result.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return Response(result.payload, status=200, mimetype="application/json", headers=headers)

    @staticmethod
    def _run_async(pool: FunctionPool, event: Any) -> None:
        result = pool.invoke(event)
        if not result.ok:
            log.warning("async invocation of %s failed (%s)", pool.name, result.error_type)

    def _on_list(self, request: Request) -> Response:
        source = request.args.get("EventSourceArn")
        function = request.args.get("FunctionName")
        selected = [
            m
            for m in self._mappings
            if (source is None or m.queue_arn == source)
            and (function is None or function in (m.function_name, m.function_arn))
        ]
        try:
            start = int(request.args.get("Marker") or 0)
            size = int(request.args.get("MaxItems") or _DEFAULT_MAX_ITEMS)
        except ValueError:
            return _error(400, "InvalidParameterValueException", "bad Marker or MaxItems")
        page = selected[start : start + max(1, size)]
        body: dict[str, Any] = {"EventSourceMappings": [m.as_api() for m in page]}
        if start + len(page) < len(selected):
            body["NextMarker"] = str(start + len(page))
        return _json(200, body)

    def _on_mapping(self, request: Request, uuid: str) -> Response:
        mapping = self.mapping(uuid)
        if mapping is None:
            return _error(
                404, "ResourceNotFoundException", "The resource you requested does not exist."
            )
        if request.method == "PUT":
            try:
                body = json.loads(request.get_data(cache=False) or b"{}")
            except ValueError:
                return _error(400, "InvalidRequestContentException", "Could not parse request body")
            if not isinstance(body, dict):
                return _error(400, "InvalidRequestContentException", "body must be an object")
            mapping.update(body)
            log.debug("event source mapping %s: %s", mapping.uuid, mapping.state)
            return _json(202, mapping.as_api())
        return _json(200, mapping.as_api())
