"""Image intake units: strict base64, Pillow checks, bomb refusal, S3 allow-list/size, labels."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from gw_support import bomb_png, png_bytes
from moto import mock_aws

from spcs_gateway.errors import ErrorCode, PoisonError, TransientError
from spcs_gateway.events import ImageEvent, InlineImage, S3Image
from spcs_gateway.images import ImageSource, check_image, decode_base64, resolve_labels
from spcs_gateway.registry import ImageSettings, ServiceConfig

SETTINGS = ImageSettings(allowed_buckets=["scans"], max_image_bytes=4_096, max_pixels=10_000)


def code_of(call: Any, *args: Any, **kwargs: Any) -> ErrorCode:
    with pytest.raises(PoisonError) as caught:
        call(*args, **kwargs)
    return caught.value.code


def test_decode_base64_is_strict() -> None:
    raw = png_bytes()
    text = base64.b64encode(raw).decode()
    assert decode_base64(text, max_bytes=4_096) == raw
    assert code_of(decode_base64, text[:-2], max_bytes=4_096) is ErrorCode.INVALID_IMAGE
    assert code_of(decode_base64, text[:10] + "\n" + text[10:], max_bytes=4_096) is (
        ErrorCode.INVALID_IMAGE
    )
    assert code_of(decode_base64, "ab-_", max_bytes=4_096) is ErrorCode.INVALID_IMAGE
    assert code_of(decode_base64, "é" * 8, max_bytes=4_096) is ErrorCode.INVALID_IMAGE
    # Refused on the encoded length, before decoding anything.
    assert code_of(decode_base64, "A" * 8_000, max_bytes=4_096) is ErrorCode.IMAGE_TOO_LARGE


def test_check_image_accepts_png_and_jpeg_matching_content_type() -> None:
    png = check_image(
        png_bytes((20, 10)), content_type="image/png", max_pixels=200, max_bytes=10**9
    )
    assert (png.content_type, png.width, png.height) == ("image/png", 20, 10)
    jpeg = png_bytes((4, 4), fmt="JPEG")
    assert check_image(jpeg, content_type=None, max_pixels=99, max_bytes=9_999).content_type == (
        "image/jpeg"
    )
    assert code_of(check_image, jpeg, content_type="image/png", max_pixels=99, max_bytes=9_999) is (
        ErrorCode.INVALID_IMAGE
    )
    gif = png_bytes(fmt="GIF")
    assert code_of(check_image, gif, content_type=None, max_pixels=99, max_bytes=9_999) is (
        ErrorCode.INVALID_IMAGE
    )


def test_check_image_refuses_truncated_and_oversized() -> None:
    data = png_bytes((64, 64))
    assert (
        code_of(
            check_image,
            data[: len(data) // 2],
            content_type="image/png",
            max_pixels=9_999,
            max_bytes=10**9,
        )
        is ErrorCode.INVALID_IMAGE
    )
    assert (
        code_of(check_image, data, content_type="image/png", max_pixels=4_095, max_bytes=10**9)
        is ErrorCode.IMAGE_TOO_LARGE
    )
    assert (
        code_of(check_image, data, content_type="image/png", max_pixels=9_999, max_bytes=10)
        is ErrorCode.IMAGE_TOO_LARGE
    )


def test_pillow_bomb_limit_still_refuses_when_max_pixels_is_higher() -> None:
    # 100 M pixels is above Pillow's MAX_IMAGE_PIXELS warning threshold (~89 M).
    header_only = bomb_png(10_000, 10_000)
    assert (
        code_of(
            check_image, header_only, content_type="image/png", max_pixels=10**12, max_bytes=10**9
        )
        is ErrorCode.IMAGE_TOO_LARGE
    )


def _service(**changes: Any) -> ServiceConfig:
    doc: dict[str, Any] = {
        "name": "zsc",
        "service": "DB.SCH.SVC",
        "compute_pool": "POOL",
        "url": "https://zsc.example.snowflakecomputing.app",
        "task": "zero-shot-image-classification",
        "label_sets": {"modality": ["x-ray", "mri"]},
        "max_candidate_labels": 3,
    }
    doc.update(changes)
    return ServiceConfig.model_validate(doc)


def _image_event(**labels: Any) -> ImageEvent:
    body = {
        "schema": "medical-image.v1",
        "event_id": "e",
        "image_id": "i",
        "source": "s",
        "occurred_at": "2025-01-01T00:00:00Z",
        "image": {"s3_uri": "s3://scans/a.png"},
        **labels,
    }
    return ImageEvent.model_validate_json(json.dumps(body))


def test_resolve_labels() -> None:
    svc = _service()
    assert resolve_labels(_image_event(label_set="modality"), svc) == ["x-ray", "mri"]
    assert resolve_labels(_image_event(candidate_labels=["a", "b"]), svc) == ["a", "b"]
    assert code_of(resolve_labels, _image_event(label_set="derm"), svc) is (
        ErrorCode.UNKNOWN_LABEL_SET
    )
    too_many = _image_event(candidate_labels=["a", "b", "c", "d"])
    assert code_of(resolve_labels, too_many, svc) is ErrorCode.INVALID_EVENT


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="scans")
        client.create_bucket(Bucket="elsewhere")
        yield client


def test_s3_fetch_allow_list_size_cap_and_errors(s3: Any) -> None:
    source = ImageSource(SETTINGS, s3)
    s3.put_object(Bucket="scans", Key="ok.png", Body=png_bytes((16, 16)))
    s3.put_object(Bucket="scans", Key="big.png", Body=b"\x00" * 5_000)
    s3.put_object(Bucket="elsewhere", Key="ok.png", Body=png_bytes())

    checked = source.load(S3Image(s3_uri="s3://scans/ok.png"))
    assert (checked.width, checked.height) == (16, 16)
    assert code_of(source.load, S3Image(s3_uri="s3://elsewhere/ok.png")) is (
        ErrorCode.IMAGE_SOURCE_FORBIDDEN
    )
    assert code_of(source.load, S3Image(s3_uri="s3://scans/big.png")) is ErrorCode.IMAGE_TOO_LARGE
    assert code_of(source.load, S3Image(s3_uri="s3://scans/none.png")) is ErrorCode.IMAGE_NOT_FOUND

    s3.delete_object(Bucket="scans", Key="ok.png")
    s3.delete_object(Bucket="scans", Key="big.png")
    s3.delete_bucket(Bucket="scans")
    with pytest.raises(TransientError) as caught:
        source.load(S3Image(s3_uri="s3://scans/ok.png"))
    assert caught.value.code is ErrorCode.DEPENDENCY_ERROR
    assert "scans" not in str(caught.value)


def test_inline_load_uses_declared_content_type() -> None:
    source = ImageSource(SETTINGS, s3_client=None)  # no S3 client is created for inline images
    data = base64.b64encode(png_bytes()).decode()
    assert source.load(InlineImage(base64=data, content_type="image/png")).data == png_bytes()
    assert code_of(source.load, InlineImage(base64=data, content_type="image/jpeg")) is (
        ErrorCode.INVALID_IMAGE
    )
