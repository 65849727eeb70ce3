"""moto server in its own process (AWS for the local stack), on a free loopback port.

Its own process keeps moto's request handling off the runner's GIL. ``python -m
spcs_local.stack.moto_proc`` prints ``{"port": N}`` once it listens and runs until its stdin
closes (the parent died or stopped it) or it gets SIGTERM/SIGINT.

Before it listens, ``patch_sqs()`` fixes a race in moto's SQS and removes two costs it pays
per message on every call, which made the local stack slow down as its queues grew (profiled
under load: 75 % of moto's time; a queue 1,000 deep cost ~1.2 s per ReceiveMessage of 10 and
~0.4 s per SendMessageBatch of 10):

- ``Queue.delete_message`` rebuilt the queue's message list from a copy without the lock that
  ``add_message`` holds, so a message sent to a queue while another was being deleted from it
  could vanish: accepted (a message id returned), never delivered, in no DLQ. The chaos run
  found it (events lost whose messages no event source mapping had ever received); the
  replacement removes the message in place under that lock;
- moto's clock (``moto.core.utils.unix_time``) builds two naive UTC datetimes per reading, and
  ``Message.visible``/``delayed`` read it once per message per scan; the replacement reads
  ``time.time()`` (the same value, without the datetimes) when no datetime is given;
- ``is_message_valid_based_on_retention_period`` fetched ``MessageRetentionPeriod`` through
  ``get_queue_attributes``, which computes every attribute three times (each approximate count
  scans the whole queue), for every message received; the replacement reads the queue's
  ``message_retention_period`` directly, the value that attribute returns.

Apart from the race, behaviour is unchanged (``tests/stack/test_stack_moto_proc.py``);
``SPCS_LOCAL_MOTO_STOCK=1`` runs moto as shipped, to compare.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

START_TIMEOUT_S = 60.0
STOCK_ENV = "SPCS_LOCAL_MOTO_STOCK"  # "1": run moto's SQS as shipped (no patches)


def fast_unix_time(dt: datetime | None = None) -> float:
    """``moto.core.utils.unix_time`` without building datetimes for "now"."""
    if dt is not None:
        from moto.core.utils import unix_time

        return unix_time(dt)
    return time.time()


def fast_unix_time_millis(dt: datetime | None = None) -> float:
    return fast_unix_time(dt) * 1000.0


def _retention_check(self: Any, queue_name: str, message: Any) -> bool:
    """``SQSBackend.is_message_valid_based_on_retention_period`` reading the one attribute
    it needs instead of computing them all."""
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > fast_unix_time())


def _delete_message(self: Any, receipt_handle: str) -> None:
    """``Queue.delete_message`` that removes the message in place, under the queue's lock.

    moto's own rebuilds ``_messages`` from a copy without the lock ``add_message`` appends
    under, so a message sent while another is being deleted from the same queue could vanish
    (accepted, never delivered: a lost message that real SQS would never lose)."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    with self._messages_lock:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: deleting again succeeds, as in SQS
        targets = [m for m in list(self._messages) if m.had_receipt_handle(receipt_handle)]
        if not targets:
            raise ReceiptHandleIsInvalid()
        for message in targets:
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            with contextlib.suppress(ValueError):  # moved to the DLQ by a concurrent receive
                self._messages.remove(message)


def patch_sqs(patch: Callable[[Any, str, Any], None] = setattr) -> list[str]:
    """Patch moto's SQS models in this process (see the module docstring); returns what was
    patched. Anything this moto version does not have is left alone. ``patch`` sets an
    attribute (tests pass pytest's ``monkeypatch.setattr``, which undoes it)."""
    from moto.sqs import models

    patched: list[str] = []
    queue = getattr(models, "Queue", None)
    if queue is not None and hasattr(queue, "delete_message"):
        patch(queue, "delete_message", _delete_message)
        patched.append("Queue.delete_message")
    for name, fast in (("unix_time", fast_unix_time), ("unix_time_millis", fast_unix_time_millis)):
        if callable(getattr(models, name, None)):
            patch(models, name, fast)
            patched.append(name)
    backend = getattr(models, "SQSBackend", None)
    if backend is not None and hasattr(backend, "is_message_valid_based_on_retention_period"):
        patch(backend, "is_message_valid_based_on_retention_period", _retention_check)
        patched.append("is_message_valid_based_on_retention_period")
    return patched


class MotoServer:
    """The parent's handle on the moto server process."""

    def __init__(self, log_path: Path | None = None) -> None:
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("moto server is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stderr = self._log_path.open("ab") if self._log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "spcs_local.stack.moto_proc"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                # Its own session: a terminal's Ctrl-C reaches the runner, which stops moto
                # last (pollers still talk to it while they wind down).
                start_new_session=True,
            )
        finally:
            if self._log_path and not isinstance(stderr, int):
                stderr.close()
        assert self._process.stdout is not None
        ready: dict[str, int] = {}

        def read_port() -> None:
            assert self._process is not None
            assert self._process.stdout is not None
            line = self._process.stdout.readline()
            if line:
                ready.update(json.loads(line))

        reader = threading.Thread(target=read_port, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if "port" not in ready:
            self.stop()
            raise RuntimeError("moto server did not start")
        self.port = int(ready["port"])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def main() -> int:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines
    if os.environ.get(STOCK_ENV) != "1":
        patch_sqs()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(json.dumps({"port": port}), flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:  # parent gone or closed our stdin: stop
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
