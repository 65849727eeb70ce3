"""EHR-native events for the local stack: FHIR R4 resources, HL7 v2 messages, DICOM images.

Everything is synthetic (no real patient, no real note): the builders make small FHIR
DocumentReference / DiagnosticReport / Bundle resources, HL7 v2 MDM^T02 and ORU^R01 messages
with multi-OBX notes, escapes, FT/TX continuation and MSH-18 character sets, and tiny DICOM
Part 10 files (written with pydicom: CT with rescale and window, MONOCHROME1, RGB, YBR,
multi-frame RLE, JPEG baseline, VOI LUT), plus the poison of each format with the reason code
the routers must give it.

Used by the demo's synthetic feed (``synthetic_ehr``), by ``events_from_file`` (``file_event``:
a JSONL line that is a JSON string is sent as its decoded text, so an HL7 message keeps its
``\\r``), and to write the samples in ``events/``::

    python -m spcs_local.stack.ehr_feed --samples events

One message may become several result rows; ``FeedEvent.row_ids`` lists the event ids the
gateway derives from it (computed with the gateway's own parser), so the demo can reconcile
rows against messages (``account``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .feed import FeedEvent, event_key, route

# Diagnoses and drugs the emulator's lexicon finds (see feed._CASES).
_FINDINGS = (
    ("acute otitis media", "amoxicillin"),
    ("asthma exacerbation", "albuterol"),
    ("pneumonia", "ceftriaxone"),
    ("urinary tract infection", "cephalexin"),
    ("croup", "dexamethasone"),
    ("type 1 diabetes", "insulin glargine"),
)
_LABELS = ["pneumonia", "normal chest radiograph", "bronchiolitis"]
SAMPLE_KEY = b"spcs-local synthetic subject key"  # the keyer used to predict row ids only


def _uid(*parts: object) -> str:
    """A deterministic DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- FHIR ------------------------------------------------------------------------------------


def _attachment(text: str, content_type: str = "text/plain; charset=utf-8") -> dict[str, Any]:
    charset = "utf-8"
    if "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].strip()
    return {"contentType": content_type, "data": _b64(text.encode(charset))}


def fhir_document_reference(
    doc_id: str,
    text: str,
    *,
    patient: str = "Patient/example-1",
    version: str | None = "1",
    content_type: str = "text/plain; charset=utf-8",
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": doc_id,
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
        "subject": {"reference": patient},
        "date": "2025-03-03T18:00:00Z",
        "content": [{"attachment": a} for a in (attachments or [_attachment(text, content_type)])],
    }
    if version is not None:
        resource["meta"] = {"versionId": version, "lastUpdated": "2025-03-03T18:00:00Z"}
    return resource


def fhir_diagnostic_report(report_id: str, html: str, *, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "meta": {"versionId": "2"},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
        "subject": {"reference": patient},
        "presentedForm": [
            {"contentType": "text/html", "data": _b64(html.encode("utf-8")), "title": "report"}
        ],
    }


def fhir_bundle(bundle_id: str, tag: str, patient_name: str, mrn: str) -> dict[str, Any]:
    """A Bundle with its Patient (referenced by ``urn:uuid``), two notes and a report whose
    only text is its ``conclusion``: three rows."""
    patient_url = f"urn:uuid:{_uid('patient', tag)[5:17]}-0000-4000-8000-000000000000"
    first, second = _FINDINGS[0], _FINDINGS[2]
    docs = [
        fhir_document_reference(
            f"{tag}-b{i}", f"Bundle note {i}: {dx}; started {drug}.", patient=patient_url
        )
        for i, (dx, drug) in enumerate((first, second))
    ]
    report = {
        "resourceType": "DiagnosticReport",
        "id": f"{tag}-br",
        "status": "final",
        "subject": {"reference": patient_url},
        "conclusion": "Findings consistent with croup; dexamethasone given.",
    }
    patient = {
        "resourceType": "Patient",
        "id": f"{tag}-pat",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn}],
        "name": [{"family": patient_name, "given": ["Synthetic"]}],
    }
    entries = [{"fullUrl": patient_url, "resource": patient}]
    entries += [{"fullUrl": f"urn:uuid:{_uid(d['id'])[5:13]}-1", "resource": d} for d in docs]
    entries.append({"resource": report})
    return {"resourceType": "Bundle", "id": bundle_id, "type": "collection", "entry": entries}


