"""EHR-native intake through the routers' ``lambda_handler``: FHIR and HL7 v2 on the notes queue,
DICOM on the images queue (moto SQS/S3/Secrets Manager, respx SPCS, the fake results sink).

One SQS message may become several rows: each has a deterministic event id, the record succeeds
only when all its rows do, poison in any row sends the record (and none of its rows) to the DLQ,
a transient failure retries the record and the rows already written are skipped next time."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from gw_support import (
    IMAGE_BUCKET,
    IMAGES_QUEUE,
    NOTES_QUEUE,
    REPO,
    GatewayEnv,
    Router,
    SpcsFake,
    image_body,
    note_body,
    registry_doc,
)

from spcs_gateway.errors import ErrorCode, ServiceUnavailableError
from spcs_gateway.registry import ServiceConfig, parse_registry
from spcs_gateway.spcs_client import InferenceInput, RowResult
from spcs_local.stack import ehr_feed

RouterFactory = Callable[..., Router]


def _codes(env: GatewayEnv, queue: str) -> dict[str, str]:
    return {
        m["MessageAttributes"]["source_message_id"]["StringValue"]: m["MessageAttributes"][
            "error_code"
        ]["StringValue"]
        for m in env.dead_letters(queue)
    }


def _mdm(control: str = "C-1", dx: str = "croup", mrn: str = "MRN-1") -> str:
    return ehr_feed.hl7_mdm(control, mrn, "Roe", dx, "dexamethasone")


def _oru(control: str = "R-1") -> str:
    return ehr_feed.hl7_oru(control, "MRN-2", "Doe")


def test_sample_fhir_and_hl7_batches_are_accepted(router: RouterFactory, spcs: SpcsFake) -> None:
    r = router("note_router")
    rows: set[str] = set()
    for name in ("sqs_fhir_notes_batch.json", "sqs_hl7_notes_batch.json"):
        event = json.loads((REPO / "events" / name).read_text())
        assert r.invoke(event) == {"batchItemFailures": []}
        for record in event["Records"]:
            rows.update(ehr_feed.expected_rows(record["body"]))
    assert set(r.sink.rows) == rows
    assert len(rows) == 10  # FHIR 1 + 1 + 3 + 1, HL7 1 + 2 + 1
    assert {row.kind for row in r.sink.rows.values()} == {"clinical-note"}
    assert all(row.subject_id.startswith("sk:") for row in r.sink.rows.values())


def test_sample_dicom_batch_is_accepted_as_model_sized_pngs(
    router: RouterFactory, spcs: SpcsFake
) -> None:
    r = router("image_router")
    event = json.loads((REPO / "events" / "sqs_dicom_images_batch.json").read_text())

    assert r.invoke(event) == {"batchItemFailures": []}

    assert len(r.sink.rows) == len(event["Records"]) == 7
    import io

    from PIL import Image

    for rows in spcs.requests:
        for row in rows:
            png = base64.b64decode(row[1])
            with Image.open(io.BytesIO(png)) as img:
                assert (img.format, img.mode, img.size) == ("PNG", "RGB", (224, 224))


def test_one_message_many_rows_and_redelivery_is_idempotent(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    bundle = json.dumps(ehr_feed.fhir_bundle("b-1", "t1", "Roe", "MRN-9"))
    event = gateway_env.sqs_event(NOTES_QUEUE, [bundle, _oru(), note_body("evt-plain")])

    assert r.invoke(event) == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == sorted(
        [
            "evt-plain",
            "fhir:DocumentReference/t1-b0/v1:0",
            "fhir:DocumentReference/t1-b1/v1:0",
            "fhir:DiagnosticReport/t1-br:conclusion",
            "hl7:SYNTH_EHR:PEDS:R-1:1",
            "hl7:SYNTH_EHR:PEDS:R-1:2",
        ]
    )
    assert (r.sink.existing_calls, r.sink.merge_calls) == (0, 1)  # first receive: one MERGE
    sent = spcs.rows_sent

    assert r.invoke(gateway_env.redeliver(event)) == {"batchItemFailures": []}
    assert r.sink.existing_calls == 1  # the redelivery is pre-checked: one SELECT
    assert spcs.rows_sent == sent  # no second inference
    assert r.sink.merge_calls == 1


def test_the_same_message_twice_in_a_batch_is_inferred_once(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    event = gateway_env.sqs_event(NOTES_QUEUE, [_oru(), _mdm(), _oru()])

    assert r.invoke(event) == {"batchItemFailures": []}
    assert len(r.sink.rows) == 3
    assert spcs.rows_sent == 3


def test_a_poison_row_sends_its_record_and_none_of_its_rows_to_the_dlq(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    spcs.reject_marker = "REJECTME"
    bad = _oru("R-bad").replace("No appendicitis.", "REJECTME")  # the second report only
    event = gateway_env.sqs_event(NOTES_QUEUE, [bad, _mdm("C-ok")])
    bad_id = event["Records"][0]["messageId"]

    assert r.invoke(event) == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["hl7:SYNTH_EHR:PEDS:C-ok:1"]  # R-bad:1 was fine, not written
    assert _codes(gateway_env, NOTES_QUEUE) == {bad_id: ErrorCode.MODEL_REJECTED_INPUT}


class _FailOnce:
    """The real SPCS client, except that ``event_id`` is unavailable on its first call."""

    def __init__(self, inner: Any, event_id: str) -> None:
        self.inner, self.event_id, self.failed = inner, event_id, False

    def infer(self, service: ServiceConfig, inputs: Sequence[InferenceInput]) -> list[RowResult]:
        results = self.inner.infer(service, inputs)
        if self.failed:
            return results
        self.failed = True
        error = ServiceUnavailableError(ErrorCode.SERVICE_UNAVAILABLE, "HTTP 503", status=503)
        return [
            RowResult(res.key, None, error, 0) if res.key == self.event_id else res
            for res in results
        ]


def test_a_transient_row_retries_the_record_and_written_rows_are_skipped_next_time(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    r.app.pipeline._spcs = _FailOnce(r.client, "hl7:SYNTH_EHR:PEDS:R-1:2")
    event = gateway_env.sqs_event(NOTES_QUEUE, [_oru()])

    first = r.invoke(event)

    assert r.failures(first) == {event["Records"][0]["messageId"]}
    assert sorted(r.sink.rows) == ["hl7:SYNTH_EHR:PEDS:R-1:1"]  # the good row is kept
    assert r.readiness.calls == ["ner"]
    assert gateway_env.dead_letters(NOTES_QUEUE) == []
    sent = spcs.rows_sent

    assert r.invoke(gateway_env.redeliver(event)) == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["hl7:SYNTH_EHR:PEDS:R-1:1", "hl7:SYNTH_EHR:PEDS:R-1:2"]
    assert spcs.rows_sent == sent + 1  # only the missing row is inferred again


def test_ehr_poison_goes_to_the_dlq_with_its_code(
    router: RouterFactory, gateway_env: GatewayEnv
) -> None:
    r = router("note_router")
    cases = {
        "adt": (
            "MSH|^~\\&|A|B|C|D|20250101||ADT^A01|X1|P|2.5\rPID|1||M^^^H",
            "HL7_UNSUPPORTED_TYPE",
        ),
        "trunc": ("MSH|^~", "HL7_MALFORMED"),
        "charset": (_mdm().replace("UNICODE UTF-8", "CNS 11643-1992"), "HL7_UNSUPPORTED_CHARSET"),
        "notext": (_mdm().split("\rOBX|1")[0], "HL7_NO_TEXT"),
        "patient": (
            json.dumps({"resourceType": "Patient", "id": "p"}),
            "FHIR_UNSUPPORTED_RESOURCE",
        ),
        "badid": (
            json.dumps({"resourceType": "DocumentReference", "id": "a b"}),
            "FHIR_INVALID_RESOURCE",
        ),
        "pdf": (
            json.dumps(
                ehr_feed.fhir_document_reference(
                    "d1", "", attachments=[{"contentType": "application/pdf", "data": "JVBERg=="}]
                )
            ),
            "FHIR_NO_ATTACHMENT",
        ),
        "broken": ('{"resourceType": "DocumentReference", "id": ', "INVALID_JSON"),
    }
    event = gateway_env.sqs_event(NOTES_QUEUE, [body for body, _ in cases.values()])
    ids = {rec["body"]: rec["messageId"] for rec in event["Records"]}

    assert r.invoke(event) == {"batchItemFailures": []}
    assert _codes(gateway_env, NOTES_QUEUE) == {ids[body]: code for body, code in cases.values()}
    assert r.sink.rows == {}


def test_ehr_messages_on_the_images_queue_are_unknown_schema(
    router: RouterFactory, gateway_env: GatewayEnv
) -> None:
    r = router("image_router")
    fhir = json.dumps(ehr_feed.fhir_document_reference("d", "croup"))
    event = gateway_env.sqs_event(IMAGES_QUEUE, [_mdm(), fhir])

    assert r.invoke(event) == {"batchItemFailures": []}
    assert set(_codes(gateway_env, IMAGES_QUEUE).values()) == {ErrorCode.UNKNOWN_SCHEMA}


def test_subject_ids_are_keyed_unless_the_operator_opts_in(
    router: RouterFactory, gateway_env: GatewayEnv
) -> None:
    keyed = router("note_router")
    event = gateway_env.sqs_event(
        NOTES_QUEUE, [_mdm("C-1", mrn="MRN-77"), _mdm("C-2", mrn="MRN-77")]
    )
    assert keyed.invoke(event) == {"batchItemFailures": []}
    subjects = {row.subject_id for row in keyed.sink.rows.values()}
    assert len(subjects) == 1  # the same patient, the same opaque key
    [subject] = subjects
    assert subject.startswith("sk:")
    assert len(subject) == 35
    assert "MRN-77" not in subject

    doc = registry_doc()
    doc["ehr"] = {"subject_ids": "source"}
    source = router("note_router", registry=parse_registry(doc))
    event = gateway_env.sqs_event(NOTES_QUEUE, [_mdm("C-3", mrn="MRN-77")])
    assert source.invoke(event) == {"batchItemFailures": []}
    assert {row.subject_id for row in source.sink.rows.values()} == {"patient:PEDS|MRN-77"}


def test_dicom_inline_and_s3_through_the_image_router(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("image_router")
    ct = ehr_feed.dicom_file("ct", tag="r1")
    gateway_env.s3.put_object(Bucket=IMAGE_BUCKET, Key="dicom/ct.dcm", Body=ct)
    bodies = [
        json.dumps(ehr_feed.dicom_event("dcm-inline", ct)),
        image_body("dcm-s3", {"s3_uri": f"s3://{IMAGE_BUCKET}/dicom/ct.dcm"}),
        json.dumps(ehr_feed.dicom_event("dcm-nopix", ehr_feed.dicom_file("no_pixels"))),
        json.dumps(ehr_feed.dicom_event("dcm-jll", ehr_feed.dicom_file("jpeg_lossless"))),
        image_body(
            "dcm-png", {"base64": base64.b64encode(ct).decode(), "content_type": "image/png"}
        ),
    ]
    event = gateway_env.sqs_event(IMAGES_QUEUE, bodies)
    ids = {json.loads(rec["body"])["event_id"]: rec["messageId"] for rec in event["Records"]}

    assert r.invoke(event) == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["dcm-inline", "dcm-s3"]
    assert r.sink.rows["dcm-inline"].subject_id == "IMG-dcm-inline"  # the envelope's image_id
    assert _codes(gateway_env, IMAGES_QUEUE) == {
        ids["dcm-nopix"]: ErrorCode.DICOM_NO_PIXEL_DATA,
        ids["dcm-jll"]: ErrorCode.DICOM_UNSUPPORTED_SYNTAX,
        ids["dcm-png"]: ErrorCode.INVALID_IMAGE,  # DICOM declared as PNG
    }
    [inline, s3] = [row for rows in spcs.requests for row in rows]
    assert inline[1] == s3[1]  # the same PNG, whichever way the file came


def test_image_size_is_a_service_setting(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    doc = registry_doc()
    doc["services"][1]["image_size"] = 96
    r = router("image_router", registry=parse_registry(doc))
    body = json.dumps(ehr_feed.dicom_event("dcm-96", ehr_feed.dicom_file("mono1")))

    assert r.invoke(gateway_env.sqs_event(IMAGES_QUEUE, [body])) == {"batchItemFailures": []}
    import io

    from PIL import Image

    [[row]] = spcs.requests
    with Image.open(io.BytesIO(base64.b64decode(row[1]))) as img:
        assert img.size == (96, 96)


@pytest.mark.parametrize("module", ["spcs_gateway.pipeline", "spcs_gateway.images"])
def test_routers_load_no_ehr_library_until_a_message_needs_it(module: str) -> None:
    code = (
        "import sys\n"
        f"import {module}, spcs_gateway.dlq\n"
        "heavy = ('hl7', 'pydicom', 'numpy', 'spcs_gateway.ehr.fhir', 'spcs_gateway.ehr.hl7',\n"
        "         'spcs_gateway.ehr.dicom', 'spcs_gateway.ehr.subjects')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
