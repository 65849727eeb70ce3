"""Image stand-in backend: real Pillow decode, deterministic zero-shot pseudo-scores."""

from __future__ import annotations

import io
import math
import struct
import tracemalloc
import zlib

import pytest
from PIL import Image

from spcs_local.emulator.backends import BadInput, ImageStandIn

LABELS = ["pneumonia", "normal chest x-ray", "fracture", "skin lesion"]


def encode(color: tuple[int, int, int], fmt: str, size: tuple[int, int] = (48, 32)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, color)
    img.putpixel((3, 5), (255 - color[0], 17, 99))
    img.save(buf, fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height but that carries almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


PNG = encode((200, 30, 30), "PNG")
JPEG = encode((30, 160, 90), "JPEG")


def check_distribution(result: list[dict], labels: list[str]) -> None:
    assert sorted(r["label"] for r in result) == sorted(labels)
    scores = [r["score"] for r in result]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-9)


@pytest.mark.parametrize("data", [PNG, JPEG], ids=["png", "jpeg"])
def test_scores_are_a_sorted_deterministic_distribution(data: bytes) -> None:
    backend = ImageStandIn()
    (first,) = backend.predict([data], [LABELS])
    check_distribution(first, LABELS)
    assert ImageStandIn().predict([data], [LABELS]) == [first]


def test_different_images_and_templates_get_different_scores() -> None:
    backend = ImageStandIn()
    png, jpeg = backend.predict([PNG, JPEG], [LABELS, LABELS])
    as_map = {r["label"]: r["score"] for r in png}
    assert as_map != {r["label"]: r["score"] for r in jpeg}
    (templated,) = backend.predict([PNG], [LABELS], "A radiograph showing {}.")
    assert {r["label"]: r["score"] for r in templated} != as_map
    # The HF default template is what None means.
    assert backend.predict([PNG], [LABELS], "This is a photo of {}.") == [png]


def test_each_image_uses_its_own_labels() -> None:
    out = ImageStandIn().predict([PNG, JPEG], [["a", "b"], ["c", "d", "e"]])
    check_distribution(out[0], ["a", "b"])
    check_distribution(out[1], ["c", "d", "e"])


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        PNG[: len(PNG) // 2],
        JPEG[: len(JPEG) // 2],
        b"",
        encode((1, 2, 3), "PPM"),  # decodable by Pillow, but not an accepted format
    ],
    ids=["text", "truncated-png", "truncated-jpeg", "empty", "ppm"],
)
def test_undecodable_bytes_are_bad_input(data: bytes) -> None:
    with pytest.raises(BadInput) as info:
        ImageStandIn().predict([data], [LABELS])
    assert info.value.reason in {"image could not be decoded", "image is empty or not bytes"}
    assert str(info.value) == info.value.reason


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [(100_000, 100_000, 40_000_000), (8000, 8000, 1_000_000)],
    ids=["beyond-pillow-limit", "beyond-own-cap"],
)
def test_bomb_shaped_header_is_refused_without_allocating(
    width: int, height: int, max_pixels: int
) -> None:
    backend = ImageStandIn(max_pixels=max_pixels)
    backend.predict([PNG], [LABELS])  # plugins imported before measuring
    tracemalloc.start()
    try:
        with pytest.raises(BadInput) as info:
            backend.predict([png_header_only(width, height)], [LABELS])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "image dimensions exceed the pixel limit"
    assert peak < 5_000_000  # the frame would be 192 MB (8000x8000 RGB) or more


@pytest.mark.parametrize(
    ("labels", "template"),
    [
        ([[]], None),
        ([["a", "a"]], None),
        ([["a", ""]], None),
        ([["a", 3]], None),
        (["ab"], None),
        ([["a"], ["b"]], None),  # two label lists for one image
        ([["a", "b"]], "{:>999999999}"),
        ([["a", "b"]], "{0.__class__}"),
        ([["a", "b"]], "unbalanced {"),
    ],
)
def test_bad_labels_or_template_are_bad_input(labels: list, template: str | None) -> None:
    with pytest.raises(BadInput):
        ImageStandIn().predict([PNG], labels, template)


def test_name_says_stand_in() -> None:
    assert ImageStandIn.name == "stand-in"