# -- HL7 v2 ----------------------------------------------------------------------------------


def _msh(control: str, kind: str, *, charset: str = "UNICODE UTF-8") -> str:
    head = "MSH|^~\\&|SYNTH_EHR|PEDS|SPCS_GW|SNOWFLAKE|20250303180000|"
    return f"{head}|{kind}|{control}|P|2.5.1|||AL|NE||{charset}"


def _pid(mrn: str, name: str) -> str:
    return f"PID|1||{mrn}^^^PEDS^MR||{name}^Synthetic||20190304|F"


def hl7_mdm(control: str, mrn: str, name: str, dx: str, drug: str) -> str:
    """MDM^T02: one note over four OBX (FT with \\.br\\, escaped delimiters, a UTF-8 hex escape,
    TX repetitions) and an ADD continuation."""
    return "\r".join(
        [
            _msh(control, "MDM^T02^MDM_T02"),
            "EVN|T02|20250303180000",
            _pid(mrn, name),
            "PV1|1|O",
            f"TXA|1|PN|FT|20250303180000|||||||{control}-DOC|||||AU",
            f"OBX|1|FT|11506-3^Progress note^LN||Assessment: {dx}.\\.br\\Plan: start {drug} "
            "\\T\\ recheck in 2 weeks.||||||F",
            "OBX|2|TX|11506-3^Progress note^LN||Caf\\XC3A9\\ visit note \\F\\ signed~"
            "Second line of the same note||||||F",
            "OBX|3|TX|11506-3^Progress note^LN||Continued on the next segm||||||F",
            "ADD|ent without a break.",
            "OBX|4|NM|8867-4^Heart rate^LN||112|/min|||||F",
        ]
    )


def hl7_oru(control: str, mrn: str, name: str) -> str:
    """ORU^R01: two radiology reports (two OBR), two rows; a numeric OBX is skipped."""
    return "\r".join(
        [
            _msh(control, "ORU^R01^ORU_R01"),
            _pid(mrn, name),
            "OBR|1|||71045^Chest X-ray^CPT|||20250303170000",
            "OBX|1|TX|18782-3^Impression^LN||Right lower lobe pneumonia.||||||F",
            "OBX|2|TX|18782-3^Impression^LN||Start ceftriaxone.||||||F",
            "OBX|3|NM|8310-5^Body temperature^LN||39.1|Cel|||||F",
            "OBR|2|||76700^US abdomen^CPT|||20250303171000",
            "OBX|1|FT|18782-3^Impression^LN||No appendicitis.\\.br\\Gastroenteritis likely; "
            "ondansetron given.||||||F",
        ]
    )


def hl7_mdm_ed_html(control: str, mrn: str, name: str) -> str:
    """MDM^T02 whose note is an ED value: HTML, base64, in ISO 8859-1 (MSH-18 8859/1)."""
    html = "<html><body><p>Asthma exacerbation.</p><p>Albuterol nebulizer; r\xe9sum\xe9 ok.</p>"
    data = _b64((html + "</body></html>").encode("iso8859-1"))
    return "\r".join(
        [
            _msh(control, "MDM^T02^MDM_T02", charset="8859/1"),
            "EVN|T02|20250303180000",
            _pid(mrn, name),
            f"TXA|1|CN|TEXT|20250303180000|||||||{control}-DOC|||||AU",
            f"OBX|1|ED|18842-5^Discharge summary^LN||^TEXT^HTML^Base64^{data}||||||F",
        ]
    )


# -- DICOM -----------------------------------------------------------------------------------


