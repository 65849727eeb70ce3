"""The local Lambda runner: function containers, SQS event source mappings, schedules.

- ``FunctionPool``: a function's containers (``worker.py`` processes, spawned). An invocation
  takes an idle container or starts a new one (a cold start) up to ``max_containers``; a
  container runs one invocation at a time, and one that outlives the function's timeout is
  killed (Lambda's "Task timed out"), so its batch fails as a whole.
- ``EsmPoller``: what an SQS event source mapping does. Before every poll it checks the
  mapping's Enabled flag; it receives up to BatchSize messages within the batching window
  (all system and message attributes), builds the SQS event Lambda sends, invokes the
  function with at most ``MaximumConcurrency`` batches in flight, then deletes what
  succeeded: with ``ReportBatchItemFailures`` every record not listed in
  ``batchItemFailures`` (an invalid answer fails the whole batch, as Lambda does), without it
  everything on success. A failed record stays in the queue until its visibility timeout
  lapses (the router may have shortened it); after ``maxReceiveCount`` receives SQS (moto,
  on the next receive) moves it to the DLQ.
- ``MappingTrace``: optionally, one JSON line per delivered batch (message ids, receive counts,
  invocation outcome, deleted or kept; never a body), so a message that went missing can be
  followed (``StackOptions.trace_mappings``; the chaos run turns it on).
- ``Scheduler``: the function's Schedule events, as EventBridge Scheduled Events, every
  ``schedule_seconds`` (a demo runs the control round far more often than every minute).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .template import FunctionDef
from .worker import ContainerSpec, container_main

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
RECEIVE_WAIT_S = 1  # long polling per ReceiveMessage (short, so Enabled is checked often)
_SQS_MAX_RECEIVE = 10


@dataclass(frozen=True)
class InvokeResult:
    ok: bool
    payload: bytes  # the function's JSON answer (or a Lambda-style error object)
    error_type: str | None = None
    duration_ms: float = 0.0


class FunctionUnavailableError(RuntimeError):
    """The function's container could not start (import error, crash)."""


