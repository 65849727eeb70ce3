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
``{"action": "scale", "service": ...,                  ``ControlResult`` with ``min_instances`` /
"min_instances": n, "max_instances": m}``              ``max_instances``; refused (``OUT_OF_RANGE``)
                                                       outside the registry's range
``{"action": "status"}`` (optional ``"services"``)    ``{"ok", "action": "status",
                                                       "services": [ServiceOverview...]}``
anything else                                          ``{"ok": false, "code": "INVALID_REQUEST",
                                                       "fields": [...]}``
=====================================================  ============================================

``service`` is always the registry's logical name; a name the registry does not hold touches
nothing and answers ``code: UNKNOWN_SERVICE``. Events and answers hold names, statuses and codes
only, never PHI.

Who may ask what. The routers invoke the control function through its ``ensure-ready`` alias
(``ENSURE_READY_QUALIFIER``; template.yaml ``ControlEnsureReadyAlias``): their IAM role may invoke
that alias and nothing else, and through it the control function serves ``ensure_ready`` only
(``action_allowed``) - never a suspend, forced or not, a reconcile or a status. The API and
operators invoke the unqualified function. A client built on the alias refuses other actions
itself, before anything is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.aws_errors import aws_error_code
from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.registry import ServiceConfig

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from types_boto3_lambda import LambdaClient

CONTROL_FUNCTION_ENV = "CONTROL_FUNCTION_NAME"
DEFAULT_DEDUPE_SECONDS = 10.0
# The control function's alias for the routers, and what control serves through it.
ENSURE_READY_QUALIFIER = "ensure-ready"
ENSURE_READY_ACTIONS = frozenset({"ensure_ready"})
# arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]
_ARN_QUALIFIER_INDEX = 7


def qualifier_of(function: str) -> str | None:
    """The alias or version a function name or ARN names (``name:alias``, ``arn...:name:alias``),
    None when it is unqualified."""
    parts = function.split(":")
    if function.startswith("arn:"):
        return parts[_ARN_QUALIFIER_INDEX] if len(parts) > _ARN_QUALIFIER_INDEX else None
    return parts[1] if len(parts) == 2 else None


def invoked_qualifier(context: Any) -> str | None:
    """The alias or version the current invocation named (``context.invoked_function_arn``),
    None when unqualified or without a Lambda context."""
    arn = getattr(context, "invoked_function_arn", None)
    return qualifier_of(arn) if isinstance(arn, str) and arn.startswith("arn:") else None


def action_allowed(context: Any, action: str | None) -> bool:
    """May the control function serve ``action`` (None: a scheduled event) in this invocation?
    Through the ensure-ready alias only ``ensure_ready``; anything else everywhere else."""
    if invoked_qualifier(context) == ENSURE_READY_QUALIFIER:
        return action in ENSURE_READY_ACTIONS
    return True


class ControlClientError(TransientError):
    """The control function could not be invoked or failed; the detail holds codes only."""


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
        # On the ensure-ready alias (the routers): only ensure_ready goes out.
        self._ensure_ready_only = qualifier_of(function_name) == ENSURE_READY_QUALIFIER
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

    def scale(self, name: str, min_instances: int, max_instances: int) -> dict[str, Any]:
        return self._invoke(
            {
                "action": "scale",
                "service": name,
                "min_instances": min_instances,
                "max_instances": max_instances,
            }
        )

    def status(self) -> list[dict[str, Any]]:
        answer = self._invoke({"action": "status"})
        services = answer.get("services")
        if not answer.get("ok") or not isinstance(services, list):
            raise ControlClientError(ErrorCode.DEPENDENCY_ERROR, "control status failed")
        return services

    def _invoke(self, payload: dict[str, Any], *, asynchronous: bool = False) -> dict[str, Any]:
        if self._ensure_ready_only and payload.get("action") not in ENSURE_READY_ACTIONS:
            raise ControlClientError(
                ErrorCode.CONFIGURATION_ERROR,
                "the ensure-ready alias serves ensure_ready only",
            )
        try:
            response = self._client().invoke(
                FunctionName=self._function,
                InvocationType="Event" if asynchronous else "RequestResponse",
                Payload=json.dumps(payload).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise ControlClientError(
                ErrorCode.DEPENDENCY_ERROR, f"control invoke failed ({aws_error_code(exc)})"
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
