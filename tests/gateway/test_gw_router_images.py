"""Image router end to end through ``lambda_handler``: inline and S3 images, labels, refusals."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from gw_support import (
    IMAGE_BUCKET,
    IMAGES_QUEUE,
    OTHER_BUCKET,
    REPO,
    GatewayEnv,
    Router,
    SpcsFake,
    bomb_png,
    image_body,
    png_bytes,
)

from spcs_gateway.errors import ErrorCode

RouterFactory = Callable[..., Router]


def inline(data: bytes, content_type: str = "image/png") -> dict[str, Any]:
    return {"base64": base64.b64encode(data).decode(), "content_type": content_type}


def _codes(env: GatewayEnv) -> dict[str, str]:
    return {
        m["MessageAttributes"]["source_message_id"]["StringValue"]: m["MessageAttributes"][
            "error_code"
        ]["StringValue"]
        for m in env.dead_letters(IMAGES_QUEUE)
    }


def test_inline_png_and_label_set_succeed(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("image_router")
    bodies = [image_body("img-0"), image_body("img-1", label_set="radiology-modality")]
    event = gateway_env.sqs_event(IMAGES_QUEUE, bodies)

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["img-0", "img-1"]
    row = r.sink.rows["img-1"]
    assert row.kind == "medical-image"
    assert row.subject_id == "IMG-img-1"
    assert [item["label"] for item in row.output] == ["chest x-ray", "brain MRI", "CT abdomen"]
    [rows] = spcs.requests
    # Columns in signature order: image bytes as base64 text, then the candidate labels.
    assert base64.b64decode(rows[0][1]) == png_bytes()
    assert rows[0][2] == ["chest x-ray", "brain MRI"]


def test_sample_event_file_is_accepted(router: RouterFactory) -> None:
    r = router("image_router")
    event = json.loads((REPO / "events" / "sqs_images_batch.json").read_text())

    assert r.invoke(event) == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["img-evt-0001", "img-evt-0002"]


def test_bad_images_go_to_dlq_with_their_codes(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("image_router")
    gateway_env.s3.put_object(Bucket=IMAGE_BUCKET, Key="ok/scan.png", Body=png_bytes((16, 16)))
    gateway_env.s3.put_object(Bucket=OTHER_BUCKET, Key="scan.png", Body=png_bytes())
    cases = {
        "good-inline": (image_body("good-inline"), None),
        "good-s3": (image_body("good-s3", {"s3_uri": f"s3://{IMAGE_BUCKET}/ok/scan.png"}), None),
        "bad-b64": (
            image_body("bad-b64", {"base64": "not base64!!", "content_type": "image/png"}),
            ErrorCode.INVALID_IMAGE,
        ),
        "not-image": (
            image_body("not-image", inline(b"plain text, no pixels")),
            ErrorCode.INVALID_IMAGE,
        ),
        "wrong-type": (
            image_body("wrong-type", inline(png_bytes(fmt="JPEG"), "image/png")),
            ErrorCode.INVALID_IMAGE,
        ),
        "bomb": (image_body("bomb", inline(bomb_png(60_000, 60_000))), ErrorCode.IMAGE_TOO_LARGE),
        "too-many-pixels": (
            image_body("too-many-pixels", inline(bomb_png(2_000, 2_000))),
            ErrorCode.IMAGE_TOO_LARGE,
        ),
        "forbidden": (
            image_body("forbidden", {"s3_uri": f"s3://{OTHER_BUCKET}/scan.png"}),
            ErrorCode.IMAGE_SOURCE_FORBIDDEN,
        ),
        "missing": (
            image_body("missing", {"s3_uri": f"s3://{IMAGE_BUCKET}/nope.png"}),
            ErrorCode.IMAGE_NOT_FOUND,
        ),
        "no-set": (image_body("no-set", label_set="dermatology"), ErrorCode.UNKNOWN_LABEL_SET),
    }
    event = gateway_env.sqs_event(IMAGES_QUEUE, [body for body, _ in cases.values()])
    ids = {json.loads(rec["body"])["event_id"]: rec["messageId"] for rec in event["Records"]}

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["good-inline", "good-s3"]
    expected = {ids[name]: code for name, (_, code) in cases.items() if code is not None}
    assert _codes(gateway_env) == expected
    assert spcs.rows_sent == 2  # refused images never reach the model


def test_s3_outage_is_transient_not_poison(router: RouterFactory, gateway_env: GatewayEnv) -> None:
    r = router("image_router")
    gateway_env.s3.delete_bucket(Bucket=IMAGE_BUCKET)  # GetObject now fails with NoSuchBucket
    event = gateway_env.sqs_event(
        IMAGES_QUEUE, [image_body("s3-down", {"s3_uri": f"s3://{IMAGE_BUCKET}/a.png"})]
    )

    response = r.invoke(event)

    assert r.failures(response) == {event["Records"][0]["messageId"]}
    assert gateway_env.dead_letters(IMAGES_QUEUE) == []
    assert r.sink.rows == {}