class Container:
    def __init__(self, spec: ContainerSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._conn: Connection = parent
        self.process = ctx.Process(
            target=container_main,
            args=(spec, child),
            name=f"lambda-{spec.function_name}-{index}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.busy = False
        self.busy_since = 0.0  # time.monotonic() when its current invocation began
        self.alive = False
        self.init_ms: float | None = None

    def wait_ready(self, timeout: float) -> None:
        if not self._conn.poll(timeout):
            self.kill()
            raise FunctionUnavailableError(f"{self.spec.function_name}: container start timed out")
        try:
            kind, detail = self._conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise FunctionUnavailableError(f"{self.spec.function_name}: container died") from None
        if kind != "ready":
            self.kill()
            raise FunctionUnavailableError(f"{self.spec.function_name}: init failed ({detail})")
        self.alive = True
        self.init_ms = float(detail)

    def invoke(self, event: Any, timeout_s: float) -> InvokeResult:
        request_id = str(uuid.uuid4())
        began = time.perf_counter()
        try:
            self._conn.send((request_id, json.dumps(event), time.time() + timeout_s))
            # A little grace over the timeout: the handler's own budget logic runs first.
            if not self._conn.poll(timeout_s + 1.0):
                self.kill()
                return _error("TaskTimedOut", began)
            _, kind, detail = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return _error("ContainerDied", began)
        if kind == "ok":
            return InvokeResult(True, detail.encode(), None, _ms(began))
        return _error(str(detail), began)

    def kill(self) -> None:
        self.alive = False
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self._conn.close()

    def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(None)
            self.process.join(timeout=5)
        self.kill()


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 1)


def _error(error_type: str, began: float) -> InvokeResult:
    # Lambda's error payload shape; the message is withheld (it may quote input).
    body = {"errorType": error_type, "errorMessage": "function error (message withheld)"}
    return InvokeResult(False, json.dumps(body).encode(), error_type, _ms(began))


class FunctionPool:
    """The containers of one function."""

    def __init__(
        self,
        function: FunctionDef,
        environment: dict[str, str],
        log_dir: Path,
        *,
        max_containers: int = 2,
    ) -> None:
        self.function = function
        self._environment = environment
        self._log_dir = log_dir
        self.max_containers = max(1, max_containers)
        self._containers: list[Container] = []
        self._starting = 0
        self._cond = threading.Condition()
        self._next_index = 0
        self._closed = False
        self.in_flight = 0
        self.invocations = 0
        self.errors = 0
        self.cold_starts = 0

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def log_paths(self) -> list[Path]:
        return sorted(self._log_dir.glob(f"{self.name}.*.log"))

    def _spec(self, index: int) -> ContainerSpec:
        return ContainerSpec(
            function_name=self.name,
            function_arn=self.function.arn,
            code_dir=str(self.function.code_dir),
            handler=self.function.handler,
            memory_mb=self.function.memory_mb,
            environment={
                **self._environment,
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{index:04d}",
            },
            log_path=str(self._log_dir / f"{self.name}.{index:03d}.log"),
            log_stream=f"local/[$LATEST]{index:04d}",
        )

    def warm(self) -> None:
        """Start one container now (a cold start before the first event; checks the import)."""
        container = self._acquire()
        self._release(container)

    def _acquire(self) -> Container:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionUnavailableError(f"{self.name}: runner stopped")
                self._containers = [c for c in self._containers if c.alive]
                idle = [c for c in self._containers if not c.busy]
                if idle:
                    idle[0].busy = True
                    return idle[0]
                if len(self._containers) + self._starting < self.max_containers:
                    self._starting += 1
                    index = self._next_index
                    self._next_index += 1
                    break
                self._cond.wait(0.5)
        try:
            container = Container(self._spec(index), index)
            container.wait_ready(START_TIMEOUT_S)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            container.busy = True
            self._containers.append(container)
            self.cold_starts += 1
        return container

    def _release(self, container: Container) -> None:
        with self._cond:
            container.busy = False
            self._cond.notify_all()

    def invoke(self, event: Any) -> InvokeResult:
        with self._cond:
            self.in_flight += 1
            self.invocations += 1
        try:
            try:
                container = self._acquire()
            except FunctionUnavailableError as exc:
                log.warning("%s", exc)
                return _error("FunctionUnavailable", time.perf_counter())
            except OSError as exc:  # cannot spawn a process
                log.warning("%s: container start failed (%s)", self.name, type(exc).__name__)
                return _error("FunctionUnavailable", time.perf_counter())
            container.busy_since = time.monotonic()
            try:
                result = container.invoke(event, self.function.timeout_s)
            finally:
                self._release(container)
            if not result.ok:
                with self._cond:
                    self.errors += 1
            return result
        finally:
            with self._cond:
                self.in_flight -= 1

    def kill_busy_container(self, min_busy_s: float = 0.0) -> int | None:
        """Crash (SIGKILL) the container that has run its current invocation longest, if for
        at least ``min_busy_s``; for chaos runs. The invoking thread sees the process die and
        fails the invocation (``ContainerDied``), as Lambda does when a sandbox crashes: an SQS
        batch is not deleted and reappears after its visibility timeout; the next invocation
        gets a new container. Returns the killed container's index, or None if none was busy."""
        now = time.monotonic()
        with self._cond:
            busy = [
                c
                for c in self._containers
                if c.alive and c.busy and now - c.busy_since >= min_busy_s
            ]
            if not busy:
                return None
            victim = min(busy, key=lambda c: c.busy_since)
            if victim.process.is_alive():
                victim.process.kill()  # only the process: the invoking thread cleans up
            return victim.index

    def stop(self) -> None:
        """Idle containers exit cleanly; busy ones are killed (their invocation fails, so an
        SQS batch simply returns to its queue)."""
        with self._cond:
            self._closed = True
            containers = list(self._containers)
            self._cond.notify_all()
        for container in containers:
            if container.busy:
                container.kill()
            else:
                container.stop()


# -- event source mappings ------------------------------------------------------------------


@dataclass
class Mapping:
    """One event source mapping, as the Lambda API shows it."""

    uuid: str
    function_name: str
    function_arn: str
    queue_arn: str
    queue_url: str
    batch_size: int
    window_s: float
    max_concurrency: int | None
    function_response_types: list[str]
    enabled: bool = True
    last_modified: float = field(default_factory=time.time)
    changed: threading.Event = field(default_factory=threading.Event)
    # counters (the status line; the demo's summary never uses them)
    received: int = 0
    deleted: int = 0
    failed_records: int = 0
    batches: int = 0
    in_flight_batches: int = 0
    last_result: str = "No records processed"
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (epoch seconds, Enabled) for every UpdateEventSourceMapping that changed Enabled
    history: list[tuple[float, bool]] = field(default_factory=list)

    def count(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    # A ReceiveMessage is outstanding: a disable takes effect when it returns (what it got is
    # still delivered), so until then the mapping is "Disabling", as Lambda reports it.
    receiving: bool = False

    @property
    def state(self) -> str:
        if self.enabled:
            return "Enabled"
        return "Disabling" if self.receiving else "Disabled"

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "UUID": self.uuid,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": int(self.window_s),
            "EventSourceArn": self.queue_arn,
            "FunctionArn": self.function_arn,
            "LastModified": self.last_modified,
            "State": self.state,
            "StateTransitionReason": "USER_INITIATED",
            "FunctionResponseTypes": list(self.function_response_types),
            "LastProcessingResult": self.last_result,
        }
        if self.max_concurrency:
            out["ScalingConfig"] = {"MaximumConcurrency": self.max_concurrency}
        return out

    def update(self, body: dict[str, Any]) -> None:
        if "Enabled" in body and bool(body["Enabled"]) != self.enabled:
            self.enabled = bool(body["Enabled"])
            self.history.append((time.time(), self.enabled))
        if "BatchSize" in body:
            self.batch_size = int(body["BatchSize"])
        if "MaximumBatchingWindowInSeconds" in body:
            self.window_s = float(body["MaximumBatchingWindowInSeconds"])
        if "ScalingConfig" in body:
            self.max_concurrency = (body["ScalingConfig"] or {}).get("MaximumConcurrency")
        if "FunctionResponseTypes" in body:
            self.function_response_types = list(body["FunctionResponseTypes"] or [])
        self.last_modified = time.time()
        self.changed.set()


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message (ReceiveMessage answer) as a record of the event Lambda sends."""
    attributes = {k: str(v) for k, v in message.get("Attributes", {}).items()}
    message_attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            entry["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
        message_attributes[name] = entry
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_ids(payload: bytes, message_ids: list[str], report_failures: bool) -> set[str] | None:
    """Records to leave in the queue after a successful invocation; None = the whole batch
    (Lambda's rules for an invalid ``batchItemFailures`` answer)."""
    if not report_failures:
        return set()
    try:
        answer = json.loads(payload or b"null")
    except ValueError:
        return None
    if answer is None or answer == "":
        return set()
    if not isinstance(answer, dict):
        return None
    failures = answer.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    out: set[str] = set()
    for item in failures:
        if not isinstance(item, dict):
            return None
        ident = item.get("itemIdentifier")
        if not isinstance(ident, str) or not ident or ident not in message_ids:
            return None
        out.add(ident)
    return out


class MappingTrace:
    """What every event source mapping delivered, one JSON line per batch (ids, receive counts
    and outcomes; never a body): which batch received a message, whether the invocation
    succeeded, and whether the message was deleted or left in the queue. Lets a run that
    cannot account for an event say which batch last had it and what became of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def __call__(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"))
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class EsmPoller:
    """Drives one mapping: poll, batch, invoke, delete (thread; ``stop()`` ends it)."""

    def __init__(
        self,
        mapping: Mapping,
        pool: FunctionPool,
        sqs_factory: Callable[[], Any],
        region: str,
        *,
        trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.mapping = mapping
        self._pool = pool
        self._sqs_factory = sqs_factory
        self._region = region
        self._trace = trace
        self._stop = threading.Event()
        limit = min(mapping.max_concurrency or pool.max_containers, pool.max_containers)
        self.concurrency = max(1, limit)
        self._slots = threading.Semaphore(self.concurrency)
        self._executor = ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"esm-{mapping.uuid[:8]}"
        )
        self._thread = threading.Thread(
            target=self._run, name=f"esm-{mapping.uuid[:8]}", daemon=True
        )
        self._local = threading.local()

    def _sqs(self) -> Any:
        client = getattr(self._local, "sqs", None)
        if client is None:
            client = self._local.sqs = self._sqs_factory()
        return client

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()
        self.mapping.changed.set()

    def stop(self) -> None:
        self.signal_stop()
        self._thread.join(timeout=RECEIVE_WAIT_S + 10)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.mapping.enabled:
                self.mapping.changed.wait(0.2)
                self.mapping.changed.clear()
                continue
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                batch = self._gather()
            except Exception as exc:  # noqa: BLE001 - keep polling, as the ESM does
                log.warning(
                    "mapping %s: receive failed (%s)", self.mapping.uuid, type(exc).__name__
                )
                self._slots.release()
                self._stop.wait(1.0)
                continue
            if not batch:
                self._slots.release()
                continue
            self.mapping.count(in_flight_batches=1)
            self._executor.submit(self._deliver, batch)

    def _gather(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages within the batching window (counted from the first one)."""
        mapping = self.mapping
        batch: list[dict[str, Any]] = []
        window_end: float | None = None
        while not self._stop.is_set() and mapping.enabled:
            want = min(_SQS_MAX_RECEIVE, mapping.batch_size - len(batch))
            if want <= 0:
                break
            wait = RECEIVE_WAIT_S
            if window_end is not None:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(RECEIVE_WAIT_S, int(remaining))  # 0: a short poll
            mapping.receiving = True
            try:
                answer = self._sqs().receive_message(
                    QueueUrl=mapping.queue_url,
                    MaxNumberOfMessages=want,
                    WaitTimeSeconds=wait,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            finally:
                mapping.receiving = False
            messages = answer.get("Messages", [])
            if messages:
                batch.extend(messages)
                mapping.count(received=len(messages))
                if window_end is None:
                    window_end = time.monotonic() + mapping.window_s
            if window_end is None or mapping.window_s <= 0:
                break  # nothing waiting (check Enabled, poll again), or no window to fill
            if not messages and wait == 0:
                time.sleep(min(0.2, max(0.0, window_end - time.monotonic())))
        return batch

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        mapping = self.mapping
        entry: dict[str, Any] = {
            "received_at": time.time(),
            "queue": mapping.queue_url.rsplit("/", 1)[-1],
            "messages": [
                [m["MessageId"], int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0))]
                for m in messages
            ],
        }
        try:
            records = [sqs_record(m, mapping.queue_arn, self._region) for m in messages]
            result = self._pool.invoke({"Records": records})
            ids = [r["messageId"] for r in records]
            failed = (
                failed_ids(
                    result.payload,
                    ids,
                    "ReportBatchItemFailures" in mapping.function_response_types,
                )
                if result.ok
                else None
            )
            keep = set(ids) if failed is None else failed
            done = [m for m in messages if m["MessageId"] not in keep]
            entry.update(invoked_ok=result.ok, error_type=result.error_type, kept=sorted(keep))
            entry["delete_failed"] = self._delete(done)
            mapping.count(batches=1, deleted=len(done), failed_records=len(keep))
            mapping.last_result = "OK" if result.ok else "PROBLEM: function error"
        except Exception as exc:  # noqa: BLE001 - keep polling; the records come back
            # The type only: an exception message could quote a record.
            log.error("mapping %s: delivery failed (%s)", mapping.uuid, type(exc).__name__)
            entry["delivery_error"] = type(exc).__name__
        finally:
            mapping.count(in_flight_batches=-1)
            self._slots.release()
            if self._trace is not None:
                entry["finished_at"] = time.time()
                try:
                    self._trace(entry)
                except OSError:
                    log.warning("mapping %s: trace not written", mapping.uuid)

    def _delete(self, messages: list[dict[str, Any]]) -> list[str]:
        """DeleteMessageBatch in tens; the ids SQS did not delete."""
        failed: list[str] = []
        for start in range(0, len(messages), _SQS_MAX_RECEIVE):
            chunk = messages[start : start + _SQS_MAX_RECEIVE]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ]
            try:
                answer = self._sqs().delete_message_batch(
                    QueueUrl=self.mapping.queue_url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("mapping %s: delete failed (%s)", self.mapping.uuid, type(exc).__name__)
                failed.extend(m["MessageId"] for m in chunk)
                continue
            if answer.get("Failed"):
                log.warning(
                    "mapping %s: %d deletes failed", self.mapping.uuid, len(answer["Failed"])
                )
                failed.extend(chunk[int(f["Id"])]["MessageId"] for f in answer["Failed"])
        return failed


# -- schedules ---------------------------------------------------------------------------------


def scheduled_event(
    rule_arn: str, region: str, account: str, now: datetime | None = None
) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" a schedule rule sends to its target."""
    at = (now or datetime.now(UTC)).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": at.isoformat().replace("+00:00", "Z"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    """Invokes a function every ``every_s`` seconds, one round at a time (thread)."""

    def __init__(
        self,
        pool: FunctionPool,
        rule_arn: str,
        every_s: float,
        *,
        region: str,
        account: str,
        payload: Any = None,
    ) -> None:
        self._pool = pool
        self._rule_arn = rule_arn
        self._every = every_s
        self._region = region
        self._account = account
        self._payload = payload
        self._stop = threading.Event()
        self.rounds = 0
        self.last: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, name=f"schedule-{pool.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self.signal_stop()
        self._thread.join(timeout=self._pool.function.timeout_s + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            event = (
                self._payload
                if self._payload is not None
                else scheduled_event(self._rule_arn, self._region, self._account)
            )
            result = self._pool.invoke(event)
            self.rounds += 1
            if result.ok:
                try:
                    self.last = json.loads(result.payload)
                except ValueError:
                    self.last = None
