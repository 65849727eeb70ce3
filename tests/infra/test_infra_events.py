"""Sample events this area owns parse into the models their handlers will use."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
