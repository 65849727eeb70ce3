"""Dead letters and visibility changes on the source queue.

Poison (input that can never succeed) goes straight to the source queue's DLQ, with the body
unchanged and two PHI-free message attributes: ``error_code`` and ``source_message_id``. The
record then counts as handled, so Lambda deletes it from the source queue. Retried records get a
visibility timeout that grows with their receive count (``backoff.py``).

DLQ URL, in order: env ``DLQ_URL``; the ``dlq_url_for_source`` mapping or resolver (keyed by
the source queue ARN); the source queue's ``RedrivePolicy`` (GetQueueAttributes, once per
container and queue). Source queue URL: env ``SOURCE_QUEUE_URL``, else GetQueueUrl from the
record's ``eventSourceARN`` (once per container and queue).

Error messages carry the AWS error code at most, never a body. Without an ``sqs_client`` the
default one is built on first use (a batch with no poison and no retry never calls SQS, so a
router's cold start does not pay for it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.aws_errors import aws_error_code
from spcs_gateway.errors import ConfigurationError, ErrorCode, TransientError

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

DLQ_URL_ENV = "DLQ_URL"
SOURCE_QUEUE_URL_ENV = "SOURCE_QUEUE_URL"
_SQS_BATCH_MAX = 10

DlqResolver = Callable[[str], str]


def _split_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:sqs:<region>:<account>:<name>`` -> (account, name)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs" or not parts[4] or not parts[5]:
        raise ConfigurationError(ErrorCode.CONFIGURATION_ERROR, "record has no SQS queue ARN")
    return parts[4], parts[5]


class DeadLetters:
    def __init__(
        self,
        sqs_client: SQSClient | None = None,
        dlq_url_for_source: Mapping[str, str] | DlqResolver | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._sqs = sqs_client
        self._dlq_env = env.get(DLQ_URL_ENV) or None
        self._source_env = env.get(SOURCE_QUEUE_URL_ENV) or None
        self._resolver = dlq_url_for_source
        self._lock = threading.Lock()
        self._source_urls: dict[str, str] = {}
        self._dlq_urls: dict[str, str] = {}

    def _client(self) -> SQSClient:
        if self._sqs is None:
            with self._lock:
                if self._sqs is None:
                    import boto3

                    self._sqs = boto3.client("sqs")
        return self._sqs

    # -- queue URLs ----------------------------------------------------------------------------

    def source_queue_url(self, record: SQSRecord) -> str:
        if self._source_env:
            return self._source_env
        arn = record.event_source_arn
        with self._lock:
            cached = self._source_urls.get(arn)
        if cached:
            return cached
        url = self._queue_url_for_arn(arn)
        with self._lock:
            self._source_urls[arn] = url
        return url

    def dlq_url(self, record: SQSRecord) -> str:
        if self._dlq_env:
            return self._dlq_env
        arn = record.event_source_arn
        with self._lock:
            cached = self._dlq_urls.get(arn)
        if cached:
            return cached
        if isinstance(self._resolver, Mapping):
            url = self._resolver.get(arn)
        elif self._resolver is not None:
            url = self._resolver(arn)
        else:
            url = None
        if not url:
            url = self._dlq_from_redrive_policy(record)
        with self._lock:
            self._dlq_urls[arn] = url
        return url

    def _queue_url_for_arn(self, arn: str) -> str:
        account, name = _split_arn(arn)
        try:
            return self._client().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"GetQueueUrl failed ({aws_error_code(exc)})"
            ) from None

    def _dlq_from_redrive_policy(self, record: SQSRecord) -> str:
        source_url = self.source_queue_url(record)
        try:
            attrs = (
                self._client()
                .get_queue_attributes(QueueUrl=source_url, AttributeNames=["RedrivePolicy"])
                .get("Attributes", {})
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"GetQueueAttributes failed ({aws_error_code(exc)})"
            ) from None
        try:
            target = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError(
                ErrorCode.CONFIGURATION_ERROR, "source queue has no RedrivePolicy and no DLQ_URL"
            ) from None
        return self._queue_url_for_arn(str(target))

    # -- poison --------------------------------------------------------------------------------

    def send_poison(self, record: SQSRecord, code: ErrorCode) -> None:
        """Copy the record to the DLQ unchanged, tagged with the reason code. Raises on failure
        (``TransientError``/``ConfigurationError``) so the caller returns the record for retry."""
        url = self.dlq_url(record)
        params: dict[str, Any] = {
            "QueueUrl": url,
            "MessageBody": record.body,
            "MessageAttributes": {
                "error_code": {"DataType": "String", "StringValue": str(code)},
                "source_message_id": {"DataType": "String", "StringValue": record.message_id},
            },
        }
        if url.endswith(".fifo"):
            params["MessageGroupId"] = record.attributes.message_group_id or "poison"
            params["MessageDeduplicationId"] = record.message_id
        try:
            self._client().send_message(**params)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"DLQ SendMessage failed ({aws_error_code(exc)})"
            ) from None

    # -- visibility ----------------------------------------------------------------------------

    def change_visibility(self, record: SQSRecord, seconds: int) -> bool:
        """ChangeMessageVisibility for one record. Best effort: on failure the record simply
        returns after the queue's own visibility timeout."""
        try:
            self._client().change_message_visibility(
                QueueUrl=self.source_queue_url(record),
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=int(seconds),
            )
        except (ClientError, BotoCoreError, TransientError, ConfigurationError):
            return False
        return True

    def change_visibility_many(self, items: Sequence[tuple[SQSRecord, int]]) -> int:
        """ChangeMessageVisibilityBatch per source queue, 10 entries a call. Returns the number
        of records whose visibility could not be changed (best effort, never raises)."""
        by_queue: dict[str, list[ChangeMessageVisibilityBatchRequestEntryTypeDef]] = {}
        failed = 0
        for index, (record, seconds) in enumerate(items):
            try:
                url = self.source_queue_url(record)
            except (TransientError, ConfigurationError):
                failed += 1
                continue
            by_queue.setdefault(url, []).append(
                {
                    "Id": str(index),
                    "ReceiptHandle": record.receipt_handle,
                    "VisibilityTimeout": int(seconds),
                }
            )
        for url, entries in by_queue.items():
            for start in range(0, len(entries), _SQS_BATCH_MAX):
                chunk = entries[start : start + _SQS_BATCH_MAX]
                try:
                    answer = self._client().change_message_visibility_batch(
                        QueueUrl=url, Entries=chunk
                    )
                except (ClientError, BotoCoreError):
                    failed += len(chunk)
                    continue
                failed += len(answer.get("Failed", []))
        return failed
