"""The source queue: its URL, the shared lazily built SQS client, and message visibility.

Retried records get a visibility timeout that grows with their receive count (``backoff.py``):
``change_visibility_many`` sends ChangeMessageVisibilityBatch per source queue, 10 entries a
call. Visibility is best effort: a record whose change fails simply returns after the queue's
own visibility timeout, so nothing here raises into the pipeline.

Source queue URL: env ``SOURCE_QUEUE_URL``, else GetQueueUrl from the record's
``eventSourceARN`` (once per container and queue). Without an ``sqs_client`` the default one is
built on first use (a batch with no poison and no retry never calls SQS, so a router's cold
start does not pay for it); ``dlq.DeadLetters`` shares this client and URL cache.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.aws_errors import aws_error_code
from spcs_gateway.errors import ConfigurationError, ErrorCode, TransientError
from spcs_gateway.settings import env_str

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

SOURCE_QUEUE_URL_ENV = "SOURCE_QUEUE_URL"
_SQS_BATCH_MAX = 10


def split_queue_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:sqs:<region>:<account>:<name>`` -> (account, name)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs" or not parts[4] or not parts[5]:
        raise ConfigurationError(ErrorCode.CONFIGURATION_ERROR, "record has no SQS queue ARN")
    return parts[4], parts[5]


class SourceQueue:
    def __init__(
        self, sqs_client: SQSClient | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self._sqs = sqs_client
        self._source_env = env_str(env, SOURCE_QUEUE_URL_ENV)
        self._lock = threading.Lock()
        self._urls: dict[str, str] = {}

    def client(self) -> SQSClient:
        if self._sqs is None:
            with self._lock:
                if self._sqs is None:
                    import boto3

                    self._sqs = boto3.client("sqs")
        return self._sqs

    # -- queue URLs ----------------------------------------------------------------------------

    def url(self, record: SQSRecord) -> str:
        """The URL of the queue ``record`` came from."""
        if self._source_env:
            return self._source_env
        arn = record.event_source_arn
        with self._lock:
            cached = self._urls.get(arn)
        if cached:
            return cached
        url = self.url_for_arn(arn)
        with self._lock:
            self._urls[arn] = url
        return url

    def url_for_arn(self, arn: str) -> str:
        account, name = split_queue_arn(arn)
        try:
            return self.client().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"GetQueueUrl failed ({aws_error_code(exc)})"
            ) from None

    # -- visibility ----------------------------------------------------------------------------

    def change_visibility(self, record: SQSRecord, seconds: int) -> bool:
        """ChangeMessageVisibility for one record. Best effort: on failure the record simply
        returns after the queue's own visibility timeout."""
        try:
            self.client().change_message_visibility(
                QueueUrl=self.url(record),
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
                url = self.url(record)
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
                    answer = self.client().change_message_visibility_batch(
                        QueueUrl=url, Entries=chunk
                    )
                except (ClientError, BotoCoreError):
                    failed += len(chunk)
                    continue
                failed += len(answer.get("Failed", []))
        return failed
