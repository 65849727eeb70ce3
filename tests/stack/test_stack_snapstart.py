"""The local stack reads AutoPublishAlias/SnapStart from template.yaml: the alias is the
function itself locally, and mappings record the alias-qualified ARN as Lambda does."""

from __future__ import annotations

from pathlib import Path

from spcs_local.stack.template import Template

ROOT = Path(__file__).resolve().parents[2]


def test_stack_alias_resolves_to_the_function_itself() -> None:
    t = Template(ROOT / "template.yaml")
    by_id = {f.logical_id: f for f in t.functions()}
    for logical_id in ("NoteRouterFunction", "ImageRouterFunction", "ApiFunction"):
        fn = by_id[logical_id]
        assert fn.alias == "live"
        assert fn.snapstart
        assert fn.target_arn == f"{fn.arn}:live"
        # SAM's generated alias (what the mappings and the API reference) is the qualified ARN.
        assert t.ref(f"{logical_id}Aliaslive") == fn.target_arn
        assert t.ref(f"{logical_id}.Alias") == fn.target_arn
    control = by_id["ControlFunction"]
    assert control.alias is None
    assert not control.snapstart
    assert control.target_arn == control.arn


def test_stack_snapstart_switch_is_read_from_the_parameter() -> None:
    t = Template(ROOT / "template.yaml", {"SnapStart": "false"})
    routers = [f for f in t.functions() if f.sqs_events]
    assert routers
    assert all(f.alias == "live" and not f.snapstart for f in routers)
