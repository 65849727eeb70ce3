"""``spcs-gateway scale`` and the instance columns of ``status``."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from ctl_control_support import CLIP, NER, World, make_registry, memory_world

from spcs_gateway.cli import main


def cli(world: World, *argv: str, **registry: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    control = world.control(make_registry(**registry))
    code = main(list(argv), environ={}, out=out, err=err, build=lambda args, env: control)
    return code, out.getvalue(), err.getvalue()


def test_ctl_cli_scale_sets_the_range_and_status_shows_it() -> None:
    world = memory_world({NER: "RUNNING"})
    code, out, err = cli(world, "scale", "biobert_ner", "--min", "2", "--max", "3", max_instances=3)
    assert (code, err) == (0, "")
    assert out.strip() == "biobert_ner: instances set to 2..3 (RUNNING)"
    assert world.services.calls[-1] == ("scale", NER)
    code, out, _ = cli(world, "status", "biobert_ner", max_instances=3)
    row = next(line for line in out.splitlines() if line.startswith("biobert_ner"))
    assert "1/2 [2..3]" in row  # the second instance still loads the model
    world.clock.advance(60)
    code, out, _ = cli(world, "--json", "status", "biobert_ner", max_instances=3)
    (view,) = json.loads(out)
    assert (view["instances"], view["instances_ready"]) == (2, 2)
    assert (view["min_instances"], view["max_instances"]) == (2, 3)


def test_ctl_cli_scale_outside_the_registry_range_fails_with_a_code() -> None:
    world = memory_world({NER: "RUNNING"})
    code, out, err = cli(world, "scale", "biobert_ner", "--min", "1", "--max", "5", max_instances=3)
    assert (code, out) == (1, "")
    assert err.startswith("error: OUT_OF_RANGE: biobert_ner: outside the registry's")
    assert world.services.count("scale") == 0


def test_ctl_cli_scale_of_an_unknown_service_fails() -> None:
    world = memory_world()
    code, _, err = cli(world, "scale", "nope", "--min", "1", "--max", "1")
    assert code == 1
    assert err.startswith("error: UNKNOWN_SERVICE:")


def test_ctl_cli_dry_run_reconcile_lists_the_scale_it_would_set() -> None:
    world = memory_world({NER: "RUNNING", CLIP: "SUSPENDED"})
    world.send("notes", 5000)
    code, out, _ = cli(world, "--dry-run", "reconcile", max_instances=3)
    assert code == 0
    assert f"  ALTER SERVICE {NER} SET MIN_INSTANCES / MAX_INSTANCES" in out
    assert world.services.count("scale") == 0  # nothing was changed


def test_the_lambda_control_client_sends_scale_request_response() -> None:
    from test_ctl_control_invoke import StubLambda

    from spcs_gateway.control_invoke import ControlClientError, LambdaControlClient

    stub = StubLambda(answer={"ok": True, "outcome": "scaled"})
    client = LambdaControlClient(stub, "spcs-gateway-control")  # type: ignore[arg-type]
    assert client.scale("biobert_ner", 1, 3) == {"ok": True, "outcome": "scaled"}
    (call,) = stub.calls
    assert call["InvocationType"] == "RequestResponse"
    assert call["Payload"] == {
        "action": "scale",
        "service": "biobert_ner",
        "min_instances": 1,
        "max_instances": 3,
    }
    routers = LambdaControlClient(stub, "spcs-gateway-control:ensure-ready")  # type: ignore[arg-type]
    with pytest.raises(ControlClientError):
        routers.scale("biobert_ner", 1, 3)  # the routers' alias serves ensure_ready only
