"""The real loading code against the real libraries, on tiny checkpoints built here.

Skips unless torch, transformers and open_clip are installed (never in CI). Nothing is
downloaded: the BERT token classifiers and the CLIP model are built with random or engineered
weights, saved like the published checkpoints, and loaded through ``ner.load_model`` and
``biomedclip.load_encoder`` exactly as the service does. Checks:

* NER: the transformers pipeline's output goes through label normalisation (the disease
  checkpoint's digit ``0``), offsets and windows; a 16-position BERT would fail on any window
  longer than its positions, so long texts prove the windowing;
* BiomedCLIP: ``load_encoder`` builds the model from the published ``open_clip_config.json``
  (text tower names pointing at the Hub) with ``HF_HUB_OFFLINE=1``; the numpy preprocessing
  equals open_clip's own eval transform; the scores equal open_clip's forward pass.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")

from models_fakes import BIOMEDCLIP_CONFIG, tokens  # noqa: E402
from PIL import Image  # noqa: E402

from spcs_models import biomedclip, ner  # noqa: E402

WORDS = ["asthma", "ibuprofen", "the", "child", "has", "and", "takes", "daily", "kawasaki"]


def _bert_dir(
    tmp: Path, name: str, id2label: dict[int, str], marked: dict[str, int], *, positions: int
) -> str:
    """A zero-layer BERT token classifier whose ``marked`` words get the given label id and
    every other token the last label id."""
    path = tmp / name
    path.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(
        vocab_file=str(path / "vocab.txt"), do_lower_case=True
    )
    tokenizer.save_pretrained(str(path))
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=len(id2label) * 4,
        num_hidden_layers=0,
        num_attention_heads=1,
        intermediate_size=8,
        max_position_embeddings=positions,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    model = transformers.BertForTokenClassification(config)
    outside = len(id2label) - 1
    with torch.no_grad():
        model.bert.embeddings.position_embeddings.weight.zero_()
        model.bert.embeddings.token_type_embeddings.weight.zero_()
        emb = model.bert.embeddings.word_embeddings.weight
        emb.zero_()
        emb[:, outside * 4] = 1.0  # every token leans to "outside" ...
        for word, label in marked.items():
            emb[vocab.index(word)] = 0.0
            emb[vocab.index(word), label * 4] = 10.0  # ... marked words to their label
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        for label in range(len(id2label)):
            model.classifier.weight[label, label * 4] = 1.0
    model.save_pretrained(str(path))
    return str(path)


@pytest.fixture
def ner_model(tmp_path: Path) -> ner.NerModel:
    disease = _bert_dir(
        tmp_path,
        "disease",
        {0: "B-DISEASE", 1: "I-DISEASE", 2: "0"},
        {"asthma": 0, "kawasaki": 0},
        positions=16,
    )
    chemical = _bert_dir(
        tmp_path,
        "chemical",
        {0: "B-CHEMICAL", 1: "I-CHEMICAL", 2: "O"},
        {"ibuprofen": 0},
        positions=16,
    )
    return ner.load_model([chemical, disease], loader=lambda d: ner.load_pipeline(d, device=-1))


def test_real_pipelines_merge_normalised_labels_with_offsets(ner_model: ner.NerModel) -> None:
    text = "The child has asthma and takes ibuprofen daily."
    [result] = ner_model.predict([text])
    assert [(t["word"], t["entity"], t["start"], t["end"]) for t in result] == [
        ("asthma", "B-DISEASE", 14, 20),
        ("ibuprofen", "B-CHEMICAL", 31, 40),
    ]
    assert [t["index"] for t in result] == [4, 7]
    assert all(type(t["score"]) is float and t["score"] > 0.9 for t in result)


def test_real_pipelines_window_long_texts_past_the_position_limit(
    ner_model: ner.NerModel,
) -> None:
    text = " ".join(["the child has asthma and takes ibuprofen daily ."] * 12)
    [result] = ner_model.predict([text])
    assert len(result) == 24
    positions = {m.start(): i for i, m in enumerate(tokens(text), start=1)}
    for token in result:
        assert text[token["start"] : token["end"]] == token["word"]
        assert token["index"] == positions[token["start"]]


def test_real_untrained_head_fails_loading(tmp_path: Path) -> None:
    chemical = _bert_dir(
        tmp_path, "chem", {0: "B-CHEMICAL", 1: "I-CHEMICAL", 2: "O"}, {}, positions=16
    )
    untrained = _bert_dir(tmp_path, "untrained", {0: "LABEL_0", 1: "LABEL_1"}, {}, positions=16)
    with pytest.raises(ner.CheckpointError, match="untrained"):
        ner.load_model([chemical, untrained], loader=lambda d: ner.load_pipeline(d, device=-1))


# -- BiomedCLIP through open_clip --------------------------------------------------------------


def _clip_dirs(tmp: Path) -> tuple[str, str, dict[str, Any]]:
    """A small CustomTextCLIP in BiomedCLIP's layout: the published config (Hub names in
    text_cfg), random weights, the tokenizer files, and a text config dir."""
    model_dir, text_dir = tmp / "biomedclip", tmp / "biomedclip_text"
    model_dir.mkdir()
    text_dir.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "this", "is", "a", "photo", "of"]
    vocab += ["pneumonia", "normal", "chest", "radiograph", "effusion", "x", "-", "ray"]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(model_dir / "vocab.txt")).save_pretrained(
        str(model_dir)
    )
    transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=256,
    ).save_pretrained(str(text_dir))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (text_dir / name).write_bytes((model_dir / name).read_bytes())

    config = copy.deepcopy(BIOMEDCLIP_CONFIG)
    config["model_cfg"]["embed_dim"] = 16
    config["model_cfg"]["vision_cfg"]["timm_model_name"] = "vit_tiny_patch16_224"
    (model_dir / "open_clip_config.json").write_text(json.dumps(config))

    local_cfg = copy.deepcopy(config["model_cfg"])
    local_cfg["text_cfg"]["hf_model_name"] = str(text_dir)
    local_cfg["text_cfg"]["hf_tokenizer_name"] = str(text_dir)
    open_clip.factory._MODEL_CONFIGS["spcs-test-build"] = local_cfg
    torch.manual_seed(0)
    model = open_clip.create_model("spcs-test-build", pretrained_text=False)
    torch.save(model.state_dict(), model_dir / "open_clip_pytorch_model.bin")
    return str(model_dir), str(text_dir), config


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (300, 257, 3), dtype=np.uint8))
    return [
        rgb,
        rgb.convert("RGBA"),
        rgb.convert("L"),
        rgb.convert("P"),
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (90, 400, 3), dtype=np.uint8)),
    ]


def test_numpy_preprocessing_equals_open_clips_eval_transform() -> None:
    transform = open_clip.image_transform(
        224,
        is_train=False,
        mean=biomedclip.MEAN,
        std=biomedclip.STD,
        resize_mode="shortest",
        interpolation="bicubic",
    )
    for image in _images():
        expected = transform(image).numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(biomedclip.preprocess(image), expected, atol=1e-6)


def test_load_encoder_offline_and_scores_equal_open_clips_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir, text_dir, _ = _clip_dirs(tmp_path)
    encoder = biomedclip.load_encoder(model_dir, text_dir, device="cpu")
    classifier = biomedclip.ZeroShotClassifier(encoder)
    labels = ["pneumonia", "normal chest radiograph", "pleural effusion"]
    image = _images()[0]
    pixels = biomedclip.preprocess(image)
    [ranked] = classifier.predict([_png(image)], [labels])
    assert sum(r["score"] for r in ranked) == pytest.approx(1.0)

    # The same through open_clip itself: model(images, texts) -> softmax(scale * img @ txt.T).
    model = encoder._model
    tokenizer = open_clip.get_tokenizer("spcs-biomedclip-local")
    prompts = [f"this is a photo of {label}" for label in labels]
    with torch.no_grad():
        img_f, txt_f, scale = model(
            torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy()),
            tokenizer(prompts, context_length=256),
        )
        probs = (scale * img_f @ txt_f.T).softmax(dim=-1)[0].numpy()
    by_label = {r["label"]: r["score"] for r in ranked}
    np.testing.assert_allclose([by_label[label] for label in labels], probs, atol=1e-5)
    assert tokenizer(["x"], context_length=256).shape == (1, 256)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
