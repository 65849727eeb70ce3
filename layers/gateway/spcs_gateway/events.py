"""Versioned inbound event models (the JSON body of an SQS message). Pure: no I/O.

Discriminated on ``schema``. Every model forbids unknown fields, so an event cannot smuggle in
an endpoint, a URL or any other routing hint: endpoints come only from the service registry.
Validation errors are reported as field locations and error types, never values (the text,
the image and the attributes are PHI).

``parse_message`` is the entry point of the routers: it also takes the EHR's own formats as the
body, detected by shape (FHIR R4 resources, HL7 v2 messages: ``spcs_gateway.ehr``), and returns
every event one body holds.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, overload

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, from_json

from spcs_gateway.errors import ErrorCode, PoisonError

if TYPE_CHECKING:
    from spcs_gateway.ehr.note import EhrNote
    from spcs_gateway.ehr.subjects import SubjectKeyer

NOTE_SCHEMA = "clinical-note.v1"
IMAGE_SCHEMA = "medical-image.v1"

MAX_TEXT_CHARS = 100_000
# An inline image arrives inside an SQS message (1 MiB at most); this bound only stops absurd
# input early. The configured ``images.max_image_bytes`` is enforced by ``images.py``.
MAX_BASE64_CHARS = 2 * 1024 * 1024
MAX_LABELS = 1_000
_MAX_ERRORS_REPORTED = 8

# Ids: a conservative charset (no spaces, no control characters), bounded length.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$"
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_ID_PATTERN)]
LabelSetName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]

# RFC 3339 date-time with an explicit offset (pydantic alone would also take unix numbers).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with offset")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InlineImage(_Strict):
    base64: str = Field(min_length=4, max_length=MAX_BASE64_CHARS, repr=False)
    content_type: Literal["image/png", "image/jpeg"]


DICOM_CONTENT_TYPE = "application/dicom"


class InlineDicom(_Strict):
    """A DICOM Part 10 file, converted to the image model's input (``spcs_gateway.ehr.dicom``)."""

    base64: str = Field(min_length=4, max_length=MAX_BASE64_CHARS, repr=False)
    content_type: Literal["application/dicom"]


# The rule for ``S3Image.s3_uri``. pydantic-core's Rust regex compiles the Unicode ``\S{1,1024}``
# into a large automaton (~10 ms per validator that embeds it, i.e. S3Image, ImageEvent and the
# event adapter, at every cold start), so the field checks ``\S+`` and the key length apart,
# reporting a too-long key exactly as the full pattern would.
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S{1,1024}$"
_S3_URI_SHAPE = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$"
MAX_S3_KEY_CHARS = 1024


def _s3_key_bound(value: str) -> str:
    # The shape matched: "s3:", "", bucket (no "/"), key.
    if len(value.split("/", 3)[3]) > MAX_S3_KEY_CHARS:
        raise PydanticCustomError(
            "string_pattern_mismatch",
            "String should match pattern '{pattern}'",
            {"pattern": S3_URI_PATTERN},
        )
    return value


class S3Image(_Strict):
    s3_uri: Annotated[str, AfterValidator(_s3_key_bound)] = Field(pattern=_S3_URI_SHAPE)


class NoteEvent(_Strict):
    schema_: Literal["clinical-note.v1"] = Field(alias="schema")
    event_id: Identifier
    note_id: Identifier
    source: Identifier
    occurred_at: Rfc3339
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, repr=False)
    attributes: dict[str, Any] | None = Field(default=None, repr=False)

    @property
    def subject_id(self) -> str:
        return self.note_id


class ImageEvent(_Strict):
    schema_: Literal["medical-image.v1"] = Field(alias="schema")
    event_id: Identifier
    image_id: Identifier
    source: Identifier
    occurred_at: Rfc3339
    image: InlineImage | InlineDicom | S3Image = Field(repr=False)
    candidate_labels: list[Label] | None = Field(
        default=None, min_length=1, max_length=MAX_LABELS, repr=False
    )
    label_set: LabelSetName | None = None

    @model_validator(mode="after")
    def _one_label_source(self) -> ImageEvent:
        if (self.candidate_labels is None) == (self.label_set is None):
            raise ValueError("give exactly one of candidate_labels or label_set")
        return self

    @property
    def subject_id(self) -> str:
        return self.image_id


