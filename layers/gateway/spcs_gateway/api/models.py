"""Request and response models of the on-demand API (the OpenAPI document is generated from them).

Request models forbid unknown fields and bound every size (count of texts, characters, labels,
image bytes), so a request is refused before any work is done. Every caller-supplied field is
``repr=False`` (a repr can end up in a debug line); validation errors are reported by field
location and error type only (see ``handlers.py``), never with the offending value.

The document states every rule a request must meet, including those a validator checks across
fields (``oneOf`` below: exactly one of ``text``/``texts``, of ``candidate_labels``/
``label_set``) and those the services behind the API check: distinct, non-blank candidate labels,
the columns and the filter grammar of the clinical-notes search service (``filters.py``). What
JSON Schema cannot express is said in the descriptions: the total size of ``texts``, that an
image must decode as its type within the registry's limits, and the registry's label sets.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from spcs_gateway import events
from spcs_gateway.api.filters import NOTE_COLUMNS, SEARCH_FILTER_SCHEMA_TYPE
from spcs_gateway.events import MAX_TEXT_CHARS, Identifier, Label, LabelSetName
from spcs_gateway.registry import MAX_SERVICE_INSTANCES

# API Gateway stops waiting after 29 s: the bounded wait for a resuming service stays below it,
# leaving room for the last attempt and the response.
MAX_WAIT_SECONDS = 25.0
MAX_TEXTS = 32
# Across all texts of one request: bounds the work and keeps the response under Lambda's 6 MB.
MAX_TOTAL_CHARS = 400_000
MAX_LABELS = 64
MAX_SEARCH_QUERY_CHARS = 4_096
MAX_SEARCH_LIMIT = 1_000
MAX_SEARCH_COLUMNS = 32

# Validated as an identifier (the search service is configurable); documented as the columns of
# the clinical-notes service, which refuses any other (400 SEARCH_REJECTED).
ColumnName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$"),
    WithJsonSchema({"type": "string", "enum": list(NOTE_COLUMNS)}),
]
NoteText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
WaitSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="How long to wait for a suspended or starting service to become ready "
        f"(seconds, at most {MAX_WAIT_SECONDS:g}). 0 (the default) answers 503 at once.",
    ),
]


def exactly_one(
    first: str, second: str, *, only_first: tuple[str, ...] = ()
) -> Callable[[dict[str, Any]], None]:
    """The JSON Schema of a model whose validator wants exactly one of ``first`` and ``second``
    (not null), and ``only_first`` fields only beside ``first``: ``oneOf`` two object schemas,
    one per choice, with the other field null or absent."""

    def rewrite(schema: dict[str, Any]) -> None:
        properties: dict[str, Any] = schema.pop("properties")
        required: list[str] = schema.pop("required", [])
        schema.pop("additionalProperties", None)
        branches = []
        for chosen, other in ((first, second), (second, first)):
            branch = dict(properties)
            branch[chosen] = _not_null(properties[chosen])
            branch[other] = {"type": "null"}
            if chosen == second:
                branch.update({name: {"type": "null"} for name in only_first})
            branches.append(
                {
                    "type": "object",
                    "properties": branch,
                    "required": [*required, chosen],
                    "additionalProperties": False,
                }
            )
        schema["oneOf"] = branches

    return rewrite


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"anyOf": [X, {"type": "null"}], ...}`` -> X with the field's title and description."""
    choices = [c for c in schema.get("anyOf", []) if c != {"type": "null"}]
    if len(choices) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**choices[0], **rest}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- errors ----------------------------------------------------------------------------------


class FieldError(_Response):
    """Where a request failed validation. Never carries the submitted value."""

    loc: list[str | int]
    type: str


class ServiceBrief(_Response):
    """The state of a model service as last recorded by the control plane."""

    name: str
    status: str
    ready: bool


class ErrorDetail(_Response):
    code: str = Field(description="Stable, machine-readable error code.")
    message: str = Field(description="Fixed, human-readable text for the code.")
    request_id: str
    errors: list[FieldError] | None = Field(
        default=None, description="Validation failures (422 only)."
    )
    reason: str | None = Field(
        default=None, description="Stable reason code (a refused suspend says why)."
    )


class ErrorResponse(_Response):
    error: ErrorDetail
    service: ServiceBrief | None = Field(
        default=None, description="Present when the target service is not ready (503)."
    )


# -- entities --------------------------------------------------------------------------------


class PersistTarget(_Request):
    """Also write the result row to the results table (idempotent on ``event_id``)."""

    event_id: Identifier
    note_id: Identifier


