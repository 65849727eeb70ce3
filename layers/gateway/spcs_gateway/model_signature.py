"""Model method signatures in the form the Snowflake Model Registry stores them, and the
signatures snowflake-ml-python infers for the two tasks the gateway serves.

The request codec (``codec.py``) sends one column per input and then one per parameter, in
signature order; ``doctor`` compares these with what ``SHOW FUNCTIONS IN MODEL`` reports.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Task(StrEnum):
    TOKEN_CLASSIFICATION = "token-classification"  # noqa: S105 (a task name, not a secret)
    ZERO_SHOT_IMAGE_CLASSIFICATION = "zero-shot-image-classification"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# Ingress limits (Snowflake: a request times out after about 60 s; idle connections close
# after 90 s). A longer client timeout would only wait for an answer that cannot come.
INGRESS_REQUEST_TIMEOUT_S = 60.0


class FeatureSpec(StrictModel):
    """One input or output column, as snowflake-ml's ``FeatureSpec.to_dict()`` writes it."""

    name: str = Field(min_length=1, max_length=255)
    type: str = Field(default="STRING", pattern=r"^[A-Z0-9_]+$")
    nullable: bool = True
    shape: list[int] | None = None


class FeatureGroupSpec(StrictModel):
    """A group of columns (e.g. a list of ``{label, score}``), ``FeatureGroupSpec.to_dict()``."""

    name: str = Field(min_length=1, max_length=255)
    specs: list[FeatureSpec | FeatureGroupSpec] = Field(min_length=1)
    shape: list[int] | None = None


class ParamSpec(StrictModel):
    """A method parameter (``ParamSpec.to_dict()``): sent as a column after the inputs."""

    name: str = Field(min_length=1, max_length=255)
    dtype: str = Field(pattern=r"^[A-Z0-9_]+$")
    default_value: Any = None
    shape: list[int] | None = None


class Signature(StrictModel):
    """A model method's signature in the form the Model Registry stores (``model_spec``)."""

    inputs: list[FeatureSpec | FeatureGroupSpec] = Field(min_length=1)
    outputs: list[FeatureSpec | FeatureGroupSpec] = Field(min_length=1)
    params: list[ParamSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Signature:
        names = [f.name.lower() for f in [*self.inputs, *self.params]]
        if len(names) != len(set(names)):
            raise ValueError("input and parameter names must be unique (case-insensitive)")
        return self


def _string_list(name: str) -> FeatureSpec:
    return FeatureSpec(name=name, type="STRING", shape=[-1])


# Signatures snowflake-ml-python infers for Hugging Face pipelines of each task (its
# ``_signatures/utils.py``, 1.38 and later): the defaults when the registry names none.
DEFAULT_SIGNATURES: dict[Task, Signature] = {
    Task.TOKEN_CLASSIFICATION: Signature(
        inputs=[FeatureSpec(name="inputs")],
        outputs=[
            FeatureGroupSpec(
                name="outputs",
                specs=[
                    FeatureSpec(name="word"),
                    FeatureSpec(name="score", type="DOUBLE"),
                    FeatureSpec(name="entity"),
                    FeatureSpec(name="index", type="INT64"),
                    FeatureSpec(name="start", type="INT64"),
                    FeatureSpec(name="end", type="INT64"),
                ],
                shape=[-1],
            )
        ],
    ),
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: Signature(
        inputs=[FeatureSpec(name="images", type="BYTES"), _string_list("candidate_labels")],
        outputs=[
            FeatureGroupSpec(
                name="labels",
                specs=[FeatureSpec(name="label"), FeatureSpec(name="score", type="DOUBLE")],
                shape=[-1],
            )
        ],
        params=[
            ParamSpec(
                name="hypothesis_template", dtype="STRING", default_value="This is a photo of {}."
            ),
            ParamSpec(name="timeout", dtype="DOUBLE", default_value=None),
        ],
    ),
}
# What the gateway puts in each input column, per task, in this order.
TASK_INPUTS: dict[Task, tuple[str, ...]] = {
    Task.TOKEN_CLASSIFICATION: ("text",),
    Task.ZERO_SHOT_IMAGE_CLASSIFICATION: ("image bytes", "candidate labels"),
}
