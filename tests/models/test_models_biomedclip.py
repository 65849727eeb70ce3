"""BiomedCLIP pre/post-processing with a tiny numpy encoder (no torch, no open_clip)."""

from __future__ import annotations

import base64
import copy
import io

import numpy as np
import pytest
from models_fakes import BIOMEDCLIP_CONFIG, TinyClipEncoder
from PIL import Image

from spcs_models import biomedclip, spec

MEAN = np.asarray(biomedclip.MEAN, dtype=np.float32)
STD = np.asarray(biomedclip.STD, dtype=np.float32)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def solid(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    return png(Image.new("RGB", size, colour))


def normalised(colour: tuple[int, int, int]) -> np.ndarray:
    return (np.asarray(colour, dtype=np.float32) / np.float32(255.0) - MEAN) / STD


# -- preprocessing ----------------------------------------------------------------------------


def test_preprocess_is_224x224x3_float32_normalised_with_openai_mean_std() -> None:
    colour = (10, 200, 30)
    pixels = biomedclip.ZeroShotClassifier(TinyClipEncoder()).prepare(solid((300, 200), colour))
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, np.broadcast_to(normalised(colour), pixels.shape), atol=1e-6)


def test_shortest_side_resize_then_center_crop_keeps_the_middle() -> None:
    # 448x224: already 224 on the short side (no resize); the crop keeps x in [112, 336).
    image = Image.new("RGB", (448, 224), (255, 0, 0))
    image.paste((0, 255, 0), (112, 0, 336, 224))
    image.paste((0, 0, 255), (336, 0, 448, 224))
    pixels = biomedclip.preprocess(image)
    np.testing.assert_allclose(
        pixels, np.broadcast_to(normalised((0, 255, 0)), pixels.shape), atol=1e-6
    )

    # 100x300 portrait: resized to 224x672 (long side truncated), crop rows [224, 448).
    tall = Image.new("RGB", (100, 300), (0, 0, 0))
    tall.paste((255, 255, 255), (0, 100, 100, 200))
    pixels = biomedclip.preprocess(tall)
    np.testing.assert_allclose(pixels[112, 112], normalised((255, 255, 255)), atol=1e-5)


def test_resize_matches_pil_bicubic_on_the_shortest_side() -> None:
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    expected = image.resize((298, 224), Image.Resampling.BICUBIC).crop((37, 0, 261, 224))
    np.testing.assert_allclose(
        biomedclip.preprocess(image),
        (np.asarray(expected, dtype=np.float32) / np.float32(255.0) - MEAN) / STD,
        atol=1e-6,
    )


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_every_pil_mode_becomes_three_rgb_channels(mode: str) -> None:
    image = Image.new("RGB", (64, 48), (120, 60, 30)).convert(mode)
    pixels = biomedclip.preprocess(image)
    assert pixels.shape == (224, 224, 3)
    assert np.isfinite(pixels).all()


def test_sixteen_bit_images_are_stretched_not_clipped_to_white() -> None:
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (256, 1))
    image = Image.fromarray(ramp)  # mode I;16, 12-bit data as radiographs store it
    assert image.mode.startswith("I;16")
    pixels = biomedclip.preprocess(image)
    # Left edge near black, right edge near white, not all white as a plain convert() gives.
    assert pixels[112, 0, 0] < normalised((20, 20, 20))[0]
    assert pixels[112, 223, 0] > normalised((235, 235, 235))[0]


# -- decoding -----------------------------------------------------------------------------------


def test_bytes_base64_data_url_hex_and_urlsafe_text_all_decode_to_the_same_image() -> None:
    data = solid((32, 32), (1, 2, 3))
    b64 = base64.b64encode(data).decode()
    variants = [
        data,
        bytearray(data),
        memoryview(data),
        b64,
        "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)),  # MIME line breaks
        f"data:image/png;base64,{b64}",
        data.hex(),
        data.hex().upper(),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
    ]
    for value in variants:
        assert biomedclip.decode_image_field(value) == data


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "image is empty"),
        ("  ", "image is empty"),
        (None, "image must be bytes, base64 text or hex text"),
        (12, "image must be bytes, base64 text or hex text"),
        ("%%%not base64%%%", "image text is neither base64 nor hex"),
    ],
)
def test_undecodable_image_fields_have_fixed_reasons(value: object, reason: str) -> None:
    with pytest.raises(biomedclip.BadInput) as info:
        biomedclip.decode_image_field(value)
    assert str(info.value) == reason


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(biomedclip.BadInput, match="pixel limit"):
        biomedclip.open_image(solid((100, 100), (0, 0, 0)), max_pixels=9_999)


