"""The note an EHR message yields, its deterministic event id, and text decoding. Pure.

One FHIR resource or HL7 v2 message may hold several notes; each becomes one ``EhrNote`` and one
inference row. Its ``event_id`` is built from the source's own identifiers (FHIR id and
``meta.versionId`` plus the attachment's index; HL7 sending application, facility and MSH-10
plus the note's ordinal), so a redelivered message yields the same ids and the results table's
pre-check and MERGE keep it idempotent. Ids that would not fit the gateway's id charset or
length are replaced by a SHA-256 of their parts: still deterministic.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass

from spcs_gateway.errors import ErrorCode, PoisonError
from spcs_gateway.events import MAX_TEXT_CHARS

ORIGIN_FHIR = "fhir"
ORIGIN_HL7 = "hl7v2"
# More notes than this in one SQS message is refused (each is an inference row).
MAX_NOTES_PER_MESSAGE = 100

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$")
_MAX_ID = 128
_PART = re.compile(r"^[A-Za-z0-9._@/+=-]*$")  # one part of an id: no ':' (the separator)


@dataclass(frozen=True, repr=False)
class EhrNote:
    """One inference row from an EHR message. ``text`` is PHI; ``subject_id`` is already the
    results table's value (a keyed hash unless the operator opted in to source ids)."""

    event_id: str
    subject_id: str
    text: str
    origin: str

    def __repr__(self) -> str:
        return f"EhrNote({self.event_id}, {self.origin}, {len(self.text)} chars)"

    __str__ = __repr__


def event_id(scheme: str, *parts: str) -> str:
    """``scheme:part:part...`` when every part is plain and the id fits, else
    ``scheme:h:<sha256 of the parts>`` (deterministic either way)."""
    shown = [part or "-" for part in parts]
    readable = ":".join([scheme, *shown])
    if len(readable) <= _MAX_ID and _ID.match(readable) and all(_PART.match(p) for p in shown):
        return readable
    digest = hashlib.sha256("\x1f".join([scheme, *parts]).encode("utf-8", "surrogatepass"))
    return f"{scheme}:h:{digest.hexdigest()[:40]}"


_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def clean_text(text: str) -> str | None:
    """Newlines normalised, trailing blanks and surplus blank lines dropped. ``None`` when
    nothing is left; a note longer than the events' ``MAX_TEXT_CHARS`` is refused."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _BLANK_RUNS.sub("\n\n", _TRAILING_SPACE.sub("\n", text)).strip()
    if not text:
        return None
    if len(text) > MAX_TEXT_CHARS:
        raise PoisonError(ErrorCode.INVALID_EVENT, f"note text exceeds {MAX_TEXT_CHARS} characters")
    return text


# Text encodings a note may be declared in (Python codec names). Anything else, and every
# bytes-to-bytes codec Python knows (base64, zlib, rot13 ...), is refused.
TEXT_CODECS = frozenset(
    {
        "ascii",
        "utf-8",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        *(f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{n}" for n in (1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258)),
        "koi8-r",
        "koi8-u",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "euc_kr",
        "cp949",
        "shift_jis",
        "cp932",
        "euc_jp",
        "iso2022_jp",
    }
)


def codec_for(label: str) -> str | None:
    """The Python codec for an IANA charset label (``ISO-8859-1``, ``utf-8``, ``windows-1252``
    ...), or ``None`` when it names none of ``TEXT_CODECS``."""
    try:
        name = codecs.lookup(label.strip().strip('"').lower()).name
    except (LookupError, ValueError):
        return None
    return name if name in TEXT_CODECS else None


def decode_text(data: bytes, codec: str) -> str | None:
    """``data`` decoded strictly (a UTF BOM is honoured); ``None`` if it does not decode."""
    if codec == "utf-8":
        codec = "utf-8-sig"
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None
