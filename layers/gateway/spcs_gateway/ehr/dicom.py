"""A DICOM Part 10 file -> the image model's input: an 8-bit RGB PNG, ``size`` x ``size``.

pydicom reads the file and decodes the pixel data, always through a named plugin that is
permissively licensed: pydicom's own (uncompressed, deflated, RLE Lossless) or Pillow (JPEG
baseline and extended 8-bit via libjpeg-turbo, JPEG 2000 via OpenJPEG). A GPL decoder is never
chosen, even when one is installed; every other transfer syntax (JPEG Lossless, JPEG-LS, HTJ2K,
MPEG ...) is ``DICOM_UNSUPPORTED_SYNTAX``.

Checks before any pixel is decoded: the ``DICM`` preamble; the file parses
(``DICOM_MALFORMED``); Pixel Data is present (``DICOM_NO_PIXEL_DATA``); Rows x Columns within
``max_pixels`` and at most ``MAX_FRAMES`` frames (``IMAGE_TOO_LARGE``); a photometric
interpretation and bit layout handled below (``DICOM_UNSUPPORTED_IMAGE``); a compressed frame's
own header agrees with Rows and Columns (so a codestream cannot claim more pixels than the
dataset). Conversion stops with ``IMAGE_TOO_LARGE`` once it has used ``time_budget_s``.

The frame rule: a multi-frame image is represented by its middle frame (index
``NumberOfFrames // 2``), whose functional groups (Enhanced objects) give its rescale and window.

Grayscale (PS3.4 grayscale pipeline): the modality LUT (Modality LUT Sequence, or Rescale Slope
and Intercept), then the VOI LUT Sequence if present, else the first window (Window Center and
Width, VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2), else the frame's own
minimum to maximum; MONOCHROME1 is inverted. A frame more than twice the output size is first
subsampled (every n-th pixel, at least twice the output kept): exact for these pointwise steps,
and it bounds their memory. Colour: YBR_FULL, YBR_FULL_422, YBR_ICT and YBR_RCT
become RGB, PALETTE COLOR goes through its LUT, samples above 8 bits are scaled. The result is
fitted inside ``size`` x ``size`` (aspect kept, bicubic) and centred on black, 3 channels.

PHI: tags such as PatientName are never read into an error, a log line or the PNG; pydicom's
warnings and log records (which may quote values) are suppressed here.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom import config as pydicom_config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    RLELossless,
)

from spcs_gateway.ehr.detect import is_dicom_part10
from spcs_gateway.errors import ErrorCode, PoisonError

# Transfer syntax -> the pydicom decoding plugin used ("": not compressed).
SYNTAX_PLUGINS: dict[str, str] = {
    ImplicitVRLittleEndian: "",
    ExplicitVRLittleEndian: "",
    ExplicitVRBigEndian: "",
    DeflatedExplicitVRLittleEndian: "",
    RLELossless: "pydicom",
    JPEGBaseline8Bit: "pillow",
    JPEGExtended12Bit: "pillow",
    JPEG2000Lossless: "pillow",
    JPEG2000: "pillow",
}
GRAY = frozenset({"MONOCHROME1", "MONOCHROME2"})
COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
PALETTE = "PALETTE COLOR"
MAX_FRAMES = 10_000
DEFAULT_TIME_BUDGET_S = 15.0

# pydicom's validation warnings and log records can quote element values (a PatientName):
# nothing of it may reach a log. Values are not validated on read; errors are ours, fixed text.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)


def _poison(code: ErrorCode, detail: str) -> PoisonError:
    return PoisonError(code, detail)


def _malformed(detail: str) -> PoisonError:
    return _poison(ErrorCode.DICOM_MALFORMED, detail)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


class _Budget:
    def __init__(self, seconds: float) -> None:
        self._deadline = time.perf_counter() + seconds

    def check(self) -> None:
        if time.perf_counter() > self._deadline:
            raise _poison(ErrorCode.IMAGE_TOO_LARGE, "DICOM conversion exceeded its time budget")


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise _malformed(f"{keyword} is missing")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _malformed(f"{keyword} is not an integer") from None


class _Geometry:
    """What the dataset says about its pixels, checked before anything is decoded."""

    def __init__(self, ds: Dataset, *, max_pixels: int) -> None:
        self.rows = _int(ds, "Rows")
        self.columns = _int(ds, "Columns")
        self.frames = _int(ds, "NumberOfFrames", 1)
        self.samples = _int(ds, "SamplesPerPixel", 1)
        self.bits_allocated = _int(ds, "BitsAllocated")
        self.bits_stored = _int(ds, "BitsStored", self.bits_allocated)
        self.signed = _int(ds, "PixelRepresentation", 0) == 1
        self.photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        if self.rows < 1 or self.columns < 1 or self.frames < 1:
            raise _malformed("Rows, Columns and NumberOfFrames must be positive")
        if self.rows * self.columns > max_pixels:
            raise _poison(ErrorCode.IMAGE_TOO_LARGE, "image exceeds max_pixels")
        if self.frames > MAX_FRAMES:
            raise _poison(ErrorCode.IMAGE_TOO_LARGE, f"image has more than {MAX_FRAMES} frames")
        if self.bits_allocated not in (1, 8, 16, 32) or not 1 <= self.bits_stored <= 32:
            raise _poison(ErrorCode.DICOM_UNSUPPORTED_IMAGE, "bit layout is not supported")
        gray = self.photometric in GRAY and self.samples == 1
        colour = self.photometric in COLOUR and self.samples == 3
        palette = self.photometric == PALETTE and self.samples == 1
        if not (gray or colour or palette):
            raise _poison(
                ErrorCode.DICOM_UNSUPPORTED_IMAGE, "photometric interpretation is not supported"
            )

    @property
    def frame(self) -> int:
        """The frame rule: the middle frame."""
        return self.frames // 2


def _check_codestream(ds: Dataset, geometry: _Geometry) -> None:
    """A JPEG or JPEG 2000 frame's own header must agree with Rows and Columns."""
    data = get_frame(ds.PixelData, geometry.frame, number_of_frames=geometry.frames)
    with Image.open(io.BytesIO(data), formats=["JPEG", "JPEG2000"]) as img:
        if img.size != (geometry.columns, geometry.rows):
            raise _malformed("compressed frame does not match Rows and Columns")


