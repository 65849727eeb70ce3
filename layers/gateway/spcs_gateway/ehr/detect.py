"""Which format an SQS message body is in, decided by its shape alone (no envelope). Pure.

* HL7 v2 (ER7): the body starts with an ``MSH`` segment (leading whitespace ignored). ``BHS``
  and ``FHS`` (batch and file envelopes) are recognised so they can be refused by name.
* FHIR: a JSON object whose top level has ``resourceType`` and no ``schema``. The text test
  here is only a cheap pre-filter (an envelope event never pays a second JSON parse); the JSON's
  top level decides (``events.parse_message``).
* Anything else is the gateway's own envelope (``clinical-note.v1``, ``medical-image.v1``).

``is_dicom_part10``: the 128-byte preamble followed by ``DICM`` (PS3.10 section 7.1).
"""

from __future__ import annotations

from enum import StrEnum


class Shape(StrEnum):
    ENVELOPE = "envelope"
    FHIR = "fhir"
    HL7V2 = "hl7v2"


HL7_HEADS = ("MSH", "BHS", "FHS")
_LEADING = " \t\r\n"


def detect(body: str | bytes) -> Shape:
    if isinstance(body, bytes):
        head = body.lstrip(_LEADING.encode())[:3].decode("ascii", errors="replace")
        fhir = b'"resourceType"' in body
    else:
        head = body.lstrip(_LEADING)[:3]
        fhir = '"resourceType"' in body
    if head in HL7_HEADS:
        return Shape.HL7V2
    if fhir:
        return Shape.FHIR
    return Shape.ENVELOPE


DICOM_PREAMBLE = 128
DICOM_MAGIC = b"DICM"


def is_dicom_part10(data: bytes) -> bool:
    return data[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] == DICOM_MAGIC
