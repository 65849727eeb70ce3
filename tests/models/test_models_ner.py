"""BioBERT NER logic: label normalisation, load-time rejection, merging, offsets, row errors.

Runs on tiny fake token-classification pipelines (``models_fakes``); no transformers/torch.
"""

from __future__ import annotations

import pytest
from models_fakes import (
    CHEMICAL_ID2LABEL,
    DISEASE_ID2LABEL,
    FakeTokenClassificationPipeline,
    chemical_pipeline,
    disease_pipeline,
    tokens,
)

from spcs_models import ner, spec

OUTPUT_KEYS = {s.name for s in spec.TOKEN_CLASSIFICATION_OUTPUT.specs}


def load(*pipes: FakeTokenClassificationPipeline) -> ner.NerModel:
    by_dir = {f"/artifacts/{i}": pipe for i, pipe in enumerate(pipes)}
    return ner.load_model(list(by_dir), loader=by_dir.__getitem__)


# -- label normalisation ----------------------------------------------------------------------


def test_disease_checkpoint_digit_zero_is_outside() -> None:
    assert ner.normalise_labels(DISEASE_ID2LABEL) == {
        "B-DISEASE": "B-DISEASE",
        "I-DISEASE": "I-DISEASE",
        "0": None,
    }


def test_letter_o_and_label_n_are_outside_and_case_is_normalised() -> None:
    mapping = ner.normalise_labels({0: "O", 1: "b-Chemical", 2: "i-chemical", 3: "LABEL_3"})
    assert mapping == {
        "O": None,
        "b-Chemical": "B-CHEMICAL",
        "i-chemical": "I-CHEMICAL",
        "LABEL_3": None,
    }


def test_untrained_head_label_0_label_1_fails_loading_with_a_clear_error() -> None:
    untrained = FakeTokenClassificationPipeline({0: "LABEL_0", 1: "LABEL_1"}, {})
    with pytest.raises(ner.CheckpointError, match="untrained"):
        load(chemical_pipeline(), untrained)


def test_label_outside_the_declared_set_fails_loading() -> None:
    genetic = FakeTokenClassificationPipeline({0: "B-GENETIC", 1: "I-GENETIC", 2: "O"}, {})
    with pytest.raises(ner.CheckpointError, match="B-GENETIC"):
        load(chemical_pipeline(), disease_pipeline(), genetic)


def test_checkpoint_without_bio_labels_fails_loading() -> None:
    named = FakeTokenClassificationPipeline({0: "No Disease", 1: "Disease"}, {})
    with pytest.raises(ner.CheckpointError, match="no B-/I- entity label"):
        load(chemical_pipeline(), named)


def test_every_declared_label_must_be_produced_by_some_checkpoint() -> None:
    with pytest.raises(ner.CheckpointError, match="B-CHEMICAL"):
        load(disease_pipeline())


def test_slow_tokenizer_is_rejected_at_load_time() -> None:
    with pytest.raises(ner.CheckpointError, match="fast tokenizer"):
        load(chemical_pipeline(is_fast=False), disease_pipeline())


def test_check_label_sets_is_what_deploy_runs_on_the_downloaded_configs() -> None:
    maps = ner.check_label_sets([CHEMICAL_ID2LABEL, DISEASE_ID2LABEL])
    produced = {v for m in maps for v in m.values() if v}
    assert produced == set(spec.NER_LABELS)


# -- prediction ---------------------------------------------------------------------------------


def test_both_checkpoints_merged_ordered_by_start_with_signature_fields() -> None:
    text = "Amoxicillin for Kawasaki disease; asthma was treated with ibuprofen."
    [result] = load(chemical_pipeline(), disease_pipeline()).predict([text])
    assert [(t["word"], t["entity"]) for t in result] == [
        ("Amoxicillin", "B-CHEMICAL"),
        ("Kawasaki", "B-DISEASE"),
        ("disease", "I-DISEASE"),
        ("asthma", "B-DISEASE"),
        ("ibuprofen", "B-CHEMICAL"),
    ]
    starts = [t["start"] for t in result]
    assert starts == sorted(starts)
    for token in result:
        assert set(token) == OUTPUT_KEYS
        assert text[token["start"] : token["end"]] == token["word"]
        assert type(token["score"]) is float
        assert 0.0 <= token["score"] <= 1.0
        assert type(token["index"]) is int
        assert type(token["start"]) is int
        assert type(token["end"]) is int
        assert token["entity"] in spec.NER_LABELS
    # index: the token's position in the text, 1-based ([CLS] is 0), as the pipeline counts.
    positions = {m.group(): i for i, m in enumerate(tokens(text), start=1)}
    assert all(t["index"] == positions[t["word"]] for t in result)


def test_digit_zero_outside_tokens_never_reach_the_output() -> None:
    disease = disease_pipeline()
    [result] = load(chemical_pipeline(), disease).predict(["no findings at all today"])
    assert result == []
    assert disease.calls  # the checkpoint did run and answered "0" for every token