def _frame_view(ds: Dataset, frame: int) -> Dataset:
    """The attributes of the grayscale pipeline for ``frame``: top level, then the shared
    functional groups, then the frame's own (Enhanced objects keep rescale and window there)."""
    view = Dataset()
    for keyword in (
        "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation",
        "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
        "VOILUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction",
    ):  # fmt: skip
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    for name, index in (
        ("SharedFunctionalGroupsSequence", 0),
        ("PerFrameFunctionalGroupsSequence", frame),
    ):
        groups = ds.get(name)
        if not groups or len(groups) <= index:
            continue
        item = groups[index]
        for macro, keywords in (
            ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
            ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction")),
        ):
            found = item.get(macro)
            if found:
                for keyword in keywords:
                    if keyword in found[0]:
                        setattr(view, keyword, found[0][keyword].value)
    return view


def _first(value: Any) -> float:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 (LINEAR) and C.11.2.1.3 (LINEAR_EXACT, SIGMOID), output in [0, 1]."""
    function = function.strip().upper() or "LINEAR"
    if function == "SIGMOID":
        if width <= 0:
            raise _malformed("window width must be positive")
        return np.asarray(1.0 / (1.0 + np.exp(-4.0 * (values - center) / width)))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise _malformed("window width must be positive")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if function != "LINEAR":
        raise _poison(ErrorCode.DICOM_UNSUPPORTED_IMAGE, "VOI LUT function is not supported")
    if width < 1:
        raise _malformed("window width must be at least 1")
    center, width = center - 0.5, width - 1.0
    if width == 0:
        return np.where(values <= center, 0.0, 1.0)
    return np.clip((values - center) / width + 0.5, 0.0, 1.0)


def grayscale(frame: np.ndarray, view: Dataset) -> np.ndarray:
    """Modality LUT, then VOI LUT or window (or min-max), then MONOCHROME1 inversion: 8 bits."""
    values = np.asarray(apply_modality_lut(frame, view), dtype=np.float64)  # <= (2 x size)^2
    if "VOILUTSequence" in view:
        item = view.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        out = np.asarray(apply_voi(values, view, index=0), dtype=np.float64)
        out = np.clip(out / float(2 ** min(max(bits, 1), 16) - 1), 0.0, 1.0)
    elif "WindowCenter" in view and "WindowWidth" in view:
        function = str(view.get("VOILUTFunction", "LINEAR") or "LINEAR")
        out = window(values, _first(view.WindowCenter), _first(view.WindowWidth), function)
    else:
        low, high = float(values.min()), float(values.max())
        out = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if str(view.PhotometricInterpretation).strip().upper() == "MONOCHROME1":
        out = 1.0 - out
    return np.asarray(np.rint(out * 255.0), dtype=np.uint8)


def colour(frame: np.ndarray, ds: Dataset, geometry: _Geometry) -> np.ndarray:
    """RGB (pydicom converts YBR), or the palette's RGB; scaled to 8 bits."""
    if geometry.photometric == PALETTE:
        rgb = np.asarray(apply_color_lut(frame, ds))
        depth = 16 if rgb.dtype.itemsize > 1 else 8
    else:
        rgb, depth = frame, geometry.bits_stored
    if depth <= 8:
        return np.asarray(rgb, dtype=np.uint8)
    scaled = rgb.astype(np.float64) * (255.0 / float(2**depth - 1))
    return np.asarray(np.clip(np.rint(scaled), 0, 255), dtype=np.uint8)


