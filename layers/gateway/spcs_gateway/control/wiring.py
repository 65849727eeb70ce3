"""The production control plane from the environment: settings read once
(``ControlSettings.from_env``), the registry (``registry.load_registry``) and the production
adapters (Snowflake SQL, DynamoDB, SQS, Lambda). Any of them can be passed in instead (the
CLI's flags, tests)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spcs_gateway.control.plane import ControlPlane
from spcs_gateway.control.ports import (
    ControlMetrics,
    MappingSwitch,
    QueueBacklog,
    SpcsServices,
    StateStore,
)
from spcs_gateway.control.settings import ControlSettings
from spcs_gateway.queues import EventSourceMappings, QueueMonitor
from spcs_gateway.registry import Registry
from spcs_gateway.service_state import SERVICE_STATE_TABLE_ENV, ServiceStateStore

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_lambda import LambdaClient
    from types_boto3_sqs import SQSClient


class AwsClients:
    """The boto3 clients of the AWS adapters, each built on first use unless given.
    ``client_kwargs`` (``region_name``, ``endpoint_url``) go to every client built here."""

    def __init__(
        self,
        *,
        dynamodb: DynamoDBClient | None = None,
        sqs: SQSClient | None = None,
        lambda_client: LambdaClient | None = None,
        **client_kwargs: Any,
    ) -> None:
        self._dynamodb = dynamodb
        self._sqs = sqs
        self._lambda = lambda_client
        self._kwargs = client_kwargs

    def _new(self, service: str) -> Any:
        import boto3

        return boto3.client(service, **self._kwargs)  # type: ignore[call-overload]

    def dynamodb(self) -> DynamoDBClient:
        if self._dynamodb is None:
            self._dynamodb = self._new("dynamodb")
        return self._dynamodb

    def sqs(self) -> SQSClient:
        if self._sqs is None:
            self._sqs = self._new("sqs")
        return self._sqs

    def lambda_(self) -> LambdaClient:
        if self._lambda is None:
            self._lambda = self._new("lambda")
        return self._lambda


def sql_services(registry: Registry) -> SpcsServices:
    """Snowflake through one reused connector session, authenticated as the registry says."""
    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.http import build_http_client
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.spcs_services import SqlSpcsServices
    from spcs_gateway.sql import SnowflakeSql, make_connect

    tokens = TokenProvider(
        registry.snowflake, CredentialSource(registry.snowflake), build_http_client()
    )
    return SqlSpcsServices(SnowflakeSql(make_connect(tokens)))


def _queue_arns(sqs: SQSClient, urls: Mapping[str, str]) -> dict[str, str]:
    arns: dict[str, str] = {}
    for name, url in urls.items():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arns[name] = attrs["Attributes"]["QueueArn"]
    return arns


def build_control_plane(
    environ: Mapping[str, str] | None = None,
    *,
    settings: ControlSettings | None = None,
    registry: Registry | None = None,
    services: SpcsServices | None = None,
    store: StateStore | None = None,
    backlog: QueueBacklog | None = None,
    mappings: MappingSwitch | None = None,
    clients: AwsClients | None = None,
    metrics: ControlMetrics | None = None,
    logger: Logger | logging.Logger | None = None,
    controller: SpcsServices | None = None,
) -> ControlPlane:
    """The control plane of the control function and the CLI (environment contract in
    ``settings.py``). ``controller`` is the former name of ``services``."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if settings is None:
        settings = ControlSettings.from_env(env)
    if registry is None:
        from spcs_gateway.registry import load_registry

        registry = load_registry(dict(env))
    services = services or controller or sql_services(registry)
    clients = clients or AwsClients()
    if store is None:
        if not settings.state_table:
            raise ValueError(f"{SERVICE_STATE_TABLE_ENV} is not set")
        store = ServiceStateStore(settings.state_table, clients.dynamodb())
    if backlog is None:
        backlog = QueueMonitor(clients.sqs(), settings.queue_urls)
    if mappings is None:
        arns = settings.queue_arns
        if arns is None:
            arns = _queue_arns(clients.sqs(), settings.queue_urls)
        mappings = EventSourceMappings(clients.lambda_(), arns)
    return ControlPlane(
        registry,
        services,
        store,
        backlog,
        mappings,
        settings=settings,
        metrics=metrics,
        logger=logger,
    )
