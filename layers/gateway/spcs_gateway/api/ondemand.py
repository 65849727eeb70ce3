"""Synchronous inference for an API caller, with a bounded wait for a service that is not ready.

Around every call the service is marked busy for the control plane: ``begin_on_demand`` /
``end_on_demand`` (the in-flight counter that keeps the idle reconcile from suspending it
mid-call) and a throttled ``record_activity``. State-store failures never fail the call.

When rows come back ``SERVICE_UNAVAILABLE`` (502/503/504, refused or reset connection), the
control function is asked (asynchronously) to ensure the service is ready, then the failed rows
are retried with capped exponential backoff until the caller's wait budget is spent. The budget
is ``min(wait_seconds, MAX_WAIT_SECONDS, Lambda time left - reserve)``: API Gateway gives up
after 29 s, and the answer must leave the function before its own timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.api.models import MAX_WAIT_SECONDS
from spcs_gateway.api.ports import Inference, ReadyRequester, StateStore
from spcs_gateway.clock import utc_now
from spcs_gateway.errors import ErrorCode, FailureKind, ServiceUnavailableError
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import ServiceConfig
from spcs_gateway.service_activity import ActivityRecorder
from spcs_gateway.spcs_client import InferenceInput, RowResult

# Left for the last attempt and the response after the wait.
RESERVE_SECONDS = 3.0
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 2.0  # readiness polls stay cheap and frequent within a 25 s budget


def wait_budget(
    requested: float | None,
    remaining_seconds: float | None,
    *,
    cap: float = MAX_WAIT_SECONDS,
    reserve: float = RESERVE_SECONDS,
) -> float:
    """Seconds the caller may wait for readiness: never above ``cap`` nor past the Lambda's
    remaining time less ``reserve``; 0 when nothing was asked for."""
    budget = min(max(requested or 0.0, 0.0), cap)
    if remaining_seconds is not None:
        budget = min(budget, remaining_seconds - reserve)
    return max(budget, 0.0)


def backoff_delay(attempt: int) -> float:
    """Delay before retry ``attempt`` (0-based): 0.5, 1, 2, 2, ... seconds."""
    return float(min(FIRST_DELAY_SECONDS * (2 ** min(attempt, 16)), MAX_DELAY_SECONDS))


def retry_after_seconds(status: ServiceStatus) -> int:
    """What a 503 advises: a suspended service needs minutes (containers and model load),
    one that is starting needs less."""
    if status in (ServiceStatus.SUSPENDED, ServiceStatus.SUSPENDING):
        return 60
    if status in (ServiceStatus.PENDING, ServiceStatus.RUNNING):
        return 15
    return 30


class ServiceNotReadyError(ServiceUnavailableError):
    """The service did not become ready within the caller's wait budget."""

    def __init__(self, service: ServiceConfig, waited_seconds: float) -> None:
        super().__init__(ErrorCode.SERVICE_UNAVAILABLE, "service not ready")
        self.service = service
        self.waited_seconds = waited_seconds


def _unavailable(result: RowResult) -> bool:
    return result.error is not None and result.error.kind is FailureKind.UNAVAILABLE


class OnDemandInference:
    def __init__(
        self,
        spcs: Inference,
        control: ReadyRequester,
        state: StateStore,
        *,
        activity: ActivityRecorder | None = None,
        logger: Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._spcs = spcs
        self._control = control
        self._state = state
        self._activity = activity or ActivityRecorder(state, clock=now)
        self._logger = logger
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now

    def infer(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput], *, budget: float
    ) -> list[RowResult]:
        """One result per input (same order). Raises ``ServiceNotReadyError`` when rows are
        still unavailable after ``budget`` seconds; other per-row failures are returned."""
        began = self._begin(service)
        try:
            self._activity.record(service.name)
            return self._infer_with_wait(service, inputs, budget)
        finally:
            if began:
                self._end(service)

    def _infer_with_wait(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput], budget: float
    ) -> list[RowResult]:
        results = self._spcs.infer(service, inputs)
        if not any(_unavailable(r) for r in results):
            return results
        self._request_ready(service)
        started = self._monotonic()
        deadline = started + budget
        attempt = 0
        while (remaining := deadline - self._monotonic()) > 0:
            self._sleep(min(backoff_delay(attempt), remaining))
            attempt += 1
            waiting = [i for i, r in enumerate(results) if _unavailable(r)]
            retried = self._spcs.infer(service, [inputs[i] for i in waiting])
            for index, result in zip(waiting, retried, strict=True):
                results[index] = result
            if not any(_unavailable(r) for r in results):
                self._log("service became ready", service, level="info", attempts=attempt)
                return results
        raise ServiceNotReadyError(service, self._monotonic() - started)

    # -- control-plane side effects (best effort) ------------------------------------------

    def _request_ready(self, service: ServiceConfig) -> None:
        try:
            self._control.ensure_ready(service.name)
        except Exception:  # noqa: BLE001 - the caller gets 503 + Retry-After either way
            self._log("ensure_ready request failed", service)

    def _begin(self, service: ServiceConfig) -> bool:
        try:
            self._state.begin_on_demand(service.name, self._now())
        except (ClientError, BotoCoreError, RuntimeError):
            self._log("on-demand begin not recorded", service)
            return False
        return True

    def _end(self, service: ServiceConfig) -> None:
        try:
            self._state.end_on_demand(service.name)
        except (ClientError, BotoCoreError):
            # The counter's safeguard expiry releases it (service_state.begin_on_demand).
            self._log("on-demand end not recorded", service)

    def _log(
        self, message: str, service: ServiceConfig, *, level: str = "warning", **extra: object
    ) -> None:
        if self._logger is not None:
            log = self._logger.info if level == "info" else self._logger.warning
            log(message, extra={"service_name": service.name, **extra})