def _pattern(rows: int, cols: int) -> Any:
    import numpy as np

    y, x = np.mgrid[0:rows, 0:cols]
    ramp = (x + y) / max(1, rows + cols - 2)
    disk = np.hypot(y - rows / 2, x - cols / 2) < min(rows, cols) / 4
    return np.where(disk, 1.0, 0.6 * ramp)


def dicom_file(
    kind: str,
    *,
    tag: str = "sample",
    patient_name: str = "Synthetic^Patient",
    patient_id: str | None = None,
    size: int = 16,
) -> bytes:
    """A tiny DICOM Part 10 file. ``kind``: ct, mono1, rgb, ybr, multiframe_rle, jpeg,
    voi_lut, no_pixels, jpeg_lossless (the last two are poison)."""
    import numpy as np
    from pydicom import dcmwrite
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels.processing import convert_color_space
    from pydicom.uid import UID, JPEGBaseline8Bit, JPEGLosslessSV1, RLELossless
    from pydicom.uid import ExplicitVRLittleEndian as Explicit
    from pydicom.uid import ImplicitVRLittleEndian as Implicit

    rows = cols = size
    base = _pattern(rows, cols)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    ds.SOPInstanceUID = _uid("sop", kind, tag)
    ds.StudyInstanceUID = _uid("study", tag)
    ds.SeriesInstanceUID = _uid("series", kind, tag)
    ds.PatientName = patient_name
    ds.PatientID = patient_id or f"MRN-{tag}"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    syntax = Explicit
    pixels: Any = None
    if kind in ("ct", "voi_lut", "no_pixels"):
        ds.Modality = "CT"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        pixels = (base * 1400 + 300).astype(np.int16)  # -724 .. 676 HU after the rescale
        if kind == "voi_lut":
            item = Dataset()
            item.add_new(0x00283002, "US", [256, 0, 8])  # LUTDescriptor: 256 entries, 8 bits
            item.add_new(0x00283006, "US", [255 - v for v in range(256)])  # LUTData: inverted
            ds.VOILUTSequence = [item]
            pixels = (base * 255).astype(np.int16)
            del ds.RescaleSlope, ds.RescaleIntercept
        else:
            ds.WindowCenter, ds.WindowWidth = "40", "400"
    elif kind == "mono1":
        ds.Modality = "CR"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        pixels = (base * 4095).astype(np.uint16)
        syntax = Implicit
    elif kind in ("rgb", "ybr", "jpeg"):
        ds.Modality = "XC"
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        rgb = np.stack([base * 255, base[::-1] * 200, np.full_like(base, 60)], axis=-1)
        pixels = rgb.astype(np.uint8)
        ds.PhotometricInterpretation = "RGB"
        if kind == "ybr":
            ds.PhotometricInterpretation = "YBR_FULL"
            pixels = convert_color_space(pixels, "RGB", "YBR_FULL")
    elif kind in ("multiframe_rle", "jpeg_lossless"):
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        frames = 1 if kind == "jpeg_lossless" else 3
        ds.NumberOfFrames = frames
        pixels = np.stack([(base * (80 + 60 * f)).astype(np.uint8) for f in range(frames)])
        if frames == 1:
            pixels = pixels[0]
    else:
        raise ValueError(f"unknown DICOM kind {kind!r}")

    if kind == "jpeg":
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=95, subsampling=2)
        ds.PixelData = encapsulate([out.getvalue()])
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds["PixelData"].VR = "OB"
        syntax = JPEGBaseline8Bit
    elif kind == "jpeg_lossless":
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + bytes(60) + b"\xff\xd9"])
        ds["PixelData"].VR = "OB"
        syntax = JPEGLosslessSV1
    elif kind != "no_pixels":
        ds.PixelData = pixels.tobytes()
        ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(_uid("spcs-local", "implementation"))
    meta.ImplementationVersionName = "SPCS_LOCAL_1"
    ds.file_meta = meta
    if kind == "multiframe_rle":
        ds.compress(RLELossless, generate_instance_uid=False)
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def dicom_event(event_id: str, data: bytes, *, label_set: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "medical-image.v1",
        "event_id": event_id,
        "image_id": f"IMG-{event_id}",
        "source": "synthetic-pacs",
        "occurred_at": "2025-03-03T18:00:00Z",
        "image": {"base64": _b64(data), "content_type": "application/dicom"},
    }
    if label_set is not None:
        body["label_set"] = label_set
    else:
        body["candidate_labels"] = list(_LABELS)
    return body


