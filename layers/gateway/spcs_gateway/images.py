"""Image intake: strict base64, Pillow checks, decompression-bomb refusal, S3 allow-list, labels.

Order of checks, cheapest first, so hostile input costs little:
1. encoded size (before decoding base64) and byte size against ``images.max_image_bytes``;
2. ``Image.open`` restricted to PNG/JPEG (reads the header only): declared format must match;
   a PNG must hold its complete IEND chunk (``verify()`` would pass one cut inside it);
3. width x height against ``images.max_pixels`` *before* any pixel data is decoded. Pillow's own
   ``Image.MAX_IMAGE_PIXELS`` guard (a warning above ~89 M pixels, an error above twice that) is
   turned into a refusal too, so a ``max_pixels`` set above Pillow's limit is capped by it;
4. the decode budget, still before any pixel data is decoded: the decoded size (width x height x
   bytes per pixel of the mode) against ``max_pixels`` x 4 bytes, and a JPEG's scan count
   against ``MAX_JPEG_SCANS`` (each progressive scan walks the whole image again: thousands of
   tiny scans are a CPU bomb in a small file); PNG text chunks are capped at import;
5. ``verify()`` (container integrity, PNG CRCs), then a full ``load()`` on a fresh handle, so an
   image the model could not decode is poison here rather than a 400 from the service. An image
   above ``SANDBOX_MIN_PIXELS`` is decoded in a sandbox: a forked child with an address-space
   limit (``RLIMIT_AS``: its own size plus ``DECODE_BYTES_PER_PIXEL`` per pixel and
   ``DECODE_OVERHEAD_BYTES``), a CPU limit (``RLIMIT_CPU``) and a wall-clock deadline
   (``DECODE_TIMEOUT_S``) after which it is killed. A decoder that runs past its budget, or
   crashes, costs that child and the record (poison, ``IMAGE_TOO_LARGE`` or ``INVALID_IMAGE``),
   never the container or the rest of the batch. Smaller images decode in-process: their work is
   bounded by steps 3-4 (a few MB of pixels, at most ``MAX_JPEG_SCANS`` scans), which costs less
   than the fork.

Errors carry a reason code and a fixed detail: never bytes, dimensions or the object key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import faulthandler
import io
import math
import os
import re
import select
import signal
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image, PngImagePlugin

from spcs_gateway.ehr.detect import is_dicom_part10
from spcs_gateway.errors import ErrorCode, PoisonError, TransientError
from spcs_gateway.events import InlineDicom, InlineImage, S3Image
from spcs_gateway.registry import ImageSettings, ServiceConfig

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

# -- the decode budget ------------------------------------------------------------------------
# Decoded bytes at most max_pixels x this (8-bit RGBA); a larger mode or bit depth is refused.
MAX_DECODED_BYTES_PER_PIXEL = 4
# Progressive JPEG scans at most (libjpeg's progressive mode writes 10; encoders that optimise
# scans a few dozen). Each scan walks every block of the image again.
MAX_JPEG_SCANS = 100
# Images above this many pixels are decoded in the sandbox (below it the fork costs more than
# the decode, and steps 3-4 already bound the work).
SANDBOX_MIN_PIXELS = 512 * 512
# The sandbox: address space for the decoder beyond the child's own (pixels, a progressive
# JPEG's 16-bit coefficient planes, Pillow's buffers), CPU seconds and wall-clock seconds.
DECODE_BYTES_PER_PIXEL = 16
DECODE_OVERHEAD_BYTES = 64 * 1024 * 1024
DECODE_TIMEOUT_S = 10.0
# PNG text chunks (read by Image.open itself, before any check of ours): Pillow allows 1 MiB
# per chunk and 64 MiB in all; an image for classification needs none of it.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024

# Child exit codes (anything else, or a signal: the decoder crashed or ran out of budget).
_OK, _UNDECODABLE, _TOO_LARGE, _NO_SANDBOX = 0, 3, 4, 5
_BITS_PER_BAND = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
# A PNG's last chunk, complete: length 0, type IEND, its CRC.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
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
                mode = img.mode
            if width * height > max_pixels:
                raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds max_pixels")
            if found == "PNG" and _PNG_END not in data[-4096:]:
                # verify() stops at IEND's type: a file cut inside IEND would pass it.
                raise PoisonError(ErrorCode.INVALID_IMAGE, "image is truncated")
            _check_decode_budget(data, found, mode, width * height, max_pixels)
            if width * height > SANDBOX_MIN_PIXELS and _can_sandbox():
                _decode_in_sandbox(data, formats, width * height)
            else:
                _decode(data, formats)
        except (PoisonError, TransientError):
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds pixel limit") from None
        except Exception:  # noqa: BLE001 - hostile input: Pillow raises many types; none is kept
            raise PoisonError(ErrorCode.INVALID_IMAGE, "image cannot be decoded") from None
    if found not in _CONTENT_TYPES:
        raise PoisonError(ErrorCode.INVALID_IMAGE, "image format does not match content type")
    return CheckedImage(data=data, content_type=_CONTENT_TYPES[found], width=width, height=height)


def _decoded_bytes(mode: str, pixels: int) -> int:
    bands = Image.getmodebands(mode)
    bits = _BITS_PER_BAND.get(mode, 8)
    return math.ceil(pixels * bands * bits / 8)


def _check_decode_budget(
    data: bytes, found: str | None, mode: str, pixels: int, max_pixels: int
) -> None:
    """Refuse, before decoding, what would decode too big or take too long (module docstring)."""
    try:
        decoded = _decoded_bytes(mode, pixels)
    except (KeyError, ValueError):
        raise PoisonError(ErrorCode.INVALID_IMAGE, "image mode is not supported") from None
    if decoded > max_pixels * MAX_DECODED_BYTES_PER_PIXEL:
        raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds the decode memory budget")
    # In JPEG entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so every
    # FF DA is a start-of-scan marker.
    if found == "JPEG" and data.count(b"\xff\xda") > MAX_JPEG_SCANS:
        raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds the decode time budget")


def _decode(data: bytes, formats: list[str]) -> None:
    """verify() (container, CRCs), then every pixel on a fresh handle (verify() spends it)."""
    with Image.open(io.BytesIO(data), formats=formats) as img:
        img.verify()
    with Image.open(io.BytesIO(data), formats=formats) as img:
        img.load()


def _can_sandbox() -> bool:
    return hasattr(os, "fork") and os.path.exists("/proc/self/statm")


def _limit_child(pixels: int) -> None:
    """In the forked decoder: address space = its size now + the budget; CPU (a fork starts at
    zero); no core file. Never above a hard limit already set on the process."""
    import resource

    def lower(kind: int, value: int) -> None:
        _, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value))

    with open("/proc/self/statm", "rb") as statm:
        vm_bytes = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    lower(resource.RLIMIT_AS, vm_bytes + pixels * DECODE_BYTES_PER_PIXEL + DECODE_OVERHEAD_BYTES)
    lower(resource.RLIMIT_CPU, math.ceil(DECODE_TIMEOUT_S))
    lower(resource.RLIMIT_CORE, 0)


def _sandboxed_child(data: bytes, formats: list[str], pixels: int) -> int:
    # The child answers by exit status only: no fault dump into the function's log.
    faulthandler.disable()
    try:
        _limit_child(pixels)
    except (OSError, ValueError):
        return _NO_SANDBOX
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _decode(data, formats)
    except MemoryError:
        return _TOO_LARGE
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _TOO_LARGE
    except Exception:  # noqa: BLE001 - hostile input: any failure is "cannot be decoded"
        return _UNDECODABLE
    return _OK


def _decode_in_sandbox(data: bytes, formats: list[str], pixels: int) -> None:
    """Decode in a forked child under the decode budget (module docstring); raise the poison
    its end calls for. Nothing crosses back but its exit status."""
    with warnings.catch_warnings():
        # Python warns that forking a threaded process may deadlock the child: this child only
        # decodes bytes it already holds and leaves with os._exit (no locks, no I/O, no atexit).
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            pid = os.fork()
        except OSError:
            raise TransientError(
                ErrorCode.DEPENDENCY_ERROR, "image decoder could not start"
            ) from None
    if pid == 0:  # the child: never returns
        code = _UNDECODABLE
        try:
            code = _sandboxed_child(data, formats, pixels)
        finally:
            os._exit(code)
    code = _wait_or_kill(pid, DECODE_TIMEOUT_S)
    if code == _OK:
        return
    if code == _NO_SANDBOX:
        raise TransientError(ErrorCode.DEPENDENCY_ERROR, "image decoder could not be limited")
    if code == _UNDECODABLE:
        raise PoisonError(ErrorCode.INVALID_IMAGE, "image cannot be decoded")
    if code == _TOO_LARGE or -code in (signal.SIGKILL, signal.SIGXCPU):
        raise PoisonError(ErrorCode.IMAGE_TOO_LARGE, "image exceeds the decode budget")
    raise PoisonError(ErrorCode.INVALID_IMAGE, "image cannot be decoded")


def _wait_or_kill(pid: int, timeout_s: float) -> int:
    """The child's exit code (-signal when killed); SIGKILLed once ``timeout_s`` has passed.
    Waits on a pidfd (Linux 5.3+: readable when the process ends, whatever other threads fork
    meanwhile), else polls."""
    if not _wait_for_exit(pid, timeout_s):
        with contextlib.suppress(ProcessLookupError):  # ended in between
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    """True once ``pid`` has ended (not reaped), False after ``timeout_s``."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    if pidfd >= 0:
        try:
            return bool(select.select([pidfd], [], [], timeout_s)[0])
        finally:
            os.close(pidfd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # WNOWAIT: look without reaping, so _wait_or_kill reaps exactly once.
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.002)
    return False


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if match is None:
        raise PoisonError(ErrorCode.INVALID_EVENT, "s3_uri is malformed")
    return match["bucket"], match["key"]


