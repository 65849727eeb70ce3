"""Fuzzed SQS record bodies through the real router pipeline (``build_pipeline`` with a real
SpcsClient/TokenProvider against respx, moto SQS/S3/Secrets Manager, the fake results sink).

Property, for every generated batch (valid, almost-valid and hostile records mixed):
* the handler returns a well-formed ``batchItemFailures`` answer, and it is empty: with a
  healthy service nothing is transient, so poison is never handed back to SQS;
* every record ends either with a result row (its event_id in the sink) or as exactly one DLQ
  message carrying the original body and the expected stable ``ErrorCode`` in ``error_code``;
* no log line, EMF blob, stdout/stderr text or DLQ attribute holds a canary from the input
  (every generated string field carries one; valid event ids, logged on purpose, do not);
* no HTTP request leaves for a host outside the registry, no S3 read outside the allow-list.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
from gw_support import (
    IMAGE_BUCKET,
    IMAGES_QUEUE,
    NER_URL,
    NOTES_QUEUE,
    OTHER_BUCKET,
    TOKEN_URL,
    ZSC_URL,
    GatewayEnv,
    Router,
    SpcsFake,
    bomb_png,
    png_bytes,
    registry_doc,
)
from hypothesis import event as hypothesis_event
from hypothesis import given, settings
from hypothesis import strategies as st
from rel_support import (
    EVENT_ID,
    EVENT_ID_PREFIXES,
    FUZZ_PHASES,
    HOSTILE_IDS,
    MARK,
    METADATA_URLS,
    Capture,
    Case,
    assert_no_canary,
    bad,
    canary,
    capture_app_output,
    delete,
    deliver,
    json_value,
    nested,
    ok,
    safe_text,
    valid_id,
)

from spcs_gateway.errors import POISON_CODES, ErrorCode
from spcs_gateway.events import MAX_TEXT_CHARS
from spcs_gateway.registry import parse_registry

E = ErrorCode
NOTE = "clinical-note.v1"
IMAGE = "medical-image.v1"
REJECT = "REJECTME"  # the fake model answers 400 to any request holding it
MAX_IMAGE_BYTES = 8 * 1024  # lowered so "too many bytes" fits in an SQS message
TIMES = ("2025-01-15T09:30:00Z", "2025-01-15T10:00:00.123456+01:00", "1999-12-31 23:59:59-05:00")
BAD_TIMES = ("2025-01-15T09:30:00", "1700000000", f"yesterday {MARK}", "2025-13-45T99:99:99Z", "")
S3_OK_KEY = f"scans/{MARK}okkey.png"
S3_JUNK_KEY = f"scans/{MARK}junkkey.png"
S3_BOMB_KEY = f"scans/{MARK}bombkey.png"
PNG = png_bytes((8, 8))
JPEG = png_bytes((16, 12), fmt="JPEG")
MALFORMED_S3 = (
    f"s3://{IMAGE_BUCKET}/{MARK} key",
    f"s3://{MARK}/k",
    f"s3://{IMAGE_BUCKET}",
    f"S3://{IMAGE_BUCKET}/{MARK}",
)
PNG_INLINE = {"base64": base64.b64encode(PNG).decode(), "content_type": "image/png"}
JPEG_INLINE = {"base64": base64.b64encode(JPEG).decode(), "content_type": "image/jpeg"}
_ids = itertools.count()
ALLOWED_HOSTS = {urlsplit(url).hostname for url in (NER_URL, ZSC_URL, TOKEN_URL)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@cache
def _surrogate_text(field: str) -> st.SearchStrategy[str]:
    return st.tuples(canary(field), st.integers(0xD800, 0xDFFF)).map(lambda t: t[0] + chr(t[1]))


@cache
def _wrong_type() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        st.lists(safe_text("wrongtype", max_parts=1), max_size=3),
        st.dictionaries(safe_text("wrongkey", max_parts=0), st.integers(), max_size=2),
    )


@cache
def _extra_field() -> st.SearchStrategy[tuple[str, Any]]:
    name = st.one_of(
        st.sampled_from(("endpoint", "url", "callback_url", "service_url", "__proto__", "$where")),
        safe_text("extrakey", max_parts=1),
    )
    value = st.one_of(st.sampled_from(METADATA_URLS), safe_text("extraval"), json_value("extra"))
    return st.tuples(name, value)


# -- note cases --------------------------------------------------------------------------------


@cache
def _note_doc() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "schema": st.just(NOTE),
            "event_id": st.just(EVENT_ID),
            "note_id": valid_id("noteid"),
            "source": valid_id("source"),
            "occurred_at": st.sampled_from(TIMES),
            "text": safe_text("text"),
        },
        optional={
            "attributes": st.dictionaries(safe_text("attrkey", max_parts=0), json_value("attr"))
        },
    )


NOTE_KINDS = (
    "valid", "valid", "valid", "max_text", "deep_ok", "missing", "wrong_type", "extra",
    "huge_text", "empty_text", "bad_time", "bad_event_id", "bad_note_id", "unknown_schema",
    "image_schema", "surrogate", "too_deep", "not_json", "truncated", "bom", "scalar", "reject",
)  # fmt: skip


@st.composite
def note_case(draw: st.DrawFn, kinds: tuple[str, ...] = NOTE_KINDS) -> Case:
    doc = draw(_note_doc())
    prefix = draw(st.sampled_from(EVENT_ID_PREFIXES))
    ascii_only = draw(st.booleans())
    kind = draw(st.sampled_from(kinds))
    kw: dict[str, Any] = {"ascii_only": ascii_only, "id_prefix": prefix}
    if kind == "valid":
        return ok(kind, doc, **kw)
    if kind == "max_text":
        return ok(kind, {**doc, "text": MARK + "a" * (MAX_TEXT_CHARS - len(MARK))}, **kw)
    if kind == "deep_ok":
        return ok(kind, {**doc, "attributes": nested(150, MARK + "deep")}, **kw)
    if kind == "missing":
        field = draw(
            st.sampled_from(("schema", "event_id", "note_id", "source", "occurred_at", "text"))
        )
        doc.pop(field)
        return bad(kind, E.UNKNOWN_SCHEMA if field == "schema" else E.INVALID_EVENT, doc, **kw)
    if kind == "wrong_type":
        field = draw(
            st.sampled_from(("schema", "event_id", "note_id", "source", "occurred_at", "text"))
        )
        value = draw(_wrong_type())
        if field == "attributes" and value is None:
            value = 1
        code = E.UNKNOWN_SCHEMA if field == "schema" else E.INVALID_EVENT
        return bad(kind, code, {**doc, field: value}, **kw)
    if kind == "extra":
        name, value = draw(_extra_field())
        doc = {**doc, name: value} if name not in doc else {**doc, name + "_x": value}
        return bad(kind, E.INVALID_EVENT, doc, **kw)
    if kind == "huge_text":
        return bad(kind, E.INVALID_EVENT, {**doc, "text": MARK + "b" * MAX_TEXT_CHARS}, **kw)
    if kind == "empty_text":
        return bad(kind, E.INVALID_EVENT, {**doc, "text": ""}, **kw)
    if kind == "bad_time":
        return bad(
            kind, E.INVALID_EVENT, {**doc, "occurred_at": draw(st.sampled_from(BAD_TIMES))}, **kw
        )
    if kind == "bad_event_id":
        return bad(
            kind, E.INVALID_EVENT, {**doc, "event_id": draw(st.sampled_from(HOSTILE_IDS))}, **kw
        )
    if kind == "bad_note_id":
        return bad(
            kind, E.INVALID_EVENT, {**doc, "note_id": draw(st.sampled_from(HOSTILE_IDS))}, **kw
        )
    if kind == "unknown_schema":
        schema = draw(st.sampled_from(("clinical-note.v2", f"{MARK}schema", "CLINICAL-NOTE.V1")))
        return bad(kind, E.UNKNOWN_SCHEMA, {**doc, "schema": schema}, **kw)
    if kind == "image_schema":  # a valid image event on the notes queue
        return bad(kind, E.UNKNOWN_SCHEMA, _image_doc_static(), **kw)
    if kind == "surrogate":
        field = draw(st.sampled_from(("text", "note_id", "source")))
        return bad(kind, E.INVALID_JSON, {**doc, field: draw(_surrogate_text(field))}, **kw)
    if kind == "too_deep":
        return bad(kind, E.INVALID_JSON, {**doc, "attributes": nested(260, MARK + "deep")}, **kw)
    if kind == "not_json":
        text = draw(st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40))
        return bad(kind, E.INVALID_JSON, raw=f"{MARK}{text}", **kw)
    if kind == "truncated":
        body = json.dumps({**doc, "event_id": "evt-trunc"})
        cut = draw(st.integers(1, len(body) - 1))
        return bad(kind, E.INVALID_JSON, raw=body[:cut], **kw)
    if kind == "bom":
        return bad(kind, E.INVALID_JSON, raw="\ufeff" + json.dumps({**doc, "event_id": "evt-bom"}))
    if kind == "scalar":
        value = draw(st.one_of(st.lists(safe_text("list"), max_size=3), safe_text("scalar")))
        return bad(kind, E.INVALID_EVENT, raw=json.dumps(value), **kw)
    assert kind == "reject"
    return bad(kind, E.MODEL_REJECTED_INPUT, {**doc, "text": f"{REJECT} {doc['text']}"}, **kw)


# -- image cases -------------------------------------------------------------------------------


def _image_doc_static() -> dict[str, Any]:
    return {
        "schema": IMAGE,
        "event_id": EVENT_ID,
        "image_id": f"{MARK}imageid",
        "source": "pacs",
        "occurred_at": TIMES[0],
        "image": {"base64": _b64(PNG), "content_type": "image/png"},
        "candidate_labels": [f"{MARK}label"],
    }


@cache
def _labels() -> st.SearchStrategy[list[str]]:
    return st.lists(safe_text("label", max_parts=2).map(lambda s: s[:200]), min_size=1, max_size=5)


def _zero_width_png() -> bytes:
    head = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    ihdr = (
        struct.pack(">I", len(head))
        + b"IHDR"
        + head
        + struct.pack(">I", zlib.crc32(b"IHDR" + head))
    )
    return b"\x89PNG\r\n\x1a\n" + ihdr


IMAGE_KINDS = (
    "valid", "valid", "valid", "s3_ok", "too_many_labels", "way_too_many_labels",
    "empty_labels", "long_label", "both_labels", "no_labels", "unknown_set", "bad_set_name",
    "bad_base64", "not_image", "bomb", "zero_width", "truncated_png", "type_mismatch",
    "bad_content_type", "too_many_bytes", "s3_forbidden", "s3_metadata", "s3_malformed",
    "s3_missing", "s3_junk", "s3_bomb", "both_sources", "image_extra", "image_wrong_type",
    "note_schema", "missing", "extra", "bad_event_id", "surrogate_label",
)  # fmt: skip


@st.composite
def image_case(draw: st.DrawFn, kinds: tuple[str, ...] = IMAGE_KINDS) -> Case:
    inline = draw(st.sampled_from((PNG_INLINE, JPEG_INLINE)))
    doc: dict[str, Any] = {
        "schema": IMAGE,
        "event_id": EVENT_ID,
        "image_id": draw(valid_id("imageid")),
        "source": draw(valid_id("source")),
        "occurred_at": draw(st.sampled_from(TIMES)),
        "image": inline,
    }
    if draw(st.booleans()):
        doc["candidate_labels"] = draw(_labels())
    else:
        doc["label_set"] = "radiology-modality"
    kw: dict[str, Any] = {"ascii_only": draw(st.booleans()),
                          "id_prefix": draw(st.sampled_from(EVENT_ID_PREFIXES))}  # fmt: skip
    kind = draw(st.sampled_from(kinds))
    if kind == "valid":
        return ok(kind, doc, **kw)
    if kind == "s3_ok":
        return ok(kind, {**doc, "image": {"s3_uri": f"s3://{IMAGE_BUCKET}/{S3_OK_KEY}"}}, **kw)
    labels_free = {k: v for k, v in doc.items() if k not in ("candidate_labels", "label_set")}
    if kind == "too_many_labels":  # over the service's max_candidate_labels (5)
        labels = draw(st.lists(canary("label"), min_size=6, max_size=40))
        return bad(kind, E.INVALID_EVENT, {**labels_free, "candidate_labels": labels}, **kw)
    if kind == "way_too_many_labels":  # over the schema's bound
        labels = [f"{MARK}l{i}" for i in range(1001)]
        return bad(kind, E.INVALID_EVENT, {**labels_free, "candidate_labels": labels}, **kw)
    if kind == "empty_labels":
        label_list = draw(st.sampled_from(([], [""], [f"{MARK}ok", ""])))
        return bad(kind, E.INVALID_EVENT, {**labels_free, "candidate_labels": label_list}, **kw)
    if kind == "long_label":
        long_label = MARK + "L" * 200
        return bad(kind, E.INVALID_EVENT, {**labels_free, "candidate_labels": [long_label]}, **kw)
    if kind == "both_labels":
        both = {**labels_free, "candidate_labels": [f"{MARK}a"], "label_set": "radiology-modality"}
        return bad(kind, E.INVALID_EVENT, both, **kw)
    if kind == "no_labels":
        return bad(kind, E.INVALID_EVENT, labels_free, **kw)
    if kind == "unknown_set":
        return bad(kind, E.UNKNOWN_LABEL_SET, {**labels_free, "label_set": f"{MARK}set"}, **kw)
    if kind == "bad_set_name":
        name = draw(st.sampled_from((*HOSTILE_IDS, f"{MARK}/../x")))
        return bad(kind, E.INVALID_EVENT, {**labels_free, "label_set": name}, **kw)

    def with_image(image: Any, code: ErrorCode) -> Case:
        return bad(kind, code, {**doc, "image": image}, **kw)

    if kind == "bad_base64":
        text = draw(st.sampled_from((f"{MARK}!!==", f"{MARK}abc", f"{MARK} b64 ", f"{MARK}-_-_",
                                     "====", f"{MARK}\n" + _b64(PNG))))  # fmt: skip
        return with_image({"base64": text, "content_type": "image/png"}, E.INVALID_IMAGE)
    if kind == "not_image":
        data = (MARK + "notimage").encode() + draw(st.binary(max_size=200))
        ctype = draw(st.sampled_from(("image/png", "image/jpeg")))
        return with_image({"base64": _b64(data), "content_type": ctype}, E.INVALID_IMAGE)
    if kind == "bomb":
        width = draw(st.integers(1, 2**31 - 1))
        height = max(draw(st.integers(1, 2**31 - 1)), 1_000_000 // width + 1)
        image = {"base64": _b64(bomb_png(width, height)), "content_type": "image/png"}
        return with_image(image, E.IMAGE_TOO_LARGE)
    if kind == "zero_width":
        image = {"base64": _b64(_zero_width_png()), "content_type": "image/png"}
        return with_image(image, E.INVALID_IMAGE)
    if kind == "truncated_png":
        cut = draw(st.integers(8, len(PNG) - 1))
        return with_image({"base64": _b64(PNG[:cut]), "content_type": "image/png"}, E.INVALID_IMAGE)
    if kind == "type_mismatch":
        return with_image({"base64": _b64(PNG), "content_type": "image/jpeg"}, E.INVALID_IMAGE)
    if kind == "bad_content_type":
        ctype = draw(st.sampled_from(("image/gif", "text/html", f"{MARK}/type", "IMAGE/PNG")))
        return with_image({"base64": _b64(PNG), "content_type": ctype}, E.INVALID_EVENT)
    if kind == "too_many_bytes":
        big = _b64(b"\x89PNG" + b"\x00" * MAX_IMAGE_BYTES)
        return with_image({"base64": big, "content_type": "image/png"}, E.IMAGE_TOO_LARGE)
    if kind == "s3_forbidden":
        bucket = draw(
            st.sampled_from((OTHER_BUCKET, "169.254.169.254", "metadata.google.internal"))
        )
        return with_image({"s3_uri": f"s3://{bucket}/{S3_OK_KEY}"}, E.IMAGE_SOURCE_FORBIDDEN)
    if kind == "s3_metadata":  # not an s3:// URI at all
        return with_image({"s3_uri": draw(st.sampled_from(METADATA_URLS))}, E.INVALID_EVENT)
    if kind == "s3_malformed":
        uri = draw(st.sampled_from(MALFORMED_S3))
        return with_image({"s3_uri": uri}, E.INVALID_EVENT)
    if kind == "s3_missing":
        return with_image({"s3_uri": f"s3://{IMAGE_BUCKET}/scans/{MARK}missing"}, E.IMAGE_NOT_FOUND)
    if kind == "s3_junk":
        return with_image({"s3_uri": f"s3://{IMAGE_BUCKET}/{S3_JUNK_KEY}"}, E.INVALID_IMAGE)
    if kind == "s3_bomb":
        return with_image({"s3_uri": f"s3://{IMAGE_BUCKET}/{S3_BOMB_KEY}"}, E.IMAGE_TOO_LARGE)
    if kind == "both_sources":
        image = {**inline, "s3_uri": f"s3://{IMAGE_BUCKET}/{S3_OK_KEY}"}
        return with_image(image, E.INVALID_EVENT)
    if kind == "image_extra":
        name, value = draw(_extra_field())
        return with_image({**inline, name + "_x": value}, E.INVALID_EVENT)
    if kind == "image_wrong_type":
        return with_image(draw(_wrong_type()), E.INVALID_EVENT)
    if kind == "note_schema":  # a valid note on the images queue
        note = {"schema": NOTE, "event_id": EVENT_ID, "note_id": "n1", "source": "epic",
                "occurred_at": TIMES[0], "text": f"{MARK}text"}  # fmt: skip
        return bad(kind, E.UNKNOWN_SCHEMA, note, **kw)
    if kind == "missing":
        field = draw(st.sampled_from(("event_id", "image_id", "source", "occurred_at", "image")))
        return bad(kind, E.INVALID_EVENT, {k: v for k, v in doc.items() if k != field}, **kw)
    if kind == "extra":
        name, value = draw(_extra_field())
        return bad(kind, E.INVALID_EVENT, {**doc, name + "_x": value}, **kw)
    if kind == "bad_event_id":
        return bad(
            kind, E.INVALID_EVENT, {**doc, "event_id": draw(st.sampled_from(HOSTILE_IDS))}, **kw
        )
    assert kind == "surrogate_label"
    label = draw(_surrogate_text("label"))
    return bad(kind, E.INVALID_JSON, {**labels_free, "candidate_labels": [label]}, **kw)


@st.composite
def every_kind(
    draw: st.DrawFn, case: Callable[..., st.SearchStrategy[Case]], kinds: tuple[str, ...]
) -> list[Case]:
    """One record of every kind, in a shuffled batch (Lambda batches may exceed 10 records)."""
    cases = [draw(case((kind,))) for kind in dict.fromkeys(kinds)]
    return draw(st.permutations(cases))


@st.composite
def batches(draw: st.DrawFn, case: Callable[..., st.SearchStrategy[Case]]) -> list[Case]:
    """1..10 records (an SQS batch); sometimes a valid record is delivered twice in it."""
    cases = draw(st.lists(case(), min_size=1, max_size=9))
    valid = [c for c in cases if c.expect is None]
    if valid and draw(st.booleans()):
        cases.insert(draw(st.integers(0, len(cases))), valid[0])
    return cases


# -- the harness -------------------------------------------------------------------------------


class Harness:
    def __init__(self, r: Router, env: GatewayEnv, cap: Capture, queue: str) -> None:
        self.r = r
        self.env = env
        self.cap = cap
        self.queue = queue
        self.s3_reads: list[str] = []
        self.hosts: set[str] = set()
        # Every request the container's one httpx client sends (SPCS ingress, token exchange).
        r.client._http.event_hooks["request"].append(lambda req: self.hosts.add(req.url.host))
        env.s3.meta.events.register(
            "provide-client-params.s3.GetObject",
            lambda params, **_: self.s3_reads.append(params["Bucket"]),
        )

    def dead_letters(self) -> dict[str, dict[str, Any]]:
        found = self.env.dead_letters(self.queue)
        url = self.env.dlq_urls[self.queue]
        delete(self.env, url, found)
        by_source: dict[str, dict[str, Any]] = {}
        for m in found:
            attrs = m["MessageAttributes"]
            assert set(attrs) == {"error_code", "source_message_id"}
            source = attrs["source_message_id"]["StringValue"]
            assert source not in by_source, "a record was dead-lettered twice"
            by_source[source] = m
        return by_source

    def run(self, cases: list[Case]) -> None:
        ids: dict[int, str] = {}
        bodies: list[str] = []
        event_id_of: dict[str, str] = {}
        for case in cases:
            hypothesis_event(case.name)  # shown by --hypothesis-show-statistics
            key = id(case)
            if key not in ids:  # a repeated case is a redelivered duplicate: same event_id
                ids[key] = f"{case.id_prefix}{next(_ids)}"
            body = case.body(ids[key])
            bodies.append(body)
            event_id_of[body] = ids[key]
        self.cap.drain()  # output of an earlier (failed) example is not this one's
        event = deliver(self.env, self.queue, bodies)
        records = event["Records"]

        response = self.r.invoke(event)

        assert response == {"batchItemFailures": []}
        dead = self.dead_letters()
        by_body: dict[str, Case] = {case.body(ids[id(case)]): case for case in cases}
        for record in records:
            case = by_body[record["body"]]
            message_id = record["messageId"]
            if case.expect is None:
                assert message_id not in dead, (case.name, dead.get(message_id))
                assert event_id_of[record["body"]] in self.r.sink.rows, case.name
            else:
                assert message_id in dead, f"{case.name}: not dead-lettered"
                message = dead.pop(message_id)
                code = message["MessageAttributes"]["error_code"]["StringValue"]
                assert code in case.expect, (case.name, code)
                assert ErrorCode(code) in POISON_CODES
                assert message["Body"] == record["body"]  # unchanged, for a redrive
        assert dead == {}, "DLQ holds messages no record accounts for"

        output = self.cap.drain()
        assert "batch processed" in output  # the capture is live
        assert_no_canary(output, "logs/metrics/stdout")
        assert set(self.s3_reads) <= {IMAGE_BUCKET}
        if any(case.expect is None for case in cases):
            assert self.hosts, "the request hook is live"
        assert self.hosts <= ALLOWED_HOSTS, self.hosts - ALLOWED_HOSTS


@pytest.fixture
def harness(
    router: Callable[..., Router],
    gateway_env: GatewayEnv,
    spcs: SpcsFake,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[str], Harness]]:
    """``harness(router_name)``: one router per test, shared by all of the test's examples."""
    doc = registry_doc()
    doc["images"]["max_image_bytes"] = MAX_IMAGE_BYTES
    registry = parse_registry(doc)
    s3 = gateway_env.s3
    s3.put_object(Bucket=IMAGE_BUCKET, Key=S3_OK_KEY, Body=PNG)
    s3.put_object(Bucket=IMAGE_BUCKET, Key=S3_JUNK_KEY, Body=(MARK + "junk").encode())
    s3.put_object(Bucket=IMAGE_BUCKET, Key=S3_BOMB_KEY, Body=bomb_png(40_000, 40_000))
    s3.put_object(Bucket=OTHER_BUCKET, Key=S3_OK_KEY, Body=PNG)
    spcs.reject_marker = REJECT
    spcs.output_suffix = f" {MARK}output"  # model output carries a canary too
    made: dict[str, Harness] = {}
    with ExitStack() as stack:

        def get(name: str) -> Harness:
            if name not in made:
                r = router(name, registry=registry)
                cap = stack.enter_context(capture_app_output([r.app], caplog, capsys))
                cap.drain()  # forget output from the router's import
                queue = NOTES_QUEUE if name == "note_router" else IMAGES_QUEUE
                made[name] = Harness(r, gateway_env, cap, queue)
            return made[name]

        yield get


@settings(max_examples=150, phases=FUZZ_PHASES)
@given(cases=batches(note_case))
def test_fuzzed_note_batches_end_in_result_or_dlq(
    harness: Callable[[str], Harness], cases: list[Case]
) -> None:
    harness("note_router").run(cases)


@settings(max_examples=150, phases=FUZZ_PHASES)
@given(cases=batches(image_case))
def test_fuzzed_image_batches_end_in_result_or_dlq(
    harness: Callable[[str], Harness], cases: list[Case]
) -> None:
    harness("image_router").run(cases)


@settings(max_examples=8, phases=FUZZ_PHASES)
@given(cases=every_kind(note_case, NOTE_KINDS))
def test_every_note_kind_in_one_batch(harness: Callable[[str], Harness], cases: list[Case]) -> None:
    harness("note_router").run(cases)


@settings(max_examples=8, phases=FUZZ_PHASES)
@given(cases=every_kind(image_case, IMAGE_KINDS))
def test_every_image_kind_in_one_batch(
    harness: Callable[[str], Harness], cases: list[Case]
) -> None:
    harness("image_router").run(cases)
