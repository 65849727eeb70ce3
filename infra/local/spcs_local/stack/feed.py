"""A synthetic EHR stream for the local stack: clinical notes, small images, a few poison events.

Deterministic for a seed. Notes are varied pediatric notes built from drugs and diagnoses the
emulator's lexicon backend recognises (``NerBackend`` finds them: see tests/stack); images are
small PNG/JPEG pictures made with Pillow, with ``candidate_labels`` or a registry ``label_set``;
poison covers each way an event can never succeed (invalid JSON, unknown schema, a missing
field, an undecodable image), each with the DLQ reason code the routers must give it.

Everything is synthetic: no real patient, no real note. ``--events-file`` sends a JSONL file
instead (one message body per line, as-is).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NOTES_QUEUE = "notes"
IMAGES_QUEUE = "images"
NOTES_TABLE = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"

# (diagnosis phrase, drug phrase, plan) - every diagnosis and drug is found by the lexicon.
_CASES: tuple[tuple[str, str, str], ...] = (
    ("acute otitis media", "amoxicillin", "90 mg/kg/day divided BID for 10 days"),
    ("asthma exacerbation", "albuterol", "nebulizer q4h, then prednisolone 1 mg/kg for 5 days"),
    ("febrile seizure", "acetaminophen", "for fever; seizure precautions reviewed"),
    ("type 1 diabetes", "insulin glargine", "titrated by 1 unit; no diabetic ketoacidosis"),
    ("atopic dermatitis", "hydrocortisone", "cream BID to flexural eczema"),
    ("pharyngitis", "penicillin", "V 250 mg BID for 10 days after positive rapid strep"),
    ("ADHD", "methylphenidate", "10 mg every morning; monitor appetite and sleep"),
    ("pneumonia", "ceftriaxone", "IV in the ED, discharged on cefdinir"),
    ("bronchiolitis", "albuterol", "trial without benefit; supportive care, no antibiotics"),
    ("iron deficiency anemia", "ferrous sulfate", "3 mg/kg/day elemental iron"),
    ("urinary tract infection", "cephalexin", "for 7 days; renal ultrasound ordered"),
    ("epilepsy", "levetiracetam", "no breakthrough seizures since the last visit"),
    ("cystic fibrosis", "tobramycin", "inhaled, with azithromycin three times weekly"),
    ("croup", "dexamethasone", "0.6 mg/kg single dose given in clinic"),
    ("gastroenteritis", "ondansetron", "single dose; oral rehydration tolerated"),
    ("Kawasaki disease", "aspirin", "high dose with immunoglobulin; echo in 2 weeks"),
)
_OPENERS = (
    "{age} presents with {dx}.",
    "Follow-up visit for {dx} in a {age}.",
    "{age} seen in clinic today; assessment: {dx}.",
    "ED note: {age} with {dx}.",
)
_AGES = (
    "4-month-old infant",
    "18-month-old toddler",
    "3-year-old girl",
    "5-year-old boy",
    "8-year-old girl",
    "11-year-old boy",
    "14-year-old adolescent",
    "16-year-old girl",
)
_DEPARTMENTS = ("General Pediatrics", "Emergency", "Pulmonology", "Endocrinology", "Neurology")
_NOTE_TYPES = ("Progress Note", "ED Provider Note", "Consult Note", "Discharge Summary")
_IMAGE_LABELS = (
    ["otitis media", "normal tympanic membrane"],
    ["pneumonia", "normal chest radiograph", "bronchiolitis"],
    ["impetigo", "eczema", "contact dermatitis"],
)
_LABEL_SETS = ("chest_xray", "skin_lesion")


@dataclass(frozen=True)
class FeedEvent:
    key: str  # event_id, or "sha256:<hex>" of the body when it has none we can read
    body: str  # the SQS message body, sent as-is
    kind: str  # "note" | "image" | "poison" | "file"
    queue: str  # NOTES_QUEUE | IMAGES_QUEUE
    expected_code: str | None = None  # poison: the reason code the DLQ must show
    note_row: tuple[Any, ...] | None = None  # a CLINICAL_NOTES row for semantic search
    # An EHR message (FHIR, HL7 v2) that becomes rows with these event ids (ehr_feed.py).
    row_ids: tuple[str, ...] = ()
    # The row a reference event names, as (table, values), stored before the feed is sent
    # (reference_feed.py: EHR_NOTES or MEDICAL_IMAGES).
    stored_row: tuple[str, tuple[Any, ...]] | None = None


def event_key(body: str) -> str:
    """How the demo reconciles an event: its ``event_id``, else a hash of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("event_id"), str) and data["event_id"]:
        return str(data["event_id"])
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def route(body: str) -> str:
    """``medical-image.*`` schemas go to the images queue, everything else to the notes queue."""
    try:
        data = json.loads(body)
    except ValueError:
        return NOTES_QUEUE
    schema = data.get("schema") if isinstance(data, dict) else None
    if isinstance(schema, str) and schema.startswith("medical-image."):
        return IMAGES_QUEUE
    return NOTES_QUEUE


