"""EHR samples and the demo feed: ``events/`` is what ``ehr_feed`` writes, every sample and every
synthetic message ends as its expected rows or reason code, and the demo reconciles a message
that became several rows (lost and duplicates) from the results and the DLQs."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from gw_support import REPO

from spcs_gateway.ehr.dicom import dicom_to_png, read
from spcs_gateway.ehr.subjects import SubjectIds
from spcs_gateway.errors import PoisonError
from spcs_gateway.events import parse_message
from spcs_local.stack import ehr_feed
from spcs_local.stack.demo import DemoRun, DlqMessage, summarize
from spcs_local.stack.feed import FeedEvent, events_from_file, synthetic_feed

EVENTS = REPO / "events"
KEY = SubjectIds.with_key(b"k" * 32)


def _dicom_summary(b64: str) -> dict[str, Any]:
    ds = read(base64.b64decode(b64))
    return {
        "syntax": str(ds.file_meta.TransferSyntaxUID),
        "photometric": ds.PhotometricInterpretation,
        "shape": (ds.Rows, ds.Columns, int(ds.get("NumberOfFrames", 1))),
        "patient": str(ds.PatientName),
    }


def _normal(value: Any) -> Any:
    """DICOM files compared by what they hold (their bytes follow the encoder's version)."""
    if isinstance(value, dict):
        if value.get("content_type") == "application/dicom":
            return {**value, "base64": _dicom_summary(value["base64"])}
        return {k: _normal(v) for k, v in value.items() if k != "md5OfBody"}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and value.startswith('{"schema": "medical-image.v1"'):
        return _normal(json.loads(value))
    return value


@pytest.mark.parametrize("name", sorted(ehr_feed.samples()))
def test_samples_are_what_the_generator_writes(name: str) -> None:
    """Regenerate with ``python -m spcs_local.stack.ehr_feed --samples events``."""
    expected = ehr_feed.samples()[name]
    actual = (EVENTS / name).read_text(encoding="utf-8")
    if name.endswith(".jsonl"):
        assert [_normal(json.loads(line)) for line in actual.splitlines()] == [
            _normal(json.loads(line)) for line in expected.splitlines()
        ]
    else:
        assert _normal(json.loads(actual)) == _normal(json.loads(expected))
    assert len(actual.encode()) < 32 * 1024  # tiny samples, no large binaries


def _outcome(event: FeedEvent) -> str | tuple[str, ...]:
    """The reason code the routers give ``event``, or the rows it becomes."""
    try:
        events = parse_message(event.body, subjects=KEY)
        body = json.loads(event.body)
        if isinstance(body, dict) and body.get("schema") == "medical-image.v1":
            image = base64.b64decode(body["image"]["base64"])
            dicom_to_png(image, size=32, max_pixels=10**6)
            return (body["event_id"],)
    except PoisonError as err:
        return str(err.code)
    except ValueError:
        pass
    return tuple(e.event_id for e in events)


def test_the_demo_events_file_decodes_hl7_lines_and_predicts_rows(tmp_path: Path) -> None:
    events = events_from_file(EVENTS / "ehr_demo.jsonl")
    assert len(events) == 20
    hl7 = [e for e in events if e.body.startswith("MSH|")]
    assert len(hl7) == 5
    assert all("\\r" not in e.body for e in hl7)  # sent as decoded text ...
    assert sum("\r" in e.body for e in hl7) == 4  # ... with CR segment ends (one is truncated)
    assert [e.queue for e in events].count("images") == 9
    for event in events:
        outcome = _outcome(event)
        if isinstance(outcome, str):
            assert event.row_ids == ()
        elif event.row_ids:
            assert event.row_ids == outcome
        else:
            assert outcome == (event.key,)
    assert sum(len(e.row_ids) for e in events) == 10
    poison = [o for o in map(_outcome, events) if isinstance(o, str)]
    assert sorted(poison) == sorted(c for _, _, c in ehr_feed._poison_builders())


def test_the_synthetic_feed_mixes_ehr_in_with_expected_codes() -> None:
    plain = synthetic_feed(10, 2, 4, seed=3)
    assert synthetic_feed(10, 2, 4, seed=3, ehr=0) == plain  # unchanged without EHR
    mixed = synthetic_feed(10, 2, 4, seed=3, ehr=20)
    assert len(mixed) == 36
    assert [e.body for e in synthetic_feed(10, 2, 4, seed=3, ehr=20)] == [e.body for e in mixed]
    ehr = [e for e in mixed if e.kind == "ehr" or (e.kind == "poison" and e not in plain)]
    assert len(ehr) == 20
    for event in ehr:
        outcome = _outcome(event)
        if event.expected_code:
            assert outcome == event.expected_code
        else:
            assert not isinstance(outcome, str), (event.body[:60], outcome)
    assert len({e.key for e in mixed}) == len(mixed)
    row_ids = [r for e in mixed for r in e.row_ids]
    assert len(row_ids) == len(set(row_ids))


def test_synthetic_ehr_cycles_through_every_kind() -> None:
    events = ehr_feed.synthetic_ehr(random.Random(1), "t", 20)
    assert sum(1 for e in events if e.expected_code) == 4
    bodies = " ".join(e.body for e in events)
    for marker in ("DocumentReference", "DiagnosticReport", "Bundle", "MDM^T02", "ORU^R01"):
        assert marker in bodies


def _run(events: list[FeedEvent], rows: list[str], dlq: list[str]) -> dict[str, Any]:
    run = DemoRun(events=events, sent_at={e.key: 100.0 for e in events}, started=99.0)
    run.results = [{"EVENT_ID": r, "PROCESSED_AT": 101.0} for r in rows]
    run.dlq = [DlqMessage("q", f"m{i}", key, "X", {}, {}, 1) for i, key in enumerate(dlq)]
    run.finished = 102.0
    return summarize(run)


def test_the_demo_reconciles_messages_that_became_several_rows() -> None:
    multi = FeedEvent("sha256:a", "MSH|...", "file", "notes", row_ids=("a:1", "a:2"))
    single = FeedEvent("e1", "{}", "note", "notes")
    poison = FeedEvent("sha256:p", "MSH|bad", "file", "notes")
    events = [multi, single, poison]

    ok = _run(events, ["a:1", "a:2", "e1"], ["sha256:p"])
    assert (ok["lost"], ok["duplicate_results"], ok["results_rows"]) == (0, 0, 3)
    assert ok["latency_ms"]["max"] == 1000.0  # rows of a multi-row message have a send time

    partial = _run(events, ["a:1", "e1"], ["sha256:p"])
    assert partial["lost"] == 1  # a missing row loses its message

    twice = _run(events, ["a:1", "a:2", "e1", "a:2"], ["sha256:p", "sha256:a"])
    assert twice["duplicate_results"] == 2  # a second a:2 row, and rows plus a DLQ message


def test_account_maps_rows_to_their_message() -> None:
    multi = FeedEvent("k", "b", "file", "notes", row_ids=("r1", "r2"))
    accounted, duplicates, owner = ehr_feed.account([multi], {"r1": 1, "r2": 1}, set())
    assert (accounted, duplicates, owner) == ({"k"}, 0, {"r1": "k", "r2": "k"})


def test_file_event_sends_json_strings_decoded() -> None:
    hl7 = ehr_feed.hl7_oru("C1", "M1", "Roe")
    event = ehr_feed.file_event(json.dumps(hl7))
    assert event.body == hl7
    assert event.queue == "notes"
    assert event.row_ids == ("hl7:SYNTH_EHR:PEDS:C1:1", "hl7:SYNTH_EHR:PEDS:C1:2")
    image = ehr_feed.dicom_event("i1", ehr_feed.dicom_file("ct"))
    assert ehr_feed.file_event(json.dumps(image)).queue == "images"
    assert ehr_feed.file_event(json.dumps(image)).key == "i1"


def test_sample_dicom_files_are_tiny_and_convert() -> None:
    for kind in ("ct", "mono1", "rgb", "ybr", "multiframe_rle", "jpeg", "voi_lut"):
        data = ehr_feed.dicom_file(kind)
        assert len(data) < 4096, kind
        from PIL import Image

        with Image.open(io.BytesIO(dicom_to_png(data, size=224, max_pixels=10**6))) as img:
            assert img.size == (224, 224)
