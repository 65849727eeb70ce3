"""The moto server's SQS patches (``spcs_local.stack.moto_proc.patch_sqs``).

A delete no longer loses a message sent to the same queue at the same moment; moto's clock and
its retention check are replaced by equivalents that do not recompute every queue attribute
(three scans of the whole queue) per message: same answers, and a receive no longer costs work
proportional to the queue's length times the messages it returns.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.utils import unix_time, unix_time_millis
from moto.sqs import models

from spcs_local.stack.moto_proc import (
    _retention_check,
    fast_unix_time,
    fast_unix_time_millis,
    patch_sqs,
)

REGION = "us-east-1"


def test_fast_clock_reads_the_same_time_as_motos() -> None:
    before = unix_time()
    fast = fast_unix_time()
    after = unix_time()
    assert before - 0.01 <= fast <= after + 0.01
    assert abs(fast_unix_time_millis() - unix_time_millis()) < 50
    moment = datetime(2025, 3, 3, 18, 0, 0, 123000)  # moto's naive UTC datetimes
    assert fast_unix_time(moment) == unix_time(moment)
    assert fast_unix_time_millis(moment) == unix_time_millis(moment)
    assert fast_unix_time(moment) == moment.replace(tzinfo=UTC).timestamp()


@mock_aws
def test_retention_check_answers_as_motos_own() -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    backend = models.sqs_backends["123456789012"][REGION]
    message = backend.get_queue("q")._messages[0]
    original = backend.is_message_valid_based_on_retention_period
    assert _retention_check(backend, "q", message) is original("q", message) is True
    message.sent_timestamp = int((time.time() - timedelta(seconds=61).total_seconds()) * 1000)
    assert _retention_check(backend, "q", message) is original("q", message) is False


def _count_attribute_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = models.Queue.attributes

    def counted(self: Any) -> dict[str, Any]:
        calls[0] += 1
        return original.fget(self)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(models.Queue, "attributes", property(counted))
    return calls


def _receive_ten(depth: int) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=f"deep-{depth}")["QueueUrl"]
    for start in range(0, depth, 10):
        entries = [{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30
    )["Messages"]
    return messages


@mock_aws
def test_stock_moto_rebuilds_every_attribute_per_received_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _receive_ten(100)
    calls = _count_attribute_builds(monkeypatch)
    _receive_ten(100)
    # Sending 100 builds them once per message; the receive three times more per message.
    assert calls[0] >= 100 + 3 * 10


@mock_aws
def test_patched_receive_without_rebuilding_the_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert patch_sqs(monkeypatch.setattr) == [
        "Queue.delete_message",
        "unix_time",
        "unix_time_millis",
        "is_message_valid_based_on_retention_period",
    ]
    calls = _count_attribute_builds(monkeypatch)
    messages = _receive_ten(100)
    assert len(messages) == 10
    assert calls[0] == 100  # the sends' own (one per message); none for the receive


@mock_aws
def test_patched_sqs_keeps_visibility_and_redrive(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_sqs(monkeypatch.setattr)
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName="src",
        Attributes={
            "RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 2}}'
        },
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    for _ in range(2):
        got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1, WaitTimeSeconds=2)
        assert len(got["Messages"]) == 1
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
        assert attrs["ApproximateNumberOfMessages"] == "0"
        time.sleep(1.1)
    # The third receive finds it past maxReceiveCount: moved to the DLQ, as SQS does.
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert len(sqs.receive_message(QueueUrl=dlq)["Messages"]) == 1


def _delete_send_delete(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Two deletes and a send on one queue interleaved as two server threads can interleave
    them: while one delete walks the queue, another delete finishes and a message is sent.
    Returns the message ids the queue should hold afterwards and the ids it holds."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="race")["QueueUrl"]
    sent = [sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")["MessageId"] for i in range(6)]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=30)
    first, second = got["Messages"]
    backend = models.sqs_backends["123456789012"][REGION]
    queue = backend.get_queue("race")
    late = models.Message("late-message", "late")
    original = models.Message.had_receipt_handle
    calls: list[int] = []

    def walk(self: Any, receipt_handle: str) -> bool:
        calls.append(1)
        if len(calls) == 2:  # the first delete is walking the queue
            backend.delete_message("race", second["ReceiptHandle"])  # the other thread's
            queue.add_message(late)  # and a SendMessage
        return bool(original(self, receipt_handle))

    monkeypatch.setattr(models.Message, "had_receipt_handle", walk)
    backend.delete_message("race", first["ReceiptHandle"])
    monkeypatch.setattr(models.Message, "had_receipt_handle", original)
    gone = {first["MessageId"], second["MessageId"]}
    expected = [mid for mid in sent if mid not in gone] + ["late-message"]
    return sorted(expected), sorted(m.id for m in queue._messages)


@mock_aws
def test_stock_delete_loses_a_send_and_revives_a_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    expected, left = _delete_send_delete(monkeypatch)
    assert "late-message" not in left  # accepted, then gone: what the chaos run found
    assert len(set(left) - set(expected)) == 1  # the other delete undone: delivered again


@mock_aws
def test_patched_delete_keeps_a_send_and_the_other_delete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_sqs(monkeypatch.setattr)
    expected, left = _delete_send_delete(monkeypatch)
    assert left == expected


@mock_aws
def test_patched_delete_keeps_sqs_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_sqs(monkeypatch.setattr)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="del")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"][0]
    # Any receipt handle the message had deletes it (moto's rule), and deleting again succeeds.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
