"""DICOM intake (``spcs_gateway.ehr.dicom``): the grayscale pipeline (modality LUT, VOI LUT or
window, MONOCHROME1), colour (YBR, palette), the frame rule, the output, every refusal, and that
no patient tag reaches an error, a log line or a warning."""

from __future__ import annotations

import io
import logging
import struct
import warnings
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
)

from spcs_gateway.ehr.dicom import dicom_to_png, window
from spcs_gateway.errors import ErrorCode, PoisonError
from spcs_local.stack import ehr_feed

CANARY = "CanaryPatientName7731"


def build(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    syntax: str = ExplicitVRLittleEndian,
    pixel_data: bytes | None = None,
    **attrs: Any,
) -> bytes:
    """A Part 10 file around ``pixels`` (frames x rows x cols [x 3] or rows x cols [x 3])."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "2.25.1"
    ds.PatientName = f"{CANARY}^Jane"
    ds.PatientID = f"{CANARY}-id"
    ds.PhotometricInterpretation = photometric
    if pixels is not None:
        colour = photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
        frames = pixels.ndim == (4 if colour else 3)
        shape = pixels.shape[1:] if frames else pixels.shape
        ds.Rows, ds.Columns = shape[0], shape[1]
        if frames:
            ds.NumberOfFrames = pixels.shape[0]
        ds.SamplesPerPixel = 3 if colour else 1
        if colour:
            ds.PlanarConfiguration = 0
        bits = pixels.dtype.itemsize * 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
        ds.PixelData = pixel_data if pixel_data is not None else pixels.tobytes()
        ds["PixelData"].VR = "OB" if bits == 8 or pixel_data is not None else "OW"
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    ds.file_meta = meta
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def convert(data: bytes, size: int = 8, **kwargs: Any) -> np.ndarray:
    png = dicom_to_png(data, size=size, max_pixels=kwargs.pop("max_pixels", 10**6), **kwargs)
    with Image.open(io.BytesIO(png)) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", (size, size))
        return np.asarray(img)


def gray(data: bytes) -> list[int]:
    """Row 0 of an 8-pixel-wide image converted at its own size: the gray levels."""
    out = convert(data, size=8)
    assert (out[..., 0] == out[..., 1]).all()
    assert (out[..., 0] == out[..., 2]).all()
    return [int(v) for v in out[0, :, 0]]


def refusal(data: bytes, **kwargs: Any) -> PoisonError:
    with pytest.raises(PoisonError) as caught:
        dicom_to_png(data, size=8, max_pixels=kwargs.pop("max_pixels", 10**6), **kwargs)
    assert CANARY not in str(caught.value)
    assert caught.value.__cause__ is None
    return caught.value


RAMP = np.tile(np.arange(0, 800, 100, dtype=np.int16), (8, 1))  # 0 .. 700, 8 x 8


# -- grayscale -------------------------------------------------------------------------------


def test_min_max_without_voi() -> None:
    assert gray(build(RAMP)) == [0, 36, 73, 109, 146, 182, 219, 255]


def test_modality_lut_then_window() -> None:
    # Rescale to -1000 .. -300 HU; window center -800, width 300 (LINEAR: -950.5 .. -650.5).
    data = build(
        RAMP, RescaleSlope="1", RescaleIntercept="-1000", WindowCenter="-800", WindowWidth="300"
    )
    assert gray(data) == [0, 43, 128, 213, 255, 255, 255, 255]


def test_first_of_several_windows_and_linear_exact() -> None:
    data = build(RAMP, WindowCenter=["350", "0"], WindowWidth=["700", "1"])
    assert gray(data) == [0, 36, 73, 109, 146, 182, 219, 255]
    exact = build(RAMP, WindowCenter="350", WindowWidth="700", VOILUTFunction="LINEAR_EXACT")
    assert gray(exact) == [0, 36, 73, 109, 146, 182, 219, 255]


def test_window_formulas_follow_the_standard() -> None:
    x = np.array([-1.0, 0.0, 0.5, 1.0, 100.0])
    # LINEAR, C = 0.5, W = 2: y = ((x - 0) / 1 + 0.5), below -0.5 -> 0, above 0.5 -> 1.
    assert window(x, 0.5, 2.0, "LINEAR").tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert window(x, 0.5, 1.0, "LINEAR").tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # a threshold
    assert window(x, 0.0, 2.0, "LINEAR_EXACT").tolist() == [0.0, 0.5, 0.75, 1.0, 1.0]
    sigmoid = window(x, 0.0, 4.0, "SIGMOID")
    assert sigmoid[1] == 0.5
    assert 0.26 < sigmoid[0] < 0.27  # 1 / (1 + e)
    assert sigmoid[-1] == pytest.approx(1.0)


def test_voi_lut_sequence_wins_over_a_window() -> None:
    item = Dataset()
    item.add_new(0x00283002, "US", [8, 0, 8])  # 8 entries from 0, 8 bits
    item.add_new(0x00283006, "US", [255, 200, 150, 100, 50, 25, 10, 0])
    ramp = np.tile(np.arange(8, dtype=np.uint16), (8, 1))
    data = build(ramp, VOILUTSequence=[item], WindowCenter="4", WindowWidth="8")
    assert gray(data) == [255, 200, 150, 100, 50, 25, 10, 0]


def test_monochrome1_is_inverted() -> None:
    assert gray(build(RAMP, photometric="MONOCHROME1")) == [255, 219, 182, 146, 109, 73, 36, 0]


def test_flat_image_is_black_not_a_division_by_zero() -> None:
    assert gray(build(np.full((8, 8), 7, dtype=np.uint16))) == [0] * 8


def test_multi_frame_uses_the_middle_frame_and_its_functional_groups() -> None:
    frames = np.stack([np.full((8, 8), v, dtype=np.uint8) for v in (10, 20, 30, 40, 50)])
    frames[:, :, :4] = 0
    assert gray(build(frames)) == [0, 0, 0, 0, 255, 255, 255, 255]  # frame 2 (value 30)

    def group(center: str, width: str) -> Dataset:
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        item = Dataset()
        item.FrameVOILUTSequence = [voi]
        return item

    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept = "2", "0"
    shared.PixelValueTransformationSequence = [transform]
    per_frame = [group("1000", "10") for _ in range(5)]
    per_frame[2] = group("30", "60")  # frame 2 after the x2 rescale: 0 and 60 -> 0 and 255
    data = build(
        frames,
        SharedFunctionalGroupsSequence=[shared],
        PerFrameFunctionalGroupsSequence=per_frame,
    )
    assert gray(data) == [0, 0, 0, 0, 255, 255, 255, 255]


# -- colour ----------------------------------------------------------------------------------


def _rgb() -> np.ndarray:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = np.arange(0, 256, 32, dtype=np.uint8)
    rgb[..., 1] = 200
    rgb[..., 2] = 30
    return rgb


def test_rgb_and_ybr_full_give_the_same_rgb() -> None:
    from pydicom.pixels import convert_color_space

    rgb = convert(build(_rgb(), photometric="RGB"))
    assert rgb[0, :, 1].tolist() == [200] * 8
    ybr = convert(build(convert_color_space(_rgb(), "RGB", "YBR_FULL"), photometric="YBR_FULL"))
    assert np.abs(rgb.astype(int) - ybr.astype(int)).max() <= 2


def test_jpeg_baseline_and_jpeg_2000_decode_with_pillow() -> None:
    out = io.BytesIO()
    Image.fromarray(_rgb(), "RGB").save(out, format="JPEG", quality=98, subsampling=0)
    jpeg = build(
        _rgb(),
        photometric="YBR_FULL_422",
        syntax=JPEGBaseline8Bit,
        pixel_data=encapsulate([out.getvalue()]),
    )
    assert np.abs(convert(jpeg)[..., 1].astype(int) - 200).max() <= 6
    mono = np.tile(np.arange(0, 4096, 512, dtype=np.uint16), (8, 1))
    j2k = io.BytesIO()
    Image.fromarray(mono).save(j2k, format="JPEG2000", irreversible=False, no_jp2=True)
    data = build(mono, syntax=JPEG2000Lossless, pixel_data=encapsulate([j2k.getvalue()]))
    assert gray(data) == [0, 36, 73, 109, 146, 182, 219, 255]


def test_palette_colour_goes_through_its_lut() -> None:
    index = np.tile(np.arange(8, dtype=np.uint8), (8, 1))
    lut = {
        "Red": [i * 32 * 257 for i in range(8)],
        "Green": [100 * 257] * 8,
        "Blue": [(7 - i) * 32 * 257 for i in range(8)],
    }
    attrs: dict[str, Any] = {}
    for colour, values in lut.items():
        attrs[f"{colour}PaletteColorLookupTableDescriptor"] = [8, 0, 16]
        attrs[f"{colour}PaletteColorLookupTableData"] = np.array(values, np.uint16).tobytes()
    out = convert(build(index, photometric="PALETTE COLOR", **attrs))
    assert out[0, :, 0].tolist() == [i * 32 for i in range(8)]
    assert out[0, :, 1].tolist() == [100] * 8


def test_every_feed_kind_converts_to_the_model_size() -> None:
    for kind in ("ct", "mono1", "rgb", "ybr", "multiframe_rle", "jpeg", "voi_lut"):
        out = convert(ehr_feed.dicom_file(kind), size=224)
        assert out.shape == (224, 224, 3), kind


def test_the_image_is_fitted_and_centred_on_black() -> None:
    wide = np.full((4, 8), 255, dtype=np.uint8)
    wide[0, 0] = 0  # so min-max keeps the rest white
    out = convert(build(wide), size=8)
    assert out[:2, :, 0].max() == 0  # letterbox above
    assert out[-2:, :, 0].max() == 0  # and below
    assert out[3, 4, 0] == 255


# -- refusals --------------------------------------------------------------------------------


def test_not_part_10_and_unparseable_files_are_malformed() -> None:
    good = build(RAMP)
    assert refusal(b"").code is ErrorCode.DICOM_MALFORMED
    assert refusal(good[128:]).code is ErrorCode.DICOM_MALFORMED  # no preamble
    assert refusal(good[:140]).code is ErrorCode.DICOM_MALFORMED  # truncated in the meta
    assert refusal(good[: len(good) - 50]).code is ErrorCode.DICOM_MALFORMED  # short pixels


def _lying(data: bytes, tag: tuple[int, int], length: int) -> bytes:
    """Rewrite the (explicit VR, 4-byte) length of ``tag`` in ``data``."""
    marker = struct.pack("<HH", *tag)
    at = data.index(marker, 132)
    vr = data[at + 4 : at + 6]
    assert vr in (b"OB", b"OW", b"SQ", b"UN", b"UT")
    return data[: at + 8] + struct.pack("<I", length) + data[at + 12 :]


@pytest.mark.parametrize("length", [0xFFFFFFF0, 0x7FFFFFFF, 3, 0])
def test_lying_pixel_data_lengths_are_malformed(length: int) -> None:
    err = refusal(_lying(build(RAMP), (0x7FE0, 0x0010), length))
    assert err.code in (ErrorCode.DICOM_MALFORMED, ErrorCode.DICOM_NO_PIXEL_DATA)


def test_a_lying_element_length_before_the_pixels() -> None:
    data = build(RAMP, ImageComments="x" * 40)  # LT: 2-byte length
    at = data.index(struct.pack("<HH", 0x0020, 0x4000), 132)
    lying = data[: at + 6] + struct.pack("<H", 0xFFFF) + data[at + 8 :]
    assert refusal(lying).code is ErrorCode.DICOM_MALFORMED


def test_no_pixel_data_and_float_pixel_data() -> None:
    assert refusal(build(None)).code is ErrorCode.DICOM_NO_PIXEL_DATA
    floats = build(None, FloatPixelData=np.zeros(4, np.float32).tobytes(), Rows=2, Columns=2)
    assert refusal(floats).code is ErrorCode.DICOM_UNSUPPORTED_IMAGE


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEGLSLossless, "1.2.840.10008.1.2.4.100"])
def test_syntaxes_without_a_permissive_decoder(syntax: str) -> None:
    data = build(RAMP, syntax=syntax, pixel_data=encapsulate([b"\xff\xd8" + bytes(32)]))
    assert refusal(data).code is ErrorCode.DICOM_UNSUPPORTED_SYNTAX


@pytest.mark.parametrize(
    "attrs",
    [
        {"PhotometricInterpretation": "YBR_PARTIAL_420"},
        {"PhotometricInterpretation": "HSV"},
        {"PhotometricInterpretation": "RGB"},  # with one sample per pixel
        {"BitsAllocated": 64},
        {"VOILUTFunction": "CUBIC", "WindowCenter": "1", "WindowWidth": "2"},
    ],
)
def test_unsupported_images(attrs: dict[str, Any]) -> None:
    assert refusal(build(RAMP, **attrs)).code is ErrorCode.DICOM_UNSUPPORTED_IMAGE


@pytest.mark.parametrize(
    "attrs",
    [
        {"Rows": 0},
        {"WindowCenter": "1", "WindowWidth": "0"},
    ],
)
def test_malformed_attributes(attrs: dict[str, Any]) -> None:
    assert refusal(build(RAMP, **attrs)).code is ErrorCode.DICOM_MALFORMED


def test_pixel_frame_and_time_caps() -> None:
    assert refusal(build(RAMP), max_pixels=63).code is ErrorCode.IMAGE_TOO_LARGE
    huge = build(RAMP, Rows=60_000, Columns=60_000)
    assert refusal(huge).code is ErrorCode.IMAGE_TOO_LARGE  # refused before any decoding
    many = build(RAMP, NumberOfFrames=10_001)
    assert refusal(many).code is ErrorCode.IMAGE_TOO_LARGE
    assert refusal(build(RAMP), time_budget_s=-1).code is ErrorCode.IMAGE_TOO_LARGE


def test_a_codestream_larger_than_the_dataset_claims_is_refused() -> None:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(out, format="JPEG")
    data = build(
        _rgb(),
        photometric="YBR_FULL_422",
        syntax=JPEGBaseline8Bit,
        pixel_data=encapsulate([out.getvalue()]),
    )
    assert refusal(data).code is ErrorCode.DICOM_MALFORMED


def test_patient_tags_never_reach_errors_logs_or_warnings(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's writer warns about the odd values, here
        cases = [
            build(RAMP, PatientBirthDate=CANARY, PatientAge=CANARY),
            build(RAMP, PatientSex=CANARY * 3, SpecificCharacterSet=CANARY),
            _lying(build(RAMP), (0x7FE0, 0x0010), 0xFFFFFFF0),
            build(RAMP, photometric=CANARY),
            build(RAMP, VOILUTFunction=CANARY, WindowCenter="1", WindowWidth="2"),
        ]
    capsys.readouterr()
    caplog.set_level(logging.DEBUG)

    def outcome(data: bytes) -> str:
        try:
            dicom_to_png(data, size=8, max_pixels=10**6)
        except PoisonError as err:
            return str(err)
        return "converted"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = [outcome(data) for data in cases]
    out = capsys.readouterr()
    assert "converted" in outcomes  # odd patient tags do not stop a conversion
    assert any("DICOM_" in text for text in outcomes)
    seen = "\n".join([*outcomes, caplog.text, out.out, out.err, *(str(w.message) for w in caught)])
    assert CANARY not in seen
