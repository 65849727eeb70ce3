"""HL7 v2 intake (``spcs_gateway.ehr.hl7``): notes, escapes, character sets, event ids, refusals."""

from __future__ import annotations

import base64

import pytest

from spcs_gateway.ehr.hl7 import notes_from_hl7
from spcs_gateway.ehr.note import EhrNote
from spcs_gateway.ehr.subjects import SubjectIds
from spcs_gateway.errors import ErrorCode, PoisonError
from spcs_gateway.events import MAX_TEXT_CHARS, parse_message

KEY = SubjectIds.with_key(b"k" * 32)


def msg(*segments: str, kind: str = "MDM^T02", control: str = "C1", charset: str = "") -> str:
    msh = f"MSH|^~\\&|APP|FAC|GW|SF|20250101120000||{kind}|{control}|P|2.5.1||||||{charset}"
    return "\r".join([msh, "PID|1||MRN1^^^HOSP^MR||Roe^Jane", *segments])


def obx(value: str, value_type: str = "TX", set_id: int = 1, status: str = "F") -> str:
    return f"OBX|{set_id}|{value_type}|11506-3^Note^LN||{value}||||||{status}"


def notes(body: str) -> list[EhrNote]:
    return notes_from_hl7(body, KEY)


def text(body: str) -> str:
    [note] = notes(body)
    return note.text


def code(body: str) -> ErrorCode:
    with pytest.raises(PoisonError) as caught:
        notes(body)
    return caught.value.code


def test_mdm_is_one_note_over_its_obx_segments() -> None:
    body = msg("TXA|1|PN|TX", obx("first part", set_id=1), obx("second part", set_id=2))
    [note] = notes(body)
    assert note.text == "first part\nsecond part"
    assert note.event_id == "hl7:APP:FAC:C1:1"
    assert note.origin == "hl7v2"
    assert note.subject_id == KEY("patient", "HOSP|MRN1")
    assert "first" not in repr(note)


def test_tx_repetitions_are_lines_and_add_continues_the_obx() -> None:
    body = msg(obx("line one~line two~"), "ADD| continued", "ADD|, and more", obx("next"))
    assert text(body) == "line one\nline two\n continued, and more\nnext"


def test_add_after_a_non_text_segment_is_ignored() -> None:
    assert text(msg(obx("a"), "NTE|1||comment", "ADD|orphan")) == "a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", "a|b^c&d~e\\f"),
        ("line\\.br\\next", "line\nnext"),
        ("a\\.sp 3\\b", "a\n\nb"),  # blank runs collapse to one blank line
        ("a\\.sp\\b", "a\nb"),
        ("a\\.ce\\b", "a\nb"),
        ("\\.in 4\\x", "x"),  # leading blanks of a line are trimmed by clean_text
        ("a\\.in 2\\x", "a  x"),
        ("a\\.sk 3\\x", "a   x"),
        ("a\\.sp 999999\\b", "a" + "\n\n" + "b"),  # counts are capped; blank runs collapse
        ("\\H\\bold\\N\\ text\\.fi\\\\.nf\\", "bold text"),
        ("caf\\XC3A9\\", "café"),
        ("\\Zlocal\\x\\C2842\\y\\M2442\\z", "xyz"),
        ("unterminated \\F", "unterminated \\F"),
        ("trailing\\", "trailing\\"),
        ('""', ""),
    ],
)
def test_escape_sequences(value: str, expected: str) -> None:
    body = msg(obx(value), obx("end"))
    assert text(body) == (expected + "\nend").strip()


def test_ft_and_st_are_text_other_value_types_and_struck_results_are_not() -> None:
    body = msg(
        obx("ft text", "FT"),
        obx("st text", "ST"),
        obx("112", "NM"),
        obx("CODE^Coded^L", "CE"),
        obx("deleted text", status="D"),
        obx("wrong text", status="W"),
        obx("not obtained", status="X"),
    )
    assert text(body) == "ft text\nst text"


def test_custom_delimiters_are_honoured() -> None:
    body = "\r".join(
        [
            "MSH#*$!@#APP#FAC#GW#SF#20250101##ORU*R01#C9#P#2.4",
            "PID#1##MRN7***HOSP",
            "OBR#1",
            "OBX#1#TX#X##a$b!F!c#######F",
        ]
    )
    [note] = notes(body)
    assert note.text == "a\nb#c"
    assert note.subject_id == KEY("patient", "HOSP|MRN7")