# -- reference events: ids only; the note or image stays in Snowflake (spcs_gateway.reference) --

NOTE_REF_SCHEMA = "clinical-note-ref.v1"
IMAGE_REF_SCHEMA = "medical-image-ref.v1"

# DB.SCHEMA.TABLE, three unquoted identifiers. Whether the table may be read is the registry's
# allow-list (``registry.ReferenceSettings``), checked by the reference route.
_TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$"
TableName = Annotated[str, StringConstraints(min_length=5, max_length=255, pattern=_TABLE_PATTERN)]
# A version or updated-at value: compared with the allow-listed table's version column.
RowVersion = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_ID_PATTERN)]


class TableRowRef(_Strict):
    """One row of an allow-listed table, by its key (and, when given, its version)."""

    table: TableName
    key: Identifier
    version: RowVersion | int | None = None


# A file on an allow-listed stage (``references.image_stages``): the stage as DB.SCHEMA.STAGE,
# the path relative to it. The path travels as a bound value, but it also becomes part of a
# scoped URL: a strict character set, no empty, "." or ".." segment, no leading "/".
StageName = TableName
_STAGE_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.=-]*"
STAGE_PATH_PATTERN = rf"^{_STAGE_SEGMENT}(?:/{_STAGE_SEGMENT})*$"
MAX_STAGE_PATH_CHARS = 512


def _no_dot_dot(value: str) -> str:
    if ".." in value:
        raise PydanticCustomError("stage_path", "a stage path may not contain '..'")
    return value


StagePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_STAGE_PATH_CHARS, pattern=STAGE_PATH_PATTERN),
    AfterValidator(_no_dot_dot),
]


class StageFileRef(_Strict):
    """One file on an allow-listed stage, by its path relative to the stage."""

    stage: StageName
    path: StagePath


class NoteRefEvent(_Strict):
    schema_: Literal["clinical-note-ref.v1"] = Field(alias="schema")
    event_id: Identifier
    source: Identifier
    occurred_at: Rfc3339
    note: TableRowRef

    @property
    def subject_id(self) -> str:
        return self.note.key


class ImageRefEvent(_Strict):
    schema_: Literal["medical-image-ref.v1"] = Field(alias="schema")
    event_id: Identifier
    source: Identifier
    occurred_at: Rfc3339
    # Exactly one form: a row of an image table, or a file on a stage (both refuse unknown
    # fields, so a mix of the two matches neither).
    image: TableRowRef | StageFileRef
    candidate_labels: list[Label] | None = Field(
        default=None, min_length=1, max_length=MAX_LABELS, repr=False
    )
    label_set: LabelSetName | None = None

    @model_validator(mode="after")
    def _one_label_source(self) -> ImageRefEvent:
        if (self.candidate_labels is None) == (self.label_set is None):
            raise ValueError("give exactly one of candidate_labels or label_set")
        return self

    @property
    def subject_id(self) -> str:
        if isinstance(self.image, StageFileRef):
            return self.image.path
        return self.image.key


Event = NoteEvent | ImageEvent
ReferenceEvent = NoteRefEvent | ImageRefEvent

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(
    Annotated[NoteEvent | ImageEvent, Field(discriminator="schema_")]
)


@cache
def _any_event_adapter() -> TypeAdapter[Event | ReferenceEvent]:
    # Built on first use: it embeds ImageEvent's validator again (~10 ms at a cold start, see
    # S3_URI_PATTERN), which only a router serving the reference route needs.
    return TypeAdapter(
        Annotated[
            NoteEvent | ImageEvent | NoteRefEvent | ImageRefEvent,
            Field(discriminator="schema_"),
        ]
    )


_SAFE_LOC = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


