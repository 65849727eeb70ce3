"""Compute pool decisions and the pure lease rule."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spcs_gateway.lifecycle import (
    Observed,
    PoolAction,
    PoolDecision,
    Reason,
    ServiceRecord,
    can_take_lease,
    decide_pool,
    pool_needs_resume,
    take_lease,
)

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)


def member(status: str, **state: Any) -> tuple[Observed, ServiceRecord]:
    return Observed(status, ready=status == "RUNNING"), ServiceRecord(name="svc", **state)


# -- pool --------------------------------------------------------------------------------------


def test_pool_suspended_only_when_all_managed_services_are_suspended() -> None:
    both = [member("SUSPENDED"), member("SUSPENDED")]
    assert decide_pool("ACTIVE", both, T0, running_on_pool=0) == PoolDecision(
        PoolAction.SUSPEND, Reason.ALL_SERVICES_SUSPENDED
    )
    assert decide_pool("idle", both, T0, running_on_pool=0).action is PoolAction.SUSPEND
    for other in ("RUNNING", "PENDING", "SUSPENDING", "FAILED", "UNKNOWN"):
        mixed = [member("SUSPENDED"), member(other)]
        assert decide_pool("ACTIVE", mixed, T0, running_on_pool=0) == PoolDecision(
            PoolAction.NONE, Reason.SERVICES_RUNNING
        )


def test_pool_suspension_can_be_disabled() -> None:
    both = [member("SUSPENDED"), member("SUSPENDED")]
    assert decide_pool(
        "ACTIVE", both, T0, running_on_pool=0, suspend_when_idle=False
    ) == PoolDecision(PoolAction.NONE, Reason.POOL_SUSPEND_DISABLED)


def test_pool_not_suspended_while_a_resume_holds_a_lease() -> None:
    # ensure_ready resumed the pool and holds the lease; the service still reads SUSPENDED.
    resuming = member("SUSPENDED", lease_owner="a", lease_expires_at=T0 + TTL)
    members = [member("SUSPENDED"), resuming]
    assert decide_pool("ACTIVE", members, T0, running_on_pool=0) == PoolDecision(
        PoolAction.NONE, Reason.LEASE_HELD
    )
    assert decide_pool("ACTIVE", members, T0 + TTL, running_on_pool=0).action is (
        PoolAction.SUSPEND
    )


def test_work_the_gateway_cannot_see_keeps_the_pool_up() -> None:
    # Every managed service sleeps, but the pool runs one more service or job: another owner's,
    # invisible to SHOW SERVICES under the gateway's role. Only the pool-level count sees it.
    members = [member("SUSPENDED")]
    assert decide_pool("ACTIVE", members, T0, running_on_pool=1) == PoolDecision(
        PoolAction.NONE, Reason.POOL_RUNS_OTHER_WORK
    )
    assert decide_pool("IDLE", members, T0, running_on_pool=0).action is PoolAction.SUSPEND


def test_pool_without_its_running_count_is_never_suspended() -> None:
    assert decide_pool("IDLE", [member("SUSPENDED")], T0) == PoolDecision(
        PoolAction.NONE, Reason.POOL_FACTS_UNKNOWN
    )


def test_pool_without_managed_services_is_not_touched() -> None:
    assert decide_pool("ACTIVE", [], T0) == PoolDecision(
        PoolAction.NONE, Reason.NO_MANAGED_SERVICES
    )


def test_pool_resumed_before_a_service_resume() -> None:
    members = [member("SUSPENDED")]
    assert pool_needs_resume("SUSPENDED")
    assert not pool_needs_resume("ACTIVE")
    assert decide_pool("SUSPENDED", members, T0, resume_requested=True) == PoolDecision(
        PoolAction.RESUME, Reason.SERVICE_RESUME
    )
    # A resume request never suspends a running pool, even if every member reads SUSPENDED.
    assert decide_pool("ACTIVE", members, T0, resume_requested=True) == PoolDecision(
        PoolAction.NONE, Reason.POOL_RUNNING
    )
    assert decide_pool("SUSPENDED", members, T0) == PoolDecision(
        PoolAction.NONE, Reason.POOL_SUSPENDED
    )


@pytest.mark.parametrize("status", ["STARTING", "STOPPING", "RESIZING"])
def test_pool_transitions_are_not_fought(status: str) -> None:
    for requested in (False, True):
        assert decide_pool(status, [member("SUSPENDED")], T0, resume_requested=requested) == (
            PoolDecision(PoolAction.WAIT, Reason.POOL_TRANSITION)
        )


def test_unknown_pool_status_is_left_alone() -> None:
    assert decide_pool("WHATEVER", [member("SUSPENDED")], T0).reason is Reason.STATUS_UNKNOWN


# -- lease (pure) ------------------------------------------------------------------------------


def test_lease_rules() -> None:
    free = ServiceRecord(name="ner")
    assert can_take_lease(free, "a", T0)
    held = take_lease(free, "a", T0, TTL)
    assert held is not None
    assert (held.lease_owner, held.lease_expires_at) == ("a", T0 + TTL)
    assert held.lease_active(T0)
    assert not can_take_lease(held, "b", T0 + TTL - timedelta(microseconds=1))
    assert take_lease(held, "b", T0, TTL) is None
    # Same owner renews.
    renewed = take_lease(held, "a", T0 + timedelta(minutes=1), TTL)
    assert renewed is not None
    assert renewed.lease_expires_at == T0 + timedelta(minutes=6)
    # Expired (expiry <= now): anyone takes it over.
    assert not held.lease_active(T0 + TTL)
    taken = take_lease(held, "b", T0 + TTL, TTL)
    assert taken is not None
    assert taken.lease_owner == "b"


def test_twenty_concurrent_owners_one_lease() -> None:
    """The pure rule under a compare-and-set (what DynamoDB's conditional write provides)."""
    cell = {"state": ServiceRecord(name="ner")}
    lock = threading.Lock()
    barrier = threading.Barrier(20)
    winners: list[str] = []

    def attempt(owner: str) -> None:
        barrier.wait()
        with lock:
            new = take_lease(cell["state"], owner, T0, TTL)
            if new is not None:
                cell["state"] = new
                winners.append(owner)

    threads = [threading.Thread(target=attempt, args=(f"owner-{i}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert cell["state"].lease_owner == winners[0]