def test_long_text_is_tagged_in_windows_with_whole_text_offsets_and_indices() -> None:
    words = [f"w{i}" for i in range(60)]
    words[5], words[31], words[32], words[57] = "amoxicillin", "kawasaki", "disease", "asthma"
    text = " ".join(words)
    chem = chemical_pipeline(max_positions=12)  # 10 tokens per window
    dis = disease_pipeline(max_positions=12)
    [result] = load(chem, dis).predict([text])
    assert [(t["word"], t["entity"], t["index"]) for t in result] == [
        ("amoxicillin", "B-CHEMICAL", 6),
        ("kawasaki", "B-DISEASE", 32),
        ("disease", "I-DISEASE", 33),
        ("asthma", "B-DISEASE", 58),
    ]
    assert all(text[t["start"] : t["end"]] == t["word"] for t in result)
    pieces = [piece for call in dis.calls for piece in call]
    assert len(pieces) == 6
    assert all(len(tokens(piece)) <= 10 for piece in pieces)


def test_token_windows_cut_at_whitespace_and_hard_cut_a_gapless_run() -> None:
    text = "ab cd-ef gh"
    offsets = [(m.start(), m.end()) for m in tokens(text)]  # ab cd - ef gh
    assert ner.token_windows(offsets, 3) == [(0, 1), (1, 4), (4, 5)]
    gapless = [(i, i + 1) for i in range(7)]
    assert ner.token_windows(gapless, 3) == [(0, 3), (3, 6), (6, 7)]
    assert ner.token_windows([], 3) == []


def test_overlapping_spans_keep_the_higher_scoring_checkpoint() -> None:
    text = "cocaine toxicity"
    chem = chemical_pipeline(tags={"cocaine": "B-CHEMICAL"}, scores={"cocaine": 0.95})
    dis = disease_pipeline(
        tags={"cocaine": "B-DISEASE", "toxicity": "I-DISEASE"},
        scores={"cocaine": 0.6, "toxicity": 0.7},
    )
    [result] = load(chem, dis).predict([text])
    assert [(t["word"], t["entity"]) for t in result] == [("cocaine", "B-CHEMICAL")]

    dis_strong = disease_pipeline(
        tags={"cocaine": "B-DISEASE", "toxicity": "I-DISEASE"},
        scores={"cocaine": 0.99, "toxicity": 0.99},
    )
    [result] = load(chemical_pipeline(tags={"cocaine": "B-CHEMICAL"}), dis_strong).predict([text])
    assert [(t["word"], t["entity"]) for t in result] == [
        ("cocaine", "B-DISEASE"),
        ("toxicity", "I-DISEASE"),
    ]


def test_empty_and_blank_texts_answer_nothing_without_running_the_model() -> None:
    chem, dis = chemical_pipeline(), disease_pipeline()
    assert load(chem, dis).predict(["", "   \n"]) == [[], []]
    assert chem.calls == []
    assert dis.calls == []


def test_bad_rows_are_named_with_fixed_reasons_before_any_model_time() -> None:
    chem, dis = chemical_pipeline(), disease_pipeline()
    model = load(chem, dis)
    model.max_chars = 50
    canary = "CANARY-PATIENT-JANE-DOE"
    with pytest.raises(ner.RowErrors) as info:
        model.predict([canary, None, 42, canary * 5])
    assert info.value.errors == {
        1: "inputs must be text",
        2: "inputs must be text",
        3: "input text is too long",
    }
    assert "row 1: inputs must be text" in str(info.value)
    assert canary not in str(info.value)
    assert chem.calls == []
    assert dis.calls == []


def test_a_model_failure_on_one_row_is_that_rows_error_without_its_text() -> None:
    canary = "CANARY-MRN-0042"
    model = load(chemical_pipeline(fail_on=canary), disease_pipeline())
    with pytest.raises(ner.RowErrors) as info:
        model.predict(["asthma", f"seen {canary} today"])
    assert info.value.errors == {1: "the model could not process this input"}
    assert canary not in str(info.value)
    assert canary not in repr(info.value.errors)


def test_a_label_outside_the_checkpoint_config_is_an_unusable_answer() -> None:
    rogue = chemical_pipeline(tags={"asthma": "B-UNKNOWN"})
    with pytest.raises(ner.RowErrors) as info:
        load(rogue, disease_pipeline()).predict(["asthma"])
    assert info.value.errors == {0: "the model answered an unusable result for this input"}


def test_row_errors_message_lists_at_most_ten_rows_but_counts_all() -> None:
    model = load(chemical_pipeline(), disease_pipeline())
    with pytest.raises(ner.RowErrors) as info:
        model.predict([None] * 13)
    message = str(info.value)
    assert message.startswith("13 of 13 rows rejected")
    assert "and 3 more" in message
    assert len(info.value.errors) == 13