def _image_bytes(rng: random.Random, fmt: str) -> bytes:
    from PIL import Image, ImageDraw

    size = rng.choice((24, 32, 48))
    img = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.randrange(size // 2), rng.randrange(size // 2)
        box = (x0, y0, x0 + rng.randrange(4, size // 2), y0 + rng.randrange(4, size // 2))
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def _occurred(rng: random.Random, base: datetime) -> str:
    at = base - timedelta(minutes=rng.randrange(0, 24 * 60))
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _note(rng: random.Random, run: str, i: int, base: datetime) -> FeedEvent:
    dx, drug, plan = rng.choice(_CASES)
    age = rng.choice(_AGES)
    opener = rng.choice(_OPENERS).format(age=age, dx=dx)
    text = f"{opener} Started {drug}, {plan}."
    if rng.random() < 0.4:
        dx2, drug2, _ = rng.choice(_CASES)
        text += f" History of {dx2}, previously on {drug2}."
    event_id = f"evt-{run}-note-{i:05d}"
    note_id = f"NOTE-{run}-{i:05d}"
    patient = f"PAT-{rng.randrange(1000, 9999)}"
    department, note_type = rng.choice(_DEPARTMENTS), rng.choice(_NOTE_TYPES)
    occurred = _occurred(rng, base)
    body = {
        "schema": "clinical-note.v1",
        "event_id": event_id,
        "note_id": note_id,
        "source": "demo-ehr",
        "occurred_at": occurred,
        "text": text,
        "attributes": {"department": department, "note_type": note_type},
    }
    row = (note_id, patient, note_type, department, occurred[:10], text)
    return FeedEvent(event_id, json.dumps(body), "note", NOTES_QUEUE, None, row)


def _image(rng: random.Random, run: str, i: int, base: datetime) -> FeedEvent:
    fmt, content_type = rng.choice((("PNG", "image/png"), ("JPEG", "image/jpeg")))
    event_id = f"evt-{run}-image-{i:05d}"
    body: dict[str, Any] = {
        "schema": "medical-image.v1",
        "event_id": event_id,
        "image_id": f"IMG-{run}-{i:05d}",
        "source": "demo-pacs",
        "occurred_at": _occurred(rng, base),
        "image": {
            "base64": base64.b64encode(_image_bytes(rng, fmt)).decode("ascii"),
            "content_type": content_type,
        },
    }
    if rng.random() < 0.5:
        body["label_set"] = rng.choice(_LABEL_SETS)
    else:
        body["candidate_labels"] = list(rng.choice(_IMAGE_LABELS))
    return FeedEvent(event_id, json.dumps(body), "image", IMAGES_QUEUE)


def _poison(rng: random.Random, run: str, i: int, base: datetime) -> FeedEvent:
    event_id = f"evt-{run}-poison-{i:05d}"
    kind = i % 4
    if kind == 0:  # truncated JSON: no event id can be read, so it is tracked by its hash
        body = '{"schema": "clinical-note.v1", "event_id": "' + event_id + '", "text": "unterminat'
        return FeedEvent(event_key(body), body, "poison", NOTES_QUEUE, "INVALID_JSON")
    if kind == 1:
        data: dict[str, Any] = {
            "schema": "lab-result.v1",
            "event_id": event_id,
            "source": "demo-lis",
            "occurred_at": _occurred(rng, base),
        }
        return FeedEvent(event_id, json.dumps(data), "poison", NOTES_QUEUE, "UNKNOWN_SCHEMA")
    if kind == 2:  # a note without its text
        data = {
            "schema": "clinical-note.v1",
            "event_id": event_id,
            "note_id": f"NOTE-{run}-P{i:05d}",
            "source": "demo-ehr",
            "occurred_at": _occurred(rng, base),
        }
        return FeedEvent(event_id, json.dumps(data), "poison", NOTES_QUEUE, "INVALID_EVENT")
    garbage = bytes(rng.randrange(256) for _ in range(64))  # valid base64, not a PNG
    data = {
        "schema": "medical-image.v1",
        "event_id": event_id,
        "image_id": f"IMG-{run}-P{i:05d}",
        "source": "demo-pacs",
        "occurred_at": _occurred(rng, base),
        "image": {"base64": base64.b64encode(garbage).decode("ascii"), "content_type": "image/png"},
        "candidate_labels": ["normal", "abnormal"],
    }
    return FeedEvent(event_id, json.dumps(data), "poison", IMAGES_QUEUE, "INVALID_IMAGE")


def synthetic_feed(
    notes: int,
    images: int,
    poison: int,
    *,
    seed: int = 7,
    run_id: str | None = None,
    ehr: int = 0,
) -> list[FeedEvent]:
    """``notes`` + ``images`` + ``poison`` events, interleaved, deterministic for ``seed``;
    ``ehr`` more as FHIR, HL7 v2 and DICOM (``ehr_feed.synthetic_ehr``)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    run = run_id or f"s{seed}"
    base = datetime(2025, 3, 3, 18, 0, tzinfo=UTC)
    events = [_note(rng, run, i, base) for i in range(notes)]
    events += [_image(rng, run, i, base) for i in range(images)]
    events += [_poison(rng, run, i, base) for i in range(poison)]
    if ehr:
        from .ehr_feed import synthetic_ehr

        events += synthetic_ehr(rng, run, ehr, base)
    rng.shuffle(events)
    return events


def split_total(total: int) -> tuple[int, int, int]:
    """``--events N`` as (notes, images, poison): mostly notes, a sixth images, a few poison."""
    poison = min(4, max(0, total // 10)) if total >= 4 else 0
    images = max(0, (total - poison) // 6)
    return total - images - poison, images, poison


def events_from_file(path: Path) -> list[FeedEvent]:
    """One message body per non-empty line, routed by ``schema``: sent as-is, except a line
    that is a JSON string, sent as its decoded text (an HL7 v2 message keeps its ``\\r``)."""
    from .ehr_feed import file_event

    lines = path.read_text(encoding="utf-8").splitlines()
    return [file_event(line) for line in lines if line.strip()]


@dataclass
class SendReport:
    sent: int = 0
    sent_at: dict[str, float] | None = None  # key -> epoch seconds (first send)
    # Every message body sent, in order, with its queue (the demo's sent.jsonl).
    bodies: list[dict[str, str]] | None = None


def send_events(
    sqs: Any,
    events: Sequence[FeedEvent],
    queue_urls: dict[str, str],
    *,
    rate: float = 0.0,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """SendMessageBatch (10 a call) at about ``rate`` events per second (0: as fast as possible)."""
    report = SendReport(sent_at={}, bodies=[])
    assert report.sent_at is not None
    assert report.bodies is not None
    started = time.monotonic()
    pending: dict[str, list[FeedEvent]] = {}

    def flush(queue: str) -> None:
        chunk = pending.pop(queue, [])
        if not chunk:
            return
        entries = [{"Id": str(i), "MessageBody": e.body} for i, e in enumerate(chunk)]
        answer = sqs.send_message_batch(QueueUrl=queue_urls[queue], Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed for {len(answer['Failed'])} events")
        now = time.time()
        for event in chunk:
            report.sent_at.setdefault(event.key, now)  # type: ignore[union-attr]
            report.bodies.append({"queue": queue, "body": event.body})  # type: ignore[union-attr]
        report.sent += len(chunk)
        if progress:
            progress(report.sent)

    for index, event in enumerate(events):
        if stop is not None and stop.is_set():
            break
        pending.setdefault(event.queue, []).append(event)
        if len(pending[event.queue]) >= 10:
            flush(event.queue)
        if rate > 0:
            due = started + (index + 1) / rate
            delay = due - time.monotonic()
            if delay > 0:
                for queue in list(pending):
                    flush(queue)
                time.sleep(delay)
    for queue in list(pending):
        flush(queue)
    return report


def insert_notes(sql: Any, events: Iterable[FeedEvent], chunk: int = 50) -> int:
    """Insert the notes into CLINICAL_NOTES through the connector (Cortex Search's source)."""
    rows = [e.note_row for e in events if e.note_row is not None]
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        placeholders = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(part))
        params = [value for row in part for value in row]
        sql.execute(
            f"INSERT INTO {NOTES_TABLE} (NOTE_ID, PATIENT_ID, NOTE_TYPE, DEPARTMENT, NOTE_DATE, "
            f"NOTE_TEXT) VALUES {placeholders}",
            params,
        )
    return len(rows)
