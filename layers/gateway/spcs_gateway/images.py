"""Image intake: strict base64, Pillow checks, decompression-bomb refusal, S3 allow-list, labels.

Order of checks, cheapest first, so hostile input costs little:
1. encoded size (before decoding base64) and byte size against ``images.max_image_bytes``;
2. ``Image.open`` restricted to PNG/JPEG (reads the header only): declared format must match;
3. width x height against ``images.max_pixels`` *before* any pixel data is decoded. Pillow's own
   ``Image.MAX_IMAGE_PIXELS`` guard (a warning above ~89 M pixels, an error above twice that) is
   turned into a refusal too, so a ``max_pixels`` set above Pillow's limit is capped by it;
4. ``verify()`` (container integrity, PNG CRCs), then a full ``load()`` on a fresh handle, so an
   image the model could not decode is poison here rather than a 400 from the service.

Errors carry a reason code and a fixed detail: never bytes, dimensions or the object key.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image

from spcs_gateway.errors import ErrorCode, PoisonError, TransientError
from spcs_gateway.events import InlineImage, S3Image
from spcs_gateway.registry import ImageSettings, ServiceConfig

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
_CONTENT_TYPES = {fmt: ctype for ctype, fmt in _FORMATS.items()}
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>\S{1,1024})$")
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True, repr=False)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int

    def __repr__(self) -> str:
        return f"CheckedImage({self.content_type}, {len(self.data)} bytes)"


def decode_base64(text: str, *, max_bytes: int) -> bytes:
    """Strict RFC 4648 base64 (no whitespace, no URL-safe alphabet, correct padding)."""
    if len(text) > 4 * -(-max_bytes // 3):
        raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "encoded image exceeds max_image_bytes")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise PoisonError(ErrorCode.INVALID_IMAGE, "image is not valid base64") from None
    if not data:
        raise PoisonError(ErrorCode.INVALID_IMAGE, "image is empty")
    return data


def check_image(
    data: bytes, *, content_type: str | None, max_pixels: int, max_bytes: int
) -> CheckedImage:
    """Decode ``data`` with Pillow and check it. ``content_type=None`` accepts PNG or JPEG."""
    if len(data) > max_bytes:
        raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds max_image_bytes")
    if content_type is not None and content_type not in _FORMATS:
        raise PoisonError(ErrorCode.INVALID_IMAGE, "unsupported content type")
    formats = [_FORMATS[content_type]] if content_type else list(_FORMATS.values())
    with warnings.catch_warnings():
        # Pillow warns (then errors) above Image.MAX_IMAGE_PIXELS: both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=formats) as img:
                width, height = img.size
                found = img.format
                if width * height > max_pixels:
                    raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds max_pixels")
                img.verify()
            # verify() leaves the image unusable: decode the pixels on a fresh handle.
            with Image.open(io.BytesIO(data), formats=formats) as img:
                img.load()
        except PoisonError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds pixel limit") from None
        except Exception:  # noqa: BLE001 - hostile input: Pillow raises many types; none is kept
            raise PoisonError(ErrorCode.INVALID_IMAGE, "image cannot be decoded") from None
    if found not in _CONTENT_TYPES:
        raise PoisonError(ErrorCode.INVALID_IMAGE, "image format does not match content type")
    return CheckedImage(data=data, content_type=_CONTENT_TYPES[found], width=width, height=height)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if match is None:
        raise PoisonError(ErrorCode.INVALID_EVENT, "s3_uri is malformed")
    return match["bucket"], match["key"]


class ImageSource:
    """Loads and checks the image of an ``ImageEvent`` (inline, or from an allow-listed bucket)."""

    def __init__(self, settings: ImageSettings, s3_client: S3Client | None = None) -> None:
        self._settings = settings
        self._allowed = frozenset(settings.allowed_buckets)
        self._s3 = s3_client

    def _client(self) -> S3Client:
        if self._s3 is None:  # created on first use: most deployments send inline images only
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def load(self, image: InlineImage | S3Image) -> CheckedImage:
        s = self._settings
        if isinstance(image, InlineImage):
            data = decode_base64(image.base64, max_bytes=s.max_image_bytes)
            return check_image(
                data,
                content_type=image.content_type,
                max_pixels=s.max_pixels,
                max_bytes=s.max_image_bytes,
            )
        data = self.fetch_s3(image.s3_uri)
        return check_image(
            data, content_type=None, max_pixels=s.max_pixels, max_bytes=s.max_image_bytes
        )

    def fetch_s3(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        if bucket not in self._allowed:
            raise PoisonError(ErrorCode.IMAGE_SOURCE_FORBIDDEN, "bucket is not allow-listed")
        limit = self._settings.max_image_bytes
        try:
            answer: Any = self._client().get_object(Bucket=bucket, Key=key)
            if int(answer.get("ContentLength") or 0) > limit:
                answer["Body"].close()
                raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "object exceeds max_image_bytes")
            with answer["Body"] as body:
                data: bytes = body.read(limit + 1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND_CODES:
                raise PoisonError(ErrorCode.IMAGE_NOT_FOUND, "image object not found") from None
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"S3 GetObject failed ({code or 'ClientError'})"
            ) from None
        except BotoCoreError as exc:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, f"S3 GetObject failed ({type(exc).__name__})"
            ) from None
        if len(data) > limit:
            raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "object exceeds max_image_bytes")
        return data


class LabelChoice(Protocol):
    """Anything that names candidate labels inline or by a registry label set."""

    @property
    def candidate_labels(self) -> Sequence[str] | None: ...

    @property
    def label_set(self) -> str | None: ...


def resolve_labels(choice: LabelChoice, service: ServiceConfig) -> list[str]:
    """Inline candidate labels, or the named set from the service's registry entry.

    Shared by the image router (queue events) and the API (classification requests)."""
    if choice.candidate_labels is not None:
        labels = list(choice.candidate_labels)
    else:
        named = service.label_sets.get(choice.label_set or "")
        if named is None:
            raise PoisonError(ErrorCode.UNKNOWN_LABEL_SET, "label_set is not in the registry")
        labels = list(named)
    if len(labels) > service.max_candidate_labels:
        raise PoisonError(ErrorCode.INVALID_EVENT, "candidate_labels exceeds max_candidate_labels")
    return labels
