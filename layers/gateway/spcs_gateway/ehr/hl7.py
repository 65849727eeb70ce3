"""HL7 v2 (ER7) MDM^T02/T04 and ORU^R01 -> notes. Pure.

python-hl7 splits the message into segments and fields (after the checks below); the gateway
reads the data types itself: its escape handling must not log field values (python-hl7's
``unescape`` does) and must honour MSH-18.

Checks, cheapest first (``HL7_MALFORMED`` unless said otherwise): segments are split on CR, LF or
CRLF, at most ``MAX_SEGMENTS``; the first is MSH with a field separator and 4 or 5 distinct
encoding characters (no letters, digits, blanks or controls); every segment id is three upper-case
letters or digits followed by the field separator; one message per body (a second MSH, BHS/FHS
batches and DSC continuations are ``HL7_UNSUPPORTED_TYPE``); MSH-9 is MDM^T02, MDM^T04 or ORU^R01
(else ``HL7_UNSUPPORTED_TYPE``); MSH-9, MSH-10 and MSH-12 (2.x) are present; MSH-18 names a
known character set (else ``HL7_UNSUPPORTED_CHARSET``).

Notes: MDM is one document, so the whole message is one note. ORU has one note per OBR (its
report); OBX before any OBR form one note. A note is its OBX values in order, one per line:
TX/FT/ST values, whose repetitions are lines (FT/TX continuation), and an ADD segment right after
an OBX continues that OBX's text (notes split across segments); ED values of type TEXT or
subtype PLAIN/TEXT/HTML/XHTML, in Base64, Hex or plain text, decoded with MSH-18 (HTML reduced
to text). OBX with result status D, W or X (deleted, wrong, cannot be obtained) and every other
value type (numbers, codes, PDFs, images, pointers) are not note text. A supported message with
no note text is ``HL7_NO_TEXT``.

Escapes (HL7 v2.5 section 2.7): ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\P\\`` give the delimiters back;
``\\X..\\`` is hex in the MSH-18 character set (without MSH-18: UTF-8, else ISO 8859-1);
formatting ``\\.br\\``, ``\\.sp n\\``, ``\\.ce\\`` break lines, ``\\.in n\\ \\.ti n\\ \\.sk n\\``
indent, ``\\.fi\\ \\.nf\\`` and highlighting ``\\H\\ \\N\\`` are dropped, as are character-set
switches ``\\C..\\ \\M..\\`` and local ``\\Z..\\`` sequences; an unterminated escape stays literal.

Event id: ``hl7:<MSH-3>:<MSH-4>:<MSH-10>:<note ordinal>``. Subject: PID-3's first identifier with
its assigning authority (the PID before the note's OBR), else the document (TXA-12, else the
event id's parts).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spcs_gateway.ehr.html import html_to_text
from spcs_gateway.ehr.note import (
    MAX_NOTES_PER_MESSAGE,
    ORIGIN_HL7,
    EhrNote,
    clean_text,
    codec_for,
    decode_text,
    event_id,
)
from spcs_gateway.ehr.subjects import KIND_DOCUMENT, KIND_PATIENT, SubjectKeyer
from spcs_gateway.errors import ErrorCode, PoisonError

SUPPORTED_TYPES = frozenset({("MDM", "T02"), ("MDM", "T04"), ("ORU", "R01")})
TEXT_TYPES = frozenset({"TX", "FT", "ST"})
SKIPPED_STATUS = frozenset({"D", "W", "X"})
MAX_SEGMENTS = 10_000
_MAX_REPEAT = 20  # cap on \.sp n\ and \.in n\ counts
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_NUMBER = re.compile(r"^[+-]?\d{1,6}$")
_ENVELOPES = frozenset({"BHS", "BTS", "FHS", "FTS"})
_NULL = '""'

# HL7 Table 0211 (alternate character sets) -> Python codec. Other labels are tried as IANA
# names (``UTF-8``, ``windows-1252``), as many senders use those.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
    "ISO IR100": "iso8859-1",
    "ISO IR101": "iso8859-2",
    "ISO IR109": "iso8859-3",
    "ISO IR110": "iso8859-4",
    "ISO IR144": "iso8859-5",
    "ISO IR127": "iso8859-6",
    "ISO IR126": "iso8859-7",
    "ISO IR138": "iso8859-8",
    "ISO IR148": "iso8859-9",
    "ISO IR192": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "UNICODE": "utf-16",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc_kr",
    "ISO IR87": "iso2022_jp",
}


def _malformed(detail: str) -> PoisonError:
    return PoisonError(ErrorCode.HL7_MALFORMED, detail)


def _unsupported(detail: str) -> PoisonError:
    return PoisonError(ErrorCode.HL7_UNSUPPORTED_TYPE, detail)


@dataclass(frozen=True)
class Delimiters:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str
    truncation: str | None = None


def split_segments(body: str) -> list[str]:
    """CR, LF and CRLF all end a segment; blank lines are dropped."""
    text = body.replace("\r\n", "\r").replace("\n", "\r")
    segments = [s for s in text.split("\r") if s.strip(" \t")]
    if len(segments) > MAX_SEGMENTS:
        raise _malformed(f"message has more than {MAX_SEGMENTS} segments")
    return segments


def delimiters(msh: str) -> Delimiters:
    """The delimiters MSH-1 and MSH-2 declare, checked."""
    msh = msh.lstrip(" \t")
    if not msh.startswith("MSH") or len(msh) < 8:
        raise _malformed("message does not start with a complete MSH segment")
    sep = msh[3]
    end = msh.find(sep, 4)
    if end == -1:
        raise _malformed("MSH-2 is not followed by a field separator")
    enc = msh[4:end]
    chars = sep + enc
    if len(enc) not in (4, 5) or len(set(chars)) != len(chars):
        raise _malformed("MSH-2 encoding characters are malformed")
    if any(c.isalnum() or c.isspace() or not c.isprintable() for c in chars):
        raise _malformed("MSH delimiters must be printable punctuation")
    return Delimiters(sep, enc[0], enc[1], enc[2], enc[3], enc[4] if len(enc) == 5 else None)


def check_segments(segments: list[str], d: Delimiters) -> None:
    for index, segment in enumerate(segments):
        segment_id = segment[:3]
        if not _SEGMENT_ID.match(segment_id) or (len(segment) > 3 and segment[3] != d.field):
            raise _malformed(f"segment {index + 1} has no valid segment id")
        if segment_id in _ENVELOPES or (segment_id == "MSH" and index > 0):
            raise _unsupported("one HL7 message per SQS message: batches are not accepted")


def charset(label: str) -> str | None:
    """MSH-18 -> codec; ``None`` for an empty MSH-18. Raises for an unknown character set."""
    label = label.strip()
    if not label:
        return None
    codec = CHARSETS.get(" ".join(label.upper().replace("_", " ").split())) or codec_for(label)
    if codec is None:
        raise PoisonError(ErrorCode.HL7_UNSUPPORTED_CHARSET, "MSH-18 names an unknown charset")
    return codec


def _decode(data: bytes, codec: str | None) -> str:
    if codec is None:  # undeclared: UTF-8, else ISO 8859-1 (which decodes any byte)
        return decode_text(data, "utf-8") or data.decode("iso8859-1")
    text = decode_text(data, codec)
    if text is None:
        raise _malformed("bytes do not decode with the MSH-18 character set")
    return text


def _count(argument: str, default: int) -> int:
    argument = argument.strip()
    if not _NUMBER.match(argument):
        return default
    return max(0, min(_MAX_REPEAT, abs(int(argument))))


def _sequence(seq: str, d: Delimiters, codec: str | None) -> str:
    simple = {
        "F": d.field,
        "S": d.component,
        "T": d.subcomponent,
        "R": d.repetition,
        "E": d.escape,
    }
    if seq in simple:
        return simple[seq]
    if seq == "P":
        return d.truncation or ""
    if seq.startswith("X"):
        try:
            data = bytes.fromhex(seq[1:])
        except ValueError:
            raise _malformed("hex escape sequence is malformed") from None
        return _decode(data, codec)
    if seq.startswith("."):
        command, argument = seq[1:3].lower(), seq[3:]
        if command == "br" or command == "ce":
            return "\n"
        if command == "sp":
            return "\n" * max(1, _count(argument, 1))
        if command in ("in", "ti", "sk"):
            return " " * _count(argument, 1)
    # \H\ \N\ (highlighting), \.fi\ \.nf\, \C..\ \M..\ (character-set switches), \Z..\ (local)
    # and anything unknown: dropped.
    return ""


def unescape(value: str, d: Delimiters, codec: str | None) -> str:
    """Replace the escape sequences of ``value`` (see the module docstring)."""
    if value == _NULL:
        return ""
    if d.escape not in value:
        return value
    parts = value.split(d.escape)
    if len(parts) % 2 == 0:  # an odd number of escape characters: the last one is literal
        parts[-2:] = [parts[-2] + d.escape + parts[-1]]
    out = [parts[0]]
    for index in range(1, len(parts), 2):
        out.append(_sequence(parts[index], d, codec))
        out.append(parts[index + 1])
    return "".join(out)


def _raw(segment: Any, number: int) -> str:
    """Field ``number`` of a python-hl7 segment as its original text ('' when absent)."""
    return str(segment[number]) if number < len(segment) else ""


def _component(raw: str, d: Delimiters, number: int = 1, sub: int = 1) -> str:
    """Component ``number`` (sub-component ``sub``) of the first repetition, still escaped."""
    components = raw.split(d.repetition, 1)[0].split(d.component)
    if number > len(components):
        return ""
    subs = components[number - 1].split(d.subcomponent)
    return subs[sub - 1] if sub <= len(subs) else ""


@dataclass
class _Note:
    patient: str | None
    pieces: list[str] = field(default_factory=list)


def _ed_text(raw: str, d: Delimiters, codec: str | None) -> str | None:
    components = raw.split(d.repetition, 1)[0].split(d.component)
    components += [""] * (5 - len(components))
    kind, subtype, encoding = (c.strip().upper() for c in components[1:4])
    data = d.component.join(components[4:])
    html = subtype in ("HTML", "XHTML")
    if not (html or subtype in ("PLAIN", "TEXT") or (not subtype and kind in ("TEXT", "FT"))):
        return None  # a PDF, RTF, image, ... is not note text
    if encoding == "BASE64":
        try:
            text = _decode(base64.b64decode(data.strip().encode("ascii"), validate=True), codec)
        except (binascii.Error, UnicodeEncodeError):
            raise _malformed("ED data is not valid base64") from None
    elif encoding == "HEX":
        try:
            text = _decode(bytes.fromhex(data), codec)
        except ValueError:
            raise _malformed("ED data is not valid hex") from None
    elif encoding in ("", "A", "NONE"):
        text = unescape(data, d, codec)
    else:
        raise _malformed("ED encoding is not Base64, Hex or A")
    if html:
        try:
            text = html_to_text(text)
        except ValueError:
            raise _malformed("ED HTML cannot be read") from None
    return text


def _obx_text(segment: Any, d: Delimiters, codec: str | None) -> str | None:
    value_type = _component(_raw(segment, 2), d).strip().upper()
    status = _component(_raw(segment, 11), d).strip().upper()
    if status in SKIPPED_STATUS:
        return None
    raw = _raw(segment, 5)
    if value_type in TEXT_TYPES:
        return "\n".join(unescape(rep, d, codec) for rep in raw.split(d.repetition))
    if value_type == "ED":
        return _ed_text(raw, d, codec)
    return None


def _patient(segment: Any, d: Delimiters, codec: str | None) -> str | None:
    raw = _raw(segment, 3)
    ident = unescape(_component(raw, d, 1), d, codec).strip()
    if not ident:
        return None
    authority = ""
    for sub in range(1, 4):  # HD: namespace id, universal id, universal id type
        authority = unescape(_component(raw, d, 4, sub), d, codec).strip()
        if authority:
            break
    return f"{authority}|{ident}"


def _parse(segments: list[str]) -> Any:
    import hl7  # python-hl7; imported here so a router that never sees HL7 never loads it

    try:
        return hl7.parse("\r".join(segments))
    except Exception:  # noqa: BLE001 - hostile input: the library raises many types; none is kept
        raise _malformed("message cannot be split into segments and fields") from None


def _notes(message: Iterable[Any], d: Delimiters, codec: str | None, mdm: bool) -> list[_Note]:
    notes: list[_Note] = []
    current: _Note | None = None
    patient: str | None = None
    continues = False  # the previous segment was an OBX (or ADD) with text
    for segment in message:
        segment_id = _raw(segment, 0)
        if segment_id == "PID":
            patient = _patient(segment, d, codec)
            if mdm and current is not None:
                current.patient = current.patient or patient
        elif segment_id == "DSC" and _raw(segment, 1).strip():
            raise _unsupported("message continues in another message (DSC)")
        elif segment_id == "OBR" and not mdm:
            current = _Note(patient)
            notes.append(current)
        elif segment_id == "OBX":
            if current is None:
                current = _Note(patient)
                notes.append(current)
            text = _obx_text(segment, d, codec)
            if text is not None:
                current.pieces.append(text)
            continues = text is not None
            continue
        elif segment_id == "ADD" and continues and current is not None:
            current.pieces[-1] += unescape(_raw(segment, 1), d, codec)
            continue
        continues = False
    return notes


def notes_from_hl7(body: str, subjects: SubjectKeyer) -> list[EhrNote]:
    """The notes of one HL7 v2 message (ER7 text)."""
    segments = split_segments(body)
    if not segments:
        raise _malformed("message is empty")
    if segments[0].lstrip(" \t")[:3] in _ENVELOPES:
        raise _unsupported("one HL7 message per SQS message: batches are not accepted")
    segments[0] = segments[0].lstrip(" \t")
    d = delimiters(segments[0])
    check_segments(segments, d)
    message = _parse(segments)
    msh = message.segment("MSH")
    kind = (
        _component(_raw(msh, 9), d, 1).strip().upper(),
        _component(_raw(msh, 9), d, 2).strip().upper(),
    )
    if not kind[0]:
        raise _malformed("MSH-9 message type is empty")
    if not _component(_raw(msh, 10), d, 1).strip():
        raise _malformed("MSH-10 message control id is empty")
    if not _component(_raw(msh, 12), d, 1).strip().startswith("2."):
        raise _malformed("MSH-12 version is not 2.x")
    if kind not in SUPPORTED_TYPES:
        raise _unsupported("message type is not MDM^T02, MDM^T04 or ORU^R01")
    codec = charset(_raw(msh, 18).split(d.repetition, 1)[0])
    control = unescape(_component(_raw(msh, 10), d, 1), d, codec).strip()
    if not control:
        raise _malformed("MSH-10 message control id is empty")
    app = unescape(_component(_raw(msh, 3), d, 1), d, codec).strip()
    facility = unescape(_component(_raw(msh, 4), d, 1), d, codec).strip()
    document = ""
    for segment in message:
        if _raw(segment, 0) == "TXA":
            document = unescape(_component(_raw(segment, 12), d, 1), d, codec).strip()
            break

    out: list[EhrNote] = []
    for ordinal, note in enumerate(_notes(message, d, codec, kind[0] == "MDM"), start=1):
        text = clean_text("\n".join(note.pieces))
        if text is None:
            continue
        if len(out) == MAX_NOTES_PER_MESSAGE:
            raise PoisonError(
                ErrorCode.INVALID_EVENT, f"message holds more than {MAX_NOTES_PER_MESSAGE} notes"
            )
        if note.patient:
            subject_id = subjects(KIND_PATIENT, note.patient)
        elif document:
            subject_id = subjects(KIND_DOCUMENT, f"hl7|{facility}|{document}")
        else:
            subject_id = subjects(KIND_DOCUMENT, f"hl7|{app}|{facility}|{control}|{ordinal}")
        out.append(
            EhrNote(
                event_id=event_id("hl7", app, facility, control, str(ordinal)),
                subject_id=subject_id,
                text=text,
                origin=ORIGIN_HL7,
            )
        )
    if not out:
        raise PoisonError(ErrorCode.HL7_NO_TEXT, "message holds no note text")
    return out
