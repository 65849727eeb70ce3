"""SnapStart safety: what init built is fresh again after a (simulated) restore.

A restore is simulated the way Lambda runs it: the before-snapshot hooks, then the after-restore
hooks (``snapshot.simulate_restore``). "Two environments restored from one snapshot" is
simulated by putting the same captured state back before each restore.
"""

from __future__ import annotations

import gc
import http.server
import json
import random
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spcs_gateway import snapshot
from spcs_gateway.auth import TokenProvider
from spcs_gateway.backoff import BackoffPolicy, jitter_rng
from spcs_gateway.errors import FailureKind
from spcs_gateway.http import build_http_client
from spcs_gateway.registry import SnowflakeSettings
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.sql import SnowflakeSql

HOST = "abc-org-acct.snowflakecomputing.app"


def _settings(auth: str = "keypair") -> SnowflakeSettings:
    return SnowflakeSettings.model_validate(
        {
            "account": "myorg-acct",
            "user": "svc_gateway",
            "auth": auth,
            "secret": {"secret_id": "arn:secret", "max_age_seconds": 3600},
        }
    )


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class CountingFetch:
    def __init__(self, value: str) -> None:
        self.value = value
        self.forces: list[bool] = []

    def __call__(self, secret_id: str, max_age: int, force: bool) -> str:
        self.forces.append(force)
        return self.value


