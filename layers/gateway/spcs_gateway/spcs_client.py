"""Calls an SPCS model service's public endpoint for many rows at once.

``SpcsClient.infer`` batches rows by ``max_batch_rows`` and ``max_request_bytes``, runs the
requests concurrently up to the service's ``max_concurrency`` (a per-service semaphore, so
concurrent ``infer`` calls in one container share the limit), refreshes the ingress token once
on 401/403, isolates rows the model rejects (400/413/422) by splitting the request in halves,
and maps every other failure to the error classes of ``errors.py``. Per-row failures are
returned, never raised. Nothing here logs or raises input values or response bodies.

Two rules keep a configuration fault from looking like bad input or bad credentials:

- When a call's rows are all refused (400/422) and none succeeded, one synthetic probe row
  (``probes.py``) is sent. A refused probe means the service refuses everything: the registry's
  signature does not match the model (``SIGNATURE_MISMATCH``, kept and alarmed, never DLQ'd).
- A 401 that survives a token refresh while the service is starting (it answered 502/503/504
  or dropped the connection recently, or the control plane resumed it recently) counts as
  "unavailable", as Snowflake's own ingress clients treat it, not as ``AUTH_FAILED``.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from spcs_gateway.auth import TokenProvider, snowflake_token_header
from spcs_gateway.batching import plan_batches
from spcs_gateway.clock import elapsed_ms
from spcs_gateway.codec import ENVELOPE_OVERHEAD, decode_response, encode_request, encoded_row_size
from spcs_gateway.errors import (
    ConfigurationError,
    ErrorCode,
    FailureKind,
    GatewayError,
    PoisonError,
    ServiceUnavailableError,
    error_for_status,
)
from spcs_gateway.probes import probe_values
from spcs_gateway.registry import Registry, ServiceConfig
from spcs_gateway.spcs_attempt import (
    MAX_IN_CALL_RETRY_AFTER_S,
    REFRESH_STATUSES,
    SPLIT_STATUSES,
    Attempt,
    is_refusal,
    parse_retry_after,
    retry_in_call,
    transport_error,
)

__all__ = [
    "MAX_IN_CALL_RETRY_AFTER_S",
    "Inference",
    "InferenceInput",
    "RowResult",
    "SpcsClient",
    "SpcsClientStats",
    "StartupSignal",
    "parse_retry_after",
]

_MAX_WORKERS = 64
# After the service last looked unavailable (or was resumed), a 401 means "still starting"
# for this long. Model load on resume takes minutes.
STARTUP_GRACE_S = 300.0
# A probe's verdict (signature accepted or refused) is reused this long per service.
PROBE_TTL_S = 60.0


class StartupSignal(Protocol):
    """Whether the control plane resumed ``service`` recently or has not seen it ready."""

    def starting(self, service: ServiceConfig) -> bool: ...


@dataclass(frozen=True)
class InferenceInput:
    key: str  # caller's id for the row (SQS messageId); never sent to SPCS
    # Column values in signature order (ServiceConfig.columns). PHI: kept out of repr.
    values: tuple[Any, ...] = field(repr=False)


@dataclass(frozen=True)
class RowResult:
    key: str
    output: Any | None = field(repr=False)  # decoded out_column value when ok (PHI)
    error: GatewayError | None  # None when ok
    latency_ms: int  # wall time of the request that produced it

    @property
    def ok(self) -> bool:
        return self.error is None


class Inference(Protocol):
    """What callers (the pipeline, the doctor) need of ``SpcsClient``; tests pass fakes."""

    def infer(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput]
    ) -> list[RowResult]: ...


@dataclass
class SpcsClientStats:
    """Counters for tests and metrics (counts only, no PHI)."""

    requests: int = 0  # HTTP requests sent to model services
    rows_sent: int = 0  # rows carried by those requests (split retries count again)
    splits: int = 0  # times a rejected multi-row request was split in halves
    token_refreshes: int = 0  # 401/403 answers that caused a token refresh
    retries: int = 0  # in-call retries after a 5xx
    probes: int = 0  # probe rows sent after a call whose rows were all refused


class SpcsClient:
    def __init__(
        self,
        registry: Registry,
        tokens: TokenProvider,
        http: httpx.Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        executor_workers: int | None = None,
        clock: Callable[[], float] = time.time,
        retry_backoff_s: float = 0.2,
        executor: ThreadPoolExecutor | None = None,
        startup: StartupSignal | None = None,
        startup_grace_s: float = STARTUP_GRACE_S,
    ) -> None:
        self._tokens = tokens
        self._http = http
        self._sleep = sleep
        self._clock = clock
        self._backoff = retry_backoff_s
        self._lock = threading.Lock()
        self._semaphores = {
            svc.name: threading.BoundedSemaphore(svc.max_concurrency) for svc in registry.services
        }
        wanted = sum(svc.max_concurrency for svc in registry.services)
        self._workers = max(1, min(_MAX_WORKERS, executor_workers or wanted))
        self._executor = executor
        self._owns_executor = executor is None
        self._startup = startup
        self._startup_grace_s = startup_grace_s
        self._unavailable_at: dict[str, float] = {}  # service name -> last unavailable answer
        self._probe_verdicts: dict[str, tuple[float, GatewayError | None]] = {}
        self.stats = SpcsClientStats()

    # -- public --------------------------------------------------------------------------------

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        results: list[RowResult | None] = [None] * len(inputs)
        sendable: list[int] = []
        sizes: list[int] = []
        for index, item in enumerate(inputs):
            try:
                sizes.append(encoded_row_size(service, item.values))
            except (TypeError, ValueError):
                bad = PoisonError(ErrorCode.INVALID_EVENT, "row values cannot be encoded")
                results[index] = RowResult(item.key, None, bad, 0)
                continue
            sendable.append(index)

        plan = plan_batches(
            sizes,
            max_rows=service.max_batch_rows,
            max_bytes=service.max_request_bytes,
            overhead=ENVELOPE_OVERHEAD,
        )
        for position in plan.oversize:
            index = sendable[position]
            big = PoisonError(ErrorCode.REQUEST_TOO_LARGE, "row exceeds max_request_bytes")
            results[index] = RowResult(inputs[index].key, None, big, 0)

        batches = [[sendable[p] for p in batch] for batch in plan.batches]
        outcome = self._run_all(service, inputs, batches)
        outcome = self._confirm_refusals(service, outcome)
        for index, (output, error, latency) in outcome.items():
            results[index] = RowResult(inputs[index].key, output, error, latency)

        done = [r for r in results if r is not None]
        if len(done) != len(inputs):  # pragma: no cover - every path above fills its rows
            raise RuntimeError("internal error: rows without a result")
        return done

    def close(self) -> None:
        """Stop the worker threads this client started (idempotent)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._owns_executor:
            executor.shutdown(wait=True)

    # -- refused rows: bad input, or a signature mismatch? -------------------------------------

    def _confirm_refusals(
        self, service: ServiceConfig, outcome: dict[int, tuple[Any, GatewayError | None, int]]
    ) -> dict[int, tuple[Any, GatewayError | None, int]]:
        refused = [i for i, (_, err, _) in outcome.items() if is_refusal(err)]
        if not refused or any(err is None for _, err, _ in outcome.values()):
            return outcome  # nothing refused, or the service accepted some rows: poison
        verdict = self._probe(service)
        if verdict is None:
            return outcome  # the probe was accepted: these rows are bad input
        for index in refused:
            outcome[index] = (None, verdict, outcome[index][2])
        return outcome

    def _probe(self, service: ServiceConfig) -> GatewayError | None:
        """None when the service accepts a known-good row; else the error to report instead
        of "rejected input" (SIGNATURE_MISMATCH, or why the probe could not be judged)."""
        now = self._clock()
        with self._lock:
            cached = self._probe_verdicts.get(service.name)
            if cached is not None and now - cached[0] < PROBE_TTL_S:
                return cached[1]
            self.stats.probes += 1
        probe = InferenceInput("probe", probe_values(service))
        attempt = self._request(service, [probe], [0])
        verdict: GatewayError | None = None
        if attempt.error is not None:
            if is_refusal(attempt.error):
                verdict = ConfigurationError(
                    ErrorCode.SIGNATURE_MISMATCH,
                    "the service refuses a known-good probe row",
                    status=attempt.error.status,
                )
            else:
                # Cannot tell bad rows from a refusing service: keep them (retry), do not DLQ.
                return attempt.error
        with self._lock:
            self._probe_verdicts[service.name] = (now, verdict)
        return verdict

    # -- start-up window ---------------------------------------------------------------------

    def _note_unavailable(self, service: ServiceConfig) -> None:
        with self._lock:
            self._unavailable_at[service.name] = self._clock()

    def _starting(self, service: ServiceConfig) -> bool:
        with self._lock:
            seen = self._unavailable_at.get(service.name)
        if seen is not None and self._clock() - seen < self._startup_grace_s:
            return True
        if self._startup is None:
            return False
        try:
            return self._startup.starting(service)
        except Exception:  # noqa: BLE001 - no signal: fall back to "not starting"
            return False

    # -- scheduling ----------------------------------------------------------------------------

    def _semaphore(self, service: ServiceConfig) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._semaphores.get(service.name)
            if sem is None:
                sem = threading.BoundedSemaphore(service.max_concurrency)
                self._semaphores[service.name] = sem
            return sem

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="spcs-client"
                )
            return self._executor

    def _run_all(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput], batches: list[list[int]]
    ) -> dict[int, tuple[Any, GatewayError | None, int]]:
        if not batches:
            return {}
        pending: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        for batch in batches:
            pending.put(batch)

        # Lanes pull batches until none are left. The calling thread runs one lane itself, so
        # progress never depends on a free worker, and no worker parks on the semaphore idle.
        def lane() -> dict[int, tuple[Any, GatewayError | None, int]]:
            done: dict[int, tuple[Any, GatewayError | None, int]] = {}
            while True:
                try:
                    batch = pending.get_nowait()
                except queue.Empty:
                    return done
                done.update(self._run_batch(service, inputs, batch))

        lanes = min(len(batches), service.max_concurrency)
        futures = [self._pool().submit(lane) for _ in range(lanes - 1)]
        outcome = lane()
        for future in futures:
            outcome.update(future.result())
        return outcome

    def _run_batch(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput], indices: list[int]
    ) -> dict[int, tuple[Any, GatewayError | None, int]]:
        attempt = self._request(service, inputs, indices)
        if attempt.outputs is not None:
            return {i: (attempt.outputs[i], None, attempt.latency_ms) for i in indices}
        error: GatewayError | None = attempt.error
        assert error is not None
        if error.kind is FailureKind.POISON and error.status in SPLIT_STATUSES:
            if len(indices) > 1:
                # Bisect: one bad row among n costs about 2*log2(n) extra requests; every row
                # bad costs at most 2n-1 requests in total.
                with self._lock:
                    self.stats.splits += 1
                middle = len(indices) // 2
                left = self._run_batch(service, inputs, indices[:middle])
                return left | self._run_batch(service, inputs, indices[middle:])
            if error.status == 413:
                error = PoisonError(ErrorCode.REQUEST_TOO_LARGE, "HTTP 413", status=413)
        return {i: (None, error, attempt.latency_ms) for i in indices}

    # -- one request ---------------------------------------------------------------------------

    def _pause_before_retry(self, retry_after: float | None) -> None:
        with self._lock:
            self.stats.retries += 1
        # Jitter spreads retries from concurrent containers; not security-relevant.
        delay = self._backoff * (0.5 + random.random())  # noqa: S311
        self._sleep(max(delay, retry_after or 0.0))

    def _request(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput], indices: list[int]
    ) -> Attempt:
        # Row indices on the wire are request-local positions; never the caller's keys.
        body = encode_request(service, [(pos, inputs[i].values) for pos, i in enumerate(indices)])
        url = service.url + service.method_path
        timeout = httpx.Timeout(
            service.timeout_seconds,
            connect=service.connect_timeout_seconds,
            pool=service.connect_timeout_seconds,
        )
        host = service.ingress_host
        semaphore = self._semaphore(service)
        refreshed = retried = False
        latency_ms = 0
        while True:
            try:
                token = self._tokens.ingress_token(host)
            except GatewayError as err:
                return Attempt(None, err, latency_ms)
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                **snowflake_token_header(token),
            }
            with semaphore:
                with self._lock:
                    self.stats.requests += 1
                    self.stats.rows_sent += len(indices)
                start = time.perf_counter()
                response: httpx.Response | None = None
                failure: httpx.HTTPError | None = None
                try:
                    response = self._http.post(url, content=body, headers=headers, timeout=timeout)
                except httpx.HTTPError as exc:
                    failure = exc
                latency_ms = elapsed_ms(start)
            if response is None:
                assert failure is not None
                # A dropped or refused connection is retried once (inference requests are
                # idempotent); a timeout is not: the service is slow, and a second wait would
                # double it. Then the error class decides (unavailable -> readiness).
                if not retried and not isinstance(failure, httpx.TimeoutException):
                    retried = True
                    self._pause_before_retry(None)
                    continue
                error = transport_error(failure)
                if error.kind is FailureKind.UNAVAILABLE:
                    self._note_unavailable(service)
                return Attempt(None, error, latency_ms)

            status = response.status_code
            if 200 <= status < 300:
                try:
                    decoded = decode_response(service, response.content, range(len(indices)))
                except GatewayError as err:
                    return Attempt(None, err, latency_ms)
                outputs = {i: decoded[pos] for pos, i in enumerate(indices)}
                return Attempt(outputs, None, latency_ms)

            if status in REFRESH_STATUSES:
                if not refreshed:
                    refreshed = True
                    self._tokens.invalidate(host, token=token)
                    with self._lock:
                        self.stats.token_refreshes += 1
                    continue
                if status == 401 and self._starting(service):
                    # A starting endpoint refuses valid tokens for a while: not our credential.
                    return Attempt(
                        None,
                        ServiceUnavailableError(
                            ErrorCode.SERVICE_UNAVAILABLE,
                            "HTTP 401 while the service starts",
                            status=status,
                        ),
                        latency_ms,
                    )
                # 401: the credential is refused; 403: the role lacks the endpoint's service
                # role. Either way back off: no token requests for a while.
                code = ErrorCode.AUTH_FAILED if status == 401 else ErrorCode.PRIVILEGE_MISSING
                self._tokens.refused(host, code)
                error = ConfigurationError(
                    code, f"HTTP {status} after token refresh", status=status
                )
                return Attempt(None, error, latency_ms)

            retry_after = None
            if status == 429:
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), now=self._clock()
                )
            error = error_for_status(status, retry_after=retry_after)
            if error.kind is FailureKind.UNAVAILABLE:
                self._note_unavailable(service)
            if not retried and retry_in_call(error):
                # One quick retry absorbs a blip (a 500, a 503/429 from a busy or restarting
                # instance) without a trip through SQS, which costs a receive count; a second
                # failure goes back to the queue with its class (readiness, backoff).
                retried = True
                self._pause_before_retry(error.retry_after)
                continue
            return Attempt(None, error, latency_ms)
