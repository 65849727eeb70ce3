"""Hostile EHR-native input: HL7 v2, FHIR R4 and DICOM parsers under Hypothesis, then mixed
batches through the real note and image routers.

Parser properties: whatever the input (arbitrary text, truncated segments, wrong or repeated
delimiters, huge fields, broken escapes and base64, hostile JSON values in every element, DICOM
truncated, with flipped bytes or lying element lengths) the parser returns notes (or a PNG) or
raises ``PoisonError`` with one of its format's stable codes, quickly, and the error's text holds
no canary from the input.

Router property, for every generated batch: an empty ``batchItemFailures``; every record ends
as all its rows or as exactly one DLQ message with its expected code and its body unchanged; no
log line, EMF blob, stdout/stderr text or DLQ attribute holds a canary planted in PID, FHIR
``subject``/``identifier``/Patient, DICOM PatientName/PatientID or the note text.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import cache
from typing import Any

import pytest
from gw_support import IMAGES_QUEUE, NOTES_QUEUE, GatewayEnv, Router, SpcsFake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_support import (
    FUZZ_PHASES,
    MARK,
    assert_no_canary,
    capture_app_output,
    delete,
    deliver,
    json_value,
    safe_text,
)

from spcs_gateway.ehr.dicom import dicom_to_png
from spcs_gateway.ehr.fhir import notes_from_fhir
from spcs_gateway.ehr.hl7 import notes_from_hl7
from spcs_gateway.ehr.subjects import SubjectIds
from spcs_gateway.errors import POISON_CODES, ErrorCode, PoisonError
from spcs_local.stack import ehr_feed

E = ErrorCode
KEY = SubjectIds.with_key(b"fuzz-subject-key-0123456789")
HL7_CODES = frozenset(
    {E.HL7_MALFORMED, E.HL7_UNSUPPORTED_TYPE, E.HL7_UNSUPPORTED_CHARSET, E.HL7_NO_TEXT}
) | {E.INVALID_EVENT}
FHIR_CODES = frozenset(
    {E.FHIR_INVALID_RESOURCE, E.FHIR_UNSUPPORTED_RESOURCE, E.FHIR_NO_ATTACHMENT, E.INVALID_EVENT}
)
DICOM_CODES = frozenset(
    {
        E.DICOM_MALFORMED,
        E.DICOM_NO_PIXEL_DATA,
        E.DICOM_UNSUPPORTED_SYNTAX,
        E.DICOM_UNSUPPORTED_IMAGE,
        E.IMAGE_TOO_LARGE,
    }
)
PARSER = settings(
    max_examples=300,
    deadline=None,
    phases=FUZZ_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)


def _poison_or(call: Callable[[], Any], codes: frozenset[ErrorCode]) -> Any:
    try:
        return call()
    except PoisonError as err:
        caught = err
    assert caught.code in codes, caught.code
    assert_no_canary(str(caught), "error text")
    assert caught.__cause__ is None
    return caught


# -- HL7 v2 ----------------------------------------------------------------------------------


def _hl7(control: str = "C1") -> str:
    return ehr_feed.hl7_mdm(control, f"{MARK}mrn", f"{MARK}name", f"{MARK}text croup", "drug")


ESCAPES = ("\\X", "\\XZZ\\", "\\.sp 99999999\\", "\\C2842", "\\\\", "\\.in -5\\", "\\M\\",
           "\\X" + "41" * 5000 + "\\")  # fmt: skip
SEPARATORS = ("|", "^", "~", "\\", "&", "\r", "\n", "#", "", "MSH", "\x00", "\u2028")


@st.composite
def hl7_mutation(draw: st.DrawFn) -> str:
    text = draw(
        st.sampled_from(
            (
                _hl7(),
                ehr_feed.hl7_oru("C2", f"{MARK}m", f"{MARK}n"),
                ehr_feed.hl7_mdm_ed_html("C3", f"{MARK}m", f"{MARK}n"),
            )
        )
    )
    kind = draw(st.sampled_from(("truncate", "replace", "insert", "huge", "escape", "drop", "dup")))
    at = draw(st.integers(0, len(text)))
    if kind == "truncate":
        return text[: max(1, at)]
    if kind == "replace":
        return text[:at] + draw(st.sampled_from(SEPARATORS)) + text[at + 1 :]
    if kind == "insert":
        return text[:at] + draw(safe_text("hl7insert")) + text[at:]
    if kind == "huge":
        return text[:at] + "|" + MARK + "H" * draw(st.integers(50_000, 150_000)) + text[at:]
    if kind == "escape":
        junk = draw(st.sampled_from(ESCAPES))
        return text[:at] + junk + text[at:]
    segments = text.split("\r")
    index = draw(st.integers(0, len(segments) - 1))
    if kind == "drop":
        del segments[index]
    else:
        segments.insert(index, segments[index])
    return "\r".join(segments)


@PARSER
@given(body=st.one_of(hl7_mutation(), st.text(max_size=300).map(lambda t: "MSH|^~\\&|" + t)))
def test_hl7_parser_ends_in_notes_or_a_stable_code(body: str) -> None:
    out = _poison_or(lambda: notes_from_hl7(body, KEY), HL7_CODES)
    if not isinstance(out, PoisonError):
        assert out
        assert all(n.subject_id.startswith("sk:") for n in out)


# -- FHIR R4 ---------------------------------------------------------------------------------

_B64 = base64.b64encode(f"{MARK}note otitis".encode()).decode()
HOSTILE_B64 = (f"{MARK}!!", "====", _B64[:-1], _B64 + "=", " ", "A" * 4_000_001, "\u00e9" * 8)


@cache
def _hostile_value() -> st.SearchStrategy[Any]:
    return st.one_of(json_value("fhir"), st.sampled_from(HOSTILE_B64))


@st.composite
def fhir_resource(draw: st.DrawFn) -> Any:
    base: dict[str, Any] = draw(
        st.sampled_from(
            (
                ehr_feed.fhir_document_reference("d1", f"{MARK}text", patient=f"Patient/{MARK}p"),
                ehr_feed.fhir_diagnostic_report("r1", f"<p>{MARK}</p>", patient=f"{MARK}p"),
                ehr_feed.fhir_bundle("b1", "t", f"{MARK}name", f"{MARK}mrn"),
            )
        )
    )
    doc = json.loads(json.dumps(base))
    # Replace a value somewhere (a path of keys and list indexes) with a hostile one.
    node: Any = doc
    for _ in range(draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.booleans()) or not isinstance(node[key], dict | list):
                node[key] = draw(_hostile_value())
                break
            node = node[key]
        elif isinstance(node, list) and node:
            node = node[draw(st.integers(0, len(node) - 1))]
        else:
            break
    return doc


@PARSER
@given(resource=fhir_resource())
def test_fhir_parser_ends_in_notes_or_a_stable_code(resource: Any) -> None:
    if not isinstance(resource, dict):
        return
    _poison_or(lambda: notes_from_fhir(resource, KEY), FHIR_CODES)


# -- DICOM -----------------------------------------------------------------------------------


@cache
def _dicom_files() -> tuple[bytes, ...]:
    kinds = ("ct", "mono1", "ybr", "multiframe_rle", "jpeg", "voi_lut", "rgb")
    return tuple(ehr_feed.dicom_file(k, patient_name=f"{MARK}name^x") for k in kinds)


LYING = (0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 0x10000, 0, 1, 3)


@st.composite
def dicom_mutation(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_dicom_files())))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("truncate", "flip", "lie2", "lie4")))
        at = draw(st.integers(132, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "lie2" and at + 2 <= len(data):  # a short (explicit VR) length field
            data[at : at + 2] = struct.pack("<H", draw(st.sampled_from((0xFFFF, 0, 1, 0x8000))))
        elif at + 4 <= len(data):  # a long length field (OB/OW/SQ/UN/UT) or a value
            data[at : at + 4] = struct.pack("<I", draw(st.sampled_from(LYING)))
        if len(data) <= 133:
            break
    return bytes(data)


@settings(max_examples=300, deadline=2_000, phases=FUZZ_PHASES)
@given(data=dicom_mutation())
def test_dicom_conversion_ends_in_a_png_or_a_stable_code(data: bytes) -> None:
    out = _poison_or(lambda: dicom_to_png(data, size=32, max_pixels=1_000_000), DICOM_CODES)
    if isinstance(out, bytes):
        assert out.startswith(b"\x89PNG")


# -- through the routers ---------------------------------------------------------------------

_ids = itertools.count()
Expected = ErrorCode | tuple[ErrorCode, ...] | None  # a record's DLQ code(s), None: its rows


def _n() -> int:
    """A fresh number per record (event ids stay unique across examples). Draws never depend on
    it: a cut is drawn as a fraction of the body, so Hypothesis replays examples exactly."""
    return next(_ids)


def _cut(draw: st.DrawFn, text: Any, low: int, high_margin: int) -> int:
    share = draw(st.floats(0.0, 1.0))
    return low + int(share * max(0, len(text) - high_margin - low))


@st.composite
def note_record(draw: st.DrawFn) -> tuple[str, Expected]:
    """(body, expected DLQ code or None for rows)."""
    n = _n()
    name, mrn = draw(st.sampled_from(((f"{MARK}name", f"{MARK}mrn"), (f"O'{MARK}", f"{MARK}|x"))))
    mrn = mrn.replace("|", "\\F\\")
    kind = draw(st.sampled_from(("mdm", "oru", "ed", "docref", "bundle", "report", "trunc",
                                 "adt", "bad_ed", "bad_b64", "url", "patient", "broken",
                                 "charset", "notext")))  # fmt: skip
    if kind == "mdm":
        return ehr_feed.hl7_mdm(f"M{n}", mrn, name, f"{MARK}dx", "amoxicillin"), None
    if kind == "oru":
        return ehr_feed.hl7_oru(f"O{n}", mrn, name), None
    if kind == "ed":
        return ehr_feed.hl7_mdm_ed_html(f"E{n}", mrn, name), None
    if kind == "docref":
        doc = ehr_feed.fhir_document_reference(f"d{n}", f"{MARK}text", patient=f"Patient/{MARK}")
        return json.dumps(doc), None
    if kind == "bundle":
        return json.dumps(ehr_feed.fhir_bundle(f"b{n}", f"t{n}", name, f"{MARK}mrn")), None
    if kind == "report":
        doc = ehr_feed.fhir_diagnostic_report(f"r{n}", f"<b>{MARK}</b> croup", patient=MARK)
        return json.dumps(doc), None
    mdm = ehr_feed.hl7_mdm(f"X{n}", mrn, name, f"{MARK}dx", "amoxicillin")
    if kind == "trunc":
        return mdm[: draw(st.integers(4, 40))], E.HL7_MALFORMED  # "MSH" and a cut
    if kind == "adt":
        return mdm.replace("MDM^T02^MDM_T02", "ADT^A08"), E.HL7_UNSUPPORTED_TYPE
    if kind == "bad_ed":
        return mdm.replace("OBX|4|NM", f"OBX|4|ED|X||^TEXT^PLAIN^Base64^{MARK}!"), E.HL7_MALFORMED
    if kind == "charset":
        return mdm.replace("UNICODE UTF-8", f"{MARK}set"), E.HL7_UNSUPPORTED_CHARSET
    if kind == "notext":
        return mdm.split("\rOBX|1")[0], E.HL7_NO_TEXT
    if kind == "bad_b64":
        doc = ehr_feed.fhir_document_reference(f"d{n}", "x", patient=f"Patient/{MARK}")
        doc["content"][0]["attachment"]["data"] = f"{MARK}!!"
        return json.dumps(doc), E.FHIR_INVALID_RESOURCE
    if kind == "url":
        doc = ehr_feed.fhir_document_reference(
            f"d{n}", "", attachments=[{"contentType": "text/plain", "url": f"https://{MARK}"}]
        )
        return json.dumps(doc), E.FHIR_NO_ATTACHMENT
    if kind == "patient":
        body = {"resourceType": "Patient", "name": [{"family": f"{MARK}name"}]}
        return json.dumps(body), E.FHIR_UNSUPPORTED_RESOURCE
    assert kind == "broken"
    doc = json.dumps(ehr_feed.fhir_document_reference(f"d{n}", f"{MARK}t"))
    return doc[: _cut(draw, doc, 20, 1)], E.INVALID_JSON


@st.composite
def image_record(draw: st.DrawFn) -> tuple[str, Expected]:
    n = _n()
    kind = draw(st.sampled_from(("ct", "mono1", "ybr", "jpeg", "multiframe_rle", "no_pixels",
                                 "jpeg_lossless", "lying", "truncated")))  # fmt: skip
    base = "ct" if kind in ("lying", "truncated") else kind
    data = ehr_feed.dicom_file(
        base, tag=f"f{n}", patient_name=f"{MARK}name^x", patient_id=f"{MARK}id"
    )
    expect: ErrorCode | tuple[ErrorCode, ...] | None = None
    if kind == "no_pixels":
        expect = E.DICOM_NO_PIXEL_DATA
    elif kind == "jpeg_lossless":
        expect = E.DICOM_UNSUPPORTED_SYNTAX
    elif kind == "lying":
        at = data.index(struct.pack("<HH", 0x7FE0, 0x0010), 132)
        data = (
            data[: at + 8] + struct.pack("<I", draw(st.sampled_from(LYING[:3]))) + data[at + 12 :]
        )
        expect = E.DICOM_MALFORMED
    elif kind == "truncated":
        data = data[: _cut(draw, data, 133, 8)]
        # A cut between two elements before Pixel Data leaves a dataset without it.
        expect = (E.DICOM_MALFORMED, E.DICOM_NO_PIXEL_DATA)
    return json.dumps(ehr_feed.dicom_event(f"fz-{n}", data)), expect


class EhrHarness:
    def __init__(self, r: Router, env: GatewayEnv, cap: Any, queue: str) -> None:
        self.r, self.env, self.cap, self.queue = r, env, cap, queue

    def run(self, records: list[tuple[str, Expected]]) -> None:
        self.cap.drain()
        bodies = [body for body, _ in records]
        event = deliver(self.env, self.queue, bodies)
        expect = dict(records)

        assert self.r.invoke(event) == {"batchItemFailures": []}

        found = self.env.dead_letters(self.queue)
        delete(self.env, self.env.dlq_urls[self.queue], found)
        dead = {m["MessageAttributes"]["source_message_id"]["StringValue"]: m for m in found}
        assert len(dead) == len(found), "a record was dead-lettered twice"
        for record in event["Records"]:
            body, message_id = record["body"], record["messageId"]
            code = expect[body]
            if code is None:
                assert message_id not in dead, dead.get(message_id, {}).get("MessageAttributes")
                rows = ehr_feed.expected_rows(body) or (json.loads(body)["event_id"],)
                assert all(r in self.r.sink.rows for r in rows), body[:80]
            else:
                message = dead.pop(message_id)
                got = message["MessageAttributes"]["error_code"]["StringValue"]
                assert got in ((code,) if isinstance(code, ErrorCode) else code), (body[:80], got)
                assert ErrorCode(got) in POISON_CODES
                assert message["Body"] == body
        assert dead == {}
        output = self.cap.drain()
        assert "batch processed" in output
        assert_no_canary(output, "logs/metrics/stdout")
        assert_no_canary(json.dumps([m["MessageAttributes"] for m in found]), "DLQ attributes")
        assert_no_canary(json.dumps([r.subject_id for r in self.r.sink.rows.values()]), "SUBJECT")


@pytest.fixture
def ehr_harness(
    router: Callable[..., Router],
    gateway_env: GatewayEnv,
    spcs: SpcsFake,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[str], EhrHarness]]:
    spcs.output_suffix = f" {MARK}output"
    made: dict[str, EhrHarness] = {}
    with ExitStack() as stack:

        def get(name: str) -> EhrHarness:
            if name not in made:
                r = router(name)
                cap = stack.enter_context(capture_app_output([r.app], caplog, capsys))
                cap.drain()
                queue = NOTES_QUEUE if name == "note_router" else IMAGES_QUEUE
                made[name] = EhrHarness(r, gateway_env, cap, queue)
            return made[name]

        yield get


@settings(max_examples=40, deadline=None, phases=FUZZ_PHASES)
@given(records=st.lists(note_record(), min_size=1, max_size=10))
def test_fuzzed_ehr_note_batches_end_in_rows_or_dlq(
    ehr_harness: Callable[[str], EhrHarness], records: list[tuple[str, Expected]]
) -> None:
    records = list(dict(records).items())  # one record per distinct body
    ehr_harness("note_router").run(records)


@settings(max_examples=20, deadline=None, phases=FUZZ_PHASES)
@given(records=st.lists(image_record(), min_size=1, max_size=6))
def test_fuzzed_dicom_batches_end_in_rows_or_dlq(
    ehr_harness: Callable[[str], EhrHarness], records: list[tuple[str, Expected]]
) -> None:
    ehr_harness("image_router").run(records)
