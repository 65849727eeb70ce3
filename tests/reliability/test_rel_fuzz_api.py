"""Fuzzed API Gateway proxy events through ``functions/api/app.py``'s ``lambda_handler``.

Property, for every generated request (valid, almost-valid and hostile bodies for each POST
route, hostile path and query parameters, wrong content types, non-JSON bodies, raw bytes that
are not UTF-8, and bodies API Gateway delivers base64-encoded with ``isBase64Encoded``, valid
or not):
* the handler returns an API Gateway proxy answer with a JSON object body and X-Request-Id;
* a valid request succeeds (200/202); anything else is a 4xx whose body is exactly
  ``{"error": {code, message, request_id, [errors], [reason]}}`` with a stable code, the fixed
  message of that code, and the status that code implies; never a 500;
* no error body echoes any part of the input (every generated string carries a canary), and
  no log line or EMF blob holds a canary.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import pytest
from api_support import Api, api_event, body_of, header
from gw_support import bomb_png, png_bytes
from hypothesis import event as hypothesis_event
from hypothesis import given, settings
from hypothesis import strategies as st
from rel_support import (
    FUZZ_PHASES,
    HOSTILE_IDS,
    MARK,
    METADATA_URLS,
    Capture,
    assert_no_canary,
    canary,
    capture_app_output,
    json_value,
    safe_text,
    valid_id,
)

from spcs_gateway.api.models import MAX_SEARCH_QUERY_CHARS, MAX_TEXTS
from spcs_gateway.api.problems import MESSAGES, ApiCode
from spcs_gateway.errors import ErrorCode
from spcs_gateway.events import MAX_TEXT_CHARS

# Powertools warns that a multipart body should arrive base64-encoded; the API refuses it anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Received multipart/form-data:UserWarning")

ENTITIES = "/v1/notes/entities"
IMAGES = "/v1/images/classifications"
SEARCH = "/v1/notes/search"
RESUME = "/v1/services/{name}/resume"
SUSPEND = "/v1/services/{name}/suspend"
KNOWN_CODES = {str(c) for c in ApiCode} | {str(c) for c in ErrorCode}
MARKS = (MARK, MARK.lower())  # path parameters may be lower-cased canaries
PNG_B64 = base64.b64encode(png_bytes()).decode()
E = ErrorCode


@dataclass(frozen=True)
class Req:
    name: str
    method: str
    resource: str
    body: Any = None
    raw: str | None = None
    path: dict[str, str] | None = None
    query: dict[str, str] | None = None
    content_type: str = "application/json"
    # None: must succeed. Else the acceptable (status, code) answers.
    expect: frozenset[tuple[int, str]] | None = None
    # Bytes on the wire: delivered base64-encoded, as API Gateway delivers bytes that are not text.
    data: bytes | None = None
    # Deliver the text body base64-encoded (isBase64Encoded), as for binary media types.
    base64: bool = False
    # Sent as it is, flagged isBase64Encoded (meant to be base64, perhaps not).
    encoded: str | None = None

    def event(self) -> dict[str, Any]:
        raw = self.raw
        if raw is None and self.body is not None:
            raw = json.dumps(self.body)  # ASCII: lone surrogates travel as \\u escapes
        flagged = self.base64 or self.data is not None or self.encoded is not None
        if self.encoded is not None:
            raw = self.encoded
        elif self.data is not None:
            raw = base64.b64encode(self.data).decode()
        elif self.base64 and raw is not None:
            raw = base64.b64encode(raw.encode("utf-8", "surrogatepass")).decode()
        event = api_event(
            self.method,
            self.resource,
            path_params=self.path,
            raw_body=raw,
            query=self.query,
            content_type=self.content_type,
        )
        event["isBase64Encoded"] = flagged
        return event


VALIDATION = frozenset({(422, ApiCode.VALIDATION_FAILED.value)})


def _err(*pairs: tuple[int, str]) -> frozenset[tuple[int, str]]:
    return frozenset((status, str(code)) for status, code in pairs)


@cache
def _hostile_value() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        json_value("wrongtype"),
        st.sampled_from(METADATA_URLS),
    )


@cache
def _extra_key() -> st.SearchStrategy[str]:
    names = ("endpoint", "url", "service_url", "__proto__", "constructor", "$where")
    return st.one_of(st.sampled_from(names), safe_text("extrakey", max_parts=1))


def _surrogate(field: str) -> st.SearchStrategy[str]:
    return canary(field).map(lambda s: s + "\ud83d")


# -- per route -----------------------------------------------------------------------------------

ENTITY_KINDS = (
    "valid_text", "valid_texts", "valid_persist", "extra", "both", "neither", "empty_texts",
    "too_many_texts", "empty_text", "huge_text", "total_too_big", "persist_with_texts",
    "persist_bad_id", "persist_extra", "wrong_type", "bad_wait", "surrogate",
)  # fmt: skip


@st.composite
def entities_req(draw: st.DrawFn, kinds: tuple[str, ...] = ENTITY_KINDS) -> Req:
    kind = draw(st.sampled_from(kinds))
    text = draw(safe_text("text"))
    wait = draw(st.one_of(st.none(), st.floats(0, 25)))
    base: dict[str, Any] = {"text": text}
    if wait is not None:
        base["wait_seconds"] = wait

    def req(body: Any, expect: frozenset[tuple[int, str]] | None = VALIDATION) -> Req:
        return Req(kind, "POST", ENTITIES, body=body, expect=expect)

    if kind == "valid_text":
        return req(base, None)
    if kind == "valid_texts":
        texts = draw(st.lists(safe_text("texts"), min_size=1, max_size=4))
        return req({"texts": texts}, None)
    if kind == "valid_persist":
        target = {"event_id": draw(valid_id("persistevent")), "note_id": draw(valid_id("pn"))}
        return req({**base, "persist": target}, None)
    if kind == "extra":
        return req({**base, draw(_extra_key()) + "_x": draw(_hostile_value())})
    if kind == "both":
        return req({**base, "texts": [text]})
    if kind == "neither":
        return req({k: v for k, v in base.items() if k != "text"})
    if kind == "empty_texts":
        return req({"texts": []})
    if kind == "too_many_texts":
        return req({"texts": [f"{MARK}{i}" for i in range(MAX_TEXTS + 1)]})
    if kind == "empty_text":
        return req({"text": ""})
    if kind == "huge_text":
        return req({"text": MARK + "h" * MAX_TEXT_CHARS})
    if kind == "total_too_big":
        return req({"texts": [MARK + "t" * (MAX_TEXT_CHARS - len(MARK))] * 5})
    if kind == "persist_with_texts":
        return req({"texts": [text], "persist": {"event_id": "e1", "note_id": "n1"}})
    if kind == "persist_bad_id":
        bad_id = draw(st.sampled_from(HOSTILE_IDS))
        return req({**base, "persist": {"event_id": bad_id, "note_id": "n1"}})
    if kind == "persist_extra":
        persist = {"event_id": "e1", "note_id": "n1", draw(_extra_key()) + "_x": MARK}
        return req({**base, "persist": persist})
    if kind == "wrong_type":
        field = draw(st.sampled_from(("text", "texts", "persist", "wait_seconds")))
        value = draw(_hostile_value())
        if (
            value is None
            or (field == "wait_seconds" and isinstance(value, int | float))
            or (field == "text" and isinstance(value, str))
        ):
            value = [MARK]  # None is "absent"; numbers fit wait_seconds and strings fit text
        body = {"text": text, field: value} if field != "text" else {"text": value}
        if field == "texts":
            body.pop("text")
            if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
                value = {MARK: value}  # a list of non-empty strings would be valid
            body["texts"] = value
        return req(body)
    if kind == "bad_wait":
        wait_value = draw(st.sampled_from((-1, 25.0001, 1e308, f"{MARK}", [5])))
        return req({"text": text, "wait_seconds": wait_value})
    assert kind == "surrogate"
    return req({"text": draw(_surrogate("text"))})


IMAGE_KINDS = (
    "valid_labels", "valid_set", "extra", "s3_uri", "bad_base64", "not_image", "bomb",
    "mismatch", "too_many_labels", "way_too_many_labels", "unknown_set", "both_labels",
    "no_labels", "bad_content_type", "wrong_type",
)  # fmt: skip


@st.composite
def images_req(draw: st.DrawFn, kinds: tuple[str, ...] = IMAGE_KINDS) -> Req:
    kind = draw(st.sampled_from(kinds))
    image = {"base64": PNG_B64, "content_type": "image/png"}
    labels = draw(
        st.lists(safe_text("label", max_parts=1).map(lambda s: s[:200]), min_size=1, max_size=5)
    )
    base: dict[str, Any] = {"image": image, "candidate_labels": labels}

    def req(body: Any, expect: frozenset[tuple[int, str]] | None = VALIDATION) -> Req:
        return Req(kind, "POST", IMAGES, body=body, expect=expect)

    def with_image(data: Any, expect: frozenset[tuple[int, str]]) -> Req:
        return req({**base, "image": data}, expect)

    if kind == "valid_labels":
        return req(base, None)
    if kind == "valid_set":
        return req({"image": image, "label_set": "radiology-modality"}, None)
    if kind == "extra":
        return req({**base, draw(_extra_key()) + "_x": draw(_hostile_value())})
    if kind == "s3_uri":  # the API takes inline images only
        return with_image({"s3_uri": "s3://imaging-allowed/" + MARK}, VALIDATION)
    if kind == "bad_base64":
        text = draw(st.sampled_from((f"{MARK}!!", f"{MARK}abc", f"{MARK} =", f"{MARK}-_-_")))
        return with_image(
            {"base64": text, "content_type": "image/png"}, _err((400, E.INVALID_IMAGE))
        )
    if kind == "not_image":
        data = (MARK + "notimage").encode() + draw(st.binary(max_size=64))
        encoded = base64.b64encode(data).decode()
        return with_image(
            {"base64": encoded, "content_type": "image/png"}, _err((400, E.INVALID_IMAGE))
        )
    if kind == "bomb":
        width = draw(st.integers(1, 2**31 - 1))
        height = max(draw(st.integers(1, 2**31 - 1)), 1_000_000 // width + 1)
        encoded = base64.b64encode(bomb_png(width, height)).decode()
        return with_image(
            {"base64": encoded, "content_type": "image/png"}, _err((413, E.IMAGE_TOO_LARGE))
        )
    if kind == "mismatch":
        return with_image(
            {"base64": PNG_B64, "content_type": "image/jpeg"}, _err((400, E.INVALID_IMAGE))
        )
    if kind == "too_many_labels":  # over the service's max_candidate_labels (5)
        many = [f"{MARK}l{i}" for i in range(draw(st.integers(6, 64)))]
        return req({"image": image, "candidate_labels": many}, _err((400, E.INVALID_EVENT)))
    if kind == "way_too_many_labels":  # over the request schema's bound
        return req({"image": image, "candidate_labels": [f"{MARK}l{i}" for i in range(65)]})
    if kind == "unknown_set":
        return req({"image": image, "label_set": f"{MARK}set"}, _err((400, E.UNKNOWN_LABEL_SET)))
    if kind == "both_labels":
        return req({**base, "label_set": "radiology-modality"})
    if kind == "no_labels":
        return req({"image": image})
    if kind == "bad_content_type":
        ctype = draw(st.sampled_from(("image/gif", f"{MARK}/x", "text/html")))
        return with_image({"base64": PNG_B64, "content_type": ctype}, VALIDATION)
    assert kind == "wrong_type"
    field = draw(st.sampled_from(("image", "candidate_labels")))
    value = draw(_hostile_value())
    if value is None:
        value = MARK
    if (
        field == "candidate_labels"
        and isinstance(value, list)
        and value
        and all(isinstance(v, str) and 0 < len(v) <= 200 for v in value)
    ):
        value = {MARK: value}
    return req({**base, field: value})


SEARCH_KINDS = (
    "valid", "valid_full", "extra", "empty_query", "huge_query", "bad_limit", "bad_columns",
    "too_many_columns", "filter_not_object", "surrogate",
)  # fmt: skip
COLUMNS = ("NOTE_ID", "NOTE_TYPE", "DEPARTMENT", "PATIENT_ID")


@st.composite
def search_req(draw: st.DrawFn, kinds: tuple[str, ...] = SEARCH_KINDS) -> Req:
    kind = draw(st.sampled_from(kinds))
    query = draw(safe_text("query"))[:MAX_SEARCH_QUERY_CHARS]

    def req(body: Any, expect: frozenset[tuple[int, str]] | None = VALIDATION) -> Req:
        return Req(kind, "POST", SEARCH, body=body, expect=expect)

    if kind == "valid":
        return req({"query": query}, None)
    if kind == "valid_full":
        body = {
            "query": query,
            "columns": draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4)),
            "filter": draw(st.dictionaries(canary("filterkey"), json_value("filter"), max_size=3)),
            "limit": draw(st.integers(1, 1000)),
        }  # fmt: skip
        return req(body, None)
    if kind == "extra":
        return req({"query": query, draw(_extra_key()) + "_x": draw(_hostile_value())})
    if kind == "empty_query":
        return req({"query": ""})
    if kind == "huge_query":
        return req({"query": MARK + "q" * MAX_SEARCH_QUERY_CHARS})
    if kind == "bad_limit":
        limit = draw(st.sampled_from((0, -1, 1001, 10**30, MARK, 1.5, None)))
        if limit is None:
            limit = [MARK]
        return req({"query": query, "limit": limit})
    if kind == "bad_columns":
        column = draw(st.sampled_from(("NOTE_ID; DROP TABLE X", f"{MARK} x", "", "1ABC", "a.b")))
        return req({"query": query, "columns": [column]})
    if kind == "too_many_columns":
        return req({"query": query, "columns": [f"C{i}" for i in range(33)]})
    if kind == "filter_not_object":
        return req({"query": query, "filter": draw(st.sampled_from(([MARK], MARK, 5)))})
    assert kind == "surrogate"
    return req({"query": draw(_surrogate("query"))})


SERVICE_KINDS = ("resume_ok", "suspend_ok", "unknown", "bad_name", "bad_force", "get_bad")


@st.composite
def services_req(draw: st.DrawFn, kinds: tuple[str, ...] = SERVICE_KINDS) -> Req:
    kind = draw(st.sampled_from(kinds))
    if kind == "resume_ok":
        return Req(kind, "POST", RESUME, path={"name": "biobert_ner"})
    if kind == "suspend_ok":
        force = draw(st.sampled_from((None, "true", "false")))
        query = {"force": force} if force else None
        return Req(kind, "POST", SUSPEND, path={"name": "biomedclip"}, query=query)
    if kind == "unknown":  # matches the name pattern, not in the registry
        name = draw(st.integers(0, 999).map(lambda n: f"{MARK.lower()}svc{n}"))
        resource = draw(st.sampled_from((RESUME, SUSPEND)))
        return Req(kind, "POST", resource, path={"name": name},
                   expect=_err((404, ApiCode.UNKNOWN_SERVICE)))  # fmt: skip
    if kind == "bad_name":
        name = draw(st.sampled_from((f"{MARK}", f"{MARK}%2e%2e%2f", f"{MARK.lower()}'--",
                                     f"{MARK.lower()}" + "x" * 80, f"../{MARK}")))  # fmt: skip
        resource = draw(st.sampled_from((RESUME, SUSPEND)))
        return Req(kind, "POST", resource, path={"name": name},
                   expect=VALIDATION | _err((404, ApiCode.NOT_FOUND)))  # fmt: skip
    if kind == "bad_force":
        force = draw(st.sampled_from((MARK, "2", "yes please", "")))
        return Req(kind, "POST", SUSPEND, path={"name": "biomedclip"}, query={"force": force},
                   expect=VALIDATION)  # fmt: skip
    assert kind == "get_bad"
    return Req(kind, "GET", "/v1/services/{name}", path={"name": MARK},
               expect=VALIDATION | _err((404, ApiCode.NOT_FOUND)))  # fmt: skip


RAW_KINDS = (
    "not_json", "scalar", "empty", "text_plain", "form", "truncated", "multipart",
    "not_utf8", "any_bytes", "not_base64", "base64_of_request",
)  # fmt: skip
BAD_ENCODING = _err((400, ApiCode.INVALID_BODY_ENCODING))
_B64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/")


def _not_base64(text: str) -> str:
    """``text`` padded so that its base64 characters number 1 more than a multiple of 4: no
    decoder takes it, however lenient."""
    count = sum(ch in _B64_ALPHABET for ch in text)
    return text + "A" * ((1 - count) % 4)


@st.composite
def raw_req(draw: st.DrawFn, kinds: tuple[str, ...] = RAW_KINDS) -> Req:
    kind = draw(st.sampled_from(kinds))
    resource = draw(st.sampled_from((ENTITIES, IMAGES, SEARCH)))
    if kind == "not_json":
        text = draw(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
        return Req(kind, "POST", resource, raw=MARK + text, expect=VALIDATION)
    if kind == "scalar":
        value = draw(
            st.one_of(st.lists(canary("list"), max_size=3), canary("scalar"), st.integers())
        )
        return Req(kind, "POST", resource, raw=json.dumps(value), expect=VALIDATION)
    if kind == "empty":
        return Req(kind, "POST", resource, raw="", expect=VALIDATION)
    if kind == "text_plain":
        return Req(kind, "POST", resource, raw=f"{MARK} plain", content_type="text/plain",
                   expect=_err((415, ApiCode.UNSUPPORTED_MEDIA_TYPE)))  # fmt: skip
    if kind == "form":
        return Req(kind, "POST", resource, raw=f"text={MARK}",
                   content_type="application/x-www-form-urlencoded",
                   expect=VALIDATION | _err((415, ApiCode.UNSUPPORTED_MEDIA_TYPE)))  # fmt: skip
    if kind == "truncated":
        body = json.dumps({"text": f"{MARK} otitis media", "wait_seconds": 1})
        cut = draw(st.integers(1, len(body) - 1))
        return Req(kind, "POST", ENTITIES, raw=body[:cut], expect=VALIDATION)
    if kind == "multipart":
        boundary = draw(st.sampled_from(("", "; boundary=xx")))
        raw = f'--xx\r\nContent-Disposition: form-data; name="{MARK}"\r\n\r\n{MARK}\r\n--xx--\r\n'
        return Req(kind, "POST", resource, raw=raw, content_type="multipart/form-data" + boundary,
                   expect=VALIDATION | _err((415, ApiCode.UNSUPPORTED_MEDIA_TYPE)))  # fmt: skip
    if kind == "not_utf8":  # 0xFF never occurs in UTF-8
        data = MARK.encode() + draw(st.binary(max_size=32)) + b"\xff" + draw(st.binary(max_size=32))
        return Req(kind, "POST", resource, data=data, expect=BAD_ENCODING)
    if kind == "any_bytes":
        data = MARK.encode() + draw(st.binary(max_size=64))
        return Req(kind, "POST", resource, data=data, expect=VALIDATION | BAD_ENCODING)
    if kind == "not_base64":
        text = _not_base64(draw(st.sampled_from((MARK, f"{MARK}!!", f"{MARK}-_", f"{MARK} ="))))
        return Req(kind, "POST", resource, encoded=text, expect=BAD_ENCODING)
    assert kind == "base64_of_request"  # the same request, delivered base64: the same answer
    inner = draw(st.one_of(entities_req(), images_req(), search_req()))
    return replace(inner, name=f"base64 {inner.name}", base64=True)


def any_request() -> st.SearchStrategy[Req]:
    return st.one_of(entities_req(), images_req(), search_req(), services_req(), raw_req())


# -- the property --------------------------------------------------------------------------------


@pytest.fixture
def captured(
    api: Api, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[Capture]:
    api.control.suspend_answer = {"outcome": "suspended", "status": "RUNNING"}
    with capture_app_output([api.module], caplog, capsys) as cap:
        cap.drain()
        yield cap


def check(api: Api, cap: Capture, req: Req) -> None:
    cap.drain()
    response = api.invoke(req.event())

    status = response["statusCode"]
    assert isinstance(status, int)
    assert header(response, "X-Request-Id")
    body = body_of(response)
    assert isinstance(body, dict)
    if req.expect is None:
        assert status in (200, 202), (req.name, status, body)
    else:
        assert 400 <= status < 500, (req.name, status, body)
        assert set(body) <= {"error", "service"}
        error = body["error"]
        assert set(error) <= {"code", "message", "request_id", "errors", "reason"}
        code = error["code"]
        assert code in KNOWN_CODES
        assert error["message"] == MESSAGES[code]
        assert (status, code) in req.expect, (req.name, status, code)
        assert_no_canary(response["body"], f"the error body of {req.name}", MARKS)
    assert_no_canary(cap.drain(), f"logs/metrics of {req.name}", MARKS)


@settings(max_examples=300, phases=FUZZ_PHASES)
@given(req=any_request())
def test_fuzzed_api_requests_answer_json_with_stable_codes(
    api: Api, captured: Capture, req: Req
) -> None:
    hypothesis_event(f"{req.resource} {req.name}")
    check(api, captured, req)


ALL_KINDS = (
    (entities_req, ENTITY_KINDS),
    (images_req, IMAGE_KINDS),
    (search_req, SEARCH_KINDS),
    (services_req, SERVICE_KINDS),
    (raw_req, RAW_KINDS),
)


@settings(max_examples=5, phases=FUZZ_PHASES)
@given(data=st.data())
def test_every_api_kind_answers_json_with_stable_codes(
    api: Api, captured: Capture, data: st.DataObject
) -> None:
    """The sampled fuzz above covers kinds unevenly: here every kind runs in each example."""
    for strategy, kinds in ALL_KINDS:
        for kind in kinds:
            check(api, captured, data.draw(strategy((kind,)), label=kind))


def test_deeply_nested_json_body_is_a_client_error(api: Api, captured: Capture) -> None:
    raw = '{"text": ' + "[" * 5000 + json.dumps(MARK) + "]" * 5000 + "}"
    req = Req("deep", "POST", ENTITIES, raw=raw, expect=VALIDATION)
    check(api, captured, req)
