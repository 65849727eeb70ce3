"""Fixtures that run ``spcs-local emulator`` in a subprocess on ephemeral loopback ports.

``emulator``
    Session-scoped default emulator (per xdist worker): generated key pair, both default
    services, ``--resume-seconds 1``. Shared: do not suspend its services or set faults on
    it; start your own with ``emulator_factory`` for that.
``emulator_factory``
    Module-scoped factory: ``emulator_factory("--start-suspended", "--fault", "spec")`` starts
    another emulator with extra flags (``state_dir=`` reuses a state dir, e.g. for a restart)
    and stops it when the module ends (or earlier with ``handle.stop()``).

Both give an ``EmulatorHandle``: ``config`` (the --config-out registry document as a dict),
``registry_path``, ``state_dir``, ``account_url``, ``admin_url``, ``url(name)`` (ingress base
URL of a logical service, e.g. ``"biobert_ner"``), ``service(name)`` (its registry entry),
``private_key()`` (key-pair mode), ``token_header(name)`` (a ready ``Authorization`` header),
``connect()`` (a snowflake-connector-python connection), ``admin_get/admin_post``, ``stop()``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

START_TIMEOUT_S = 30.0
DEFAULT_FLAGS = ("--resume-seconds", "1")


@dataclass
class EmulatorHandle:
    process: subprocess.Popen[bytes]
    workdir: Path
    state_dir: Path
    registry_path: Path
    flags: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)

    # -- addresses ------------------------------------------------------------------------------
    @property
    def snowflake(self) -> dict[str, Any]:
        return dict(self.config["snowflake"])

    @property
    def account_url(self) -> str:
        sf = self.config["snowflake"]
        return f"http://{sf['host']}:{sf['port']}"

    @property
    def admin_url(self) -> str:
        return f"{self.account_url}/admin"

    def service(self, name: str) -> dict[str, Any]:
        return next(s for s in self.config["services"] if s["name"] == name)

    def url(self, name: str) -> str:
        return str(self.service(name)["url"])

    def scope_host(self, name: str) -> str:
        return self.url(name).split("://", 1)[1]

    def inference_url(self, name: str) -> str:
        method = self.service(name).get("method", "__call__")
        return self.url(name) + "/" + method.replace("_", "-")

    # -- credentials ----------------------------------------------------------------------------
    @property
    def secret_path(self) -> Path:
        return Path(self.config["snowflake"]["secret"]["file"])

    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.secret_path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def keypair_jwt(self, *, lifetime: int = 3000, key: rsa.RSAPrivateKey | None = None) -> str:
        from spcs_gateway.auth import make_keypair_jwt

        sf = self.config["snowflake"]
        return make_keypair_jwt(
            sf["account"],
            sf["user"],
            key or self.private_key(),
            now=time.time(),
            lifetime_s=lifetime,
        )

    def ingress_token(self, name: str) -> str:
        """A token for the ingress of ``name``: the PAT, or a key-pair exchange at /oauth/token."""
        if self.config["snowflake"]["auth"] == "pat":
            return self.secret_path.read_text().strip()
        response = httpx.post(
            f"{self.account_url}/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "scope": self.scope_host(name),
                "assertion": self.keypair_jwt(),
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.text

    def token_header(self, name: str) -> dict[str, str]:
        return {"Authorization": f'Snowflake Token="{self.ingress_token(name)}"'}

    def connect(self, **overrides: Any) -> Any:
        """A snowflake-connector-python connection to the account endpoint."""
        import snowflake.connector

        sf = self.config["snowflake"]
        kwargs: dict[str, Any] = {
            "account": sf["account"],
            "user": sf["user"],
            "role": sf.get("role"),
            "warehouse": sf.get("warehouse"),
            "host": sf["host"],
            "port": sf["port"],
            "protocol": sf["protocol"],
            "login_timeout": 20,
        }
        if sf["auth"] == "pat":
            kwargs.update(
                authenticator="PROGRAMMATIC_ACCESS_TOKEN", token=self.secret_path.read_text()
            )
        else:
            kwargs.update(authenticator="SNOWFLAKE_JWT", private_key=self.private_key())
        kwargs.update(overrides)
        return snowflake.connector.connect(**kwargs)

    # -- admin API ------------------------------------------------------------------------------
    def admin_get(self, path: str) -> Any:
        response = httpx.get(f"{self.admin_url}/{path.lstrip('/')}", timeout=10)
        response.raise_for_status()
        return response.json()

    def admin_post(self, path: str, body: Any = None) -> Any:
        response = httpx.post(f"{self.admin_url}/{path.lstrip('/')}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    # -- process --------------------------------------------------------------------------------
    @property
    def output(self) -> str:
        return (self.workdir / "emulator.out").read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_emulator(
    workdir: Path, *flags: str, state_dir: Path | None = None, port: int = 0
) -> EmulatorHandle:
    """Start ``spcs-local emulator`` and wait until its --config-out document exists."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = state_dir or workdir / "state"
    registry = workdir / "registry.json"
    registry.unlink(missing_ok=True)
    all_flags = (*DEFAULT_FLAGS, *flags)
    cmd = [
        sys.executable, "-m", "spcs_local.cli", "emulator",
        "--port", str(port), "--state-dir", str(state), "--config-out", str(registry),
        *all_flags,
    ]  # fmt: skip
    out = (workdir / "emulator.out").open("wb")
    process = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ}
    )
    out.close()
    handle = EmulatorHandle(process, workdir, state, registry, tuple(all_flags))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not registry.exists():
        if process.poll() is not None:
            raise RuntimeError(f"emulator exited with {process.returncode}:\n{handle.output}")
        if time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError(f"emulator did not start in {START_TIMEOUT_S}s:\n{handle.output}")
        time.sleep(0.05)
    # The document is written as soon as everything listens; the banner follows it.
    while "ready (Ctrl-C to stop)" not in handle.output and time.monotonic() < deadline:
        time.sleep(0.05)
    handle.config = json.loads(registry.read_text())
    return handle


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    handle = start_emulator(tmp_path_factory.mktemp("emulator"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def emulator_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., EmulatorHandle]]:
    started: list[EmulatorHandle] = []

    def factory(*flags: str, state_dir: Path | None = None) -> EmulatorHandle:
        handle = start_emulator(tmp_path_factory.mktemp("emulator"), *flags, state_dir=state_dir)
        started.append(handle)
        return handle

    try:
        yield factory
    finally:
        for handle in started:
            handle.stop()
