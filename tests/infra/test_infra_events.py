"""Sample events this area owns parse into the models their handlers will use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_infra_schedule_tick_is_an_eventbridge_scheduled_event() -> None:
    event = EventBridgeModel.model_validate(
        json.loads((EVENTS / "schedule_tick.json").read_text(encoding="utf-8"))
    )
    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"
    assert event.detail == {}
    (rule,) = event.resources
    assert rule.startswith(f"arn:aws:events:{event.region}:{event.account}:rule/")


def test_infra_deploy_guide_check_message_is_a_valid_note_event() -> None:
    from spcs_gateway.events import parse_event

    guide = (EVENTS.parent / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    match = re.search(r"--message-body '(\{.*?\})'", guide, re.S)
    assert match
    event = parse_event(match.group(1))
    assert event.event_id == "deploy-check-0001"
    assert type(event).__name__ == "NoteEvent"


# -- control and API events ---------------------------------------------------------------------


class _Context:
    function_name = "spcs-gateway-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:spcs-gateway-api"
    aws_request_id = "infra-events"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _api_events() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(EVENTS.glob("api_*.json"))
    }


def test_infra_every_api_route_has_a_sample_event_and_every_event_a_route() -> None:
    from infra_support import api_routes_from_openapi

    seen: set[tuple[str, str]] = set()
    for name, event in _api_events().items():
        route = (event["resource"], event["httpMethod"].upper())
        assert route in api_routes_from_openapi(), name
        context = event["requestContext"]
        assert (context["resourcePath"], context["httpMethod"]) == route, name
        assert context["stage"] == "prod", name  # the template's stage
        assert context["path"] == "/prod" + event["path"], name
        assert context["identity"]["userArn"], name  # IAM auth: a signed caller
        seen.add(route)
    assert seen == api_routes_from_openapi()


def test_infra_api_sample_events_pass_validation_and_reach_their_handlers() -> None:
    """Through the resolver without collaborators: a matched, valid request reaches its handler,
    which answers INTERNAL_ERROR for want of dependencies; a bad one would be 404 or 422."""
    from spcs_gateway.api.app import build_resolver

    app = build_resolver()
    for name, event in _api_events().items():
        response = app.resolve(event, _Context())  # type: ignore[arg-type]
        assert response["statusCode"] == 500, name
        assert json.loads(response["body"])["error"]["code"] == "INTERNAL_ERROR", name
    broken = _api_events()["api_service_suspend.json"]
    broken["queryStringParameters"] = {"force": "maybe"}
    broken["multiValueQueryStringParameters"] = {"force": ["maybe"]}
    assert app.resolve(broken, _Context())["statusCode"] == 422  # type: ignore[arg-type]


def test_infra_control_events_match_the_control_contract_and_the_template() -> None:
    from infra_support import CONTROL, Cfn

    from spcs_gateway.control import ControlRequest, is_schedule_event
    from spcs_gateway.registry import parse_registry

    cfn = Cfn()
    registry = parse_registry(
        cfn.resolve(cfn.resources["RegistryParameter"]["Properties"]["Value"])
    )
    request = ControlRequest.model_validate(
        json.loads((EVENTS / "control_ensure_ready.json").read_text(encoding="utf-8"))
    )
    assert request.action == "ensure_ready"
    assert request.service in {s.name for s in registry.services}
    tick = json.loads((EVENTS / "schedule_tick.json").read_text(encoding="utf-8"))
    assert is_schedule_event(tick)
    (schedule,) = cfn.resources[CONTROL]["Properties"]["Events"].values()
    rule = cfn.resolve(schedule["Properties"]["Name"])
    assert tick["resources"] == [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"]
