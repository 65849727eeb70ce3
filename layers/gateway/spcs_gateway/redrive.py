"""DLQ redrive (``spcs-gateway redrive-dlq``): move dead letters back to their source queue.

Without a cap SQS's own ``StartMessageMoveTask`` is used when the endpoint supports it;
otherwise (or with a cap) a receive/send/delete loop that keeps the body, message attributes,
trace header and FIFO group. A message is deleted from the DLQ only after its copy was sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from spcs_gateway.aws_errors import aws_error_code

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )


class RedriveError(Exception):
    """An expected failure (printed by the CLI as ``error: CODE: detail``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


_MOVE_UNSUPPORTED = frozenset(
    {"UnsupportedOperation", "InvalidAction", "NotImplemented", "UnknownOperationException"}
)


@dataclass(frozen=True)
class RedriveResult:
    dlq_url: str
    destination_url: str | None
    moved: int = 0
    failed: int = 0
    task_handle: str | None = None  # set when SQS runs the move itself (StartMessageMoveTask)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _queue_url(sqs: SQSClient, queue: str, logical: Mapping[str, str]) -> str:
    if queue.startswith(("https://", "http://")):
        return queue
    if queue in logical:
        return logical[queue]
    try:
        return sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError as exc:
        raise RedriveError(aws_error_code(exc), f"queue {queue!r} not found") from None


def _arn_to_url(sqs: SQSClient, arn: str) -> str:
    parts = arn.split(":")
    return sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]


def _queue_arn(sqs: SQSClient, url: str) -> tuple[str, dict[str, str]]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attrs["QueueArn"], {str(k): v for k, v in attrs.items()}


def resolve_redrive(
    sqs: SQSClient, queue: str, *, to: str | None = None, logical: Mapping[str, str] | None = None
) -> tuple[str, str, str, str]:
    """(dlq url, dlq arn, destination url, destination arn). ``queue`` is the DLQ or a source
    queue with a RedrivePolicy (its DLQ is then redriven back into it)."""
    names = logical or {}
    url = _queue_url(sqs, queue, names)
    arn, attrs = _queue_arn(sqs, url)
    if "RedrivePolicy" in attrs and to is None:
        dlq_arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
        return _arn_to_url(sqs, dlq_arn), dlq_arn, url, arn
    if to is not None:
        dest_url = _queue_url(sqs, to, names)
        return url, arn, dest_url, _queue_arn(sqs, dest_url)[0]
    sources = sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
    if len(sources) != 1:
        raise RedriveError(
            "NO_SOURCE_QUEUE",
            f"{len(sources)} source queues use this queue as their DLQ; name one with --to",
        )
    return url, arn, sources[0], _queue_arn(sqs, sources[0])[0]


def _attribute_for_send(value: MessageAttributeValueOutputTypeDef) -> MessageAttributeValueTypeDef:
    out: MessageAttributeValueTypeDef = {"DataType": value["DataType"]}
    if "StringValue" in value:
        out["StringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["BinaryValue"] = value["BinaryValue"]
    return out


def _send_entry(
    message: MessageTypeDef, index: int, fifo: bool
) -> SendMessageBatchRequestEntryTypeDef:
    entry: SendMessageBatchRequestEntryTypeDef = {
        "Id": str(index),
        "MessageBody": message["Body"],
    }
    attributes = message.get("MessageAttributes")
    if attributes:
        entry["MessageAttributes"] = {k: _attribute_for_send(v) for k, v in attributes.items()}
    system = message.get("Attributes", {})
    if "AWSTraceHeader" in system:
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = system.get("MessageDeduplicationId", message["MessageId"])
    return entry


def redrive_dlq(
    sqs: SQSClient,
    queue: str,
    *,
    max_messages: int | None = None,
    to: str | None = None,
    logical: Mapping[str, str] | None = None,
    wait_seconds: int = 1,
    use_move_task: bool = True,
) -> RedriveResult:
    """Move dead letters back. Without ``max_messages`` SQS's own StartMessageMoveTask is used
    when the endpoint supports it; otherwise (or with a cap) a receive/send/delete loop that
    keeps the body, message attributes, trace header and FIFO group. A message is deleted from
    the DLQ only after its copy was sent, so a failure leaves it where it was (at worst a
    message is sent twice, which the results MERGE on event_id absorbs)."""
    dlq_url, dlq_arn, dest_url, dest_arn = resolve_redrive(sqs, queue, to=to, logical=logical)
    if max_messages is None and use_move_task:
        try:
            kwargs: dict[str, Any] = {"SourceArn": dlq_arn}
            if to is not None:
                kwargs["DestinationArn"] = dest_arn
            handle = sqs.start_message_move_task(**kwargs)["TaskHandle"]
            return RedriveResult(dlq_url, dest_url, task_handle=handle)
        except NotImplementedError:
            pass  # an emulator without the API
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if aws_error_code(exc) not in _MOVE_UNSUPPORTED and status != 501:
                raise
    fifo = dest_url.endswith(".fifo")
    moved = failed = 0
    while max_messages is None or moved + failed < max_messages:
        want = 10 if max_messages is None else min(10, max_messages - moved - failed)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=want,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries = [_send_entry(m, i, fifo) for i, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=dest_url, Entries=entries)
        ok = {s["Id"] for s in sent.get("Successful", [])}
        failed += len(messages) - len(ok)
        done: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if str(i) in ok
        ]
        if done:
            deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
            moved += len(deleted.get("Successful", []))
    return RedriveResult(dlq_url, dest_url, moved=moved, failed=failed)
