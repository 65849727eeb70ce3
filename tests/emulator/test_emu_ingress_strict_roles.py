"""The endpoint role over real HTTP: a caller whose role lacks ``SERVICE ROLE
<svc>!ALL_ENDPOINTS_USAGE`` gets 403 after auth (401) and before anything else.

The account is a fake with the two methods ``state.Account`` offers for this
(``role_can_use_endpoint``, ``user_default_role``), so the ingress is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from spcs_local.emulator.auth import EmulatorAuth, parse_scope
from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.faults import FaultInjector, parse_faults
from spcs_local.emulator.ingress import FORBIDDEN_BODY, IngressApp
from spcs_local.emulator.state import GateDecision
from spcs_local.serving import ThreadedServer
from spcs_models import spec

FQN = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
USER = "GATEWAY_SVC"
GRANTED = "SPCS_GATEWAY_ROLE"
PATS = {"pat-default": None, "pat-granted": GRANTED, "pat-analyst": "ANALYST"}


class RoleAccount:
    def __init__(self) -> None:
        self.grants = {GRANTED}
        self.default_roles: dict[str, str | None] = {USER: GRANTED}
        self.asked: list[tuple[str, str]] = []
        self.gate_calls = 0

    def ingress_gate(self, fqn: str) -> GateDecision:
        self.gate_calls += 1
        return GateDecision(True, "RUNNING", None)

    def role_can_use_endpoint(self, role: str, fqn: str) -> bool:
        self.asked.append((role, fqn))
        return role in self.grants

    def user_default_role(self, user: str) -> str | None:
        return self.default_roles.get(user)


class Served:
    def __init__(self, account: Any, faults: FaultInjector | None = None) -> None:
        self.auth = EmulatorAuth("LOCALTEST", USER, [], PATS, FakeClock())
        self.app = IngressApp(
            fqn=FQN,
            names=("biobert_ner",),
            deployment=spec.NER,
            runner=lambda parsed: [[] for _ in parsed.rows],
            backend_name="lexicon",
            account=account,
            auth=self.auth,
            faults=faults or FaultInjector(),
        )
        self.server = ThreadedServer(self.app, name="ingress-roles-test")
        self.app.scope_host = f"127.0.0.1:{self.server.port}"
        self.url = f"{self.server.url}/predict"

    def token(self, role: str | None) -> str:
        scope = (
            self.app.scope_host if role is None else f"session:role:{role} {self.app.scope_host}"
        )
        return self.auth.issue_token(USER, parse_scope(scope))

    def post(self, token: str) -> httpx.Response:
        headers = {"Authorization": f'Snowflake Token="{token}"'}
        return httpx.post(self.url, json={"data": [[0, "text"]]}, headers=headers, timeout=10)


@pytest.fixture
def account() -> RoleAccount:
    return RoleAccount()


@pytest.fixture
def served(account: RoleAccount) -> Iterator[Served]:
    s = Served(account)
    yield s
    s.server.stop()


def test_scope_role_with_the_service_role_is_served(served: Served, account: RoleAccount) -> None:
    response = served.post(served.token("spcs_gateway_role"))  # unquoted: upper-cased
    assert response.status_code == 200
    assert account.asked == [(GRANTED, FQN)]


def test_scope_role_without_it_gets_403_even_if_the_default_role_has_it(
    served: Served, account: RoleAccount
) -> None:
    response = served.post(served.token("ANALYST"))
    assert response.status_code == 403
    assert response.json() == FORBIDDEN_BODY
    assert response.json() == {
        "error": "forbidden",
        "message": "the caller's role lacks the endpoint's service role",
    }
    assert response.headers["X-Emulator-Backend"] == "lexicon"
    assert account.gate_calls == 0  # refused before the lifecycle gate (no auto-resume)
    assert served.app.stats.snapshot()["responses"] == {"403": 1}


def test_without_a_scope_role_the_default_role_decides(
    served: Served, account: RoleAccount
) -> None:
    token = served.token(None)
    assert served.post(token).status_code == 200
    account.default_roles[USER] = "ANALYST"
    assert served.post(token).status_code == 403
    account.default_roles[USER] = None  # no default role: the session is PUBLIC
    assert served.post(token).status_code == 403
    assert account.asked[-1] == ("PUBLIC", FQN)
    account.grants.add("PUBLIC")
    assert served.post(token).status_code == 200


def test_pat_role_restriction_or_default_role(served: Served, account: RoleAccount) -> None:
    assert served.post("pat-granted").status_code == 200
    assert served.post("pat-analyst").status_code == 403
    assert served.post("pat-default").status_code == 200  # the user's default role
    account.default_roles[USER] = "ANALYST"
    assert served.post("pat-default").status_code == 403
    assert served.post("pat-granted").status_code == 200  # the restriction, not the default


def test_auth_is_checked_before_the_role(served: Served, account: RoleAccount) -> None:
    account.grants.clear()
    assert served.post("not-a-token").status_code == 401
    missing = httpx.post(served.url, json={"data": [[0, "x"]]}, timeout=10)
    assert missing.status_code == 401
    assert account.asked == []
    assert served.post("pat-granted").status_code == 403


def test_the_role_is_checked_before_faults(account: RoleAccount) -> None:
    s = Served(account, FaultInjector(parse_faults(["*:503=1"])))
    try:
        assert s.post(s.token("ANALYST")).status_code == 403
        assert s.post(s.token(GRANTED)).status_code == 503
    finally:
        s.server.stop()


def test_an_account_without_the_role_api_lets_every_role_through() -> None:
    class GateOnly:
        def ingress_gate(self, fqn: str) -> GateDecision:
            return GateDecision(True, "RUNNING", None)

    s = Served(GateOnly())
    try:
        assert s.post(s.token("ANALYST")).status_code == 200
    finally:
        s.server.stop()
