"""Where each model's files come from, and how they are fetched and checked before logging.

Weights are downloaded on the operator's machine at deploy time (``fetch``), checked
(``validate``) and bundled into the Model Registry as artifacts of the custom model; the
inference container never reaches the Hugging Face Hub. Nothing is downloaded at import time.

``revision`` is a full commit id where one could be stated (read from Hub metadata), else None:
the tool then resolves the branch head at deploy time, downloads exactly that commit and
reports it (stderr and the model version's comment), so the operator can pin it here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spcs_models import spec

__all__ = [
    "CLIP_MODEL_ARTIFACT",
    "CLIP_TEXT_ARTIFACT",
    "CLIP_TEXT_TOKENIZER_FILES",
    "NER_CHEMICAL_ARTIFACT",
    "NER_DISEASE_ARTIFACT",
    "SOURCES",
    "FetchedArtifact",
    "WeightSource",
    "WeightsError",
    "assemble_clip_text_dir",
    "check_required_files",
    "fetch",
    "validate",
]


class WeightsError(RuntimeError):
    """Downloaded files are missing or do not describe the model the service promises."""


# Context keys (= bundled directory names) the serving classes read.
NER_CHEMICAL_ARTIFACT = "biobert_chemical_ner"
NER_DISEASE_ARTIFACT = "biobert_diseases_ner"
CLIP_MODEL_ARTIFACT = "biomedclip"
CLIP_TEXT_ARTIFACT = "biomedclip_text"


@dataclass(frozen=True)
class WeightSource:
    artifact: str  # the custom model's context key, and the bundled directory's name
    repo_id: str
    revision: str | None  # full commit id, or None: resolved at deploy time and reported
    files: tuple[str, ...]  # allow patterns for the download
    required: tuple[tuple[str, ...], ...]  # each group: at least one of these must exist
    licence: str
    size_note: str

    def plan(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "repo_id": self.repo_id,
            "revision": self.revision or "unpinned: the branch head, resolved and reported",
            "files": list(self.files),
            "licence": self.licence,
            "size": self.size_note,
        }


_BERT_TOKEN_CLASSIFIER_FILES = (
    "config.json",
    "pytorch_model.bin",
    "model.safetensors",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_BERT_REQUIRED = (("config.json",), ("pytorch_model.bin", "model.safetensors"), ("vocab.txt",))

# Commits from the Hub's model metadata (the "sha" of each repo, last modified 2021-07-07);
# both hold config.json, pytorch_model.bin, vocab.txt, tokenizer_config.json and
# special_tokens_map.json. The chemical repo also carries TensorFlow weights later: not fetched.
NER_SOURCES = (
    WeightSource(
        artifact=NER_CHEMICAL_ARTIFACT,
        repo_id="alvaroalon2/biobert_chemical_ner",
        revision="f34bbf172059e8f6418c43efa925122feb46842b",
        files=_BERT_TOKEN_CLASSIFIER_FILES,
        required=_BERT_REQUIRED,
        licence="Apache-2.0",
        size_note="BERT-base (BioBERT v1.1 cased), ~108M parameters, ~430 MB fp32",
    ),
    WeightSource(
        artifact=NER_DISEASE_ARTIFACT,
        repo_id="alvaroalon2/biobert_diseases_ner",
        revision="ce0fd86ac9e145d1a6ca3455219843e0a855471f",
        files=_BERT_TOKEN_CLASSIFIER_FILES,
        required=_BERT_REQUIRED,
        licence="Apache-2.0",
        size_note="BERT-base (BioBERT v1.1 cased), ~108M parameters, ~430 MB fp32",
    ),
)

# The tokenizer files BiomedCLIP publishes for loading from local files.
CLIP_TEXT_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
CLIP_SOURCES = (
    WeightSource(
        artifact=CLIP_MODEL_ARTIFACT,
        repo_id="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        revision=None,
        files=(
            "open_clip_config.json",
            "open_clip_pytorch_model.bin",
            *CLIP_TEXT_TOKENIZER_FILES,
            "LICENSE.md",
        ),
        required=(("open_clip_config.json",), ("open_clip_pytorch_model.bin",), ("vocab.txt",)),
        licence="MIT",
        size_note="ViT-B/16 + PubMedBERT, ~196M parameters, 784 MB checkpoint",
    ),
    # Only the text tower's Hugging Face config: open_clip builds the (empty) BERT from it and
    # then loads BiomedCLIP's checkpoint into it. Commit from the Hub's metadata of the repo
    # under its former name BiomedNLP-PubMedBERT-base-uncased-abstract (2021-09-22).
    WeightSource(
        artifact=CLIP_TEXT_ARTIFACT,
        repo_id="microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
        revision="3be15ab62caee5db1d45f923410798cdea920010",
        files=("config.json",),
        required=(("config.json",),),
        licence="MIT",
        size_note="config.json only (the weights come from the BiomedCLIP checkpoint)",
    ),
)

# By the deployment's logical name (spec.ModelDeployment.logical_name).
SOURCES: dict[str, tuple[WeightSource, ...]] = {
    spec.NER.logical_name: NER_SOURCES,
    spec.BIOMEDCLIP.logical_name: CLIP_SOURCES,
}


@dataclass(frozen=True)
class FetchedArtifact:
    source: WeightSource
    path: Path
    revision: str  # the commit actually downloaded


def check_required_files(source: WeightSource, directory: Path) -> None:
    for group in source.required:
        if not any((directory / name).is_file() for name in group):
            raise WeightsError(f"{source.repo_id}: none of {list(group)} was downloaded")


def assemble_clip_text_dir(model_dir: Path, text_dir: Path) -> None:
    """Put BiomedCLIP's tokenizer files next to the text tower's config: open_clip reads both
    from the one directory the config names."""
    for name in CLIP_TEXT_TOKENIZER_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, text_dir / name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path.name} is missing or not JSON") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path.name} is not a JSON object")
    return data


def validate(logical_name: str, paths: Mapping[str, Path]) -> None:
    """Check the downloaded files describe what the service promises, before logging.

    NER: every checkpoint's id2label normalises onto ``spec.NER_LABELS`` and together they
    produce all of it (an untrained ``LABEL_n`` head fails here). BiomedCLIP: the open_clip
    config matches the preprocessing in ``biomedclip.py``, the text config is a BERT.
    """
    if logical_name == spec.NER.logical_name:
        from spcs_models import ner

        id2labels = []
        for source in NER_SOURCES:
            config = _read_json(paths[source.artifact] / "config.json")
            id2labels.append(config.get("id2label") or {})
        try:
            ner.check_label_sets(id2labels, spec.NER.entity_labels)
        except ner.CheckpointError as exc:
            raise WeightsError(f"NER checkpoints: {exc}") from exc
    elif logical_name == spec.BIOMEDCLIP.logical_name:
        from spcs_models import biomedclip

        config = _read_json(paths[CLIP_MODEL_ARTIFACT] / biomedclip.CONFIG_FILE)
        try:
            biomedclip.check_open_clip_config(config)
        except biomedclip.ConfigError as exc:
            raise WeightsError(f"BiomedCLIP: {exc}") from exc
        text = _read_json(paths[CLIP_TEXT_ARTIFACT] / "config.json")
        if text.get("model_type") != "bert":
            raise WeightsError("BiomedCLIP text config is not a BERT config")
    else:
        raise WeightsError(f"no weight check for {logical_name}")


def fetch(
    sources: Sequence[WeightSource],
    work_dir: Path,
    *,
    revisions: Mapping[str, str] | None = None,
) -> dict[str, FetchedArtifact]:
    """Download each source into ``work_dir/<artifact>`` at a resolved commit.

    ``revisions`` (repo id -> commit or branch) overrides the pinned ones. Needs
    ``huggingface_hub``; a token, if the operator has one, is read the usual way (HF_TOKEN).
    """
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi()
    out: dict[str, FetchedArtifact] = {}
    for source in sources:
        wanted = (revisions or {}).get(source.repo_id) or source.revision or "main"
        commit = api.model_info(source.repo_id, revision=wanted).sha
        if not commit:
            raise WeightsError(f"{source.repo_id}: revision {wanted!r} did not resolve")
        target = work_dir / source.artifact
        target.mkdir(parents=True, exist_ok=True)
        snapshot_download(
            repo_id=source.repo_id,
            revision=commit,
            allow_patterns=list(source.files),
            local_dir=str(target),
        )
        shutil.rmtree(target / ".cache", ignore_errors=True)  # hub bookkeeping, not a model file
        check_required_files(source, target)
        out[source.artifact] = FetchedArtifact(source, target, commit)
    if CLIP_MODEL_ARTIFACT in out and CLIP_TEXT_ARTIFACT in out:
        assemble_clip_text_dir(out[CLIP_MODEL_ARTIFACT].path, out[CLIP_TEXT_ARTIFACT].path)
    return out
