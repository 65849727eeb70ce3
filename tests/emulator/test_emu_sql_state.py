"""Lifecycle of the emulated account (state.Account) with a fake clock, no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.state import (
    CREDITS_PER_NODE_HOUR,
    Account,
    InvalidPropertyError,
    PoolSuspendedError,
    ServiceSpec,
    Store,
    split_identifier,
)

NER = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
CLIP = "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"
POOL = "ML_INFERENCE_POOL"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

SPECS = [
    ServiceSpec(NER, POOL, "BIOBERT_NER", "V1", "token-classification"),
    ServiceSpec(CLIP, POOL, "BIOMEDCLIP_CLASSIFIER", "V1", "zero-shot-image-classification"),
]


def make(
    state_dir: Path | None = None, clock: FakeClock | None = None, **kwargs: object
) -> tuple[Account, FakeClock, Store]:
    clock = clock or FakeClock(T0)
    store = Store(state_dir)
    account = Account(store, clock, SPECS, resume_seconds=5, **kwargs)  # type: ignore[arg-type]
    return account, clock, store


def status(account: Account, fqn: str = NER) -> str:
    return account.service(fqn).status


def pool_state(account: Account) -> str:
    return account.pools()[0].state


def test_starts_running_and_active() -> None:
    account, _, _ = make()
    assert [s.status for s in account.services()] == ["RUNNING", "RUNNING"]
    assert pool_state(account) == "ACTIVE"
    row = account.service(NER)
    assert row.current_instances == 1
    assert [c.status for c in row.containers] == ["READY"]


def test_resume_is_pending_for_resume_seconds_then_running() -> None:
    account, clock, _ = make()
    account.suspend_service(NER)
    row = account.service(NER)
    assert row.status == "SUSPENDED"
    assert row.containers == ()
    assert row.current_instances == 0

    account.resume_service(NER)
    row = account.service(NER)
    assert row.status == "PENDING"
    assert [c.status for c in row.containers] == ["PENDING"]
    clock.advance(4.9)
    assert status(account) == "PENDING"
    clock.advance(0.1)
    row = account.service(NER)
    assert row.status == "RUNNING"
    assert [c.status for c in row.containers] == ["READY"]
    assert row.resumed_on == T0


def test_pool_goes_idle_when_all_services_suspended_then_auto_suspends() -> None:
    account, clock, _ = make()
    account.suspend_service(NER)
    assert pool_state(account) == "ACTIVE"  # the other service still runs
    account.suspend_service(CLIP)
    assert pool_state(account) == "IDLE"
    clock.advance(3599)
    assert pool_state(account) == "IDLE"
    clock.advance(1)
    assert pool_state(account) == "SUSPENDED"
    suspended = [t for t in account.transitions(POOL) if t.to_state == "SUSPENDED"]
    assert suspended[-1].ts == T0 + 3600  # stamped when it was due, not when observed


def test_pool_suspension_cascades_to_services() -> None:
    account, _, _ = make()
    account.suspend_pool(POOL)
    assert pool_state(account) == "SUSPENDED"
    assert [s.status for s in account.services()] == ["SUSPENDED", "SUSPENDED"]


def test_resume_on_suspended_pool_starts_the_pool_first() -> None:
    account, clock, _ = make()
    account.suspend_pool(POOL)
    account.resume_service(NER)
    assert pool_state(account) == "STARTING"
    assert status(account) == "PENDING"
    assert status(account, CLIP) == "SUSPENDED"
    clock.advance(5)
    assert pool_state(account) == "ACTIVE"
    assert status(account) == "RUNNING"
    kinds = [(t.kind, t.to_state) for t in account.transitions() if t.ts >= T0][-4:]
    assert kinds == [
        ("pool", "STARTING"),
        ("service", "PENDING"),
        ("pool", "ACTIVE"),
        ("service", "RUNNING"),
    ]


def test_resume_on_suspended_pool_without_auto_resume_is_refused() -> None:
    account, _, _ = make()
    account.suspend_pool(POOL)
    account.alter_pool(POOL, auto_resume=False)
    with pytest.raises(PoolSuspendedError):
        account.resume_service(NER)
    assert status(account) == "SUSPENDED"
    gate = account.ingress_gate(NER)
    assert (gate.ready, gate.status, gate.retry_after) == (False, "SUSPENDED", None)


def test_auto_suspend_secs_counts_from_the_last_request() -> None:
    account, clock, _ = make()
    account.alter_service(NER, AUTO_SUSPEND_SECS=60)
    clock.advance(50)
    assert account.ingress_gate(NER).ready
    clock.advance(50)  # 100 s after the ALTER but only 50 s after the request
    assert status(account) == "RUNNING"
    clock.advance(10)
    assert status(account) == "SUSPENDED"
    assert account.service(NER).suspended_on == T0 + 110
    assert status(account, CLIP) == "RUNNING"  # 0 = never


def test_ingress_gate_auto_resumes_a_suspended_service() -> None:
    account, clock, _ = make()
    account.suspend_service(NER)
    gate = account.ingress_gate(NER)
    assert (gate.ready, gate.status, gate.retry_after) == (False, "PENDING", 5.0)
    clock.advance(2)
    gate = account.ingress_gate(NER)
    assert (gate.ready, gate.status, gate.retry_after) == (False, "PENDING", 3.0)
    clock.advance(3)
    assert account.ingress_gate(NER).ready


def test_ingress_gate_without_auto_resume_stays_suspended() -> None:
    account, _, _ = make(auto_resume=False)
    account.suspend_service(NER)
    gate = account.ingress_gate(NER)
    assert (gate.ready, gate.status, gate.retry_after) == (False, "SUSPENDED", None)
    assert status(account) == "SUSPENDED"


def test_zero_resume_seconds_is_ready_at_once() -> None:
    clock = FakeClock(T0)
    account = Account(Store(None), clock, SPECS, resume_seconds=0)
    account.suspend_service(NER)
    assert account.ingress_gate(NER).ready


def test_start_suspended() -> None:
    account, _, _ = make(start_suspended=True)
    assert [s.status for s in account.services()] == ["SUSPENDED", "SUSPENDED"]
    assert pool_state(account) == "IDLE"


def test_alter_service_validates_properties() -> None:
    account, _, _ = make()
    account.alter_service(NER, MIN_INSTANCES=2, MAX_INSTANCES="3", AUTO_RESUME="false")
    row = account.service(NER)
    assert (row.min_instances, row.max_instances, row.auto_resume) == (2, 3, False)
    assert row.current_instances == 2
    assert len(row.containers) == 2
    with pytest.raises(InvalidPropertyError):
        account.alter_service(NER, MIN_INSTANCES=5)  # above MAX_INSTANCES
    with pytest.raises(InvalidPropertyError):
        account.alter_service(NER, AUTO_SUSPEND_SECS="soon")
    with pytest.raises(InvalidPropertyError):
        account.alter_service(NER, IMAGE="x")


def test_usage_history_bills_active_and_idle_time_per_hour() -> None:
    account, clock, _ = make()
    rate = CREDITS_PER_NODE_HOUR[account.pools()[0].instance_family]
    clock.advance(3600)
    account.suspend_pool(POOL)  # 1 h billed (ACTIVE)
    clock.advance(3600)  # SUSPENDED: not billed
    account.resume_pool(POOL)  # STARTING 5 s: not billed, then IDLE
    clock.advance(5 + 1800)
    rows = account.usage_history(POOL, T0 - 86400, T0 + 86400)
    total = sum(r.credits_used for r in rows)
    assert total == pytest.approx(rate * 1.5)
    assert all(r.end_time - r.start_time == 3600 for r in rows)
    assert all(r.start_time % 3600 == 0 for r in rows)
    # The window clips: only the first 10 minutes.
    early = account.usage_history(None, T0, T0 + 600)
    assert sum(r.credits_used for r in early) == pytest.approx(rate * 600 / 3600)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    account, clock, store = make(tmp_path)
    account.alter_service(NER, AUTO_SUSPEND_SECS=900, MAX_INSTANCES=4)
    account.suspend_service(CLIP)
    clock.advance(60)
    before = len(account.transitions())
    store.close()

    again, _, store2 = make(tmp_path, clock)
    ner, clip = again.service(NER), again.service(CLIP)
    assert (ner.status, ner.auto_suspend_secs, ner.max_instances) == ("RUNNING", 900, 4)
    assert clip.status == "SUSPENDED"
    assert clip.suspended_on == T0
    assert len(again.transitions()) == before
    store2.close()


def test_resolve_applies_snowflake_case_rules() -> None:
    account, _, _ = make()
    assert account.resolve("biobert_ner_service") == NER
    assert account.resolve("models.Biobert_Ner_Service") == NER
    assert account.resolve('"PEDIATRIC_ML"."MODELS"."BIOBERT_NER_SERVICE"') == NER
    with pytest.raises(KeyError):
        account.resolve('"biobert_ner_service"')  # quoted: case-sensitive
    with pytest.raises(KeyError):
        account.resolve("OTHER_DB.MODELS.BIOBERT_NER_SERVICE")
    with pytest.raises(KeyError):
        account.resolve("a.b.c.d")
    assert account.resolve("BIOBERT_NER_SERVICE", database="PEDIATRIC_ML", schema="MODELS") == NER
    with pytest.raises(KeyError):
        account.resolve("BIOBERT_NER_SERVICE", database="PEDIATRIC_ML", schema="OTHER")


def test_split_identifier() -> None:
    assert split_identifier('db.s."My ""T"""') == ["DB", "S", 'My "T"']
    with pytest.raises(ValueError, match="identifier"):
        split_identifier("a..b")


def test_snapshot_is_json_able() -> None:
    import json

    account, _, _ = make()
    account.set_ingress_url(NER, "127.0.0.1:1234")
    snap = json.loads(json.dumps(account.snapshot()))
    ner = next(s for s in snap["services"] if s["name"] == NER)
    assert ner["ingress_url"] == "127.0.0.1:1234"
    assert snap["compute_pools"][0]["state"] == "ACTIVE"
