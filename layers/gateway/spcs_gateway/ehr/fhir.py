"""FHIR R4 ``DocumentReference``, ``DiagnosticReport`` and ``Bundle`` -> notes. Pure.

A strict pydantic subset of R4 (http://hl7.org/fhir/R4): only the elements the gateway reads
are modelled, each with its R4 type checked strictly (no coercion); every other element is
ignored, as FHIR's own extensibility requires. No URL in a resource is ever fetched.

* ``DocumentReference``: one note per ``content[i].attachment`` with inline ``data``.
* ``DiagnosticReport``: one note per ``presentedForm[i]`` with inline ``data``; with none,
  its ``conclusion``.
* ``Bundle`` (any ``type``): the notes of every DocumentReference and DiagnosticReport entry, in
  entry order; a ``Patient`` entry resolves a ``subject`` that references it; other entries
  are skipped. Nested Bundles are not read.

An attachment is usable when its ``contentType`` is ``text/plain``, ``text/html`` or
``application/xhtml+xml`` and it carries base64 ``data``; the ``charset`` parameter decodes it
(UTF-8 when absent); HTML is reduced to text. ``url``-only attachments, PDFs and images are not
notes. Event id: ``fhir:<type>/<id>[/v<versionId>]:<index>`` (``conclusion`` for the
conclusion), from the entry's ``fullUrl`` when the resource has no ``id``, else from a SHA-256
of the resource.

Reason codes: ``FHIR_UNSUPPORTED_RESOURCE`` (another ``resourceType``, or a Bundle with no
DocumentReference or DiagnosticReport), ``FHIR_INVALID_RESOURCE`` (fails the subset, bad base64,
undecodable text or unknown charset), ``FHIR_NO_ATTACHMENT`` (nothing usable). Details name
element paths and error types, never values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from spcs_gateway.ehr.html import html_to_text
from spcs_gateway.ehr.note import (
    MAX_NOTES_PER_MESSAGE,
    ORIGIN_FHIR,
    EhrNote,
    clean_text,
    codec_for,
    decode_text,
    event_id,
)
from spcs_gateway.ehr.subjects import KIND_DOCUMENT, KIND_PATIENT, SubjectKeyer
from spcs_gateway.errors import ErrorCode, PoisonError
from spcs_gateway.events import MAX_BASE64_CHARS

SUPPORTED = ("DocumentReference", "DiagnosticReport")
TEXT_MEDIA = frozenset({"text/plain", "text/html", "application/xhtml+xml"})
HTML_MEDIA = frozenset({"text/html", "application/xhtml+xml"})
MAX_ENTRIES = 1_000
_MAX_ERRORS_REPORTED = 8

# R4 datatypes (http://hl7.org/fhir/R4/datatypes.html).
FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
_Text = Annotated[str, StringConstraints(max_length=4_096)]


class _Fhir(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Meta(_Fhir):
    versionId: FhirId | None = None  # noqa: N815 - FHIR element names


class Identifier(_Fhir):
    system: _Text | None = None
    value: _Text | None = Field(default=None, repr=False)


class Reference(_Fhir):
    reference: _Text | None = Field(default=None, repr=False)
    identifier: Identifier | None = Field(default=None, repr=False)


class Attachment(_Fhir):
    contentType: Annotated[str, StringConstraints(max_length=256)] | None = None  # noqa: N815
    data: Annotated[str, StringConstraints(max_length=MAX_BASE64_CHARS)] | None = Field(
        default=None, repr=False
    )
    url: _Text | None = None


class DocumentContent(_Fhir):
    attachment: Attachment


class DocumentReference(_Fhir):
    resourceType: Literal["DocumentReference"]  # noqa: N815
    id: FhirId | None = None
    meta: Meta | None = None
    subject: Reference | None = Field(default=None, repr=False)
    content: list[DocumentContent] = Field(default_factory=list, max_length=MAX_ENTRIES)


class DiagnosticReport(_Fhir):
    resourceType: Literal["DiagnosticReport"]  # noqa: N815
    id: FhirId | None = None
    meta: Meta | None = None
    subject: Reference | None = Field(default=None, repr=False)
    presentedForm: list[Attachment] = Field(  # noqa: N815
        default_factory=list, max_length=MAX_ENTRIES
    )
    conclusion: str | None = Field(default=None, repr=False)


class Patient(_Fhir):
    resourceType: Literal["Patient"]  # noqa: N815
    id: FhirId | None = None
    identifier: list[Identifier] = Field(default_factory=list, repr=False)


class BundleEntry(_Fhir):
    fullUrl: _Text | None = None  # noqa: N815
    resource: dict[str, Any] | None = Field(default=None, repr=False)


class Bundle(_Fhir):
    resourceType: Literal["Bundle"]  # noqa: N815
    id: FhirId | None = None
    entry: list[BundleEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)


Report = DocumentReference | DiagnosticReport
_M = TypeVar("_M", bound=_Fhir)
_SAFE_LOC = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _invalid(detail: str) -> PoisonError:
    return PoisonError(ErrorCode.FHIR_INVALID_RESOURCE, detail)


def _validate(model: type[_M], data: Any, where: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
    shown = []
    for err in errors[:_MAX_ERRORS_REPORTED]:
        parts = [str(p) if _SAFE_LOC.match(str(p)) else "<key>" for p in err["loc"]]
        shown.append(f"{'.'.join([where, *parts])}:{err['type']}")
    more = len(errors) - len(shown)
    raise _invalid("; ".join(shown) + (f"; +{more} more" if more > 0 else "")) from None


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """(media type, charset parameter) of a MIME content type."""
    if not content_type:
        return "", None
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    return media.strip().lower(), charset


def attachment_text(attachment: Attachment) -> str | None:
    """The note text of an attachment, ``None`` when it is not a usable text attachment."""
    media, charset = _media_type(attachment.contentType)
    if attachment.data is None or media not in TEXT_MEDIA:
        return None
    codec = codec_for(charset or "utf-8")
    if codec is None:
        raise _invalid("attachment charset is not supported")
    # base64Binary allows whitespace between groups (R4 datatypes); nothing else is tolerated.
    compact = "".join(attachment.data.split())
    try:
        raw = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _invalid("attachment data is not valid base64") from None
    text = decode_text(raw, codec)
    if text is None:
        raise _invalid("attachment text does not decode with its charset")
    if media in HTML_MEDIA:
        try:
            text = html_to_text(text)
        except ValueError:
            raise _invalid("attachment HTML cannot be read") from None
    return clean_text(text)


def _identity(resource: Report, raw: dict[str, Any], full_url: str | None) -> str:
    """``<type>/<id>[/v<versionId>]``, else the entry's fullUrl, else a hash of the resource."""
    if resource.id is not None:
        version = resource.meta.versionId if resource.meta is not None else None
        base = f"{resource.resourceType}/{resource.id}"
        return f"{base}/v{version}" if version else base
    if full_url:
        return full_url
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{resource.resourceType}/sha256-{digest}"


