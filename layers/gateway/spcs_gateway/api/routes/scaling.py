"""``POST /v1/services/{name}/scale``: an operator sets a service's instance range.

The range must lie within the service's registry range (``min_instances..max_instances``),
else 409 ``SCALE_OUT_OF_RANGE`` before anything is sent (the body is valid; it conflicts with
the registry). The control function sets it
(``ALTER SERVICE ... SET MIN_INSTANCES / MAX_INSTANCES``) and keeps its backlog-driven scaling
inside it until the operator changes it; a refusal there is 409 ``SCALE_REFUSED`` with its
code, an unreachable control function 502 ``CONTROL_UNAVAILABLE`` (the log names the exception
type only). IAM-authorised like every route (template ``DefaultAuthorizer: AWS_IAM``).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from spcs_gateway.api.dependencies import CurrentApi
from spcs_gateway.api.models import ScaleRequest, ScaleResult
from spcs_gateway.api.problems import ApiCode, ApiError
from spcs_gateway.api.routes.common import new_router, responses, rule
from spcs_gateway.api.routes.services import ServiceName, _registered, _safe_code

SCALE = "/v1/services/{name}/scale"
ROUTES = frozenset({("POST", SCALE)})

router = new_router()


@router.post(
    rule(SCALE),
    summary="Set a model service's instance range",
    description="Within the service's registry range (409 otherwise). The control plane's "
    "backlog-driven scaling then stays inside it until it is set again.",
    tags=["services"],
    operation_id="scaleService",
    responses=responses(200, "The range was set.", 400, 404, 409, 502),
)
def scale_service(
    name: ServiceName, request: Annotated[ScaleRequest, Body()], api: CurrentApi
) -> ScaleResult:
    service = _registered(api, name)
    low, high = request.min_instances, request.max_instances
    if not service.min_instances <= low <= high <= service.max_instances:
        raise ApiError(409, ApiCode.SCALE_OUT_OF_RANGE)
    try:
        answer = dict(api.deps.control.scale(service.name, low, high))
    except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
        api.warn("scale request failed", service_name=service.name)
        raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
    outcome = answer.get("outcome")
    if outcome == "scaled":
        status = answer.get("status")
        return ScaleResult(
            name=service.name,
            min_instances=low,
            max_instances=high,
            status=str(status) if status is not None else None,
        )
    if outcome in ("refused", "unknown_service"):
        raise ApiError(409, ApiCode.SCALE_REFUSED, reason=_safe_code(answer.get("code")))
    api.warn("scale failed", service_name=service.name, error_code=_safe_code(answer.get("code")))
    raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE)
