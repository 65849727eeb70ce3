"""FHIR R4 intake (``spcs_gateway.ehr.fhir``): attachments, charsets, HTML, Bundles, event ids,
subjects, refusals with PHI-free details; detection by shape (``events.parse_message``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from spcs_gateway.ehr.fhir import notes_from_fhir
from spcs_gateway.ehr.html import html_to_text
from spcs_gateway.ehr.note import EhrNote, event_id
from spcs_gateway.ehr.subjects import SubjectIds
from spcs_gateway.errors import ErrorCode, PoisonError
from spcs_gateway.events import MAX_TEXT_CHARS, NoteEvent, parse_message

KEY = SubjectIds.with_key(b"k" * 32)


def att(text: str | bytes, content_type: str | None = "text/plain", **extra: Any) -> dict[str, Any]:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    out: dict[str, Any] = {"data": base64.b64encode(data).decode(), **extra}
    if content_type is not None:
        out["contentType"] = content_type
    return out


def docref(*attachments: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": "doc-1",
        "meta": {"versionId": "3"},
        "subject": {"reference": "Patient/p-1", "display": "Jane Roe"},
        "content": [{"attachment": a} for a in attachments],
        **fields,
    }


def notes(resource: dict[str, Any]) -> list[EhrNote]:
    return notes_from_fhir(resource, KEY)


def refused(resource: Any) -> PoisonError:
    with pytest.raises(PoisonError) as caught:
        notes(resource)
    return caught.value


def test_document_reference_attachments_are_notes() -> None:
    found = notes(
        docref(
            att("first note"),
            {"contentType": "application/pdf", "url": "https://ehr.example/doc.pdf"},
            att("<p>second</p>", "text/html; charset=utf-8"),
        )
    )
    assert [(n.event_id, n.text) for n in found] == [
        ("fhir:DocumentReference/doc-1/v3:0", "first note"),
        ("fhir:DocumentReference/doc-1/v3:2", "second"),  # the index in content[]
    ]
    assert {n.subject_id for n in found} == {KEY("patient", "Patient/p-1")}
    assert all(n.origin == "fhir" for n in found)


@pytest.mark.parametrize(
    ("content_type", "raw", "expected"),
    [
        ("text/plain; charset=ISO-8859-1", "caf\xe9".encode("iso8859-1"), "café"),
        ('text/plain; charset="windows-1252"', b"\x93quoted\x94", "\u201cquoted\u201d"),
        ("text/plain;charset=UTF-16", "note".encode("utf-16"), "note"),
        ("TEXT/PLAIN", "\ufeffbom stripped".encode(), "bom stripped"),
        ("text/plain", b"line\r\nbreaks\rkept", "line\nbreaks\nkept"),
        ("application/xhtml+xml", b"<div><p>a</p>b<br/>c</div>", "a\nb\nc"),
    ],
)
def test_charsets_and_media_types(content_type: str, raw: bytes, expected: str) -> None:
    [note] = notes(docref(att(raw, content_type)))
    assert note.text == expected


def test_base64_may_hold_whitespace_between_groups() -> None:
    data = base64.b64encode(b"wrapped note text here").decode()
    spaced = "\n".join(data[i : i + 8] for i in range(0, len(data), 8))
    [note] = notes(docref({"contentType": "text/plain", "data": spaced}))
    assert note.text == "wrapped note text here"


def test_diagnostic_report_presented_form_then_conclusion() -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr-1",
        "subject": {"identifier": {"system": "urn:mrn", "value": "M1"}},
        "presentedForm": [att("<h1>CXR</h1><p>pneumonia</p>", "text/html")],
        "conclusion": "the conclusion",
    }
    [note] = notes(report)
    assert (note.event_id, note.text) == ("fhir:DiagnosticReport/dr-1:0", "CXR\n\npneumonia")
    assert note.subject_id == KEY("patient", "urn:mrn|M1")
    [fallback] = notes({**report, "presentedForm": []})
    assert (fallback.event_id, fallback.text) == (
        "fhir:DiagnosticReport/dr-1:conclusion",
        "the conclusion",
    )


def test_bundle_entries_in_order_with_the_patient_resolved() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:d1",
             "resource": docref(att("one"), subject={"reference": "urn:uuid:p"})},
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p9",
             "identifier": [{"system": "urn:mrn", "value": "M9"}], "name": [{"family": "Roe"}]}},
            {"resource": {"resourceType": "Observation", "id": "o1"}},
            {"fullUrl": "urn:uuid:d2", "resource": {**docref(att("two")), "id": "doc-2",
             "subject": {"reference": "Patient/p9"}}},
            {"fullUrl": "urn:uuid:d3", "resource": {"resourceType": "DiagnosticReport",
             "conclusion": "three"}},
            {"request": {"method": "DELETE", "url": "DocumentReference/x"}},
        ],
    }  # fmt: skip
    found = notes(bundle)
    assert [n.text for n in found] == ["one", "two", "three"]
    assert [n.event_id for n in found[:2]] == [
        "fhir:DocumentReference/doc-1/v3:0",
        "fhir:DocumentReference/doc-2/v3:0",
    ]
    # No id: the entry's fullUrl, hashed as it holds the id separator ':'.
    assert found[2].event_id == event_id("fhir", "urn:uuid:d3", "conclusion")
    assert found[2].event_id.startswith("fhir:h:")
    patient = KEY("patient", "urn:mrn|M9")
    assert [n.subject_id for n in found[:2]] == [patient, patient]
    assert found[2].subject_id == KEY("document", "fhir|urn:uuid:d3")


def test_a_resource_without_id_or_full_url_gets_a_content_hash_id() -> None:
    resource = docref(att("x"))
    del resource["id"]
    [first], [again] = notes(resource), notes(json.loads(json.dumps(resource)))
    assert first.event_id == again.event_id
    assert first.event_id.startswith("fhir:DocumentReference/sha256-")
    [other] = notes(docref(att("y")) | {"id": None})
    assert other.event_id != first.event_id


def test_versionless_ids_and_hashed_long_ids() -> None:
    [note] = notes(docref(att("x"), meta=None))
    assert note.event_id == "fhir:DocumentReference/doc-1:0"
    long_id = "a" * 64
    [note] = notes(docref(att("x"), id=long_id, meta={"versionId": "b" * 64}))
    assert note.event_id.startswith("fhir:h:")
    assert event_id("fhir", "x y") == event_id("fhir", "x y")


def test_unknown_elements_are_ignored() -> None:
    [note] = notes(docref(att("x"), extension=[{"url": "u", "valueString": "v"}], text={}))
    assert note.text == "x"


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "id": "p"},
        {"resourceType": "Observation"},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]},
        {"resourceType": "Bundle"},
    ],
)
def test_unsupported_resources(resource: dict[str, Any]) -> None:
    assert refused(resource).code is ErrorCode.FHIR_UNSUPPORTED_RESOURCE


@pytest.mark.parametrize(
    "resource",
    [
        docref(),
        docref({"contentType": "text/plain", "url": "https://ehr.example/note.txt"}),
        docref(att("%PDF", "application/pdf"), att("x", None)),
        docref(att("   \n\t ")),
        docref(att("<script>only()</script>", "text/html")),
        {"resourceType": "DiagnosticReport", "id": "r", "presentedForm": []},
    ],
    ids=["no-content", "url-only", "pdf-and-untyped", "blank", "empty-html", "empty-report"],
)
def test_no_usable_attachment(resource: dict[str, Any]) -> None:
    assert refused(resource).code is ErrorCode.FHIR_NO_ATTACHMENT


@pytest.mark.parametrize(
    ("resource", "detail"),
    [
        (docref(att("x"), id="has space"), "DocumentReference.id:string_pattern_mismatch"),
        (docref(att("x"), id=7), "DocumentReference.id:string_type"),
        (docref(att("x"), content={"attachment": {}}), "DocumentReference.content:list_type"),
        (docref({"contentType": "text/plain", "data": 5}), "data:string_type"),
        (docref({"contentType": "text/plain", "data": "!!notbase64"}), "not valid base64"),
        (docref(att("x", "text/plain; charset=klingon")), "charset is not supported"),
        (docref(att("x", "text/plain; charset=base64")), "charset is not supported"),
        (docref(att(b"\xff\xfe\xfa", "text/plain; charset=utf-8")), "does not decode"),
        ({"resourceType": 42}, "resourceType is not a string"),
        ({"resourceType": "Bundle", "entry": {}}, "Bundle.entry:list_type"),
        (
            {"resourceType": "Bundle", "entry": [{"resource": docref(att("x"), id="a b")}]},
            "Bundle.entry.0.resource.id:string_pattern_mismatch",
        ),
        (docref(att("x"), subject={"reference": 1}), "subject.reference:string_type"),
    ],
)
def test_invalid_resources(resource: dict[str, Any], detail: str) -> None:
    err = refused(resource)
    assert err.code is ErrorCode.FHIR_INVALID_RESOURCE
    assert detail in err.detail


def test_limits() -> None:
    assert refused(docref(att("x" * (MAX_TEXT_CHARS + 1)))).code is ErrorCode.INVALID_EVENT
    many = docref(*[att(f"note {i}") for i in range(101)])
    assert refused(many).code is ErrorCode.INVALID_EVENT
    assert len(notes(docref(*[att(f"note {i}") for i in range(100)]))) == 100


def test_details_never_quote_values_or_keys() -> None:
    canary = "CanarySubject5521"
    resources = [
        docref(att("x"), id=canary + " x", subject={"reference": canary}),
        docref({"contentType": "text/plain", "data": canary + "!"}, subject={"reference": canary}),
        docref(att(canary, f"text/plain; charset={canary}")),
        {"resourceType": "Bundle", "entry": [{"resource": docref(att(canary), id=[canary])}]},
        {"resourceType": canary},
        docref({"contentType": "text/plain", "data": 1, canary: canary}),
    ]
    for resource in resources:
        err = refused(resource)
        assert canary not in str(err)
        assert err.__cause__ is None


# -- detection -------------------------------------------------------------------------------


def test_parse_message_detects_fhir_by_shape() -> None:
    [note] = parse_message(json.dumps(docref(att("x"))), subjects=KEY)
    assert isinstance(note, EhrNote)


def test_the_envelope_wins_over_a_resource_type_anywhere_else() -> None:
    envelope = {
        "schema": "clinical-note.v1",
        "event_id": "e1",
        "note_id": "n1",
        "source": "s",
        "occurred_at": "2025-01-01T00:00:00Z",
        "text": 'quoted "resourceType": "DocumentReference"',
        "attributes": {"resourceType": "DocumentReference"},
    }
    [event] = parse_message(json.dumps(envelope), subjects=KEY)
    assert isinstance(event, NoteEvent)
    with pytest.raises(PoisonError) as caught:  # both: the envelope's own rule (extra field)
        parse_message(json.dumps({**envelope, "resourceType": "Bundle"}), subjects=KEY)
    assert caught.value.code is ErrorCode.INVALID_EVENT


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"resourceType": "DocumentReference", ', ErrorCode.INVALID_JSON),
        ('["resourceType"]', ErrorCode.INVALID_EVENT),
        ('{"x": {"resourceType": "DocumentReference"}}', ErrorCode.UNKNOWN_SCHEMA),
    ],
)
def test_fhir_lookalikes_get_the_envelope_codes(body: str, code: ErrorCode) -> None:
    with pytest.raises(PoisonError) as caught:
        parse_message(body, subjects=KEY)
    assert caught.value.code is code


def test_a_router_without_a_subject_keyer_refuses_fhir() -> None:
    with pytest.raises(PoisonError) as caught:
        parse_message(json.dumps(docref(att("x"))))
    assert caught.value.code is ErrorCode.UNKNOWN_SCHEMA


# -- HTML ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
        ("<table><tr><td>x</td><td>y</td></tr></table>", "x y"),
        ("<head><title>t</title><style>s{}</style></head>body", "body"),
        ("<script>if (a < b) { x() }</script>after", "after"),
        ("&lt;tag&gt; &amp; &#233; &eacute; &nbsp;x", "<tag> & é é x"),
        ("<svg><text>drawn</text></svg>kept", "kept"),
        ("<<<not closed", "<<<not closed"),
        ("<!-- comment -->text<!DOCTYPE html>", "text"),
        ("a   \t  b", "a b"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected
