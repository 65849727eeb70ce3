"""Dead letters: poison goes straight to the source queue's DLQ.

Poison (input that can never succeed) is copied to the DLQ with the body unchanged and two
PHI-free message attributes: ``error_code`` and ``source_message_id``. The record then counts as
handled, so Lambda deletes it from the source queue. (Retried records' visibility on the source
queue is ``visibility.py``'s job.)

DLQ URL, in order: env ``DLQ_URL``; the ``dlq_url_for_source`` mapping or resolver (keyed by
the source queue ARN); the source queue's ``RedrivePolicy`` (GetQueueAttributes, once per
container and queue). The source queue's URL, and the lazily built SQS client, come from a
``visibility.SourceQueue`` (shared with the visibility adapter when the pipeline wires both).

Error messages carry the AWS error code at most, never a body.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from spcs_gateway.aws_errors import aws_error_code
from spcs_gateway.errors import ConfigurationError, ErrorCode, TransientError
from spcs_gateway.settings import env_str
from spcs_gateway.visibility import SourceQueue

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

DLQ_URL_ENV = "DLQ_URL"

DlqResolver = Callable[[str], str]


class DeadLetters:
    def __init__(
        self,
        sqs_client: SQSClient | None = None,
        dlq_url_for_source: Mapping[str, str] | DlqResolver | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        source: SourceQueue | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._source = source or SourceQueue(sqs_client, environ=env)
        self._dlq_env = env_str(env, DLQ_URL_ENV)
        self._resolver = dlq_url_for_source
        self._lock = threading.Lock()
        self._dlq_urls: dict[str, str] = {}

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

    def _dlq_from_redrive_policy(self, record: SQSRecord) -> str:
        source_url = self._source.url(record)
        try:
            attrs = (
                self._source.client()
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
        return self._source.url_for_arn(str(target))

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
            self._source.client().send_message(**params)
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"DLQ SendMessage failed ({aws_error_code(exc)})"
            ) from None