# -- the feed --------------------------------------------------------------------------------

# (name, builder(run, index) -> body, expected DLQ code or None). A body that is a ``str`` is
# sent as-is (HL7), a ``dict`` as JSON.
Builder = Callable[[str, int], "str | dict[str, Any]"]


def _names(i: int) -> tuple[str, str]:
    return f"SYN{i:06d}", f"Synthetic{i}"


def _valid_builders(*, label_sets: bool = True) -> list[tuple[str, Builder]]:
    """Every valid kind; DICOM events name a registry label set every other time
    (``label_sets``) and candidate labels otherwise."""

    def docref(run: str, i: int) -> dict[str, Any]:
        dx, drug = _FINDINGS[i % len(_FINDINGS)]
        return fhir_document_reference(
            f"{run}-doc-{i}",
            f"Progress note: {dx}. Started {drug}; follow up in 10 days.",
            patient=f"Patient/{run}-p{i}",
        )

    def docref_latin1(run: str, i: int) -> dict[str, Any]:
        return fhir_document_reference(
            f"{run}-doc-{i}",
            "Consult: type 1 diabetes, insulin glargine titrated; caf\xe9 visit.",
            patient=f"Patient/{run}-p{i}",
            content_type="text/plain; charset=ISO-8859-1",
        )

    def report(run: str, i: int) -> dict[str, Any]:
        return fhir_diagnostic_report(
            f"{run}-dr-{i}",
            "<html><body><h1>Chest X-ray</h1><p>Findings: pneumonia in the right lower "
            "lobe.</p><p>Plan: ceftriaxone &amp; recheck.</p></body></html>",
            patient=f"Patient/{run}-p{i}",
        )

    def bundle(run: str, i: int) -> dict[str, Any]:
        mrn, name = _names(i)
        return fhir_bundle(f"{run}-bundle-{i}", f"{run}-{i}", name, mrn)

    def mdm(run: str, i: int) -> str:
        dx, drug = _FINDINGS[i % len(_FINDINGS)]
        mrn, name = _names(i)
        return hl7_mdm(f"{run}-mdm-{i}", mrn, name, dx, drug)

    def oru(run: str, i: int) -> str:
        mrn, name = _names(i)
        return hl7_oru(f"{run}-oru-{i}", mrn, name)

    def mdm_ed(run: str, i: int) -> str:
        mrn, name = _names(i)
        return hl7_mdm_ed_html(f"{run}-ed-{i}", mrn, name)

    def image(kind: str) -> Builder:
        def build(run: str, i: int) -> dict[str, Any]:
            data = dicom_file(kind, tag=f"{run}-{i}", patient_name=f"{_names(i)[1]}^Synthetic")
            named = "chest_xray" if label_sets and i % 2 else None
            return dicom_event(f"{run}-dcm-{i}", data, label_set=named)

        return build

    return [
        ("fhir-document-reference", docref),
        ("hl7-mdm", mdm),
        ("dicom-ct", image("ct")),
        ("fhir-diagnostic-report-html", report),
        ("hl7-oru-two-reports", oru),
        ("dicom-mono1", image("mono1")),
        ("fhir-bundle", bundle),
        ("hl7-mdm-ed-html-8859-1", mdm_ed),
        ("dicom-ybr", image("ybr")),
        ("fhir-document-reference-latin1", docref_latin1),
        ("dicom-multiframe-rle", image("multiframe_rle")),
        ("dicom-jpeg-baseline", image("jpeg")),
        ("dicom-rgb", image("rgb")),
        ("dicom-voi-lut", image("voi_lut")),
    ]


