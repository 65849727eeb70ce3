"""How routes reach their collaborators: Powertools ``Depends`` over the resolver's context.

``create_api`` installs ``provide(api)`` as a global middleware: for each request it puts the
app's ``ApiContext`` (the collaborators, the on-demand runner, the logger) and the Lambda
context into ``app.context``. A route declares what it needs as parameters::

    def list_services(api: CurrentApi) -> ServicesResponse: ...

``CurrentApi`` resolves to the ``ApiContext``, ``TimeLeft`` to the seconds the Lambda has left.
Routes are module-level ``Router`` objects, so one process can hold several apps (tests build
one per test) and each request gets the collaborators of the app that resolves it. A resolver
without ``provide`` (the one the OpenAPI document is generated from) has every route and no
collaborator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Depends, Request, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from spcs_gateway.api.models import ServiceBrief
from spcs_gateway.api.ondemand import OnDemandInference
from spcs_gateway.api.ports import ApiDeps
from spcs_gateway.api.problems import current_request_id
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import ServiceConfig

_API_KEY = "spcs_gateway.api"
_LAMBDA_CONTEXT_KEY = "spcs_gateway.lambda_context"

Middleware = Callable[[APIGatewayRestResolver, NextMiddleware], Response[Any]]


@dataclass(frozen=True)
class ApiContext:
    """What every route works with."""

    deps: ApiDeps
    ondemand: OnDemandInference
    logger: Logger | None = None

    def warn(self, message: str, **extra: Any) -> None:
        """A warning with the request id (callers pass ids, codes and counts only)."""
        if self.logger is not None:
            self.logger.warning(message, extra={"request_id": current_request_id(), **extra})

    def brief(self, service: ServiceConfig) -> ServiceBrief:
        """The service's state as last recorded; UNKNOWN when the store cannot be read."""
        try:
            state = self.deps.state.get(service.name)
        except Exception:  # noqa: BLE001 - the status is a courtesy; the answer stands without it
            self.warn("service state unreadable", service_name=service.name)
            return ServiceBrief(name=service.name, status=ServiceStatus.UNKNOWN.value, ready=False)
        return ServiceBrief(name=service.name, status=state.status.value, ready=state.ready)


def provide(api: ApiContext) -> Middleware:
    """The global middleware that makes ``api`` the collaborators of every request."""

    def provide_api(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        app.context[_API_KEY] = api
        app.context[_LAMBDA_CONTEXT_KEY] = app.lambda_context
        return next_middleware(app)

    return provide_api


class NotProvidedError(RuntimeError):
    """A route ran on a resolver without collaborators (it answers 500)."""


def current_api(request: Request) -> ApiContext:
    api = request.context.get(_API_KEY)
    if not isinstance(api, ApiContext):
        raise NotProvidedError("the API's collaborators are not provided")
    return api


def remaining_seconds(request: Request) -> float | None:
    """Seconds the Lambda invocation has left; None when unknown."""
    remaining_ms = getattr(
        request.context.get(_LAMBDA_CONTEXT_KEY), "get_remaining_time_in_millis", None
    )
    if not callable(remaining_ms):
        return None
    try:
        return float(remaining_ms()) / 1000.0
    except (TypeError, ValueError):
        return None


CurrentApi = Annotated[ApiContext, Depends(current_api)]
TimeLeft = Annotated[float | None, Depends(remaining_seconds)]
