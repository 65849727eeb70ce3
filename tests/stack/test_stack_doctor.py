"""`spcs-gateway doctor` with nothing but the operator environment `spcs-local up` prints: the
registry from the stack's SSM parameter, the credential from its Secrets Manager secret."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from stack_support import require_control_plane, stack_template

from spcs_gateway.cli import main
from spcs_local.stack.stack import LocalStack, StackOptions


def test_stack_doctor_passes_with_the_operator_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = StackOptions(
        template=stack_template(),
        work_dir=tmp_path / "work",
        functions=require_control_plane(),
        warm_ner=False,
    )
    with LocalStack(options) as stack:
        env = stack.endpoints()["operator_env"]
        assert "SPCS_GATEWAY_REGISTRY_PARAM" in env
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        out = io.StringIO()
        code = main(["doctor", "--json"], environ=dict(env), out=out)
    rows = json.loads(out.getvalue())
    assert [r for r in rows if r["result"] in ("FAIL", "SKIP")] == []
    assert code == 0
    assert {r["target"] for r in rows if r["check"] == "probe"} == {"biobert_ner", "biomedclip"}
