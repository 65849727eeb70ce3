"""The demo's reference route (``spcs-local demo --route reference``): the synthetic notes and
images are stored in Snowflake first (what an EHR export does), and the queues carry reference
events only, ids and labels, never note text or image bytes.

``reference_feed`` turns a synthetic feed (``feed.synthetic_feed``) into that form:

* a note becomes a ``clinical-note-ref.v1`` event naming its row (and version) of EHR_NOTES;
* an image becomes a ``medical-image-ref.v1`` event naming its row of MEDICAL_IMAGES, with the
  same candidate labels or label set;

each row stored first by ``store_rows`` (``FeedEvent.stored_row``), as the table's owner;
* poison becomes reference poison, each with the reason code the routers must give it: a key
  with no row (REFERENCE_NOT_FOUND), a table off the allow-list (REFERENCE_NOT_ALLOWED), an
  inline field smuggled into a reference (INVALID_EVENT), and invalid JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from .feed import IMAGES_QUEUE, NOTES_QUEUE, FeedEvent, event_key

# The reference route's source tables (infra/snowflake/11_reference_sources.sql).
NOTES_TABLE = "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"
IMAGES_TABLE = "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES"
NOTE_VERSION = 1
_COLUMNS = {
    NOTES_TABLE: "(NOTE_ID, NOTE_VERSION, NOTE_TEXT, UPDATED_AT)",
    IMAGES_TABLE: "(IMAGE_ID, IMAGE, CONTENT_TYPE, UPDATED_AT)",
}
OFF_LIST_TABLE = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"  # holds notes, not allow-listed


def _head(data: dict[str, Any], schema: str) -> dict[str, Any]:
    return {
        "schema": schema,
        "event_id": data["event_id"],
        "source": data["source"],
        "occurred_at": data["occurred_at"],
    }


def _note_ref(event: FeedEvent) -> FeedEvent:
    data = json.loads(event.body)
    body = _head(data, "clinical-note-ref.v1")
    body["note"] = {"table": NOTES_TABLE, "key": data["note_id"], "version": NOTE_VERSION}
    row = (data["note_id"], NOTE_VERSION, data["text"])
    return replace(event, body=json.dumps(body), stored_row=(NOTES_TABLE, row))


def _image_ref(event: FeedEvent) -> FeedEvent:
    data = json.loads(event.body)
    body = _head(data, "medical-image-ref.v1")
    body["image"] = {"table": IMAGES_TABLE, "key": data["image_id"]}
    for field in ("candidate_labels", "label_set"):
        if field in data:
            body[field] = data[field]
    image = data["image"]
    row = (data["image_id"], base64.b64decode(image["base64"]), image["content_type"])
    return replace(event, body=json.dumps(body), stored_row=(IMAGES_TABLE, row))


def _poison_ref(event: FeedEvent, index: int) -> FeedEvent:
    event_id = event.key if not event.key.startswith("sha256:") else f"ref-poison-{index:05d}"
    head = {
        "schema": "clinical-note-ref.v1",
        "event_id": event_id,
        "source": "demo-ehr",
        "occurred_at": "2025-03-03T18:00:00Z",
    }
    kind = index % 4
    if kind == 0:
        body = '{"schema": "clinical-note-ref.v1", "event_id": "' + event_id + '", "note": {'
        return FeedEvent(event_key(body), body, "poison", NOTES_QUEUE, "INVALID_JSON")
    if kind == 1:
        data = {**head, "note": {"table": NOTES_TABLE, "key": f"NOTE-MISSING-{index:05d}"}}
        code = "REFERENCE_NOT_FOUND"
    elif kind == 2:
        data = {**head, "note": {"table": OFF_LIST_TABLE, "key": f"NOTE-{index:05d}"}}
        code = "REFERENCE_NOT_ALLOWED"
    else:
        data = {**head, "note": {"table": NOTES_TABLE, "key": "NOTE-X"}, "text": "inline text"}
        code = "INVALID_EVENT"
    return FeedEvent(event_id, json.dumps(data), "poison", NOTES_QUEUE, code)


def reference_feed(events: Sequence[FeedEvent]) -> list[FeedEvent]:
    """The same feed as reference events (order kept). EHR messages are left out: they carry
    their notes inline by nature."""
    out: list[FeedEvent] = []
    poison = 0
    for event in events:
        if event.kind == "note" and event.note_row is not None:
            out.append(_note_ref(event))
        elif event.kind == "image" and event.queue == IMAGES_QUEUE:
            out.append(_image_ref(event))
        elif event.kind == "poison":
            out.append(_poison_ref(event, poison))
            poison += 1
    return out


def store_rows(sql: Any, events: Iterable[FeedEvent], chunk: int = 20) -> int:
    """Store the rows reference events name (``stored_row``), per table, as its owner."""
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for event in events:
        if event.stored_row is not None:
            table, row = event.stored_row
            by_table.setdefault(table, []).append(row)
    for table, rows in by_table.items():
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            marks = ", ".join(["(?, ?, ?, CURRENT_TIMESTAMP())"] * len(part))
            sql.execute(
                f"INSERT INTO {table} {_COLUMNS[table]} VALUES {marks}",
                [value for row in part for value in row],
            )
    return sum(len(rows) for rows in by_table.values())
