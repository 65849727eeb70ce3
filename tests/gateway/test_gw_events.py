"""Inbound event models: valid events, poison reasons, and PHI-free error details."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spcs_gateway.errors import ErrorCode, PoisonError
from spcs_gateway.events import (
    MAX_TEXT_CHARS,
    ImageEvent,
    InlineImage,
    NoteEvent,
    S3Image,
    parse_event,
)

SECRET_TEXT = "Jane Roe, DOB 2019-03-04, seizure disorder"


def note(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "clinical-note.v1",
        "event_id": "evt-1",
        "note_id": "NOTE-1",
        "source": "epic-clarity",
        "occurred_at": "2025-01-15T09:30:00.123+02:00",
        "text": SECRET_TEXT,
    }
    body.update(changes)
    return body


def image(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "medical-image.v1",
        "event_id": "evt-2",
        "image_id": "IMG-2",
        "source": "pacs",
        "occurred_at": "2025-01-15T09:30:00Z",
        "image": {"s3_uri": "s3://imaging-allowed/a/b.png"},
        "label_set": "radiology",
    }
    body.update(changes)
    return body


def poison(body: Any) -> PoisonError:
    raw = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(PoisonError) as caught:
        parse_event(raw)
    return caught.value


def test_valid_note() -> None:
    event = parse_event(json.dumps(note(attributes={"department": "PICU"})))
    assert isinstance(event, NoteEvent)
    assert event.subject_id == "NOTE-1"
    assert event.occurred_at == datetime(2025, 1, 15, 7, 30, 0, 123000, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(hours=2)
    assert event.attributes == {"department": "PICU"}
    assert SECRET_TEXT not in repr(event)  # text is excluded from repr


def test_valid_images_inline_and_s3() -> None:
    s3 = parse_event(json.dumps(image()))
    assert isinstance(s3, ImageEvent)
    assert isinstance(s3.image, S3Image)
    assert s3.label_set == "radiology"
    body = image(image={"base64": "iVBORw0KGgo=", "content_type": "image/png"})
    del body["label_set"]
    body["candidate_labels"] = ["a", "b"]
    inline = parse_event(json.dumps(body))
    assert isinstance(inline, ImageEvent)
    assert isinstance(inline.image, InlineImage)
    assert inline.candidate_labels == ["a", "b"]
    assert inline.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", ErrorCode.INVALID_JSON),
        ("", ErrorCode.INVALID_JSON),
        (note(schema="clinical-note.v2"), ErrorCode.UNKNOWN_SCHEMA),
        ({k: v for k, v in note().items() if k != "schema"}, ErrorCode.UNKNOWN_SCHEMA),
        ([note()], ErrorCode.INVALID_EVENT),
        (note(text=""), ErrorCode.INVALID_EVENT),
        (note(text="x" * (MAX_TEXT_CHARS + 1)), ErrorCode.INVALID_EVENT),
        (note(occurred_at="2025-01-15T09:30:00"), ErrorCode.INVALID_EVENT),  # no offset
        (note(occurred_at=1736933400), ErrorCode.INVALID_EVENT),  # epoch number
        (note(occurred_at="15/01/2025"), ErrorCode.INVALID_EVENT),
        (note(event_id="evt 1"), ErrorCode.INVALID_EVENT),  # space
        (note(event_id="evt\n1"), ErrorCode.INVALID_EVENT),  # control character
        (note(event_id="e" * 129), ErrorCode.INVALID_EVENT),
        (note(note_id=7), ErrorCode.INVALID_EVENT),
        (image(label_set=None), ErrorCode.INVALID_EVENT),  # neither labels nor set
        (image(candidate_labels=["a"]), ErrorCode.INVALID_EVENT),  # both
        (image(candidate_labels=[], label_set=None), ErrorCode.INVALID_EVENT),
        (image(image={"s3_uri": "https://bucket/x.png"}), ErrorCode.INVALID_EVENT),
        (image(image={"base64": "AAAA", "content_type": "image/gif"}), ErrorCode.INVALID_EVENT),
        (
            image(image={"base64": "AAAA", "content_type": "image/png", "s3_uri": "s3://ab/c"}),
            ErrorCode.INVALID_EVENT,
        ),
    ],
)
def test_poison_reasons(body: Any, code: ErrorCode) -> None:
    assert poison(body).code is code


@pytest.mark.parametrize("field", ["endpoint", "url", "service_url", "ingress_url"])
def test_an_event_cannot_carry_an_endpoint(field: str) -> None:
    err = poison(note(**{field: "https://attacker.example/--call--"}))
    assert err.code is ErrorCode.INVALID_EVENT
    assert err.detail == "clinical-note.v1.<unknown>:extra_forbidden"


def test_nested_url_in_image_is_refused() -> None:
    err = poison(image(image={"s3_uri": "s3://imaging-allowed/a.png", "url": "https://x"}))
    assert err.code is ErrorCode.INVALID_EVENT
    assert "extra_forbidden" in err.detail


def test_error_detail_names_fields_and_types_never_values() -> None:
    err = poison(note(note_id=None, occurred_at=SECRET_TEXT, **{SECRET_TEXT: SECRET_TEXT}))
    assert err.code is ErrorCode.INVALID_EVENT
    parts = set(err.detail.split("; "))
    assert parts == {
        "clinical-note.v1.note_id:string_type",
        "clinical-note.v1.occurred_at:value_error",
        "clinical-note.v1.<unknown>:extra_forbidden",
    }
    assert "Jane" not in str(err)
    assert err.__cause__ is None  # the pydantic error (which holds the input) is not chained
    assert err.__suppress_context__


def test_huge_text_detail_does_not_echo_text() -> None:
    err = poison(note(text="PHI" * 40_000))
    assert err.detail == "clinical-note.v1.text:string_too_long"