class EntitiesRequest(_Request):
    """Give `text` or `texts`, not both; `persist` only with `text`. All texts together hold
    at most 400,000 characters."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one("text", "texts", only_first=("persist",))
    )

    text: NoteText | None = Field(default=None, repr=False, description="One clinical note.")
    texts: list[NoteText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXTS,
        repr=False,
        description=f"Up to {MAX_TEXTS} notes (give text or texts, not both).",
    )
    persist: PersistTarget | None = Field(
        default=None, repr=False, description="Only with a single text: write the result row too."
    )
    wait_seconds: WaitSeconds | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EntitiesRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of text or texts")
        if self.persist is not None and self.text is None:
            raise ValueError("persist needs a single text")
        if sum(len(t) for t in self.all_texts) > MAX_TOTAL_CHARS:
            raise ValueError("texts exceed the total size limit")
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class Entity(_Response):
    """A whole-word span; ``text == input[start:end]``."""

    label: str = Field(description="Entity type without the B-/I- prefix, e.g. DISEASE.")
    text: str
    start: int = Field(ge=0, description="Offset of the first character in the input text.")
    end: int = Field(ge=0, description="Offset after the last character.")
    score: float = Field(description="Mean token score.")


class TextEntities(_Response):
    index: int = Field(ge=0, description="Position of the text in the request.")
    entities: list[Entity]


class PersistedRow(_Response):
    event_id: str
    note_id: str
    table: str


class EntitiesResponse(_Response):
    service: str
    model_version: str | None
    results: list[TextEntities]
    persisted: PersistedRow | None = None


# -- image classification --------------------------------------------------------------------


# The model refuses a blank or repeated label (400 MODEL_REJECTED_INPUT): the document asks for
# a character that is not white space (in Python's sense and in JavaScript's) and distinct labels.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
CandidateLabel = Annotated[
    Label,
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_BLANK}),
]


def _image_schema(schema: dict[str, Any]) -> None:
    data = schema["properties"]["base64"]
    # "byte" (RFC 4648 base64) rather than a pattern: Schemathesis 4 cannot generate a pattern
    # under a maxLength this large, and the format says the same.
    data.update(
        format="byte",
        contentEncoding="base64",
        description="The image file, base64 (standard alphabet, padded). It must decode as "
        "content_type within the image service's max_image_bytes and max_pixels (registry): "
        "400 INVALID_IMAGE or 413 IMAGE_TOO_LARGE otherwise.",
    )


class InlineImage(events.InlineImage):
    """An inline image: the file, base64, and its media type."""

    model_config = ConfigDict(json_schema_extra=_image_schema)


class ClassificationRequest(_Request):
    """Give `candidate_labels` or `label_set`, not both."""

    model_config = ConfigDict(json_schema_extra=exactly_one("candidate_labels", "label_set"))

    image: InlineImage = Field(repr=False)
    candidate_labels: list[CandidateLabel] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LABELS,
        repr=False,
        description="Distinct labels, at most the image service's max_candidate_labels "
        f"(registry, default {MAX_LABELS}): 400 INVALID_EVENT beyond.",
        json_schema_extra={"uniqueItems": True},
    )
    label_set: LabelSetName | None = Field(
        default=None,
        repr=False,
        description="A label set of the image service's registry entry: 400 UNKNOWN_LABEL_SET "
        "otherwise.",
    )
    wait_seconds: WaitSeconds | None = None

    @model_validator(mode="after")
    def _one_label_source(self) -> ClassificationRequest:
        if (self.candidate_labels is None) == (self.label_set is None):
            raise ValueError("give exactly one of candidate_labels or label_set")
        return self


class LabelScore(_Response):
    label: str
    score: float


class ClassificationResponse(_Response):
    service: str
    model_version: str | None
    labels: list[LabelScore] = Field(description="Ranked, highest score first.")


# -- search ----------------------------------------------------------------------------------


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_SEARCH_QUERY_CHARS, repr=False)
    columns: list[ColumnName] | None = Field(
        default=None,
        max_length=MAX_SEARCH_COLUMNS,
        repr=False,
        description="Columns to return; default: every column but NOTE_TEXT.",
    )
    # Checked by Cortex Search (400 SEARCH_REJECTED); the document states its grammar.
    filter: Annotated[
        dict[str, Any] | None,
        BeforeValidator(lambda value: value, json_schema_input_type=SEARCH_FILTER_SCHEMA_TYPE),
    ] = Field(
        default=None,
        repr=False,
        description='A Cortex Search filter on the attribute columns, e.g. {"@eq": '
        '{"DEPARTMENT": "cardiology"}}; {} or null: none.',
    )
    limit: int = Field(default=10, ge=1, le=MAX_SEARCH_LIMIT)


class SearchResponse(_Response):
    results: list[dict[str, Any]]
    request_id: str | None = Field(default=None, description="Snowflake's id of the query.")


# -- services --------------------------------------------------------------------------------


class ServiceStatusView(_Response):
    """The control plane's view of one managed service (``control.ServiceOverview``)."""

    name: str
    service: str = Field(description="Fully qualified Snowflake service name.")
    compute_pool: str | None = None
    status: str = Field(description="Snowflake status; UNKNOWN when it could not be observed.")
    ready: bool
    last_activity: datetime | None = None
    idle_countdown_s: float | None = Field(
        default=None, description="Seconds until the service may be suspended; null: not idle."
    )
    idle_reason: str | None = Field(
        default=None, description="The lifecycle rule that applies now (e.g. backlog)."
    )
    resumes_today: int = 0
    suspends_today: int = 0
    mappings_paused: bool = False
    lease_held: bool = False
    backlog: int | None = Field(default=None, description="Queued messages; null: unknown.")
    on_demand: int = Field(default=0, description="On-demand calls in flight.")
    code: str | None = Field(default=None, description="Set when it could not be observed.")
    instances: int = Field(default=0, description="Instances running (READY or loading).")
    instances_ready: int = Field(default=0, description="Instances READY.")
    min_instances: int | None = Field(default=None, description="MIN_INSTANCES set on it.")
    max_instances: int | None = Field(default=None, description="MAX_INSTANCES set on it.")


class ServicesResponse(_Response):
    services: list[ServiceStatusView]


class ResumeAccepted(_Response):
    name: str
    accepted: Literal[True] = True
    service: ServiceBrief


class ScaleRequest(_Request):
    """The instance range to set; both within the service's registry range."""

    min_instances: int = Field(ge=1, le=MAX_SERVICE_INSTANCES)
    max_instances: int = Field(ge=1, le=MAX_SERVICE_INSTANCES)


class ScaleResult(_Response):
    name: str
    outcome: Literal["scaled"] = "scaled"
    min_instances: int
    max_instances: int
    status: str | None = Field(default=None, description="Snowflake status at the call.")


class SuspendResult(_Response):
    name: str
    outcome: Literal["suspended", "already_suspended"]
    status: str | None = Field(default=None, description="Snowflake status before the call.")