def _poison_builders() -> list[tuple[str, Builder, str]]:
    def adt(run: str, i: int) -> str:
        mrn, name = _names(i)
        return "\r".join([_msh(f"{run}-adt-{i}", "ADT^A01^ADT_A01"), _pid(mrn, name)])

    def truncated(run: str, i: int) -> str:
        return "MSH|^~"

    def patient(run: str, i: int) -> dict[str, Any]:
        return {"resourceType": "Patient", "id": f"{run}-pat-{i}", "name": [{"family": "Roe"}]}

    def url_only(run: str, i: int) -> dict[str, Any]:
        return fhir_document_reference(
            f"{run}-url-{i}",
            "",
            attachments=[{"contentType": "application/pdf", "url": "https://ehr.invalid/doc"}],
        )

    def no_pixels(run: str, i: int) -> dict[str, Any]:
        return dicom_event(f"{run}-nopix-{i}", dicom_file("no_pixels", tag=f"{run}-{i}"))

    def jpeg_lossless(run: str, i: int) -> dict[str, Any]:
        return dicom_event(f"{run}-jll-{i}", dicom_file("jpeg_lossless", tag=f"{run}-{i}"))

    return [
        ("hl7-adt", adt, "HL7_UNSUPPORTED_TYPE"),
        ("fhir-patient", patient, "FHIR_UNSUPPORTED_RESOURCE"),
        ("dicom-no-pixel-data", no_pixels, "DICOM_NO_PIXEL_DATA"),
        ("hl7-truncated", truncated, "HL7_MALFORMED"),
        ("fhir-url-only", url_only, "FHIR_NO_ATTACHMENT"),
        ("dicom-jpeg-lossless", jpeg_lossless, "DICOM_UNSUPPORTED_SYNTAX"),
    ]


def _body(value: str | dict[str, Any]) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def expected_rows(body: str) -> tuple[str, ...]:
    """The event ids the notes router derives from an EHR message (``()`` for the gateway's
    own envelope, which is tracked by its ``event_id``, and for a message that is poison)."""
    from spcs_gateway.ehr.note import EhrNote
    from spcs_gateway.ehr.subjects import SubjectIds
    from spcs_gateway.errors import GatewayError
    from spcs_gateway.events import parse_message

    try:
        events = parse_message(body, subjects=SubjectIds.with_key(SAMPLE_KEY))
    except GatewayError:
        return ()
    ids = [e.event_id for e in events if isinstance(e, EhrNote)]
    return tuple(dict.fromkeys(ids))


def make_event(body: str, kind: str = "file", expected_code: str | None = None) -> FeedEvent:
    return FeedEvent(
        event_key(body), body, kind, route(body), expected_code, None, expected_rows(body)
    )


def file_event(line: str) -> FeedEvent:
    """One JSONL line: a JSON string is sent as its decoded text (an HL7 message with its
    ``\\r``), anything else as the line itself."""
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    return make_event(value if isinstance(value, str) else line)


def synthetic_ehr(
    rng: random.Random, run: str, count: int, base: datetime | None = None
) -> list[FeedEvent]:
    """``count`` EHR messages: every valid kind in turn, with one poison message in five
    (each poison kind in turn, with the reason code the DLQ must show)."""
    del base  # the synthetic EHR messages carry fixed clinical times
    valid, poison = _valid_builders(), _poison_builders()
    events: list[FeedEvent] = []
    v = p = 0
    for i in range(count):
        if i % 5 == 4:
            _, build, code = poison[p % len(poison)]
            events.append(make_event(_body(build(run, i)), "poison", code))
            p += 1
        else:
            _, build = valid[v % len(valid)]
            events.append(make_event(_body(build(run, i)), "ehr"))
            v += 1
    rng.shuffle(events)
    return events


