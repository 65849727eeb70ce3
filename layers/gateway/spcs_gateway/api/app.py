"""The on-demand API: a Powertools ``APIGatewayRestResolver`` assembled from routers.

Routes (the committed ``openapi.json`` is generated from them, see ``openapi.py``):

* ``POST /v1/notes/entities``          token classification, whole-word spans, optional persist
* ``POST /v1/images/classifications``  zero-shot image classification, ranked labels
* ``POST /v1/notes/search``            Cortex Search over clinical notes
* ``GET  /v1/services``, ``GET /v1/services/{name}``  status from the control plane
* ``POST /v1/services/{name}/resume``  ask the control plane for readiness (202)
* ``POST /v1/services/{name}/suspend`` suspend now; refused while work is queued unless ``force``

Where things are: ``routes/`` (one router per area), ``handlers.py`` (exceptions -> error
answers), ``dependencies.py`` (how routes get their collaborators), ``access_log.py`` (request
id, access line and metrics around the handler), ``models.py`` (request and response models),
``problems.py`` (codes and the error body).

PHI rules: request bodies and responses are never logged (one access line per request holds the
method, the route template, the status, the latency and the request id); error bodies hold a
stable code and a fixed message; validation errors list field locations and error types only.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from spcs_gateway.api.body import read_json
from spcs_gateway.api.dependencies import ApiContext, provide
from spcs_gateway.api.handlers import ExceptionHandlers
from spcs_gateway.api.ondemand import OnDemandInference
from spcs_gateway.api.ports import ApiDeps
from spcs_gateway.api.routes import ROUTERS
from spcs_gateway.settings import env_bool

API_TITLE = "spcs-gateway on-demand API"
API_VERSION = "1.0.0"
SWAGGER_ENV = "API_ENABLE_SWAGGER"
_EVENT_HANDLER_LOGGER = "aws_lambda_powertools.event_handler"


def quiet_event_handler_logger() -> None:
    """Powertools' event handler logs the route's arguments and unmatched paths at DEBUG:
    hold its logger at WARNING even when the root logger is set to DEBUG."""
    handler_logger = logging.getLogger(_EVENT_HANDLER_LOGGER)
    if handler_logger.level == logging.NOTSET or handler_logger.level < logging.WARNING:
        handler_logger.setLevel(logging.WARNING)


def build_resolver(
    *, logger: Logger | None = None, enable_swagger: bool | None = None
) -> APIGatewayRestResolver:
    """Every route with request and response validation and the exception handlers, and no
    collaborator: the OpenAPI document is generated from it; ``create_api`` adds them. A route
    of this resolver answers 500 ``INTERNAL_ERROR``."""
    # debug=False whatever POWERTOOLS_DEV says: debug mode prints every event (PHI).
    app = APIGatewayRestResolver(
        enable_validation=True, debug=False, json_body_deserializer=read_json
    )
    quiet_event_handler_logger()
    ExceptionHandlers(app, logger).register()
    for router in ROUTERS:
        app.include_router(router)
    swagger = env_bool(os.environ, SWAGGER_ENV, False) if enable_swagger is None else enable_swagger
    if swagger:
        app.enable_swagger(path="/swagger", title=API_TITLE, version=API_VERSION)
    return app


def create_api(
    deps: ApiDeps,
    *,
    logger: Logger | None = None,
    ondemand: OnDemandInference | None = None,
    enable_swagger: bool | None = None,
) -> APIGatewayRestResolver:
    """The API over ``deps`` (tests pass fakes; ``wiring.build_api`` the production ones)."""
    app = build_resolver(logger=logger, enable_swagger=enable_swagger)
    runner = ondemand or OnDemandInference(deps.spcs, deps.control, deps.state, logger=logger)
    app.use([provide(ApiContext(deps, runner, logger))])
    return app
