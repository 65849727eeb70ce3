"""`spcs-gateway doctor` against the strict emulator: it passes on the account the set-up SQL
built, and each seeded fault fails the right row with its fix (through the real CLI)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spcs_gateway.cli import main

pytestmark = pytest.mark.emulator

NER_SVC = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
GATEWAY_ROLE = "SPCS_GATEWAY_ROLE"
OWNER = "MODEL_DEPLOYER_ROLE"


@pytest.fixture(scope="module")
def emu(emulator_factory: Callable[..., Any]) -> Any:
    return emulator_factory()


def doctor(registry: dict[str, Any], tmp_path: Path) -> tuple[int, list[dict[str, str]], str]:
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    out = io.StringIO()
    code = main(["--registry", str(path), "--json", "doctor"], environ={}, out=out)
    rows = json.loads(out.getvalue())
    text = io.StringIO()
    main(["--registry", str(path), "doctor"], environ={}, out=text)
    return code, rows, text.getvalue()


def failing(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(r["check"], r["target"]) for r in rows if r["result"] in ("FAIL", "SKIP")]


def row(rows: list[dict[str, str]], check: str, target: str) -> dict[str, str]:
    return next(r for r in rows if r["check"] == check and r["target"] == target)


def admin_sql(emu: Any, sql: str, role: str) -> None:
    emu.admin_post("sql", {"sql": sql, "role": role})


@pytest.fixture
def registry(emu: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(emu.config))
    return copy


def test_doctor_passes_on_the_account_the_setup_sql_built(
    emu: Any, registry: dict[str, Any], tmp_path: Path
) -> None:
    code, rows, text = doctor(registry, tmp_path)
    assert failing(rows) == []
    assert code == 0
    assert text.rstrip().endswith("all checks passed")
    checks = {r["check"] for r in rows}
    assert {"credentials", "grants", "pool", "status", "signature", "probe", "labels"} <= checks
    assert {"search", "results", "auto-suspend"} <= checks
    assert row(rows, "labels", "biobert_ner")["detail"] == "B-CHEMICAL, B-DISEASE"


def test_a_missing_operate_grant_fails_the_grants_row_with_its_grant(
    emu: Any, registry: dict[str, Any], tmp_path: Path
) -> None:
    admin_sql(emu, f"REVOKE OPERATE ON SERVICE {NER_SVC} FROM ROLE {GATEWAY_ROLE}", OWNER)
    try:
        code, rows, text = doctor(registry, tmp_path)
    finally:
        admin_sql(emu, f"GRANT OPERATE ON SERVICE {NER_SVC} TO ROLE {GATEWAY_ROLE}", OWNER)
    assert code == 1
    assert failing(rows) == [("grants", f"OPERATE SERVICE {NER_SVC}")]
    fix = f"GRANT OPERATE ON SERVICE {NER_SVC} TO ROLE {GATEWAY_ROLE};"
    assert row(rows, "grants", f"OPERATE SERVICE {NER_SVC}")["fix"] == fix
    assert f"fix: {fix}" in text


def test_a_missing_endpoint_role_fails_the_grant_and_the_probe(
    emu: Any, registry: dict[str, Any], tmp_path: Path
) -> None:
    role = f"{NER_SVC}!ALL_ENDPOINTS_USAGE"
    admin_sql(emu, f"REVOKE SERVICE ROLE {role} FROM ROLE {GATEWAY_ROLE}", OWNER)
    try:
        code, rows, _ = doctor(registry, tmp_path)
    finally:
        admin_sql(emu, f"GRANT SERVICE ROLE {role} TO ROLE {GATEWAY_ROLE}", OWNER)
    assert code == 1
    assert failing(rows) == [("grants", f"USAGE SERVICE_ROLE {role}"), ("probe", "biobert_ner")]
    probe = row(rows, "probe", "biobert_ner")
    assert probe["detail"].startswith("PRIVILEGE_MISSING")
    assert probe["fix"].startswith(f"GRANT SERVICE ROLE {role} TO ROLE")


def test_a_wrong_method_name_fails_the_signature_and_the_probe(
    emu: Any, registry: dict[str, Any], tmp_path: Path
) -> None:
    ner = next(s for s in registry["services"] if s["name"] == "biobert_ner")
    ner["method"] = "__call__"  # what a pipeline would register; the deployed model has predict
    code, rows, _ = doctor(registry, tmp_path)
    assert code == 1
    assert failing(rows) == [("signature", "biobert_ner"), ("probe", "biobert_ner")]
    assert row(rows, "signature", "biobert_ner")["detail"] == (
        "the model has no method __call__ (it has: predict)"
    )
    probe = row(rows, "probe", "biobert_ner")
    assert probe["detail"].startswith("ENDPOINT_NOT_FOUND")
    assert "set the registry's method" in probe["fix"]


def test_a_ner_service_answering_label_0_and_label_1_fails_the_labels_row(
    emu: Any, registry: dict[str, Any], tmp_path: Path
) -> None:
    emu.admin_post("ner-head", {"ner_head": "untrained"})
    try:
        code, rows, _ = doctor(registry, tmp_path)
    finally:
        emu.admin_post("ner-head", {"ner_head": "trained"})
    assert code == 1
    assert failing(rows) == [("labels", "biobert_ner")]
    labels = row(rows, "labels", "biobert_ner")
    assert "LABEL_0" in labels["detail"]
    assert "LABEL_1" in labels["detail"]
    assert "fine-tuned" in labels["fix"]


def test_a_signature_mismatch_fails_the_signature_and_the_probe_never_poison(
    emu: Any, registry: dict[str, Any], tmp_path: Path
) -> None:
    # The registry says "the pipeline's inferred signature" (two parameter columns); the
    # deployed BiomedCLIP declares one: the emulator refuses every row, the probe included.
    clip = next(s for s in registry["services"] if s["name"] == "biomedclip")
    del clip["signature"]
    code, rows, _ = doctor(registry, tmp_path)
    assert code == 1
    assert failing(rows) == [("signature", "biomedclip"), ("probe", "biomedclip")]
    assert row(rows, "signature", "biomedclip")["detail"].startswith("params: registry")
    assert row(rows, "probe", "biomedclip")["detail"].startswith("SIGNATURE_MISMATCH")
