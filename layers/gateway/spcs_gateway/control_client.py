"""How the routers and the API reach the control function.

Event contract of the control function (``functions/control/app.py`` ->
``control.handle_control_event``):

=====================================================  ============================================
event                                                  answer (JSON)
=====================================================  ============================================
EventBridge scheduled event (``source: aws.events``)   reconcile: ``{"ok", "action": "reconcile",
                                                       "at", "services": [...], "pools": [...],
                                                       "errors"}``
``{"action": "reconcile"}``                            the same
``{"action": "ensure_ready", "service": "<logical>"}``  ``ControlResult``: ``{"ok", "service",
                                                       "outcome", "status", "ready", "resumed",
                                                       "reason", "code"}``; invoked asynchronously
                                                       (InvocationType=Event): nobody reads it
``{"action": "suspend", "service": ..., "force": b}``  ``ControlResult`` (RequestResponse)
``{"action": "status"}`` (optional ``"services"``)    ``{"ok", "action": "status",
                                                       "services": [ServiceStatusView...]}``
anything else                                          ``{"ok": false, "code": "INVALID_REQUEST",
                                                       "fields": [...]}``
=====================================================  ============================================

``service`` is always the registry's logical name; a name the registry does not hold touches
nothing and answers ``code: UNKNOWN_SERVICE``. Events and answers hold names, statuses and codes
only, never PHI.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.registry import ServiceConfig

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from types_boto3_lambda import LambdaClient

CONTROL_FUNCTION_ENV = "CONTROL_FUNCTION_NAME"
DEFAULT_DEDUPE_SECONDS = 10.0


class ControlClientError(TransientError):
    """The control function could not be invoked or failed; the detail holds codes only."""


def _aws_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class LambdaControlClient:
    """Invokes the control function. ``ensure_ready`` is fire-and-forget and deduplicated per
    container and service for ``dedupe_seconds`` (a burst of failing batches asks once)."""

    def __init__(
        self,
        lambda_client: LambdaClient | None,
        function_name: str,
        *,
        dedupe_seconds: float = DEFAULT_DEDUPE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lambda = lambda_client  # None: the default client, built on first use
        self._function = function_name
        self._dedupe = dedupe_seconds
        self._clock = clock
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def _client(self) -> LambdaClient:
        if self._lambda is None:
            with self._lock:
                if self._lambda is None:
                    import boto3

                    self._lambda = boto3.client("lambda")
        return self._lambda

    def ensure_ready(self, name: str) -> bool:
        """Ask control to make ``name`` ready. False when a request for it went out less than
        ``dedupe_seconds`` ago (nothing sent)."""
        now = self._clock()
        with self._lock:
            last = self._sent.get(name)
            if last is not None and last <= now < last + self._dedupe:
                return False
            self._sent[name] = now
        try:
            self._invoke({"action": "ensure_ready", "service": name}, asynchronous=True)
        except ControlClientError:
            with self._lock:  # let the next caller try again at once
                if self._sent.get(name) == now:
                    del self._sent[name]
            raise
        return True

    def suspend(self, name: str, force: bool = False) -> dict[str, Any]:
        return self._invoke({"action": "suspend", "service": name, "force": force})

    def reconcile(self) -> dict[str, Any]:
        return self._invoke({"action": "reconcile"})

    def status(self) -> list[dict[str, Any]]:
        answer = self._invoke({"action": "status"})
        services = answer.get("services")
        if not answer.get("ok") or not isinstance(services, list):
            raise ControlClientError(ErrorCode.DEPENDENCY_ERROR, "control status failed")
        return services

    def _invoke(self, payload: dict[str, Any], *, asynchronous: bool = False) -> dict[str, Any]:
        try:
            response = self._client().invoke(
                FunctionName=self._function,
                InvocationType="Event" if asynchronous else "RequestResponse",
                Payload=json.dumps(payload).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise ControlClientError(
                ErrorCode.DEPENDENCY_ERROR, f"control invoke failed ({_aws_code(exc)})"
            ) from None
        if response.get("FunctionError"):
            raise ControlClientError(ErrorCode.DEPENDENCY_ERROR, "control function error")
        if asynchronous:
            return {}
        try:
            answer = json.loads(response["Payload"].read() or b"{}")
        except (KeyError, ValueError):
            raise ControlClientError(ErrorCode.BAD_RESPONSE, "control answer unreadable") from None
        if not isinstance(answer, dict):
            raise ControlClientError(ErrorCode.BAD_RESPONSE, "control answer is not an object")
        return answer


class ControlReadinessHook:
    """``readiness.ReadinessHook`` for the routers: a service answered 502/503/504 or not at
    all -> ask control (async) to make it ready. Never raises: the router returns the records
    with a visibility delay either way, and the next failing batch asks again."""

    def __init__(
        self, client: LambdaControlClient, logger: Logger | logging.Logger | None = None
    ) -> None:
        self._client = client
        self._log = logger or logging.getLogger(__name__)

    def service_unavailable(self, service: ServiceConfig) -> None:
        try:
            sent = self._client.ensure_ready(service.name)
        except Exception as exc:  # noqa: BLE001 - best effort by contract
            code = str(exc.code) if isinstance(exc, ControlClientError) else type(exc).__name__
            self._log.warning(
                "ensure_ready request failed",
                extra={"service_name": service.name, "error_code": code},
            )
            return
        if sent:
            self._log.info("ensure_ready requested", extra={"service_name": service.name})
