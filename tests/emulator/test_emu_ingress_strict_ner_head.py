"""``--ner-head untrained`` and ``/admin/ner-head``: the NER service answers like a checkpoint
without a trained token-classification head (LABEL_0/LABEL_1 on every token), which
``spcs-gateway doctor`` must catch; switched back, it answers the deployment's labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from spcs_models import spec

pytestmark = pytest.mark.emulator

NOTE = "Started amoxicillin for acute otitis media."


def entities(emu: Any) -> tuple[list[dict[str, Any]], httpx.Response]:
    response = httpx.post(
        emu.inference_url("biobert_ner"),
        json={"data": [[0, NOTE]]},
        headers=emu.token_header("biobert_ner"),
        timeout=30,
    )
    assert response.status_code == 200
    [[_, out]] = response.json()["data"]
    return out["outputs"], response


def test_untrained_head_from_the_command_line_then_switched_at_run_time(
    emulator_factory: Callable[..., Any],
) -> None:
    emu = emulator_factory("--ner-head", "untrained")
    assert emu.admin_get("ner-head") == {"ner_head": "untrained"}
    assert emu.admin_get("status")["ner_head"] == "untrained"

    tokens, response = entities(emu)
    assert [t["word"] for t in tokens] == [
        "Started", "amoxicillin", "for", "acute", "otitis", "media", ".",
    ]  # fmt: skip
    assert {t["entity"] for t in tokens} <= {"LABEL_0", "LABEL_1"}
    assert not {t["entity"] for t in tokens} & set(spec.NER.entity_labels)
    assert response.headers["X-Emulator-Backend"] == "lexicon/untrained-head"

    assert emu.admin_post("ner-head", {"ner_head": "trained"}) == {"ner_head": "trained"}
    tokens, response = entities(emu)
    assert {t["entity"] for t in tokens} <= set(spec.NER.entity_labels)
    assert {t["word"]: t["entity"] for t in tokens}["amoxicillin"] == "B-CHEMICAL"
    assert response.headers["X-Emulator-Backend"] == "lexicon"

    bad = httpx.post(f"{emu.admin_url}/ner-head", json={"ner_head": "half"}, timeout=10)
    assert bad.status_code == 400
    assert emu.admin_get("ner-head") == {"ner_head": "trained"}