def test_oru_has_one_note_per_obr_and_each_its_own_patient() -> None:
    body = "\r".join(
        [
            "MSH|^~\\&|RIS|FAC|GW|SF|20250101||ORU^R01|R9|P|2.3",
            "PID|1||P1^^^HOSP",
            "OBR|1",
            obx("report one"),
            "OBR|2",
            obx("report two"),
            obx("42", "NM"),
            "PID|2||P2^^^HOSP",
            "OBR|3",
            obx("report three"),
            "OBR|4",
            obx("99", "NM"),  # no text: no note, but the ordinal is kept
            "OBR|5",
            obx("report five"),
        ]
    )
    found = notes(body)
    assert [n.event_id for n in found] == [f"hl7:RIS:FAC:R9:{i}" for i in (1, 2, 3, 5)]
    assert [n.text for n in found] == ["report one", "report two", "report three", "report five"]
    assert [n.subject_id for n in found] == [KEY("patient", "HOSP|P1")] * 2 + [
        KEY("patient", "HOSP|P2")
    ] * 2


def test_without_a_patient_the_document_is_the_subject() -> None:
    body = "\r".join(
        ["MSH|^~\\&|APP|FAC|GW|SF|2025||MDM^T04|C5|P|2.6", "TXA|1|PN|TX|||||||||DOC-77", obx("x")]
    )
    [note] = notes(body)
    assert note.subject_id == KEY("document", "hl7|FAC|DOC-77")
    assert note.event_id == "hl7:APP:FAC:C5:1"


def test_segments_may_end_with_lf_or_crlf_and_blank_lines_are_dropped() -> None:
    body = msg(obx("a"), obx("b"))
    for variant in (body.replace("\r", "\n"), body.replace("\r", "\r\n"), "\n  " + body + "\r\r"):
        assert notes(variant) == notes(body)


@pytest.mark.parametrize(
    ("charset", "escape", "expected"),
    [
        ("8859/1", "\\XE9\\", "é"),
        ("ISO IR100", "\\XE9\\", "é"),
        ("UNICODE UTF-8", "\\XC3A9\\", "é"),
        ("ISO IR192", "\\XC3A9\\", "é"),
        ("8859/7", "\\XE1\\", "\u03b1"),  # Greek small alpha
        ("UTF-8", "\\XC3A9\\", "é"),  # an IANA label, as senders write it
        ("", "\\XC3A9\\", "é"),  # undeclared: UTF-8 ...
        ("", "\\XE9\\", "é"),  # ... else ISO 8859-1
        ("8859/1~ISO IR87", "\\XE9\\", "é"),  # the first repetition is the message's set
    ],
)
def test_msh18_decodes_hex_escapes(charset: str, escape: str, expected: str) -> None:
    assert text(msg(obx(f"caf{escape}"), charset=charset)) == f"caf{expected}"


def test_an_unknown_or_undecodable_charset_is_refused() -> None:
    assert code(msg(obx("x"), charset="CNS 11643-1992")) is ErrorCode.HL7_UNSUPPORTED_CHARSET
    assert code(msg(obx("x"), charset="base64")) is ErrorCode.HL7_UNSUPPORTED_CHARSET
    assert code(msg(obx("\\XE9\\"), charset="UNICODE UTF-8")) is ErrorCode.HL7_MALFORMED
    assert code(msg(obx("\\XZZ\\"))) is ErrorCode.HL7_MALFORMED


def _ed(data: bytes, subtype: str = "PLAIN", encoding: str = "Base64", kind: str = "TEXT") -> str:
    payload = base64.b64encode(data).decode() if encoding == "Base64" else data.hex().upper()
    return obx(f"^{kind}^{subtype}^{encoding}^{payload}", "ED")


def test_ed_text_and_html_in_base64_or_hex_with_the_message_charset() -> None:
    html = "<p>Asthma</p><p>r\xe9sum\xe9 &amp; plan</p><script>x()</script>".encode("iso8859-1")
    assert text(msg(_ed(html, "HTML"), charset="8859/1")) == "Asthma\n\nrésumé & plan"
    assert text(msg(_ed(b"plain note", "PLAIN", "Hex"))) == "plain note"
    assert text(msg(obx("^TEXT^^A^inline \\T\\ text", "ED"))) == "inline & text"


def test_ed_that_is_not_text_is_not_a_note() -> None:
    body = msg(_ed(b"%PDF-1.4", "PDF", kind="AP"), _ed(b"\xff\xd8", "JPEG", kind="IM"))
    assert code(body) is ErrorCode.HL7_NO_TEXT


