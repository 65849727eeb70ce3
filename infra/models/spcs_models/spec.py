"""The two model services as data: registry names, service settings and method signatures.

Pure Python, no Snowflake or ML imports: the deployment tool (``deploy.py``) turns these into
``snowflake.ml`` objects, the local emulator serves exactly these signatures, and
``registry_entry()`` is the fragment of the gateway's service registry that points at them.

Signatures serialise in the form ``snowflake.ml.model.model_signature.ModelSignature.to_dict()``
produces and the Model Registry stores in a version's ``model_spec`` (``SHOW VERSIONS IN MODEL``
with ``SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL``): inputs ``{"type", "name", "nullable",
"shape"?}``, groups ``{"name", "specs", "shape"?}``, params ``{"name", "dtype",
"default_value"}``. The gateway's registry carries the same dict, so ``spcs-gateway doctor``
compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# snowflake.ml DataType names used here.
STRING, BYTES, DOUBLE, INT64 = "STRING", "BYTES", "DOUBLE", "INT64"


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.dtype, "name": self.name, "nullable": True}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    specs: tuple[Feature, ...]
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "specs": [s.to_dict() for s in self.specs]}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str
    default: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "default_value": self.default}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Feature, ...]
    outputs: tuple[Feature | FeatureGroup, ...]
    params: tuple[Param, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "params": [p.to_dict() for p in self.params],
        }

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def output_name(self) -> str:
        return self.outputs[0].name


@dataclass(frozen=True)
class ServiceSettings:
    """What ``ModelVersion.create_service`` is given, explicitly (no library defaults)."""

    compute_pool: str = "ML_INFERENCE_POOL"
    # 1, not snowflake-ml's default 0: 0 lets Snowflake suspend the service on its own timer,
    # behind the gateway's control plane (which knows the SQS backlog). Pinned here and checked
    # by `spcs-gateway doctor` (SHOW SERVICES min_instances / auto_suspend_secs).
    min_instances: int = 1
    max_instances: int = 1
    max_batch_rows: int = 32  # snowflake-ml's minimum; the gateway sends at most this many
    ingress_enabled: bool = True
    cpu_requests: str | None = None
    memory_requests: str | None = None
    gpu_requests: str | None = None
    num_workers: int | None = 1


@dataclass(frozen=True)
class ModelDeployment:
    logical_name: str  # the gateway registry's service name
    task: str  # gateway registry task
    model_name: str  # DB.SCHEMA.MODEL in the Model Registry
    version: str
    service: str  # DB.SCHEMA.SERVICE created for the version
    method: str  # inference method; URL path is the name with "_" -> "-"
    signature: Signature
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    pip_requirements: tuple[str, ...] = ()
    # NER: the entity labels the service must return (B-/I- tags; "O" is never returned).
    entity_labels: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    label_sets: dict[str, list[str]] = field(default_factory=dict)
    bytes_encoding: str = "base64"

    @property
    def method_path(self) -> str:
        return "/" + self.method.replace("_", "-")

    def registry_entry(self, url: str) -> dict[str, Any]:
        """This service's entry in the gateway registry (``spcs_gateway.registry``)."""
        entry: dict[str, Any] = {
            "name": self.logical_name,
            "service": self.service,
            "compute_pool": self.settings.compute_pool,
            "url": url,
            "method": self.method,
            "task": self.task,
            "model": self.model_name,
            "model_version": self.version,
            "signature": self.signature.to_dict(),
            "max_batch_rows": self.settings.max_batch_rows,
            "queues": list(self.queues),
        }
        if self.entity_labels:
            entry["entity_labels"] = list(self.entity_labels)
        if self.label_sets:
            entry["label_sets"] = {k: list(v) for k, v in self.label_sets.items()}
        if any(f.dtype == BYTES for f in self.signature.inputs):
            entry["bytes_encoding"] = self.bytes_encoding
        return entry


TOKEN_CLASSIFICATION_OUTPUT = FeatureGroup(
    "outputs",
    (
        Feature("word", STRING),
        Feature("score", DOUBLE),
        Feature("entity", STRING),
        Feature("index", INT64),
        Feature("start", INT64),
        Feature("end", INT64),
    ),
    shape=(-1,),
)

NER_SIGNATURE = Signature(
    inputs=(Feature("inputs", STRING),), outputs=(TOKEN_CLASSIFICATION_OUTPUT,)
)

# BiomedCLIP's own prompt (its model card): the label follows "this is a photo of ".
BIOMEDCLIP_TEMPLATE = "this is a photo of {}"

CLIP_SIGNATURE = Signature(
    inputs=(Feature("images", BYTES), Feature("candidate_labels", STRING, shape=(-1,))),
    outputs=(
        FeatureGroup("labels", (Feature("label", STRING), Feature("score", DOUBLE)), shape=(-1,)),
    ),
    params=(Param("hypothesis_template", STRING, BIOMEDCLIP_TEMPLATE),),
)

NER_LABELS = ("B-CHEMICAL", "I-CHEMICAL", "B-DISEASE", "I-DISEASE")

# The serving environment of each model (pip, SPCS only), pinned exactly: the deployment tool
# logs with ``relax_version=False`` so these are what the inference image installs, next to
# the snowflake-ml-python and cloudpickle versions of the machine that logs the model. Each set
# resolves together with snowflake-ml-python 2.6.0 on CPython 3.11 / x86_64 (pip --dry-run).
# torch >= 2.6 because transformers >= 4.50 loads pickled ``pytorch_model.bin`` checkpoints
# only with it; open_clip >= 2.23 drops the ``position_ids`` key newer transformers reject.
NER_PIP_REQUIREMENTS = ("torch==2.7.1", "transformers==4.57.6")
CLIP_PIP_REQUIREMENTS = (
    "torch==2.7.1",
    "torchvision==0.22.1",
    "open_clip_torch==3.3.0",
    "timm==1.0.20",
    "transformers==4.57.6",
    "pillow==11.3.0",
    "numpy==2.2.6",
)

NER = ModelDeployment(
    logical_name="biobert_ner",
    task="token-classification",
    model_name="PEDIATRIC_ML.MODELS.BIOBERT_NER",
    version="V1",
    service="PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
    method="predict",
    signature=NER_SIGNATURE,
    pip_requirements=NER_PIP_REQUIREMENTS,
    entity_labels=NER_LABELS,
    queues=("notes",),
)

BIOMEDCLIP = ModelDeployment(
    logical_name="biomedclip",
    task="zero-shot-image-classification",
    model_name="PEDIATRIC_ML.MODELS.BIOMEDCLIP_CLASSIFIER",
    version="V1",
    service="PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE",
    method="predict",
    signature=CLIP_SIGNATURE,
    settings=ServiceSettings(max_batch_rows=32),
    pip_requirements=CLIP_PIP_REQUIREMENTS,
    queues=("images",),
    label_sets={
        "chest_xray": [
            "normal chest radiograph",
            "pneumonia",
            "pleural effusion",
            "cardiomegaly",
            "pneumothorax",
        ],
        "skin_lesion": ["benign nevus", "melanoma", "eczema", "impetigo"],
    },
)

DEPLOYMENTS: tuple[ModelDeployment, ...] = (NER, BIOMEDCLIP)
