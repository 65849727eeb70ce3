"""The error code of a failed AWS call, written once.

boto3 raises ``botocore.exceptions.ClientError`` with the service's code in
``response["Error"]["Code"]`` (``ConditionalCheckFailedException``, ``ThrottlingException``,
``AWS.SimpleQueueService.NonExistentQueue`` ...); anything else (``BotoCoreError``: endpoint,
credentials, connection) has no code, so its type name stands in. Codes are PHI-free and go
into logs, metrics and one-line CLI errors.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


def aws_error_code(exc: BaseException) -> str:
    """``ClientError``'s code (``"ClientError"`` without one), else the exception's type name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def has_aws_code(exc: BaseException, code: str) -> bool:
    """True when ``exc`` is a ``ClientError`` carrying exactly ``code``."""
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == code
