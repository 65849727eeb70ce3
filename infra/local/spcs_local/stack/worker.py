"""One Lambda "container": a spawned process that imports a function's module once and runs
invocations one at a time, so module-level state behaves as in a real execution environment.

The parent (``runner.FunctionPool``) sends ``(request_id, event_json, deadline_epoch)`` over a
pipe and gets ``(request_id, "ok", payload_json)`` or ``(request_id, "error", error_type)``.
Everything the function prints (Powertools' JSON log lines, EMF metrics) goes to the
container's log file, like stdout/stderr to CloudWatch Logs. An exception is reported by type
only: its message may quote input (PHI).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ContainerSpec:
    function_name: str
    function_arn: str
    code_dir: str
    handler: str  # module.function
    memory_mb: int
    environment: dict[str, str]
    log_path: str
    log_stream: str


class LambdaContext:
    """The attributes of the Python runtime's context object the handlers and Powertools use."""

    def __init__(self, spec: ContainerSpec, request_id: str, deadline: float) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.function_arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.function_name}"
        self.log_stream_name = spec.log_stream
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _redirect_output(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115


def _platform_line(kind: str, request_id: str, **fields: Any) -> None:
    # Like Lambda's START/END/REPORT platform lines (ids and timings only).
    print(json.dumps({"type": f"platform.{kind}", "requestId": request_id, **fields}), flush=True)


def container_main(spec: ContainerSpec, conn: Connection) -> None:
    """Entry point of the spawned process."""
    # Ctrl-C goes to the whole process group; the runner stops containers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _redirect_output(spec.log_path)
    os.environ.clear()
    os.environ.update(spec.environment)
    sys.path.insert(0, spec.code_dir)
    module_name, _, func_name = spec.handler.rpartition(".")
    started = time.perf_counter()
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, func_name)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never re-raised
        print(
            json.dumps({"type": "platform.initError", "errorType": type(exc).__name__}), flush=True
        )
        traceback.print_tb(exc.__traceback__)
        conn.send(("init_error", type(exc).__name__))
        return
    init_ms = round((time.perf_counter() - started) * 1000, 1)
    print(json.dumps({"type": "platform.initReport", "initDurationMs": init_ms}), flush=True)
    conn.send(("ready", init_ms))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        request_id, event_json, deadline = message
        request_id = request_id or str(uuid.uuid4())
        context = LambdaContext(spec, request_id, deadline)
        _platform_line("start", request_id)
        began = time.perf_counter()
        try:
            result = handler(json.loads(event_json), context)
            payload = json.dumps(result)
            outcome: tuple[str, str, str] = (request_id, "ok", payload)
            status = "success"
        except BaseException as exc:  # noqa: BLE001 - an unhandled function error, as Lambda reports it
            print(
                json.dumps(
                    {
                        "type": "platform.error",
                        "requestId": request_id,
                        "errorType": type(exc).__name__,
                    }
                ),
                flush=True,
            )
            traceback.print_tb(exc.__traceback__)
            outcome = (request_id, "error", type(exc).__name__)
            status = "error"
        duration = round((time.perf_counter() - began) * 1000, 1)
        _platform_line("report", request_id, status=status, durationMs=duration)
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return
