"""Production wiring of the API's collaborators (built once per container, at cold start).

Environment:

``SPCS_GATEWAY_REGISTRY[_FILE|_PARAM]``  the service registry (``registry.load_registry``)
``CONTROL_FUNCTION_NAME``                the control function (ensure_ready, suspend, status)
``SERVICE_STATE_TABLE``                  the service-state DynamoDB table
``CORTEX_SEARCH_SERVICE``                ``DB.SCHEMA.NAME`` of the notes search service, default
                                         ``PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH``
``API_NER_SERVICE`` / ``API_IMAGE_SERVICE``  logical service names; default: the first registry
                                         service of the task
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from spcs_gateway.api.app import create_api
from spcs_gateway.api.ports import ApiDeps
from spcs_gateway.api.search import (
    CORTEX_SEARCH_SERVICE_ENV,
    DEFAULT_SEARCH_SERVICE,
    CortexSearchClient,
    SearchService,
)
from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.registry import Registry, ServiceConfig, Task, load_registry
from spcs_gateway.settings import env_str

if TYPE_CHECKING:
    import httpx
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

NER_SERVICE_ENV = "API_NER_SERVICE"
IMAGE_SERVICE_ENV = "API_IMAGE_SERVICE"


def pick_service(registry: Registry, task: Task, wanted: str | None) -> ServiceConfig | None:
    """The named service (which must have ``task``), or the registry's first one of ``task``."""
    if wanted:
        try:
            service = registry.service(wanted)
        except KeyError:
            raise ConfigurationError(
                ErrorCode.CONFIGURATION_ERROR, f"{task.value} service is not in the registry"
            ) from None
        if service.task is not task:
            raise ConfigurationError(
                ErrorCode.CONFIGURATION_ERROR,
                f"service {service.name} is not a {task.value} service",
            )
        return service
    return next((s for s in registry.services if s.task is task), None)


def build_dependencies(
    environ: Mapping[str, str] | None = None,
    *,
    registry: Registry | None = None,
    http: httpx.Client | None = None,
) -> ApiDeps:
    import boto3

    from spcs_gateway.api.stored import StoredNotes
    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.control_invoke import CONTROL_FUNCTION_ENV, LambdaControlClient
    from spcs_gateway.http import build_http_client
    from spcs_gateway.images import ImageSource
    from spcs_gateway.results import ResultsSink
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.service_activity import ResumeWindow
    from spcs_gateway.service_state import ServiceStateStore
    from spcs_gateway.spcs_client import SpcsClient
    from spcs_gateway.sql import SnowflakeSql, make_connect

    env: Mapping[str, str] = os.environ if environ is None else environ
    registry = registry or load_registry(dict(env))
    function_name = env_str(env, CONTROL_FUNCTION_ENV)
    if not function_name:
        raise ConfigurationError(
            ErrorCode.CONFIGURATION_ERROR, f"{CONTROL_FUNCTION_ENV} is not set"
        )
    search_service = SearchService.parse(
        env_str(env, CORTEX_SEARCH_SERVICE_ENV, DEFAULT_SEARCH_SERVICE)
    )

    http = http or build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    state = ServiceStateStore.from_env(environ=env)
    sql = SnowflakeSql(make_connect(tokens))  # one session: results and stored notes
    return ApiDeps(
        registry=registry,
        spcs=SpcsClient(registry, tokens, http, startup=ResumeWindow(state)),
        control=LambdaControlClient(boto3.client("lambda"), function_name),
        state=state,
        sink=ResultsSink(sql, registry.snowflake.results_table),
        images=ImageSource(registry.images),
        search=CortexSearchClient(registry.snowflake.account_url, tokens, http, search_service),
        ner_service=pick_service(
            registry, Task.TOKEN_CLASSIFICATION, env_str(env, NER_SERVICE_ENV)
        ),
        image_service=pick_service(
            registry, Task.ZERO_SHOT_IMAGE_CLASSIFICATION, env_str(env, IMAGE_SERVICE_ENV)
        ),
        stored=StoredNotes(sql, registry.references),
    )


def build_api(
    environ: Mapping[str, str] | None = None,
    *,
    deps: ApiDeps | None = None,
    logger: Logger | None = None,
) -> APIGatewayRestResolver:
    """The container's API (``functions/api/app.py`` calls this once, at module level; its
    handler wraps ``resolve`` in ``access_log.access_log``)."""
    from spcs_gateway import observability, snapshot

    api = create_api(
        deps or build_dependencies(environ), logger=logger or observability.get_logger()
    )
    # SnapStart: Powertools builds each route's request model on the route's first call; the
    # OpenAPI schema builds them all, once, before the snapshot (nothing is sent anywhere).
    snapshot.before_snapshot(_build_route_models, name="api.route_models", owner=api)
    return api


def _build_route_models(api: APIGatewayRestResolver) -> None:
    api.get_openapi_schema()