@pytest.mark.parametrize(
    "value",
    ["^TEXT^PLAIN^Base64^not base64!", "^TEXT^PLAIN^Hex^XYZ", "^TEXT^PLAIN^Zip^AAAA"],
)
def test_bad_ed_data_is_malformed(value: str) -> None:
    assert code(msg(obx(value, "ED"))) is ErrorCode.HL7_MALFORMED


@pytest.mark.parametrize("kind", ["MDM^T02", "MDM^T04", "ORU^R01", "MDM^T02^MDM_T02", "oru^r01"])
def test_supported_message_types(kind: str) -> None:
    assert text(msg(obx("x"), kind=kind)) == "x"


@pytest.mark.parametrize("kind", ["ADT^A01", "MDM^T01", "ORM^O01", "ORU", "MDM^T06"])
def test_other_message_types_are_unsupported(kind: str) -> None:
    assert code(msg(obx("x"), kind=kind)) is ErrorCode.HL7_UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    "body",
    [
        "BHS|^~\\&|APP\r" + msg(obx("x")) + "\rBTS|1",
        "FHS|^~\\&|APP\r" + msg(obx("x")),
        msg(obx("x")) + "\r" + msg(obx("y"), control="C2"),
        msg(obx("x"), "DSC|C1-2|F"),
    ],
    ids=["batch", "file", "two-messages", "continuation"],
)
def test_batches_and_continuations_are_unsupported(body: str) -> None:
    assert code(body) is ErrorCode.HL7_UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    "body",
    [
        "MSH",
        "MSH|^~",
        "MSH|^~\\&",
        "MSH|^^\\&|A|B",  # a repeated encoding character
        "MSH|^~\\|A|B",  # three encoding characters
        "MSH|^~\\&x|A|B",  # five, the fifth a letter
        "MSHa^~\\&|A|B",  # a letter as field separator
        "MSH ^~\\&|A|B",
        msg(obx("x")).replace("PID|", "pid|"),
        msg(obx("x")).replace("PID|", "PI|"),  # a truncated segment id
        msg(obx("x")).replace("PID|", "PID^"),
        msg(obx("x")) + "\rOB",
        msg(obx("x"), control=""),
        msg(obx("x"), kind=""),
        msg(obx("x")).replace("|2.5.1|", "||"),
        msg(obx("x")).replace("|2.5.1|", "|3.0|"),
        "   ",
    ],
)
def test_malformed_messages(body: str) -> None:
    assert code(body) is ErrorCode.HL7_MALFORMED


def test_a_huge_field_is_refused_and_the_detail_does_not_quote_it() -> None:
    with pytest.raises(PoisonError) as caught:
        notes(msg(obx("PHI" * (MAX_TEXT_CHARS // 3 + 1))))
    assert caught.value.code is ErrorCode.INVALID_EVENT
    assert "PHI" not in str(caught.value)


def test_too_many_notes_or_segments_are_refused() -> None:
    many = [seg for i in range(101) for seg in (f"OBR|{i}", obx(f"r{i}"))]
    assert code(msg(*many, kind="ORU^R01")) is ErrorCode.INVALID_EVENT
    assert code(msg(*[obx("x")] * 10_001)) is ErrorCode.HL7_MALFORMED


def test_event_ids_are_deterministic_and_hashed_when_not_plain() -> None:
    body = msg(obx("x"), control="ID WITH SPACE")
    [first], [second] = notes(body), notes(body)
    assert first.event_id == second.event_id
    assert first.event_id.startswith("hl7:h:")
    assert "SPACE" not in first.event_id


def test_parse_message_detects_hl7_by_shape() -> None:
    [note] = parse_message("\n " + msg(obx("x")), subjects=KEY)
    assert isinstance(note, EhrNote)
    with pytest.raises(PoisonError) as caught:
        parse_message(msg(obx("x")))  # a router without a subject keyer: not its format
    assert caught.value.code is ErrorCode.UNKNOWN_SCHEMA


def test_error_details_never_quote_the_message() -> None:
    canary = "CanaryPid4412"
    bodies = [
        msg(obx("x"), kind=f"ADT^{canary}"),
        msg(obx("x"), charset=canary),
        msg(obx(f"^TEXT^PLAIN^Base64^{canary}!", "ED")),
        msg(obx(f"\\X{canary}\\")),
        f"MSH|^~\\&|{canary}",
        msg(obx("x")).replace("PID|1", f"{canary.lower()}|1"),
    ]
    for body in bodies:
        body = body.replace("Roe^Jane", f"{canary}^Jane")
        with pytest.raises(PoisonError) as caught:
            notes(body)
        assert canary not in str(caught.value)
        assert canary.lower() not in str(caught.value)
        assert caught.value.__cause__ is None
