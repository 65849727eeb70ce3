"""Service status and control: the control function's view, resume (202) and suspend.

Every call goes to the control function (``ports.ControlClient``); when it cannot be reached
the answer is 502 ``CONTROL_UNAVAILABLE`` and the log names the exception type only (invoke
errors may quote payloads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import ValidationError

from spcs_gateway.api.dependencies import ApiContext, CurrentApi
from spcs_gateway.api.models import (
    ResumeAccepted,
    ServicesResponse,
    ServiceStatusView,
    SuspendResult,
)
from spcs_gateway.api.problems import ApiCode, ApiError
from spcs_gateway.api.routes.common import new_router, responses, rule
from spcs_gateway.registry import ServiceConfig

SERVICES = "/v1/services"
SERVICE = "/v1/services/{name}"
RESUME = "/v1/services/{name}/resume"
SUSPEND = "/v1/services/{name}/suspend"
ROUTES = frozenset({("GET", SERVICES), ("GET", SERVICE), ("POST", RESUME), ("POST", SUSPEND)})

_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

router = new_router()

ServiceName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,62}$", max_length=63)]


def _safe_code(value: Any) -> str | None:
    """A code from another component, passed on only if it looks like one."""
    return value if isinstance(value, str) and _CODE.match(value) else None


def _status_view(raw: Mapping[str, Any]) -> ServiceStatusView | None:
    try:
        return ServiceStatusView.model_validate(dict(raw))
    except ValidationError:
        return None


def _registered(api: ApiContext, name: str) -> ServiceConfig:
    try:
        return api.deps.registry.service(name)
    except KeyError:
        raise ApiError(404, ApiCode.UNKNOWN_SERVICE) from None


def _statuses(api: ApiContext) -> list[ServiceStatusView]:
    try:
        raw = list(api.deps.control.status())
    except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
        api.warn("control status failed")
        raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
    names = {s.name for s in api.deps.registry.services}
    views = [v for v in (_status_view(item) for item in raw) if v is not None]
    return [v for v in views if v.name in names]


@router.get(
    SERVICES,
    summary="Status of every managed model service",
    tags=["services"],
    operation_id="listServices",
    responses=responses(200, "One entry per managed service.", 502),
)
def list_services(api: CurrentApi) -> ServicesResponse:
    return ServicesResponse(services=_statuses(api))


@router.get(
    rule(SERVICE),
    summary="Status of one managed model service",
    tags=["services"],
    operation_id="getService",
    responses=responses(200, "The service's status.", 404, 502),
)
def get_service(name: ServiceName, api: CurrentApi) -> ServiceStatusView:
    service = _registered(api, name)
    found = next((v for v in _statuses(api) if v.name == service.name), None)
    if found is None:
        raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE)
    return found


@router.post(
    rule(RESUME),
    summary="Resume a model service (asynchronous)",
    tags=["services"],
    operation_id="resumeService",
    status_code=202,
    responses=responses(202, "Readiness requested from the control plane.", 404, 502),
)
def resume_service(name: ServiceName, api: CurrentApi) -> ResumeAccepted:
    service = _registered(api, name)
    try:
        api.deps.control.ensure_ready(service.name)
    except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
        api.warn("ensure_ready request failed", service_name=service.name)
        raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
    return ResumeAccepted(name=service.name, service=api.brief(service))


@router.post(
    rule(SUSPEND),
    summary="Suspend a model service now",
    description="Refused (409) while work is queued for it or an on-demand call is in "
    "flight, unless force=true.",
    tags=["services"],
    operation_id="suspendService",
    responses=responses(200, "The service was suspended.", 404, 409, 502),
)
def suspend_service(
    name: ServiceName, api: CurrentApi, force: Annotated[bool, Query()] = False
) -> SuspendResult:
    service = _registered(api, name)
    try:
        answer = dict(api.deps.control.suspend(service.name, force))
    except Exception:  # noqa: BLE001 - invoke errors may quote payloads: type only
        api.warn("suspend request failed", service_name=service.name)
        raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE) from None
    outcome = answer.get("outcome")
    if outcome in ("suspended", "already_suspended"):
        status = answer.get("status")
        return SuspendResult(
            name=service.name,
            outcome=outcome,
            status=str(status) if status is not None else None,
        )
    if outcome in ("refused", "failed"):
        raise ApiError(409, ApiCode.SUSPEND_REFUSED, reason=_safe_code(answer.get("code")))
    api.warn("suspend failed", service_name=service.name, error_code=_safe_code(answer.get("code")))
    raise ApiError(502, ApiCode.CONTROL_UNAVAILABLE)
