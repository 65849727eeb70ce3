"""The demo's reference feed and its ``sent.jsonl`` record, without a stack (fast)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from spcs_gateway.errors import PoisonError
from spcs_gateway.events import ImageRefEvent, NoteRefEvent, parse_any_event
from spcs_local.stack.feed import send_events, synthetic_feed
from spcs_local.stack.reference_feed import IMAGES_TABLE, NOTES_TABLE, reference_feed


def test_reference_feed_names_stored_rows_and_carries_no_content() -> None:
    inline = synthetic_feed(12, 4, 4, seed=3)
    events = reference_feed(inline)
    assert len(events) == len(inline)
    texts = [json.loads(e.body)["text"] for e in inline if e.kind == "note"]
    images = [json.loads(e.body)["image"]["base64"] for e in inline if e.kind == "image"]
    for event in events:
        assert not any(t in event.body for t in texts)
        assert not any(b[:40] in event.body for b in images)
        if event.expected_code is None:
            parsed = parse_any_event(event.body)
            assert isinstance(parsed, NoteRefEvent | ImageRefEvent)
            assert parsed.event_id == event.key
        elif event.expected_code.startswith("REFERENCE_"):
            # Valid events: the route decides (the allow-list, the row's existence).
            assert isinstance(parse_any_event(event.body), NoteRefEvent)
        else:
            with pytest.raises(PoisonError) as caught:
                parse_any_event(event.body)
            assert caught.value.code == event.expected_code
    stored = [e.stored_row for e in events if e.stored_row is not None]
    images = {row[0]: row for table, row in stored if table == IMAGES_TABLE}
    for original in (e for e in inline if e.kind == "image"):
        data = json.loads(original.body)
        _, raw, content_type = images[data["image_id"]]
        assert raw == base64.b64decode(data["image"]["base64"])
        assert content_type == data["image"]["content_type"]
    notes = {row[0]: row for table, row in stored if table == NOTES_TABLE}
    for original in (e for e in inline if e.kind == "note"):
        data = json.loads(original.body)
        assert notes[data["note_id"]][2] == data["text"]  # stored, not sent
    for event in events:
        if event.stored_row is not None:
            ref = parse_any_event(event.body)
            table, row = event.stored_row
            target = ref.image if isinstance(ref, ImageRefEvent) else ref.note
            assert (target.table, target.key) == (table, row[0])
    codes = {e.expected_code for e in events if e.expected_code}
    assert codes == {
        "INVALID_JSON",
        "REFERENCE_NOT_FOUND",
        "REFERENCE_NOT_ALLOWED",
        "INVALID_EVENT",
    }


class _Sqs:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.entries += [(QueueUrl, e["MessageBody"]) for e in Entries]
        return {}


def test_every_body_sent_is_recorded_for_sent_jsonl() -> None:
    events = synthetic_feed(5, 2, 2, seed=4)
    sqs = _Sqs()
    report = send_events(sqs, events, {"notes": "q-notes", "images": "q-images"})
    assert report.bodies is not None
    assert sorted(b["body"] for b in report.bodies) == sorted(body for _, body in sqs.entries)
    assert {b["queue"] for b in report.bodies} == {"notes", "images"}