def to_png(pixels: np.ndarray, size: int) -> bytes:
    """Fit ``pixels`` (H x W or H x W x 3, uint8) inside ``size`` x ``size`` on black."""
    img = Image.fromarray(pixels).convert("RGB")
    scale = size / max(img.size)
    fitted = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(fitted, Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(img, ((size - fitted[0]) // 2, (size - fitted[1]) // 2))
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


_UNDEFINED_LENGTH = 0xFFFFFFFF


def _check_lengths(ds: Dataset) -> None:
    """pydicom reads what is there when an element claims more bytes than the file holds: a
    lying length shows as a value shorter than its length field."""
    for dataset in (ds.file_meta, ds):
        for tag in list(dataset.keys()):
            raw = dataset.get_item(tag)
            if not isinstance(raw, RawDataElement) or raw.length == _UNDEFINED_LENGTH:
                continue
            if raw.value is not None and len(raw.value) != raw.length:
                raise _malformed("an element is longer than the file")


def read(data: bytes) -> Dataset:
    """Parse a Part 10 file (``DICOM_MALFORMED`` if it does not parse or is truncated)."""
    if not is_dicom_part10(data):
        raise _malformed("not a DICOM Part 10 file (no DICM preamble)")
    try:
        with _quiet():
            ds = pydicom.dcmread(io.BytesIO(data), force=False)
            _check_lengths(ds)
    except PoisonError:
        raise
    except Exception:  # noqa: BLE001 - hostile input: pydicom raises many types; none is kept
        raise _malformed("file cannot be parsed") from None
    if not len(ds):
        raise _malformed("file holds no dataset")
    return ds


def dicom_to_png(
    data: bytes,
    *,
    size: int,
    max_pixels: int,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> bytes:
    """Convert one DICOM Part 10 file to the image model's PNG (see the module docstring)."""
    budget = _Budget(time_budget_s)
    ds = read(data)
    try:
        with _quiet():
            return _convert(ds, size=size, max_pixels=max_pixels, budget=budget)
    except PoisonError:
        raise
    except (MemoryError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _poison(ErrorCode.IMAGE_TOO_LARGE, "image exceeds the decoder's limits") from None
    except Exception:  # noqa: BLE001 - hostile input: pydicom/numpy/Pillow raise many types
        raise _malformed("pixel data cannot be decoded") from None


def _convert(ds: Dataset, *, size: int, max_pixels: int, budget: _Budget) -> bytes:
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise _poison(ErrorCode.DICOM_UNSUPPORTED_IMAGE, "float pixel data is not supported")
        raise _poison(ErrorCode.DICOM_NO_PIXEL_DATA, "dataset has no Pixel Data")
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    plugin = SYNTAX_PLUGINS.get(syntax)
    if plugin is None:
        raise _poison(
            ErrorCode.DICOM_UNSUPPORTED_SYNTAX, "transfer syntax has no permissive decoder here"
        )
    geometry = _Geometry(ds, max_pixels=max_pixels)
    if plugin == "pillow":
        _check_codestream(ds, geometry)
    frame = np.asarray(pixel_array(ds, index=geometry.frame, decoding_plugin=plugin))
    budget.check()
    if frame.ndim == 3 and geometry.samples == 1:  # a decoder kept a frame axis of one
        frame = frame[0]
    # Keep every n-th pixel of a frame far larger than the output (at least twice the output
    # stays): the LUTs below are pointwise, so this is exact for them, and it bounds memory.
    step = max(1, min(geometry.rows, geometry.columns) // (2 * size))
    frame = frame[::step, ::step]
    if geometry.photometric in GRAY:
        pixels = grayscale(frame, _frame_view(ds, geometry.frame))
    else:
        pixels = colour(frame, ds, geometry)
    budget.check()
    png = to_png(pixels, size)
    budget.check()
    return png
