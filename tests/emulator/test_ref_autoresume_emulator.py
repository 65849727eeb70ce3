"""A service-function call wakes a suspended service (AUTO_RESUME) behind the control plane's
back. The reference route answers SERVICE_UNAVAILABLE while it starts (the same path as an
inline 503), records activity like the routers, and the next reconcile round reads the service
as RUNNING from SHOW SERVICES and keeps it: the control plane does not lose track of it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from moto_support import REGION, create_state_table, fake_credentials

from spcs_gateway.auth import TokenProvider
from spcs_gateway.control import ControlPlane, ControlSettings
from spcs_gateway.errors import ErrorCode, FailureKind
from spcs_gateway.events import parse_any_event
from spcs_gateway.queues import EventSourceMappings, QueueMonitor
from spcs_gateway.reference.route import ReferenceRoute
from spcs_gateway.registry import parse_registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.service_activity import ActivityRecorder
from spcs_gateway.service_state import ServiceStateStore
from spcs_gateway.spcs_services import SqlSpcsServices
from spcs_gateway.sql import SnowflakeSql, make_connect

pytestmark = pytest.mark.emulator

TABLE = "service-state"
NOTES = "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_state_table(client, TABLE)
        yield client


def _status(sql: SnowflakeSql) -> str:
    rows = sql.query("SHOW SERVICES LIKE 'BIOBERT_NER_SERVICE' IN SCHEMA PEDIATRIC_ML.MODELS")
    return str(rows[0]["status"])


def _wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_service_function_auto_resume_is_seen_by_the_control_plane(
    emulator_factory: Callable[..., Any], dynamodb: Any
) -> None:
    handle = emulator_factory("--resume-seconds", "1")
    handle.admin_post(
        "sql",
        {
            "sql": f"INSERT INTO {NOTES} (NOTE_ID, NOTE_TEXT) VALUES ('AR-1', 'Fever; ibuprofen.')",
            "role": "SYSADMIN",
        },
    )
    registry = parse_registry(handle.config)  # the emulator's allow-list holds EHR_NOTES
    service = registry.service("biobert_ner")
    store = ServiceStateStore(TABLE, dynamodb)
    event = parse_any_event(
        json.dumps(
            {
                "schema": "clinical-note-ref.v1",
                "event_id": "ar-e1",
                "source": "ehr-test",
                "occurred_at": "2025-01-15T09:30:00Z",
                "note": {"table": NOTES, "key": "AR-1"},
            }
        )
    )
    with httpx.Client() as http:
        tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
        sql = SnowflakeSql(make_connect(tokens))
        try:
            control = ControlPlane(
                registry,
                SqlSpcsServices(sql),
                store,
                QueueMonitor(boto3.client("sqs", region_name=REGION), {}),
                EventSourceMappings(boto3.client("lambda", region_name=REGION), {}),
                settings=ControlSettings(owner_id="emulator-test"),
            )
            sql.query(f"ALTER SERVICE {service.service} SUSPEND")
            assert control.reconcile().service("biobert_ner").status == "SUSPENDED"
            assert store.get("biobert_ner").status == "SUSPENDED"

            route = ReferenceRoute(sql, registry.snowflake.results_table, registry.references)
            # What the router's pipeline does for every batch with work, references included.
            ActivityRecorder(store).record(service.name)
            [outcome] = route.run(service, [event])
            assert outcome.error is not None
            assert outcome.error.code is ErrorCode.SERVICE_UNAVAILABLE
            assert outcome.error.kind is FailureKind.UNAVAILABLE
            # The call itself woke the service (AUTO_RESUME): nobody issued ALTER ... RESUME.
            assert _status(sql) in {"PENDING", "RUNNING"}
            assert store.get("biobert_ner").last_activity is not None
            _wait_for(lambda: _status(sql) == "RUNNING")

            round_ = control.reconcile().service("biobert_ner")
            assert round_.status == "RUNNING"
            assert round_.action != "SUSPEND"  # work just arrived: not idle
            record = store.get("biobert_ner")
            assert record.status == "RUNNING"
            assert record.lease_owner is None  # the control plane holds no stale resume

            [retried] = route.run(service, [event])
            assert retried.done
        finally:
            sql.close()
