"""NER lexicon backend: real drug/disease mentions in HuggingFace token-classification shape."""

from __future__ import annotations

import pytest

from spcs_local.emulator.backends import BadInput, NerBackend

NOTE = (
    "4yo with acute otitis media started on amoxicillin 90 mg/kg/day; "
    "history of asthma, uses albuterol"
)


@pytest.fixture(scope="module")
def ner() -> NerBackend:
    backend = NerBackend()
    backend.warm_up()
    return backend


def spans(text: str, entities: list[dict]) -> list[tuple[str, str, int]]:
    for e in entities:
        # Offsets index the input exactly.
        assert text[e["start"] : e["end"]] == e["word"]
    return [(e["word"], e["entity"], e["index"]) for e in entities]


def test_pediatric_note_finds_the_drug_and_disease_mentions(ner: NerBackend) -> None:
    (entities,) = ner.predict([NOTE])
    # index is the 1-based token position ([CLS] = 0); "/" ";" "," are tokens, like BERT.
    assert spans(NOTE, entities) == [
        ("otitis", "B-DISEASE", 4),
        ("media", "I-DISEASE", 5),  # "otitis media" wins over the shorter "otitis"
        ("amoxicillin", "B-CHEMICAL", 8),
        ("asthma", "B-DISEASE", 18),
        ("albuterol", "B-CHEMICAL", 21),
    ]
    assert [(e["start"], e["end"]) for e in entities] == [
        (15, 21),
        (22, 27),
        (39, 50),
        (76, 82),
        (89, 98),
    ]
    assert set(entities[0]) == {"word", "score", "entity", "index", "start", "end"}


def test_multi_word_mentions_get_b_then_i_labels(ner: NerBackend) -> None:
    text = (
        "Known Type 1 diabetes mellitus on insulin glargine; Crohn's disease and cystic fibrosis."
    )
    (entities,) = ner.predict([text])
    assert spans(text, entities) == [
        ("Type", "B-DISEASE", 2),
        ("1", "I-DISEASE", 3),
        ("diabetes", "I-DISEASE", 4),
        ("mellitus", "I-DISEASE", 5),
        ("insulin", "B-CHEMICAL", 7),
        ("glargine", "I-CHEMICAL", 8),
        ("Crohn's", "B-DISEASE", 10),
        ("disease", "I-DISEASE", 11),
        ("cystic", "B-DISEASE", 13),
        ("fibrosis", "I-DISEASE", 14),
    ]


def test_mentions_do_not_span_punctuation(ner: NerBackend) -> None:
    text = "Otitis. Media center visit."
    (entities,) = ner.predict([text])
    assert spans(text, entities) == [("Otitis", "B-DISEASE", 1)]


def test_scores_are_deterministic_lexicon_confidences(ner: NerBackend) -> None:
    first = ner.predict([NOTE])[0]
    again = ner.predict([NOTE])[0]
    assert first == again
    assert all(0.5 < e["score"] < 1.0 for e in first)
    assert len({e["score"] for e in first}) > 1  # derived from the word, not a constant
    # Same word and label in another note, other case: same score.
    other = ner.predict(["Asthma exacerbation"])[0]
    asthma = next(e for e in first if e["word"] == "asthma")
    assert other[0]["entity"] == "B-DISEASE"
    assert other[0]["score"] == asthma["score"]


def test_sentence_without_mentions_and_empty_text_give_no_entities(ner: NerBackend) -> None:
    assert ner.predict(
        ["Seen for well-child visit. Growth and development normal. Follow up in two weeks.", ""]
    ) == [[], []]


def test_batch_keeps_order(ner: NerBackend) -> None:
    out = ner.predict(["uses albuterol", "no findings", "fever and cough"])
    assert [[e["word"] for e in row] for row in out] == [
        ["albuterol"],
        [],
        ["fever", "cough"],
    ]


def test_non_text_input_is_bad_input(ner: NerBackend) -> None:
    with pytest.raises(BadInput) as info:
        ner.predict([NOTE, 42])  # type: ignore[list-item]
    assert info.value.reason == "inputs must be text"
    assert ner.name == "lexicon"


def test_labels_are_the_deployments_entity_labels(ner: NerBackend) -> None:
    from spcs_models import spec

    assert ner.entity_labels == spec.NER.entity_labels
    (entities,) = ner.predict([NOTE])
    assert {e["entity"] for e in entities} <= set(spec.NER.entity_labels)
    # Another spelling is answered as given; a kind the deployment lacks is never produced.
    chem_only = NerBackend(("B-Chemical", "I-Chemical"))
    (entities,) = chem_only.predict([NOTE])
    assert [(e["word"], e["entity"]) for e in entities] == [
        ("amoxicillin", "B-Chemical"),
        ("albuterol", "B-Chemical"),
    ]
    with pytest.raises(ValueError, match="B-<KIND>"):
        NerBackend(("CHEMICAL",))


def test_untrained_head_labels_every_token_label_0_or_1() -> None:
    untrained = NerBackend(head="untrained")
    assert untrained.name == "lexicon/untrained-head"
    (entities,) = untrained.predict([NOTE])
    words = [e["word"] for e in entities]
    assert len(words) == 21  # every token, none filtered as "O"
    assert words[:4] == ["4yo", "with", "acute", "otitis"]
    assert {e["entity"] for e in entities} == {"LABEL_0", "LABEL_1"}
    assert all(0.5 <= e["score"] < 0.62 for e in entities)  # a coin flip, not a confidence
    assert [e["index"] for e in entities] == list(range(1, 22))
    for e in entities:
        assert NOTE[e["start"] : e["end"]] == e["word"]
    assert untrained.predict([NOTE]) == [entities]  # deterministic
    untrained.head = "trained"
    assert {e["entity"] for e in untrained.predict([NOTE])[0]} == {
        "B-DISEASE",
        "I-DISEASE",
        "B-CHEMICAL",
    }
    with pytest.raises(ValueError, match="ner head"):
        untrained.head = "half-trained"
