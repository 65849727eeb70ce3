"""``group_entities``: B-/I- tokens -> whole-word spans with offsets into the input. Pure."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import RECORDED_NER

from spcs_gateway.api.entities import EntitySpan, group_entities


def spans(text: str, output: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    return [(s.label, s.text, s.start, s.end) for s in group_entities(text, output)]


def tok(
    entity: str, start: int, end: int, word: str | None = None, score: float = 0.9
) -> dict[str, Any]:
    return {"entity": entity, "start": start, "end": end, "word": word or "", "score": score}


@pytest.fixture(scope="module")
def lexicon() -> Any:
    from spcs_local.emulator.backends import NerBackend

    backend = NerBackend()
    backend.warm_up()
    return backend


def test_api_recorded_ner_matches_backend(lexicon: Any) -> None:
    texts = list(RECORDED_NER)
    assert lexicon.predict(texts) == [RECORDED_NER[t] for t in texts]


def test_api_grouping_on_real_lexicon_output(lexicon: Any) -> None:
    text = (
        "Wheezing since Tuesday; type 2 diabetes mellitus on metformin and "
        "beta-thalassemia trait. Acute otitis media treated with amoxicillin; Crohn's disease."
    )
    [output] = lexicon.predict([text])
    found = group_entities(text, output)

    assert [(s.label, s.text) for s in found] == [
        ("DISEASE", "Wheezing"),
        ("DISEASE", "type 2 diabetes mellitus"),
        ("CHEMICAL", "metformin"),
        ("DISEASE", "beta-thalassemia"),
        ("DISEASE", "otitis media"),
        ("CHEMICAL", "amoxicillin"),
        ("DISEASE", "Crohn's disease"),
    ]
    for span in found:
        assert text[span.start : span.end] == span.text
    # Score: mean of the span's tokens.
    multi = found[1]
    members = [t for t in output if multi.start <= t["start"] < multi.end]
    assert len(members) == 4
    assert multi.score == round(sum(t["score"] for t in members) / 4, 4)


def test_api_grouping_merges_wordpieces_even_when_tagged_b() -> None:
    text = "Given amoxicillin today"
    output = [
        tok("B-CHEMICAL", 6, 10, "amox"),
        tok("B-CHEMICAL", 10, 13, "##ici"),  # a model quirk: word piece tagged B-
        tok("I-CHEMICAL", 13, 17, "##llin"),
    ]
    assert spans(text, output) == [("CHEMICAL", "amoxicillin", 6, 17)]


def test_api_grouping_widens_a_partly_tagged_word() -> None:
    text = "Given amoxicillin today"
    assert spans(text, [tok("B-CHEMICAL", 6, 10, "amox")]) == [("CHEMICAL", "amoxicillin", 6, 17)]


def test_api_grouping_keeps_adjacent_entities_apart() -> None:
    text = "asthma albuterol"
    output = [tok("B-DISEASE", 0, 6), tok("B-CHEMICAL", 7, 16)]
    assert spans(text, output) == [("DISEASE", "asthma", 0, 6), ("CHEMICAL", "albuterol", 7, 16)]


def test_api_grouping_b_then_b_same_type_are_two_spans() -> None:
    text = "asthma eczema"
    output = [tok("B-DISEASE", 0, 6), tok("B-DISEASE", 7, 13)]
    assert spans(text, output) == [("DISEASE", "asthma", 0, 6), ("DISEASE", "eczema", 7, 13)]


def test_api_grouping_i_does_not_jump_over_untagged_words() -> None:
    text = "breast pain and cancer"
    output = [tok("B-DISEASE", 0, 6), tok("I-DISEASE", 16, 22)]
    assert spans(text, output) == [("DISEASE", "breast", 0, 6), ("DISEASE", "cancer", 16, 22)]


def test_api_grouping_i_without_open_span_starts_one() -> None:
    text = "x otitis media"
    output = [tok("I-DISEASE", 2, 8), tok("I-DISEASE", 9, 14)]
    assert spans(text, output) == [("DISEASE", "otitis media", 2, 14)]


def test_api_grouping_skips_o_and_junk_and_accepts_bioes_and_io() -> None:
    text = "fever with rash"
    output: list[Any] = [
        "not a dict",
        tok("O", 6, 10),
        {"entity": "B-DISEASE", "start": 0, "end": 99, "word": None},  # offsets and word unusable
        tok("S-DISEASE", 0, 5),
        tok("DISEASE", 11, 15),  # IO scheme: no prefix
    ]
    assert spans(text, output) == [("DISEASE", "fever", 0, 5), ("DISEASE", "rash", 11, 15)]


def test_api_grouping_locates_tokens_without_offsets() -> None:
    text = "Otitis media, then otitis again"
    output = [
        {"entity": "B-DISEASE", "word": "otitis", "score": 0.8},  # uncased model
        {"entity": "I-DISEASE", "word": "media", "score": 0.6},
        {"entity": "B-DISEASE", "word": "otitis", "score": 0.9},
    ]
    found = group_entities(text, output)
    assert [(s.text, s.start, s.end, s.score) for s in found] == [
        ("Otitis media", 0, 12, 0.7),
        ("otitis", 19, 25, 0.9),
    ]


def test_api_grouping_empty_and_overlapping_duplicates() -> None:
    assert group_entities("anything", []) == []
    assert group_entities("anything", None) == []
    text = "sepsis"
    output = [tok("B-DISEASE", 0, 6), tok("I-DISEASE", 0, 6)]
    assert group_entities(text, output) == [EntitySpan("DISEASE", 0, 6, "sepsis", 0.9)]
