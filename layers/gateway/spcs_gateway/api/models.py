"""Request and response models of the on-demand API (the OpenAPI document is generated from them).

Request models forbid unknown fields and bound every size (count of texts, characters, labels,
image bytes), so a request is refused before any work is done. Every caller-supplied field is
``repr=False`` (a repr can end up in a debug line); validation errors are reported by field
location and error type only (see ``app.py``), never with the offending value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from spcs_gateway.events import MAX_TEXT_CHARS, Identifier, InlineImage, Label, LabelSetName

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

ColumnName = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")
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


class ClassificationRequest(_Request):
    image: InlineImage = Field(repr=False)
    candidate_labels: list[Label] | None = Field(
        default=None, min_length=1, max_length=MAX_LABELS, repr=False
    )
    label_set: LabelSetName | None = Field(
        default=None, repr=False, description="A named label set from the service registry."
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
        default=None, max_length=MAX_SEARCH_COLUMNS, repr=False, description="Columns to return."
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        repr=False,
        description='Cortex Search filter, e.g. {"@eq": {"DEPARTMENT": "cardiology"}}.',
    )
    limit: int = Field(default=10, ge=1, le=MAX_SEARCH_LIMIT)


class SearchResponse(_Response):
    results: list[dict[str, Any]]
    request_id: str | None = Field(default=None, description="Snowflake's id of the query.")


# -- services --------------------------------------------------------------------------------


class ServiceStatusView(_Response):
    """The control plane's view of one managed service (``control.ServiceStatusView``)."""

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


class ServicesResponse(_Response):
    services: list[ServiceStatusView]


class ResumeAccepted(_Response):
    name: str
    accepted: Literal[True] = True
    service: ServiceBrief


class SuspendResult(_Response):
    name: str
    outcome: Literal["suspended", "already_suspended"]
    status: str | None = Field(default=None, description="Snowflake status before the call.")
