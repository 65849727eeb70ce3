"""snowflake-ml's own packaging round trip of the custom models (only where it is installed).

CI has no snowflake-ml-python, so this module skips there; in the deployment tool's venv
(``make models-venv`` plus pytest) it saves each model with ``ModelPackager`` the way
``log_model`` does (explicit signatures, artifacts, code path, pins), loads it back as the
inference server does, and runs ``predict``: the classes pass snowflake-ml's checks, the
artifacts arrive under their context keys, and the output column has the declared shape.
The weights are stood in for by directories whose ``config.json`` holds the checkpoints'
labels; ``ner.load_model`` / ``biomedclip.load_encoder`` are replaced by the tiny fakes.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("snowflake.ml.model._packager.model_packager")

from models_fakes import (
    BIOMEDCLIP_CONFIG,
    CHEMICAL_ID2LABEL,
    DISEASE_ID2LABEL,
    FakeTokenClassificationPipeline,
    TinyClipEncoder,
)
from PIL import Image
from snowflake.ml.model import custom_model
from snowflake.ml.model._packager import model_packager

from spcs_models import biomedclip, deploy, ner, signatures, spec, weights


def _fake_ner_load(dirs: list[str], *, labels: Any) -> ner.NerModel:
    tags = {"asthma": "B-DISEASE", "ibuprofen": "B-CHEMICAL"}
    pipes = []
    for d in dirs:
        id2label = json.loads((Path(d) / "config.json").read_text())["id2label"]
        outside = "0" if "0" in id2label.values() else "O"
        own = {word: label for word, label in tags.items() if label in id2label.values()}
        pipes.append(FakeTokenClassificationPipeline(id2label, own, outside=outside))
    return ner.NerModel([ner.PipelineTagger(p) for p in pipes], labels=labels)


def _save_and_load(deployment: spec.ModelDeployment, paths: dict[str, Path], where: Path) -> Any:
    model = deploy.build_model(deployment, paths)
    kwargs = deploy.log_kwargs(deployment, comment="test")
    model_packager.ModelPackager(str(where)).save(
        name=kwargs["model_name"],
        model=model,
        signatures=signatures.method_signatures(deployment),
        pip_requirements=kwargs["pip_requirements"],
        target_platforms=kwargs["target_platforms"],
        python_version=kwargs["python_version"],
        code_paths=kwargs["code_paths"],
        options=kwargs["options"],
    )
    packager = model_packager.ModelPackager(str(where))
    meta = packager.load()
    stored = {name: signatures.as_stored(sig) for name, sig in meta.signatures.items()}
    assert stored == {deployment.method: deployment.signature.to_dict()}
    # The pins as given, plus the packaging's own (cloudpickle, snowflake-ml-python) pinned
    # to the logging machine's versions.
    added = set(meta.env.pip_requirements) - set(deployment.pip_requirements)
    assert set(deployment.pip_requirements) <= set(meta.env.pip_requirements)
    assert {r.split("==")[0] for r in added} == {"cloudpickle", "snowflake-ml-python"}
    return packager.model


def test_ner_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ner, "load_model", _fake_ner_load)
    paths = {}
    for key, id2label in (
        (weights.NER_CHEMICAL_ARTIFACT, CHEMICAL_ID2LABEL),
        (weights.NER_DISEASE_ARTIFACT, DISEASE_ID2LABEL),
    ):
        paths[key] = tmp_path / "download" / key
        paths[key].mkdir(parents=True)
        (paths[key] / "config.json").write_text(json.dumps({"id2label": id2label}))
    loaded = _save_and_load(spec.NER, paths, tmp_path / "model")
    assert isinstance(loaded, custom_model.CustomModel)
    import pandas as pd

    out = loaded.predict(pd.DataFrame({"inputs": ["asthma, then ibuprofen", ""]}))
    assert list(out.columns) == ["outputs"]
    assert [[t["entity"] for t in row] for row in out["outputs"]] == [
        ["B-DISEASE", "B-CHEMICAL"],
        [],
    ]


def test_biomedclip_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def fake_encoder(model_dir: str, text_dir: str) -> TinyClipEncoder:
        config = json.loads((Path(model_dir) / biomedclip.CONFIG_FILE).read_text())
        biomedclip.check_open_clip_config(config)
        seen.append((model_dir, text_dir))
        return TinyClipEncoder()

    monkeypatch.setattr(biomedclip, "load_encoder", fake_encoder)
    clip = tmp_path / "download" / weights.CLIP_MODEL_ARTIFACT
    text = tmp_path / "download" / weights.CLIP_TEXT_ARTIFACT
    clip.mkdir(parents=True)
    text.mkdir(parents=True)
    (clip / biomedclip.CONFIG_FILE).write_text(json.dumps(BIOMEDCLIP_CONFIG))
    (text / "config.json").write_text(json.dumps({"model_type": "bert"}))
    loaded = _save_and_load(
        spec.BIOMEDCLIP,
        {weights.CLIP_MODEL_ARTIFACT: clip, weights.CLIP_TEXT_ARTIFACT: text},
        tmp_path / "model",
    )
    assert [Path(p).name for p in seen[-1]] == [
        weights.CLIP_MODEL_ARTIFACT,
        weights.CLIP_TEXT_ARTIFACT,
    ]
    assert not seen[-1][0].startswith(str(tmp_path / "download"))  # the bundled copy
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    import pandas as pd

    frame = pd.DataFrame(
        {
            "images": [base64.b64encode(buffer.getvalue()).decode()],
            "candidate_labels": [["pneumonia", "normal chest radiograph"]],
        }
    )
    out = loaded.predict(frame, hypothesis_template="a radiograph of {}")
    [row] = out["labels"].tolist()
    assert {r["label"] for r in row} == {"pneumonia", "normal chest radiograph"}
    assert sum(r["score"] for r in row) == pytest.approx(1.0)
