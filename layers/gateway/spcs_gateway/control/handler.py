"""The control function's events (contract in ``control_invoke.py``): the EventBridge schedule
reconciles; ``{"action": "ensure_ready" | "suspend" | "reconcile" | "status" | "scale", ...}`` from
routers, the API and operators is dispatched to the ``ControlPlane``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spcs_gateway.control.plane import ControlPlane
from spcs_gateway.control.results import ControlCode, UnknownServiceError
from spcs_gateway.control_invoke import action_allowed
from spcs_gateway.registry import MAX_SERVICE_INSTANCES


class ControlRequest(BaseModel):
    """``{"action": "ensure_ready" | "suspend" | "reconcile" | "status" | "scale", ...}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["ensure_ready", "suspend", "reconcile", "status", "scale"]
    service: str | None = Field(default=None, max_length=63)
    force: bool = False
    services: list[str] | None = Field(default=None, max_length=100)
    # scale: the instance range to set (within the registry's)
    min_instances: int | None = Field(default=None, ge=1, le=MAX_SERVICE_INSTANCES)
    max_instances: int | None = Field(default=None, ge=1, le=MAX_SERVICE_INSTANCES)


def is_schedule_event(event: Mapping[str, Any]) -> bool:
    """An EventBridge scheduled-rule event (the reconcile tick)."""
    return event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event"


def _remaining_s(context: Any) -> float | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if getter is None:
        return None
    try:
        return float(getter()) / 1000.0
    except (TypeError, ValueError):
        return None


def _invalid(fields: list[str]) -> dict[str, Any]:
    return {"ok": False, "code": ControlCode.INVALID_REQUEST.value, "fields": fields}


def handle_control_event(
    control: ControlPlane, event: Mapping[str, Any], context: Any = None
) -> dict[str, Any]:
    """Dispatch one control-function event. ``ensure_ready`` waits for READY as long as the
    invocation has time left (minus ``CONTROL_BUDGET_MARGIN_SECONDS``); without a Lambda
    context it issues the resume and returns. Through the routers' ensure-ready alias only
    ``ensure_ready`` is served: a router's role cannot suspend, reconcile or read status."""
    action = None if is_schedule_event(event) else event.get("action")
    if not action_allowed(context, action if isinstance(action, str) else "?"):
        return {"ok": False, "code": ControlCode.ACTION_NOT_ALLOWED.value}
    if is_schedule_event(event):
        return {"ok": True, "action": "reconcile", **control.reconcile().as_dict()}
    try:
        request = ControlRequest.model_validate(dict(event))
    except ValidationError as exc:
        return _invalid(
            sorted(
                ".".join(str(p) for p in e["loc"])
                for e in exc.errors(include_input=False, include_url=False)
            )
        )
    if request.action == "reconcile":
        return {"ok": True, "action": "reconcile", **control.reconcile().as_dict()}
    if request.action == "status":
        try:
            rows = control.status(request.services)
        except UnknownServiceError as exc:
            return {"ok": False, "code": exc.code.value, "services": exc.names}
        return {"ok": True, "action": "status", "services": [r.as_dict() for r in rows]}
    if not request.service:
        return _invalid(["service"])
    if request.action == "scale":
        if request.min_instances is None or request.max_instances is None:
            missing = ["min_instances"] if request.min_instances is None else []
            return _invalid(missing + (["max_instances"] if request.max_instances is None else []))
        return control.scale(
            request.service,
            min_instances=request.min_instances,
            max_instances=request.max_instances,
        ).as_dict()
    if request.action == "ensure_ready":
        remaining = _remaining_s(context)
        budget = 0.0 if remaining is None else remaining - control.budget_margin_s
        return control.ensure_ready(request.service, budget_s=budget).as_dict()
    return control.suspend(request.service, force=request.force).as_dict()
