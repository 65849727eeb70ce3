"""moto server in its own process (AWS for the local stack), on a free loopback port.

Its own process keeps moto's request handling off the runner's GIL. ``python -m
spcs_local.stack.moto_proc`` prints ``{"port": N}`` once it listens and runs until its stdin
closes (the parent died or stopped it) or it gets SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

START_TIMEOUT_S = 60.0


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
