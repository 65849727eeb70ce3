"""PHI canaries in EHR-native input: HL7 PID (name, identifier), FHIR ``subject`` and
``identifier`` (and a Bundle's Patient), DICOM PatientName and PatientID, in valid messages and
in poison. None may reach a log line, an EMF blob, stdout/stderr, a trace annotation, a DLQ
message attribute or an error's text; SUBJECT_ID in the results is an opaque key."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gw_support import IMAGES_QUEUE, NOTES_QUEUE, GatewayEnv, Router, SpcsFake

from spcs_gateway.errors import PoisonError
from spcs_gateway.events import parse_message
from spcs_local.stack import ehr_feed

PID_NAME, PID_MRN = "CanaryPidName3141", "CanaryPidMrn2718"
FHIR_SUBJECT, FHIR_IDENT, FHIR_NAME = (
    "CanaryFhirSubj1618",
    "CanaryFhirIdent1414",
    "CanaryFhirName1732",
)
DICOM_NAME, DICOM_ID = "CanaryDicomName2236", "CanaryDicomId2449"
CANARIES = (PID_NAME, PID_MRN, FHIR_SUBJECT, FHIR_IDENT, FHIR_NAME, DICOM_NAME, DICOM_ID)


class _Trace:
    def __init__(self) -> None:
        self.written: list[Any] = []

    def put_annotation(self, key: str, value: Any) -> None:
        self.written.append((key, value))

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        self.written.append((key, value))

    def add_exception(self, exception: BaseException, stack: Any = None) -> None:
        self.written.append((type(exception).__name__, str(exception)))

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **_: Any) -> Iterator[_Trace]:
        self.written.append(("subsegment", name))
        yield self


@pytest.fixture
def captured(
    router: Callable[..., Router], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[dict[str, Any]]:
    notes, images = router("note_router"), router("image_router")
    stream, trace = io.StringIO(), _Trace()
    handlers = []
    for app in (notes.app, images.app):
        handler = app.logger.registered_handler
        handlers.append((handler, handler.setStream(stream)))
        monkeypatch.setattr(app.tracer, "provider", trace)
        monkeypatch.setattr(app.tracer, "disabled", False)
    caplog.set_level(logging.DEBUG)
    yield {"notes": notes, "images": images, "stream": stream, "trace": trace}
    for handler, old in handlers:
        handler.setStream(old)


def _hl7(control: str) -> str:
    return ehr_feed.hl7_mdm(control, PID_MRN, PID_NAME, "croup", "dexamethasone")


def _fhir_bundle() -> str:
    return json.dumps(ehr_feed.fhir_bundle("b1", "c1", FHIR_NAME, FHIR_IDENT))


def _fhir_doc(**subject: Any) -> dict[str, Any]:
    doc = ehr_feed.fhir_document_reference("d1", "otitis media, amoxicillin")
    doc["subject"] = subject
    return doc


def _dicom(kind: str, event_id: str) -> str:
    data = ehr_feed.dicom_file(
        kind, tag=event_id, patient_name=f"{DICOM_NAME}^X", patient_id=DICOM_ID
    )
    return json.dumps(ehr_feed.dicom_event(event_id, data))


def _poison_notes() -> list[str]:
    bad_ed = _hl7("P1").replace("OBX|4|NM", f"OBX|5|ED|X||^TEXT^PLAIN^Base64^{PID_NAME}!")
    return [
        _hl7("P0").replace("MDM^T02^MDM_T02", "ADT^A08"),  # unsupported, PID inside
        bad_ed,  # malformed ED, the canary in the data
        _hl7("P2").replace("UNICODE UTF-8", PID_NAME),  # unknown charset named by a canary
        json.dumps({**_fhir_doc(reference=FHIR_SUBJECT), "id": f"{FHIR_SUBJECT} x"}),
        json.dumps({**_fhir_doc(identifier={"value": FHIR_IDENT}), "content": []}),
        json.dumps({"resourceType": "Patient", "name": [{"family": FHIR_NAME}]}),
    ]


def test_no_ehr_canary_leaks(
    captured: dict[str, Any],
    gateway_env: GatewayEnv,
    spcs: SpcsFake,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    notes: Router = captured["notes"]
    images: Router = captured["images"]
    good = [
        _hl7("G1"),
        _fhir_bundle(),
        json.dumps(_fhir_doc(reference=f"Patient/{FHIR_SUBJECT}")),
        json.dumps(
            {**_fhir_doc(identifier={"system": "urn:mrn", "value": FHIR_IDENT}), "id": "d2"}
        ),
    ]
    event = gateway_env.sqs_event(NOTES_QUEUE, good + _poison_notes())
    assert notes.invoke(event) == {"batchItemFailures": []}
    assert len(notes.sink.rows) == 6  # 1 + 3 + 1 + 1
    spcs.status = 503  # a retried EHR record is logged too
    retried = notes.invoke(gateway_env.sqs_event(NOTES_QUEUE, [_hl7("G2")]))
    assert len(retried["batchItemFailures"]) == 1
    spcs.status = None

    image_event = gateway_env.sqs_event(
        IMAGES_QUEUE, [_dicom("ct", "dcm-ok"), _dicom("no_pixels", "dcm-bad")]
    )
    assert images.invoke(image_event) == {"batchItemFailures": []}
    assert list(images.sink.rows) == ["dcm-ok"]

    logs = captured["stream"].getvalue()
    own = notes.app.logger.name
    render = logging.Formatter("%(name)s %(levelname)s %(message)s")
    root_logs = "\n".join(render.format(r) for r in caplog.records if r.name != own)
    out = capsys.readouterr()
    trace = json.dumps(captured["trace"].written, default=str)
    dead = gateway_env.dead_letters(NOTES_QUEUE) + gateway_env.dead_letters(IMAGES_QUEUE)
    attributes = json.dumps([m["MessageAttributes"] for m in dead])
    subjects = json.dumps([r.subject_id for r in [*notes.sink.rows.values()]])

    assert "record sent to DLQ" in logs  # the captures are live
    assert '"CloudWatchMetrics"' in out.out
    assert len(dead) == 7
    assert "HL7_UNSUPPORTED_CHARSET" in attributes
    assert "DICOM_NO_PIXEL_DATA" in attributes
    assert any(PID_NAME in m["Body"] for m in dead)  # the DLQ body is the original, for redrive
    for canary in CANARIES:
        for name, text in (
            ("logs", logs),
            ("root logs", root_logs),
            ("stdout", out.out),
            ("stderr", out.err),
            ("trace", trace),
            ("DLQ attributes", attributes),
            ("SUBJECT_ID", subjects),
        ):
            assert canary not in text, (canary, name)


def test_error_texts_of_ehr_poison_hold_no_canary() -> None:
    from spcs_gateway.ehr.subjects import SubjectIds

    keyer = SubjectIds.with_key(b"k" * 32)
    for body in _poison_notes():
        with pytest.raises(PoisonError) as caught:
            parse_message(body, subjects=keyer)
        for canary in CANARIES:
            assert canary not in str(caught.value)
        assert caught.value.__cause__ is None


def test_the_dicom_sample_has_its_patient_tags_only_inside_the_file() -> None:
    body = json.loads(_dicom("ct", "dcm-x"))
    raw = base64.b64decode(body["image"]["base64"])
    assert DICOM_NAME.encode() in raw  # the canaries are really in the file
    assert DICOM_ID.encode() in raw
    assert DICOM_NAME not in json.dumps({k: v for k, v in body.items() if k != "image"})