def _patient_identity(patient: Patient) -> str | None:
    for ident in patient.identifier:
        if ident.value:
            return f"{ident.system or ''}|{ident.value}"
    return f"Patient/{patient.id}" if patient.id else None


def _subject(reference: Reference | None, patients: dict[str, str]) -> str | None:
    if reference is None:
        return None
    if reference.reference:
        ref = reference.reference.strip()
        return patients.get(ref, ref)
    ident = reference.identifier
    if ident is not None and ident.value:
        return f"{ident.system or ''}|{ident.value}"
    return None


def _notes_of(
    resource: Report,
    raw: dict[str, Any],
    full_url: str | None,
    patients: dict[str, str],
    subjects: SubjectKeyer,
) -> list[EhrNote]:
    identity = _identity(resource, raw, full_url)
    patient = _subject(resource.subject, patients)
    subject_id = (
        subjects(KIND_PATIENT, patient) if patient else subjects(KIND_DOCUMENT, f"fhir|{identity}")
    )
    texts: list[tuple[str, str]] = []
    if isinstance(resource, DocumentReference):
        attachments: Sequence[Attachment] = [c.attachment for c in resource.content]
    else:
        attachments = resource.presentedForm
    for index, attachment in enumerate(attachments):
        text = attachment_text(attachment)
        if text is not None:
            texts.append((str(index), text))
    if not texts and isinstance(resource, DiagnosticReport) and resource.conclusion:
        conclusion = clean_text(resource.conclusion)
        if conclusion is not None:
            texts.append(("conclusion", conclusion))
    return [
        EhrNote(
            event_id=event_id("fhir", identity, index),
            subject_id=subject_id,
            text=text,
            origin=ORIGIN_FHIR,
        )
        for index, text in texts
    ]


def _report(data: dict[str, Any], where: str) -> Report:
    if data.get("resourceType") == "DocumentReference":
        return _validate(DocumentReference, data, where)
    return _validate(DiagnosticReport, data, where)


def notes_from_fhir(data: dict[str, Any], subjects: SubjectKeyer) -> list[EhrNote]:
    """The notes of one FHIR resource (already parsed JSON with a ``resourceType``)."""
    kind = data.get("resourceType")
    if not isinstance(kind, str):
        raise _invalid("resourceType is not a string")
    found: list[tuple[Report, dict[str, Any], str | None]] = []
    patients: dict[str, str] = {}
    if kind in SUPPORTED:
        found.append((_report(data, kind), data, None))
    elif kind == "Bundle":
        bundle = _validate(Bundle, data, "Bundle")
        for index, entry in enumerate(bundle.entry):
            entry_data = entry.resource or {}
            where = f"Bundle.entry.{index}.resource"
            entry_kind = entry_data.get("resourceType")
            if entry_kind in SUPPORTED:
                found.append((_report(entry_data, where), entry_data, entry.fullUrl))
            elif entry_kind == "Patient":
                patient = _validate(Patient, entry_data, where)
                if (identity := _patient_identity(patient)) is not None:
                    for ref in (entry.fullUrl, f"Patient/{patient.id}" if patient.id else None):
                        if ref:
                            patients[ref] = identity
        if not found:
            raise PoisonError(
                ErrorCode.FHIR_UNSUPPORTED_RESOURCE,
                "Bundle holds no DocumentReference or DiagnosticReport",
            )
    else:
        raise PoisonError(
            ErrorCode.FHIR_UNSUPPORTED_RESOURCE,
            "resourceType is not DocumentReference, DiagnosticReport or Bundle",
        )
    notes: list[EhrNote] = []
    for resource, raw, full_url in found:
        notes.extend(_notes_of(resource, raw, full_url, patients, subjects))
        if len(notes) > MAX_NOTES_PER_MESSAGE:
            raise PoisonError(
                ErrorCode.INVALID_EVENT, f"message holds more than {MAX_NOTES_PER_MESSAGE} notes"
            )
    if not notes:
        raise PoisonError(
            ErrorCode.FHIR_NO_ATTACHMENT, "no inline text/plain or text/html attachment"
        )
    return notes