def account(
    events: Iterable[FeedEvent], rows: Mapping[str, int], dlq_keys: set[str]
) -> tuple[set[str], int, dict[str, str]]:
    """Reconcile messages that became several rows: (keys accounted for by all their rows,
    extra duplicates: such a message that has rows and also sits in a DLQ, row id -> key)."""
    accounted: set[str] = set()
    duplicates = 0
    owner: dict[str, str] = {}
    for event in events:
        if not event.row_ids:
            continue
        owner.update(dict.fromkeys(event.row_ids, event.key))
        if all(r in rows for r in event.row_ids):
            accounted.add(event.key)
        if event.key in dlq_keys and any(r in rows for r in event.row_ids):
            duplicates += 1
    return accounted, duplicates, owner


# -- samples in events/ ----------------------------------------------------------------------

_SQS_RECORD: dict[str, Any] = {
    "receiptHandle": "MessageReceiptHandle",
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1523232000000",
        "SenderId": "123456789012",
        "ApproximateFirstReceiveTimestamp": "1523232000001",
    },
    "messageAttributes": {},
    "eventSource": "aws:sqs",
    "awsRegion": "us-east-1",
}


def _sqs_event(queue: str, bodies: list[str], prefix: str) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        record = {
            "messageId": f"{prefix}-{i:04d}-4ac1-bd88-01bbb068cb71",
            **json.loads(json.dumps(_SQS_RECORD)),
            "body": body,
            "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),  # noqa: S324 - SQS's own
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:spcs-gateway-{queue}",
        }
        record = {k: record[k] for k in ("messageId", "receiptHandle", "body", *_ORDER)}
        records.append(record)
    return {"Records": records}


_ORDER = (
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
)


def samples() -> dict[str, str]:
    """File name -> content of every EHR sample in ``events/``."""
    run = "sample"
    valid = dict(_valid_builders(label_sets=False))  # samples work with any registry
    poison = {name: (build, code) for name, build, code in _poison_builders()}
    fhir = [valid[n](run, i) for i, n in enumerate(
        ("fhir-document-reference", "fhir-diagnostic-report-html", "fhir-bundle",
         "fhir-document-reference-latin1"))]  # fmt: skip
    hl7 = [valid[n](run, i) for i, n in enumerate(
        ("hl7-mdm", "hl7-oru-two-reports", "hl7-mdm-ed-html-8859-1"))]  # fmt: skip
    dicom_kinds = ("dicom-ct", "dicom-mono1", "dicom-ybr", "dicom-multiframe-rle",
                   "dicom-jpeg-baseline", "dicom-rgb", "dicom-voi-lut")  # fmt: skip
    dicom = [valid[n](run, i) for i, n in enumerate(dicom_kinds)]
    bad = [(poison[n][0](run, i), poison[n][1]) for i, n in enumerate(poison)]
    # HL7 messages as JSON strings (their \r survives), the rest as JSON objects.
    jsonl = [json.dumps(b) for b in [*fhir, *hl7, *dicom, *(b for b, _ in bad)]]

    def dump(value: Any) -> str:
        return json.dumps(value, indent=2) + "\n"

    return {
        "sqs_fhir_notes_batch.json": dump(_sqs_event("notes", [_body(b) for b in fhir], "f1")),
        "sqs_hl7_notes_batch.json": dump(_sqs_event("notes", [_body(b) for b in hl7], "h1")),
        "sqs_dicom_images_batch.json": dump(_sqs_event("images", [_body(b) for b in dicom], "d1")),
        "ehr_demo.jsonl": "\n".join(jsonl) + "\n",
    }


def write_samples(folder: Path) -> list[Path]:
    written = []
    for name, text in samples().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spcs_local.stack.ehr_feed")
    parser.add_argument("--samples", type=Path, required=True, metavar="DIR")
    args = parser.parse_args(argv)
    for path in write_samples(args.samples):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
