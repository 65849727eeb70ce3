"""Bodies the API cannot read: a 4xx with a stable code and reason, never a 500.

API Gateway delivers bytes that are not text (and every body, with binary media types) base64
with ``isBase64Encoded``; ``spcs-local up`` does the same for a body that is not UTF-8.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import pytest
from api_support import CANARY, Api, api_event, body_of, header

from spcs_gateway.api.access_log import UNMATCHED, route_of
from spcs_gateway.api.openapi import openapi_document
from spcs_gateway.api.routes import ROUTES

NOTE = "9 y/o with acute otitis media, started amoxicillin. History of Crohn's disease."
_ALPHABET = set(string.ascii_letters + string.digits + "+/")


def event(body: str | None, *, encoded: bool, content_type: str = "application/json") -> Any:
    out = api_event("POST", "/v1/notes/entities", raw_body=body, content_type=content_type)
    out["isBase64Encoded"] = encoded
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def not_base64(text: str) -> str:
    """Padded to 4k+1 base64 characters: no decoder takes it, however lenient."""
    return text + "A" * ((1 - sum(ch in _ALPHABET for ch in text)) % 4)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b64(f'{{"text": "{CANARY} \xff"}}'.encode("latin-1")), "NOT_UTF8"),
        (b64(b"\xc3\x28" + CANARY.encode()), "NOT_UTF8"),  # a broken two-byte sequence
        (not_base64(CANARY), "NOT_BASE64"),
        ("\ud800AAAA", "NOT_BASE64"),  # not even ASCII
    ],
    ids=["latin-1", "broken-sequence", "not-base64", "lone-surrogate"],
)
def test_api_undecodable_body_is_400_with_reason(api: Api, body: str, reason: str) -> None:
    response = api.invoke(event(body, encoded=True))

    assert response["statusCode"] == 400
    assert header(response, "X-Request-Id") == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    error = body_of(response)["error"]
    assert (error["code"], error["reason"]) == ("INVALID_BODY_ENCODING", reason)
    assert CANARY not in response["body"]
    assert api.snowflake.ingress_calls == []


def test_api_base64_body_is_read_like_text(api: Api) -> None:
    response = api.invoke(event(b64(json.dumps({"text": NOTE}).encode()), encoded=True))

    assert response["statusCode"] == 200
    found = [e["text"] for e in body_of(response)["results"][0]["entities"]]
    assert "amoxicillin" in found


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"text": "x", "wait_seconds": ' + "1" * 5000 + "}", "application/json", 422,
         "VALIDATION_FAILED"),  # past Python's integer digit limit
        ("--xx\r\n", "multipart/form-data", 415, "UNSUPPORTED_MEDIA_TYPE"),  # no boundary
    ],
    ids=["huge-integer", "multipart-without-boundary"],
)  # fmt: skip
def test_api_unreadable_text_body_is_a_client_error(
    api: Api, body: str, content_type: str, status: int, code: str
) -> None:
    response = api.invoke(event(body, encoded=False, content_type=content_type))

    assert response["statusCode"] == status
    assert body_of(response)["error"]["code"] == code


def test_api_decode_error_of_our_own_is_still_500(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the caller's bytes make a decode error a 4xx: one raised by our code is a fault."""
    from spcs_gateway.api import search as search_module

    def explode(*_: Any, **__: Any) -> Any:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(search_module.CortexSearchClient, "query", explode)
    response = api.invoke(api_event("POST", "/v1/notes/search", body={"query": "otitis"}))

    assert response["statusCode"] == 500
    assert body_of(response)["error"]["code"] == "INTERNAL_ERROR"


def test_api_access_log_routes_are_the_documented_ones() -> None:
    document = json.loads(openapi_document())
    documented = {(m.upper(), path) for path, ops in document["paths"].items() for m in ops}
    assert documented == ROUTES
    known = {"httpMethod": "GET", "resource": "/v1/services/{name}"}
    assert route_of(known) == "/v1/services/{name}"
    assert route_of({"httpMethod": "POST", "resource": "/v1/services/{name}"}) == UNMATCHED
    assert route_of({"httpMethod": "GET", "resource": f"/v1/{CANARY}"}) == UNMATCHED
    assert route_of({"httpMethod": "GET"}) == UNMATCHED
