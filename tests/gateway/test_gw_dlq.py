"""DeadLetters and SourceQueue against moto SQS: DLQ discovery order, attributes, FIFO,
visibility changes on the source queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from moto import mock_aws

from spcs_gateway.dlq import DeadLetters
from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.visibility import SourceQueue

REGION = "us-east-1"
ACCOUNT = "123456789012"


class Queues:
    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.calls: list[str] = []
        sqs.meta.events.register("before-call.sqs.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def make(self, name: str, *, dlq: str | None = None, fifo: bool = False) -> str:
        attrs: dict[str, str] = {"FifoQueue": "true"} if fifo else {}
        if dlq:
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dlq}"
            attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})
        url: str = self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        return url

    def record(self, queue: str, body: str = '{"x": 1}', **send: Any) -> SQSRecord:
        url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        self.sqs.send_message(QueueUrl=url, MessageBody=body, **send)
        [msg] = self.sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
        return SQSRecord(
            {
                "messageId": msg["MessageId"],
                "receiptHandle": msg["ReceiptHandle"],
                "body": msg["Body"],
                "attributes": msg["Attributes"],
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
                "awsRegion": REGION,
            }
        )

    def drain(self, url: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return got


@pytest.fixture
def queues() -> Iterator[Queues]:
    with mock_aws():
        yield Queues(boto3.client("sqs", region_name=REGION))


def test_dlq_from_redrive_policy_looked_up_once(queues: Queues) -> None:
    dlq_url = queues.make("src-dlq")
    queues.make("src", dlq="src-dlq")
    dead = DeadLetters(queues.sqs, environ={})
    first, second = queues.record("src", "body-1"), queues.record("src", "body-2")
    queues.calls.clear()

    dead.send_poison(first, ErrorCode.INVALID_EVENT)
    dead.send_poison(second, ErrorCode.INVALID_JSON)

    assert queues.calls.count("GetQueueAttributes") == 1
    assert queues.calls.count("SendMessage") == 2
    got = queues.drain(dlq_url)
    assert sorted(m["Body"] for m in got) == ["body-1", "body-2"]
    attrs = {m["Body"]: m["MessageAttributes"] for m in got}
    assert attrs["body-1"] == {
        "error_code": {"StringValue": "INVALID_EVENT", "DataType": "String"},
        "source_message_id": {"StringValue": first.message_id, "DataType": "String"},
    }


def test_env_dlq_url_wins_over_mapping_and_redrive(queues: Queues) -> None:
    env_dlq = queues.make("env-dlq")
    mapped = queues.make("mapped-dlq")
    queues.make("redrive-dlq")
    queues.make("src", dlq="redrive-dlq")
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:src"
    record = queues.record("src")

    DeadLetters(queues.sqs, {arn: mapped}, environ={"DLQ_URL": env_dlq}).send_poison(
        record, ErrorCode.INVALID_IMAGE
    )
    DeadLetters(queues.sqs, {arn: mapped}, environ={}).send_poison(record, ErrorCode.INVALID_IMAGE)
    DeadLetters(queues.sqs, lambda _arn: mapped, environ={}).send_poison(
        record, ErrorCode.INVALID_IMAGE
    )

    assert len(queues.drain(env_dlq)) == 1
    assert len(queues.drain(mapped)) == 2


def test_queue_without_dlq_is_a_configuration_error(queues: Queues) -> None:
    queues.make("lonely")
    with pytest.raises(ConfigurationError) as caught:
        DeadLetters(queues.sqs, environ={}).send_poison(
            queues.record("lonely"), ErrorCode.INVALID_JSON
        )
    assert caught.value.code is ErrorCode.CONFIGURATION_ERROR


def test_fifo_dlq_gets_group_and_dedup_ids(queues: Queues) -> None:
    dlq_url = queues.make("jobs-dlq.fifo", fifo=True)
    queues.make("jobs.fifo", dlq="jobs-dlq.fifo", fifo=True)
    record = queues.record("jobs.fifo", MessageGroupId="patient-7", MessageDeduplicationId="d1")

    DeadLetters(queues.sqs, environ={}).send_poison(record, ErrorCode.INVALID_EVENT)

    [msg] = queues.sqs.receive_message(QueueUrl=dlq_url, AttributeNames=["All"])["Messages"]
    assert msg["Attributes"]["MessageGroupId"] == "patient-7"


def test_visibility_changes_single_and_batched(queues: Queues) -> None:
    queues.make("work")
    source = SourceQueue(queues.sqs, environ={})
    records = [queues.record("work", f"b{i}") for i in range(12)]
    queues.calls.clear()

    assert source.change_visibility(records[0], 30) is True
    failed = source.change_visibility_many([(r, 45) for r in records[1:]])

    assert failed == 0
    assert queues.calls.count("ChangeMessageVisibility") == 1
    assert queues.calls.count("ChangeMessageVisibilityBatch") == 2  # 11 entries, 10 per call
    assert queues.calls.count("GetQueueUrl") == 1  # the source URL is cached


def test_source_queue_url_override(queues: Queues) -> None:
    url = queues.make("work")
    record = queues.record("work")
    source = SourceQueue(queues.sqs, environ={"SOURCE_QUEUE_URL": url})
    queues.calls.clear()
    assert source.change_visibility(record, 10) is True
    assert "GetQueueUrl" not in queues.calls


def test_visibility_failure_is_reported_not_raised(queues: Queues) -> None:
    queues.make("work")
    source = SourceQueue(queues.sqs, environ={})
    record = queues.record("work")
    bad = SQSRecord({**record.raw_event, "eventSourceARN": "not-an-arn"})
    assert source.change_visibility(bad, 10) is False
    assert source.change_visibility_many([(bad, 10), (record, 10)]) == 1