class TokenEndpoint:
    """The account's /oauth/token: a new opaque token per exchange."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.issued += 1
        return httpx.Response(200, text=f"ingress-token-{self.issued}")


# -- the hook registry ---------------------------------------------------------------------------


def test_gw_snapshot_runs_hooks_in_the_runtimes_order() -> None:
    hooks = snapshot.HookRegistry()
    calls: list[str] = []
    for name in ("a", "b", "c"):
        hooks.before_snapshot(lambda n=name: calls.append(f"before-{n}"), name=f"before-{name}")
        hooks.after_restore(lambda n=name: calls.append(f"after-{n}"), name=f"after-{name}")

    timing = hooks.simulate_restore()

    # Lambda: before-snapshot in reverse order of registration, after-restore in order.
    assert calls == ["before-c", "before-b", "before-a", "after-a", "after-b", "after-c"]
    assert set(timing.seconds) == {"after-a", "after-b", "after-c"}
    assert hooks.restores == 1
    assert hooks.last_restore is timing


def test_gw_snapshot_a_failing_hook_does_not_skip_the_others() -> None:
    hooks = snapshot.HookRegistry()
    ran: list[str] = []

    def broken() -> None:
        raise ValueError("CANARY-secret-detail")

    hooks.after_restore(broken, name="broken")
    hooks.after_restore(lambda: ran.append("next"), name="next")

    with pytest.raises(snapshot.SnapshotHookError) as err:
        hooks.run_after_restore()
    assert ran == ["next"]
    assert "broken" in str(err.value)
    assert "CANARY" not in str(err.value)


def test_gw_snapshot_hooks_do_not_keep_their_owners_alive() -> None:
    hooks = snapshot.HookRegistry()

    class Owner:
        restored = 0

        def restore(self) -> None:
            Owner.restored += 1

    owner = Owner()
    other = Owner()
    hooks.after_restore(owner.restore)
    hooks.after_restore(lambda o: o.restore(), owner=other)
    assert hooks.counts() == (0, 2)

    del owner, other
    gc.collect()
    assert hooks.counts() == (0, 0)
    hooks.run_after_restore()
    assert Owner.restored == 0


def test_gw_snapshot_hands_its_dispatchers_to_the_managed_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = types.ModuleType("snapshot_restore_py")
    registered: dict[str, Any] = {}
    runtime.register_before_snapshot = lambda fn: registered.setdefault("before", fn)  # type: ignore[attr-defined]
    runtime.register_after_restore = lambda fn: registered.setdefault("after", fn)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    monkeypatch.setattr(snapshot, "_attached", False)
    ran: list[str] = []

    def hook() -> None:
        ran.append("restored")

    snapshot.after_restore(hook, name="test.hook")
    try:
        assert registered["before"] == snapshot.REGISTRY.run_before_snapshot
        assert registered["after"] == snapshot.REGISTRY.run_after_restore
        registered["after"]()  # what the runtime does after a restore
        assert ran == ["restored"]
    finally:
        del hook
        gc.collect()


# -- tokens and credentials ----------------------------------------------------------------------


def test_gw_snapshot_ingress_token_is_not_reused_after_restore(pem: str) -> None:
    endpoint = TokenEndpoint()
    fetch = CountingFetch(json.dumps({"private_key": pem}))
    with httpx.Client(transport=httpx.MockTransport(endpoint)) as http:
        tokens = TokenProvider(_settings(), CredentialSource(_settings(), fetch_secret=fetch), http)
        before = tokens.ingress_token(HOST)
        assert tokens.ingress_token(HOST) == before  # cached while warm

        snapshot.simulate_restore()
        assert tokens._jwt is None  # the JWT minted before the snapshot is gone too

        after = tokens.ingress_token(HOST)
        assert after != before
        assert endpoint.issued == 2
        assert tokens.exchanges == 2
        # The secret is read again past every cache (force) by the first call after restore.
        assert fetch.forces == [False, True]


def test_gw_snapshot_pat_is_reread_after_restore() -> None:
    fetch = CountingFetch('{"token": "pat-one"}')
    settings = _settings("pat")
    with httpx.Client(transport=httpx.MockTransport(TokenEndpoint())) as http:
        tokens = TokenProvider(settings, CredentialSource(settings, fetch_secret=fetch), http)
        assert tokens.ingress_token(HOST) == "pat-one"
        fetch.value = '{"token": "pat-rotated"}'
        assert tokens.ingress_token(HOST) == "pat-one"  # cached for max_age

        snapshot.simulate_restore()

        assert tokens.ingress_token(HOST) == "pat-rotated"
        assert fetch.forces == [False, True]


def test_gw_snapshot_unchanged_secret_keeps_its_parsed_key(pem: str) -> None:
    fetch = CountingFetch(json.dumps({"private_key": pem}))
    source = CredentialSource(_settings(), fetch_secret=fetch)
    key = source.get().private_key
    snapshot.simulate_restore()
    assert source.get().private_key is key  # re-validated, not re-parsed
    assert fetch.forces == [False, True]


# -- the Snowflake session -----------------------------------------------------------------------


class FakeCursor:
    description = None

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: list[Any]) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False

    def cursor(self, *args: Any) -> FakeCursor:
        return FakeCursor()

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_gw_snapshot_snowflake_session_is_reopened_lazily_after_restore() -> None:
    opened: list[FakeConnection] = []

    def connect() -> FakeConnection:
        opened.append(FakeConnection())
        return opened[-1]

    sql = SnowflakeSql(connect)  # type: ignore[arg-type]
    sql.execute("MERGE 1")
    assert sql.connects == 1

    snapshot.REGISTRY.run_after_restore()
    assert sql.connects == 1  # nothing opened by the restore itself
    # Forgotten, not logged out: the session may be shared with other restored environments.
    assert opened[0].closed is False

    sql.execute("MERGE 2")
    assert sql.connects == 2
    assert opened[1] is not opened[0]


def test_gw_snapshot_no_session_is_in_the_snapshot() -> None:
    opened: list[FakeConnection] = []

    def connect() -> FakeConnection:
        opened.append(FakeConnection())
        return opened[-1]

    sql = SnowflakeSql(connect)  # type: ignore[arg-type]
    sql.execute("SELECT 1")
    snapshot.REGISTRY.run_before_snapshot()
    assert opened[0].closed is True  # logged out before the snapshot is taken
    assert "snowflake.connector" in sys.modules  # warmed: restore does not import it


# -- httpx connection pools ----------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        _Handler.peers.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Handler.peers = []
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    srv.server_close()


def test_gw_snapshot_http_pool_is_emptied_and_refilled_after_restore(server: str) -> None:
    client = build_http_client(transport=httpx.HTTPTransport(retries=0))
    try:
        client.get(server)
        client.get(server)
        assert len(set(_Handler.peers)) == 1  # one kept-alive connection while warm
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1

        snapshot.REGISTRY.run_after_restore()
        assert len(pool.connections) == 0

        assert client.get(server).text == "ok"  # the same client object keeps working
        assert len(set(_Handler.peers)) == 2  # ... on a new connection
    finally:
        client.close()


# -- random state --------------------------------------------------------------------------------


def test_gw_snapshot_restored_environments_draw_different_random_numbers() -> None:
    captured = random.getstate()  # what the snapshot holds

    def environment(*, restore: bool) -> list[float]:
        random.setstate(captured)
        if restore:
            snapshot.REGISTRY.run_after_restore()
        return [random.random() for _ in range(4)]

    # Without the hooks two restored environments draw the same "random" sequence ...
    assert environment(restore=False) == environment(restore=False)
    # ... with them each draws its own.
    assert environment(restore=True) != environment(restore=True)


def test_gw_snapshot_jitter_generator_holds_no_state_to_share() -> None:
    rng = jitter_rng()
    with pytest.raises(NotImplementedError):
        rng.getstate()  # type: ignore[attr-defined]  # SystemRandom: nothing in the snapshot
    policy = BackoffPolicy()
    delays = {policy.delay(FailureKind.TRANSIENT, 6, rng) for _ in range(40)}
    assert len(delays) > 1
    assert all(1 <= d <= policy.transient_cap for d in delays)


def test_gw_snapshot_components_leave_no_hooks_behind_when_dropped() -> None:
    gc.collect()
    before = snapshot.REGISTRY.counts()
    fetch = CountingFetch('{"token": "pat"}')
    settings = _settings("keypair")
    http = build_http_client()
    tokens = TokenProvider(settings, CredentialSource(settings, fetch_secret=fetch), http)
    sql = SnowflakeSql(lambda: FakeConnection())  # type: ignore[arg-type,return-value]
    assert snapshot.REGISTRY.counts() > before
    del tokens, sql, http
    gc.collect()
    assert snapshot.REGISTRY.counts() == before
