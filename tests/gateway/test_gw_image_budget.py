"""The image decoder's budget (images.py): memory and time caps before and during Pillow's
decode, the forked sandbox for large images, and what each refusal is reported as."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from typing import Any

import pytest
from gw_support import png_bytes
from PIL import Image

from spcs_gateway import images
from spcs_gateway.errors import ErrorCode, PoisonError, TransientError
from spcs_gateway.images import check_image

BIG = 10**9
# Above images.SANDBOX_MIN_PIXELS: decoded in the forked sandbox.
SANDBOXED = (700, 600)

pytestmark = pytest.mark.skipif(not images._can_sandbox(), reason="the sandbox needs Linux fork")


def code_of(data: bytes, **kwargs: Any) -> ErrorCode:
    with pytest.raises(PoisonError) as caught:
        check_image(data, **{"content_type": None, "max_pixels": BIG, "max_bytes": BIG, **kwargs})
    return caught.value.code


def _noisy(size: tuple[int, int], fmt: str, **save: Any) -> bytes:
    """An image that does not compress to nothing (so truncating it cuts pixel data)."""
    width, height = size
    img = Image.frombytes("RGB", size, os.urandom(width * height * 3))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def test_large_png_and_jpeg_decode_in_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counting_fork)
    png = check_image(png_bytes(SANDBOXED), content_type="image/png", max_pixels=BIG, max_bytes=BIG)
    assert (png.content_type, png.width, png.height) == ("image/png", *SANDBOXED)
    jpeg = _noisy(SANDBOXED, "JPEG", progressive=True)
    assert check_image(jpeg, content_type=None, max_pixels=BIG, max_bytes=BIG).content_type == (
        "image/jpeg"
    )
    assert len(forks) == 2
    # Small images decode in-process (the fork would cost more than the decode).
    check_image(png_bytes((32, 32)), content_type="image/png", max_pixels=BIG, max_bytes=BIG)
    assert len(forks) == 2


def test_a_broken_large_image_is_invalid_in_the_sandbox_too() -> None:
    data = _noisy(SANDBOXED, "PNG")
    assert code_of(data[: len(data) // 2]) is ErrorCode.INVALID_IMAGE
    jpeg = _noisy(SANDBOXED, "JPEG")
    assert code_of(jpeg[: len(jpeg) // 3]) is ErrorCode.INVALID_IMAGE  # no end of image


def test_a_decoder_past_its_time_budget_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(data: bytes, formats: list[str]) -> None:
        time.sleep(30)  # in the child only: the parent never calls _decode for this size

    monkeypatch.setattr(images, "_decode", stuck)
    monkeypatch.setattr(images, "DECODE_TIMEOUT_S", 0.5)
    started = time.monotonic()
    assert code_of(png_bytes(SANDBOXED)) is ErrorCode.IMAGE_TOO_LARGE
    assert time.monotonic() - started < 5


def test_a_decoder_past_its_memory_budget_fails_in_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def greedy(data: bytes, formats: list[str]) -> None:
        # Far beyond pixels x DECODE_BYTES_PER_PIXEL + DECODE_OVERHEAD_BYTES (about 70 MB here):
        # the address-space limit refuses it, whatever memory the machine has.
        bytearray(4 * 1024**3)

    monkeypatch.setattr(images, "_decode", greedy)
    assert code_of(png_bytes(SANDBOXED)) is ErrorCode.IMAGE_TOO_LARGE
    # The limit was the child's: the parent decodes the same image with the real decoder.
    monkeypatch.undo()
    check_image(png_bytes(SANDBOXED), content_type=None, max_pixels=BIG, max_bytes=BIG)


def test_a_crashing_decoder_costs_the_record_not_the_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(data: bytes, formats: list[str]) -> None:
        os.abort()  # SIGABRT in the child, like a decoder bug

    monkeypatch.setattr(images, "_decode", crash)
    assert code_of(png_bytes(SANDBOXED)) is ErrorCode.INVALID_IMAGE


def test_no_fork_is_a_transient_failure_not_poison(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(TransientError) as caught:
        check_image(png_bytes(SANDBOXED), content_type=None, max_pixels=BIG, max_bytes=BIG)
    assert caught.value.code is ErrorCode.DEPENDENCY_ERROR


def test_too_many_jpeg_scans_are_refused_before_decoding() -> None:
    # A real progressive JPEG has a handful of scans and passes ...
    progressive = _noisy((64, 64), "JPEG", progressive=True)
    assert 1 < progressive.count(b"\xff\xda") <= images.MAX_JPEG_SCANS
    check_image(progressive, content_type="image/jpeg", max_pixels=BIG, max_bytes=BIG)
    # ... one that claims more scans than the budget is refused without a decode.
    soi, rest = progressive[:2], progressive[2:]
    comment = b"\xff\xfe" + struct.pack(">H", 2 + 2 * 101) + b"\xff\xda" * 101
    hostile = soi + comment + rest
    assert code_of(hostile, content_type="image/jpeg") is ErrorCode.IMAGE_TOO_LARGE


def test_png_text_chunks_are_capped() -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    png = png_bytes((8, 8))
    # A compressed text chunk that inflates to 8 MiB, right after IHDR.
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * (8 * 1024 * 1024))
    hostile = png[:33] + chunk(b"zTXt", ztxt) + png[33:]
    assert len(hostile) < 100_000
    assert code_of(hostile, content_type="image/png") is ErrorCode.INVALID_IMAGE


def test_every_truncation_of_a_png_is_invalid() -> None:
    data = png_bytes((8, 8))
    for cut in range(8, len(data)):
        assert code_of(data[:cut], content_type="image/png") is ErrorCode.INVALID_IMAGE, cut


def test_refusals_carry_no_dimensions_or_bytes() -> None:
    with pytest.raises(PoisonError) as caught:
        check_image(png_bytes(SANDBOXED), content_type=None, max_pixels=1_000, max_bytes=BIG)
    text = str(caught.value)
    assert "700" not in text
    assert "600" not in text
