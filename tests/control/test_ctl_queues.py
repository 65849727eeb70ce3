"""Queue depth and event-source-mapping pause/resume against moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto_support import REGION, create_function, create_queues, fake_credentials

from spcs_gateway.queues import EventSourceMappings, QueueMonitor


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fake_credentials(monkeypatch)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        lam = boto3.client("lambda", region_name=REGION)
        create_function(lam, boto3.client("iam", region_name=REGION), "note-router")
        urls, arns = create_queues(sqs, ("notes", "x"), suffix="-queue")
        yield {"sqs": sqs, "lambda": lam, "urls": urls, "arns": arns}


def test_depth_counts_visible_in_flight_and_delayed(aws: dict[str, Any]) -> None:
    sqs, url = aws["sqs"], aws["urls"]["x"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    monitor = QueueMonitor(sqs, aws["urls"])
    depth = monitor.depth("x")
    assert (depth.visible, depth.in_flight, depth.delayed) == (2, 1, 1)
    assert depth.total == 4


def test_pause_and_resume_mappings_by_queue(aws: dict[str, Any]) -> None:
    lam = aws["lambda"]
    uuid = lam.create_event_source_mapping(
        EventSourceArn=aws["arns"]["notes"], FunctionName="note-router", BatchSize=10
    )["UUID"]
    mappings = EventSourceMappings(lam, aws["arns"])
    assert [m.enabled for m in mappings.states(["notes"])] == [True]
    assert mappings.pause(["notes"]) == 1
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled"
    assert mappings.pause(["notes"]) == 0  # idempotent: nothing left to change
    assert mappings.resume(["notes"]) == 1
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Enabled"
    assert mappings.states(["not-managed"]) == []