class ImageSource:
    """Loads and checks the image of an ``ImageEvent`` (inline, or from an allow-listed bucket)."""

    def __init__(
        self, settings: ImageSettings, s3_client: S3Client | None = None, *, dicom_size: int = 224
    ) -> None:
        self._settings = settings
        self._allowed = frozenset(settings.allowed_buckets)
        self._s3 = s3_client
        self._dicom_size = dicom_size  # DICOM becomes a dicom_size^2 PNG (ServiceConfig.image_size)

    def _client(self) -> S3Client:
        if self._s3 is None:  # created on first use: most deployments send inline images only
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def load(self, image: InlineImage | InlineDicom | S3Image) -> CheckedImage:
        s = self._settings
        if isinstance(image, InlineDicom):
            return self._from_dicom(decode_base64(image.base64, max_bytes=s.max_image_bytes))
        if isinstance(image, InlineImage):
            data = decode_base64(image.base64, max_bytes=s.max_image_bytes)
            return check_image(
                data,
                content_type=image.content_type,
                max_pixels=s.max_pixels,
                max_bytes=s.max_image_bytes,
            )
        data = self.fetch_s3(image.s3_uri)
        if is_dicom_part10(data):
            return self._from_dicom(data)
        return check_image(
            data, content_type=None, max_pixels=s.max_pixels, max_bytes=s.max_image_bytes
        )

    def _from_dicom(self, data: bytes) -> CheckedImage:
        """A DICOM Part 10 file, converted to the model's PNG (``ehr.dicom``), then checked."""
        from spcs_gateway.ehr.dicom import dicom_to_png  # pydicom and numpy: DICOM input only

        size = self._dicom_size
        png = dicom_to_png(data, size=size, max_pixels=self._settings.max_pixels)
        return check_image(
            png, content_type="image/png", max_pixels=size * size, max_bytes=len(png)
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
