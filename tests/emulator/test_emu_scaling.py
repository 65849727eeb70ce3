"""Instances in the emulator: ALTER SERVICE ... SET MIN_INSTANCES / MAX_INSTANCES, new
instances READY after the model load, every instance billed; the same through the gateway's
SqlSpcsServices over the wire, with the OPERATE grant it needs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from snowflake.connector import DictCursor
from snowflake.connector.errors import ProgrammingError
from test_emu_sql_wire import NER, Emulator, start

from spcs_gateway.spcs_services import SqlSpcsServices
from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.state import CREDITS_PER_NODE_HOUR

T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC).timestamp()
GATEWAY_ROLE = "SPCS_GATEWAY_ROLE"


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = start(tmp_path, FakeClock(T0))
    yield emulator
    emulator.stop()


class CursorRunner:
    """SqlSpcsServices' QueryRunner over a snowflake-connector cursor (rows keyed lower-case)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._conn.cursor(DictCursor)
        cur.execute(sql, tuple(params) or None)
        return [{k.lower(): v for k, v in row.items()} for row in cur.fetchall() or []]


def containers(emu: Emulator) -> list[str]:
    return [c.status for c in emu.account.service(NER).containers]


def test_new_instances_are_ready_after_the_model_load(emu: Emulator) -> None:
    emu.account.alter_service(NER, MAX_INSTANCES=3, MIN_INSTANCES=3)
    assert containers(emu) == ["READY", "PENDING", "PENDING"]
    emu.clock.advance(4.9)
    assert containers(emu).count("READY") == 1
    emu.clock.advance(0.2)  # resume_seconds = 5: the emulated model load
    assert containers(emu) == ["READY"] * 3
    emu.account.alter_service(NER, MIN_INSTANCES=1)
    assert containers(emu) == ["READY"]


def test_a_count_set_while_suspended_applies_from_the_next_resume(emu: Emulator) -> None:
    emu.account.suspend_service(NER)
    emu.account.alter_service(NER, MAX_INSTANCES=2, MIN_INSTANCES=2)
    assert containers(emu) == []
    emu.account.resume_service(NER)
    emu.clock.advance(5)
    assert containers(emu) == ["READY", "READY"]


def test_usage_history_bills_every_instance(emu: Emulator) -> None:
    pool = emu.account.service(NER).compute_pool
    rate = CREDITS_PER_NODE_HOUR[emu.account.pool(pool).instance_family]
    start_at = emu.clock.now()
    emu.clock.advance(600)
    emu.account.alter_service(NER, MAX_INSTANCES=3, MIN_INSTANCES=3)
    emu.clock.advance(1200)
    emu.account.alter_service(NER, MIN_INSTANCES=1)
    emu.clock.advance(600)
    rows = emu.account.usage_history(pool, start_at, emu.clock.now())
    # 600 s x 1 + 1200 s x 3 (loading instances bill too) + 600 s x 1 node-seconds.
    assert sum(r.credits_used for r in rows) == pytest.approx(rate * 4800 / 3600)


def test_the_gateway_scales_through_sql_and_needs_operate(emu: Emulator) -> None:
    conn = emu.connect()
    try:
        services = SqlSpcsServices(CursorRunner(conn))
        services.scale(NER, 2, 3)
        obs = services.observe(NER)
        assert (obs.min_instances, obs.max_instances) == (2, 3)
        assert (obs.instances_total, obs.instances_ready) == (2, 1)
        emu.clock.advance(5)
        assert services.observe(NER).instances_ready == 2
        emu.admin(f"REVOKE OPERATE ON SERVICE {NER} FROM ROLE {GATEWAY_ROLE}", role="SYSADMIN")
        with pytest.raises(ProgrammingError) as failed:
            conn.cursor().execute(f"ALTER SERVICE {NER} SET MIN_INSTANCES = 1 MAX_INSTANCES = 1")
        assert failed.value.errno == 3001
        assert emu.account.service(NER).min_instances == 2
    finally:
        conn.close()


@pytest.mark.parametrize("ready", [1, 3])
def test_throughput_is_proportional_to_ready_instances(ready: int) -> None:
    import threading
    import time

    from spcs_local.emulator.ingress import IngressSettings, InstanceCapacity

    capacity = InstanceCapacity(lambda: ready, IngressSettings(row_seconds=0.01))
    deadline = time.monotonic() + 30
    threads = [
        threading.Thread(target=capacity.hold, args=(10, deadline)) for _ in range(6)
    ]  # 6 requests x 10 rows x 10 ms
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    expected = 0.6 / ready
    assert expected * 0.9 <= elapsed <= expected + 0.25


def test_a_request_without_a_free_instance_times_out() -> None:
    import time

    from spcs_local.emulator.ingress import IngressSettings, InstanceCapacity

    capacity = InstanceCapacity(lambda: 0, IngressSettings(row_seconds=0.01))
    assert capacity.hold(1, time.monotonic() + 0.1) is False
