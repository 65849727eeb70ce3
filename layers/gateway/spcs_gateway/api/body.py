"""Reading the request body: what a body that cannot be read answers.

API Gateway delivers the body as text, or base64 with ``isBase64Encoded`` (binary media types,
or bytes that are not text). Powertools decodes it before validation; when that fails the
failure surfaces as a plain ``ValueError`` (``binascii.Error``, ``UnicodeDecodeError``) and
would be an internal error. ``body_problem`` says whether the body is the cause, so the
exception handlers answer 400 ``INVALID_BODY_ENCODING`` with a reason for the caller's bytes
and keep 500 for a fault of ours. ``read_json`` is the resolver's JSON reader: every refusal
is a ``JSONDecodeError``, which answers 422 like any malformed JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from spcs_gateway.api.problems import BodyProblem

JSON_CONTENT_TYPE = "application/json"


def read_json(text: str) -> Any:
    """``json.loads``; a number Python refuses to convert (an integer past its 4,300-digit
    limit raises a plain ``ValueError``) is a ``JSONDecodeError`` like any malformed JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise json.JSONDecodeError("number out of range", text, 0) from None


def body_problem(event: BaseProxyEvent) -> BodyProblem | None:
    """Why the event's body cannot be decoded the way Powertools decodes it; None if it can."""
    body = event.body
    if not body or not event.is_base64_encoded:
        return None
    try:
        raw = base64.b64decode(body.encode())
    except (binascii.Error, UnicodeError):
        return BodyProblem.NOT_BASE64
    try:
        raw.decode()
    except UnicodeError:
        return BodyProblem.NOT_UTF8
    return None


def is_json(event: BaseProxyEvent) -> bool:
    """The request declares a JSON body, or none (Powertools then reads it as JSON)."""
    content_type = (event.headers.get("content-type") or "").strip()
    return not content_type or content_type.startswith(JSON_CONTENT_TYPE)