def _loc(parts: tuple[int | str, ...], error_type: str) -> str:
    # The name of an unknown key is chosen by the producer (it could hold anything): never
    # echo it. Known field names are ours; anything odd-looking is masked too.
    if error_type == "extra_forbidden" and parts:
        parts = (*parts[:-1], "<unknown>")
    safe = [str(p) if _SAFE_LOC.match(str(p)) or p == "<unknown>" else "<key>" for p in parts]
    return ".".join(safe) or "<root>"


def parse_event(body: str | bytes) -> Event:
    """Validate one SQS message body. Raises ``PoisonError`` with a PHI-free detail."""
    try:
        return _EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        _raise_poison(exc)


def parse_any_event(body: str | bytes) -> Event | ReferenceEvent:
    """``parse_event`` that also takes the reference schemas (a router serving the reference
    route). Raises ``PoisonError`` with a PHI-free detail."""
    try:
        return _any_event_adapter().validate_json(body)
    except ValidationError as exc:
        _raise_poison(exc)


def _raise_poison(exc: ValidationError) -> NoReturn:
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    types = {err["type"] for err in errors}
    if "json_invalid" in types or "json_type" in types:
        raise PoisonError(ErrorCode.INVALID_JSON, "body is not valid JSON") from None
    if types & _TAG_ERRORS:
        raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "schema missing or not supported") from None
    shown = [
        f"{_loc(err['loc'], err['type'])}:{err['type']}" for err in errors[:_MAX_ERRORS_REPORTED]
    ]
    more = len(errors) - len(shown)
    detail = "; ".join(shown) + (f"; +{more} more" if more > 0 else "")
    raise PoisonError(ErrorCode.INVALID_EVENT, detail) from None


def _json_object(body: str | bytes) -> Any:
    try:
        return from_json(body)
    except ValueError:
        raise PoisonError(ErrorCode.INVALID_JSON, "body is not valid JSON") from None


@overload
def parse_message(
    body: str | bytes, *, subjects: SubjectKeyer | None = None, references: Literal[False] = ...
) -> list[Event | EhrNote]: ...


@overload
def parse_message(
    body: str | bytes, *, subjects: SubjectKeyer | None = None, references: bool
) -> list[Event | ReferenceEvent | EhrNote]: ...


def parse_message(
    body: str | bytes, *, subjects: SubjectKeyer | None = None, references: bool = False
) -> list[Any]:
    """Every event one SQS message body holds, in order.

    * the gateway's envelope (``schema``): the one event, as ``parse_event``;
    * a FHIR R4 resource (a JSON object with ``resourceType`` and no ``schema``) or an HL7 v2
      message (starts with MSH): one ``EhrNote`` per note (``spcs_gateway.ehr``), each with a
      deterministic event id and its subject keyed by ``subjects``.

    Without ``subjects`` (a router that takes no notes) an EHR message is ``UNKNOWN_SCHEMA``.
    ``references``: the envelope may also be a reference event (``clinical-note-ref.v1``,
    ``medical-image-ref.v1``); without it those schemas are ``UNKNOWN_SCHEMA``. Raises
    ``PoisonError`` with a PHI-free detail; ``ConfigurationError`` if the subject key cannot
    be read.
    """
    from spcs_gateway.ehr.detect import Shape, detect

    envelope = parse_any_event if references else parse_event
    shape = detect(body)
    if shape is Shape.FHIR:
        data = _json_object(body)
        if not (isinstance(data, dict) and "resourceType" in data and "schema" not in data):
            return [envelope(body)]
    elif shape is Shape.ENVELOPE:
        return [envelope(body)]
    if subjects is None:
        raise PoisonError(ErrorCode.UNKNOWN_SCHEMA, "EHR message not handled by this router")
    if shape is Shape.FHIR:
        from spcs_gateway.ehr.fhir import notes_from_fhir

        return list(notes_from_fhir(data, subjects))
    from spcs_gateway.ehr.hl7 import notes_from_hl7

    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return list(notes_from_hl7(text, subjects))