# -- template, scores, ordering -------------------------------------------------------------------


def test_template_must_hold_exactly_one_empty_field() -> None:
    assert biomedclip.validate_template(spec.BIOMEDCLIP_TEMPLATE) == "this is a photo of {}"
    assert biomedclip.format_prompts(spec.BIOMEDCLIP_TEMPLATE, ["chest X-ray", "{odd}"]) == [
        "this is a photo of chest X-ray",
        "this is a photo of {odd}",
    ]
    assert biomedclip.format_prompts("{{literal}} {}", ["x"]) == ["{literal} x"]
    for bad in ["no field", "{} and {}", "{0}", "{label}", "{:>99999}", "{!r}", "{", 7]:
        with pytest.raises(ValueError, match="hypothesis_template"):
            biomedclip.validate_template(bad)


def test_zero_shot_scores_are_softmax_of_scaled_cosine() -> None:
    image = np.array([3.0, 4.0])
    texts = np.array([[3.0, 4.0], [-4.0, 3.0], [0.0, 2.0]])
    scores = biomedclip.zero_shot_scores(image, texts, logit_scale=10.0)
    cos = np.array([1.0, 0.0, 0.8])
    expected = np.exp(10 * cos) / np.exp(10 * cos).sum()
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert scores.sum() == pytest.approx(1.0)


def test_rank_labels_sorts_by_score_and_keeps_order_on_ties() -> None:
    ranked = biomedclip.rank_labels(["a", "b", "c", "d"], [0.1, 0.4, 0.1, 0.4])
    assert ranked == [
        {"label": "b", "score": 0.4},
        {"label": "d", "score": 0.4},
        {"label": "a", "score": 0.1},
        {"label": "c", "score": 0.1},
    ]


def test_predict_end_to_end_with_a_tiny_encoder() -> None:
    encoder = TinyClipEncoder()
    classifier = biomedclip.ZeroShotClassifier(encoder)
    red, blue = solid((64, 80), (220, 20, 20)), solid((50, 50), (20, 20, 220))
    labels = ["pneumonia", "normal chest radiograph", "pleural effusion"]
    result = classifier.predict(
        [red, base64.b64encode(blue).decode(), red.hex()], [labels, labels[:2], labels]
    )
    assert [len(r) for r in result] == [3, 2, 3]
    for row, row_labels in zip(result, [labels, labels[:2], labels], strict=True):
        assert sorted(r["label"] for r in row) == sorted(row_labels)
        scores = [r["score"] for r in row]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0)
        assert all(type(s) is float for s in scores)
    # The same image as bytes and as hex text: the same answer (up to BLAS rounding).
    assert [r["label"] for r in result[0]] == [r["label"] for r in result[2]]
    np.testing.assert_allclose(
        [r["score"] for r in result[0]], [r["score"] for r in result[2]], rtol=1e-9
    )
    # One batch of images; each distinct prompt encoded once, with the default template.
    assert encoder.image_batches == [(3, 224, 224, 3)]
    [prompts] = encoder.text_batches
    assert sorted(prompts) == sorted(f"this is a photo of {label}" for label in labels)

    # The scores are exactly softmax(logit_scale * cos) of the encoder's embeddings.
    pixels = classifier.prepare(red)[None]
    img = encoder.encode_images(pixels)[0]
    txt = encoder.encode_texts([f"this is a photo of {label}" for label in labels])
    expected = biomedclip.zero_shot_scores(img, txt, encoder.logit_scale)
    by_label = {r["label"]: r["score"] for r in result[0]}
    np.testing.assert_allclose([by_label[label] for label in labels], expected, rtol=1e-9)


