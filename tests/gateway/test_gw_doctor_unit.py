"""Doctor's pure parts: grant matching, signature comparison, label checks, the table."""

from __future__ import annotations

from typing import Any

from spcs_gateway.doctor import (
    Check,
    Result,
    _held,
    _image_labels,
    _ner_labels,
    _satisfied,
    compare_signatures,
    format_table,
    needed_grants,
    passed,
)
from spcs_gateway.registry import DEFAULT_SIGNATURES, Signature, Task, parse_registry
from spcs_models import spec

REGISTRY = parse_registry(
    {
        "snowflake": {
            "account": "acct",
            "user": "GATEWAY_SVC",
            "role": "SPCS_GATEWAY_ROLE",
            "warehouse": "GATEWAY_WH",
            "secret": {"secret_id": "arn:secret"},
        },
        "services": [
            spec.NER.registry_entry("https://ner-acct.snowflakecomputing.app"),
            spec.BIOMEDCLIP.registry_entry("https://clip-acct.snowflakecomputing.app"),
        ],
    }
)
NER = REGISTRY.service("biobert_ner")
CLIP = REGISTRY.service("biomedclip")


def _grant(on: str, name: str, privilege: str) -> dict[str, Any]:
    return {"granted_on": on, "name": name, "privilege": privilege}


def test_every_needed_grant_is_matched_by_show_grants_rows_and_a_missing_one_is_named() -> None:
    needed = needed_grants(REGISTRY, "SPCS_GATEWAY_ROLE", "DB.SCH.SEARCH")
    rows = [_grant(n.granted_on, n.name, n.privilege) for n in needed]
    held = _held(rows)
    assert all(_satisfied(n, held) for n in needed)

    operate = next(n for n in needed if n.privilege == "OPERATE" and n.granted_on == "SERVICE")
    without = _held(
        [r for r in rows if not (r["privilege"] == "OPERATE" and r["name"] == operate.name)]
    )
    assert not _satisfied(operate, without)
    assert operate.grant == (f"GRANT OPERATE ON SERVICE {operate.name} TO ROLE SPCS_GATEWAY_ROLE;")


def test_quoted_names_and_ownership_satisfy_a_grant() -> None:
    needed = needed_grants(REGISTRY, "R", None)
    table = next(n for n in needed if n.granted_on == "TABLE")
    quoted = '"PEDIATRIC_ML"."RESULTS"."INFERENCE_RESULTS"'
    assert _satisfied(table, _held([_grant("TABLE", quoted, "OWNERSHIP")]))
    assert not _satisfied(table, _held([_grant("VIEW", quoted, "SELECT")]))


def test_the_endpoint_service_role_is_a_needed_grant() -> None:
    [role] = [n for n in needed_grants(REGISTRY, "R", None) if n.granted_on == "SERVICE_ROLE"][:1]
    assert role.name == "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!ALL_ENDPOINTS_USAGE"
    assert "GRANT SERVICE ROLE" in role.grant


def test_signatures_compare_equal_to_the_deployed_model_spec() -> None:
    assert compare_signatures(CLIP.effective_signature, spec.CLIP_SIGNATURE.to_dict()) == []
    assert compare_signatures(NER.effective_signature, spec.NER_SIGNATURE.to_dict()) == []


def test_a_registry_without_the_models_parameter_columns_is_a_mismatch() -> None:
    # The registry still says "the inferred pipeline signature" (two params) while the deployed
    # BiomedCLIP declares one: the doctor names the parameter columns on both sides.
    inferred = DEFAULT_SIGNATURES[Task.ZERO_SHOT_IMAGE_CLASSIFICATION]
    [problem] = compare_signatures(inferred, spec.CLIP_SIGNATURE.to_dict())
    assert problem == (
        "params: registry HYPOTHESIS_TEMPLATE:STRING, TIMEOUT:DOUBLE; "
        "model HYPOTHESIS_TEMPLATE:STRING"
    )
    swapped = Signature.model_validate(
        {**spec.CLIP_SIGNATURE.to_dict(), "inputs": spec.CLIP_SIGNATURE.to_dict()["inputs"][::-1]}
    )
    assert compare_signatures(swapped, spec.CLIP_SIGNATURE.to_dict())[0].startswith("inputs:")


def test_ner_labels_outside_the_declared_set_fail_as_an_untrained_head() -> None:
    untrained = [{"word": "aspirin", "entity": "LABEL_1"}, {"word": "for", "entity": "LABEL_0"}]
    check = _ner_labels(NER, untrained)
    assert check.result is Result.FAIL
    assert "LABEL_0, LABEL_1" in check.detail
    good = [{"word": "aspirin", "entity": "B-CHEMICAL"}, {"word": "asthma", "entity": "B-DISEASE"}]
    assert _ner_labels(NER, good).result is Result.PASS
    assert _ner_labels(NER, [{"entity_group": "DISEASE"}]).result is Result.PASS
    assert _ner_labels(NER, []).result is Result.WARN


def test_image_labels_must_score_exactly_the_candidates() -> None:
    ok = [
        {"label": "normal radiograph", "score": 0.7},
        {"label": "abnormal radiograph", "score": 0.3},
    ]
    assert _image_labels(CLIP, ok).result is Result.PASS
    assert _image_labels(CLIP, ok[:1]).result is Result.FAIL
    assert _image_labels(CLIP, "not a list").result is Result.FAIL


def test_table_prints_fixes_under_failures_and_the_verdict() -> None:
    rows = [
        Check("grants", "OPERATE SERVICE X", Result.FAIL, "missing", "GRANT OPERATE ON SERVICE X"),
        Check("status", "ner", Result.PASS, "service is RUNNING"),
        Check("signature", "ner", Result.WARN, "no model named"),
    ]
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["CHECK", "TARGET", "RESULT", "DETAIL"]
    assert lines[2].strip() == "fix: GRANT OPERATE ON SERVICE X"
    assert lines[-1] == "1 check(s) did not pass"
    assert not passed(rows)
    assert passed(rows[1:])
    assert format_table(rows[1:]).splitlines()[-1] == "all checks passed"
