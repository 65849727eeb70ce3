"""Control function: resume on demand, finish resumes, suspend idle services and pools.

Events (contract in ``spcs_gateway.control_invoke``): the EventBridge schedule -> reconcile;
``{"action": "ensure_ready" | "suspend" | "reconcile" | "status", ...}`` from routers, the API
and operators (``spcs_gateway.control.handler``). The environment (``control.settings``) is read
once and the control plane built once per container, reused across warm invocations.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from spcs_gateway.control import EmfMetrics, build_control_plane, handle_control_event
from spcs_gateway.observability import get_logger, get_tracer

logger = get_logger()
tracer = get_tracer()
# Metrics go out as one EMF blob per data point (dimensions service/outcome), not via a
# handler-level flush, so the control plane can emit per service.
control = build_control_plane(metrics=EmfMetrics(), logger=logger)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_control_event(control, event, context)