def test_template_parameter_changes_the_prompts() -> None:
    encoder = TinyClipEncoder()
    classifier = biomedclip.ZeroShotClassifier(encoder)
    image = solid((40, 40), (90, 90, 90))
    classifier.predict([image], [["a", "b"]], hypothesis_template="an x-ray showing {}.")
    assert sorted(encoder.text_batches[-1]) == ["an x-ray showing a.", "an x-ray showing b."]


def test_bad_template_fails_the_request_before_any_encoding() -> None:
    encoder = TinyClipEncoder()
    with pytest.raises(ValueError, match="hypothesis_template"):
        biomedclip.ZeroShotClassifier(encoder).predict(
            [solid((8, 8), (0, 0, 0))], [["a"]], hypothesis_template="no placeholder"
        )
    assert encoder.image_batches == []
    assert encoder.text_batches == []


def test_bad_rows_are_named_with_fixed_reasons_and_no_model_time() -> None:
    encoder = TinyClipEncoder()
    good = solid((30, 30), (5, 5, 5))
    canary = "CANARY-PATIENT-SMITH"
    not_an_image = canary.encode() * 4
    with pytest.raises(biomedclip.RowErrors) as info:
        biomedclip.ZeroShotClassifier(encoder).predict(
            [good, not_an_image, base64.b64encode(not_an_image).decode(), good, good, good],
            [["a"], ["a"], ["a"], "a single string", ["a", "a"], [""]],
        )
    assert info.value.errors == {
        1: "image could not be decoded",
        2: "image could not be decoded",
        3: "candidate_labels must be a list of text",
        4: "candidate_labels must not repeat",
        5: "candidate_labels must be non-empty text",
    }
    assert canary not in str(info.value)
    assert encoder.image_batches == []


def test_each_image_needs_its_own_labels() -> None:
    with pytest.raises(ValueError, match="its own candidate labels"):
        biomedclip.ZeroShotClassifier(TinyClipEncoder()).predict([b"x"], [])


def test_numpy_arrays_of_labels_are_accepted() -> None:
    result = biomedclip.ZeroShotClassifier(TinyClipEncoder()).predict(
        [solid((20, 20), (1, 1, 1))], [np.array(["a", "b"], dtype=object)]
    )
    assert {r["label"] for r in result[0]} == {"a", "b"}


# -- the bundled open_clip config -----------------------------------------------------------------


def test_published_biomedclip_config_matches_this_preprocessing() -> None:
    model_cfg = biomedclip.check_open_clip_config(BIOMEDCLIP_CONFIG)
    assert model_cfg["text_cfg"]["context_length"] == biomedclip.CONTEXT_LENGTH == 256


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("preprocess_cfg", "mean"), [0.5, 0.5, 0.5], "mean"),
        (("preprocess_cfg", "interpolation"), "bilinear", "interpolation"),
        (("model_cfg", "vision_cfg", "image_size"), 384, "image_size"),
        (("model_cfg", "text_cfg", "context_length"), 77, "context_length"),
    ],
)
def test_a_config_this_code_does_not_implement_is_refused(
    path: tuple[str, ...], value: object, message: str
) -> None:
    config = copy.deepcopy(BIOMEDCLIP_CONFIG)
    target: dict[str, object] = config
    for key in path[:-1]:
        target = target[key]  # type: ignore[assignment]
    target[path[-1]] = value
    with pytest.raises(biomedclip.ConfigError, match=message):
        biomedclip.check_open_clip_config(config)


def test_prompt_embeddings_are_reused_across_requests() -> None:
    encoder = TinyClipEncoder()
    classifier = biomedclip.ZeroShotClassifier(encoder, text_cache_size=3)
    image = [solid((16, 16), (3, 3, 3))]
    first = classifier.predict(image, [["a", "b"]])
    assert classifier.predict(image, [["b", "a"]])[0] == first[0]
    classifier.predict(image, [["a", "c"]])
    assert encoder.text_batches == [
        ["this is a photo of a", "this is a photo of b"],
        ["this is a photo of c"],
    ]
    classifier.predict(image, [["d"]])  # evicts the least recently used prompt ("b")
    classifier.predict(image, [["b"]])
    assert encoder.text_batches[-1] == ["this is a photo of b"]
