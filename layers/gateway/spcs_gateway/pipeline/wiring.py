"""``build_pipeline``: the production wiring of a router's pipeline, every piece overridable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer

from spcs_gateway.backoff import BackoffPolicy, Rng
from spcs_gateway.control_invoke import CONTROL_FUNCTION_ENV
from spcs_gateway.errors import ConfigurationError, ErrorCode
from spcs_gateway.pipeline import ports
from spcs_gateway.pipeline.core import Pipeline
from spcs_gateway.readiness import ReadinessHook
from spcs_gateway.registry import Registry, Task, load_registry
from spcs_gateway.service_state import SERVICE_STATE_TABLE_ENV
from spcs_gateway.settings import env_str

if TYPE_CHECKING:
    import httpx
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.sql import SnowflakeSql


def build_pipeline(
    service_name: str,
    *,
    task: Task | None = None,
    environ: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    credentials: CredentialSource | None = None,
    tokens: TokenProvider | None = None,
    http: httpx.Client | None = None,
    spcs: ports.Inference | None = None,
    sql: SnowflakeSql | None = None,
    sink: ports.Sink | None = None,
    sqs_client: SQSClient | None = None,
    s3_client: S3Client | None = None,
    dead_letters: ports.DeadLetterQueue | None = None,
    visibility: ports.Visibility | None = None,
    images: ports.ImageLoader | None = None,
    subjects: ports.Subjects | None = None,
    readiness: ReadinessHook | None = None,
    activity: ports.Activity | None = None,
    references: ports.References | None = None,
    backoff: BackoffPolicy | None = None,
    logger: Logger | None = None,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
    rng: Rng | None = None,
) -> Pipeline:
    """Build the container's pipeline (called once, at module level, by each router).

    Every collaborator can be passed in (tests pass fakes); the defaults are the production
    wiring: registry from the environment, Secrets Manager credentials, one httpx client, the
    SPCS client, the Snowflake connector sink, the source queue (visibility) and its DLQ, and
    Powertools observability.
    """
    from spcs_gateway import observability

    env: Mapping[str, str] = os.environ if environ is None else environ
    registry = registry or load_registry(dict(env))
    try:
        service = registry.service(service_name)
    except KeyError:
        raise ConfigurationError(
            ErrorCode.CONFIGURATION_ERROR, "SERVICE_NAME is not in the service registry"
        ) from None
    if task is not None and service.task is not task:
        raise ConfigurationError(
            ErrorCode.CONFIGURATION_ERROR, f"service {service.name} is not a {task.value} service"
        )
    state_table = env_str(env, SERVICE_STATE_TABLE_ENV)

    if spcs is None or sink is None:
        from spcs_gateway.auth import TokenProvider
        from spcs_gateway.http import build_http_client
        from spcs_gateway.secrets import CredentialSource

        http = http or build_http_client()
        credentials = credentials or CredentialSource(registry.snowflake)
        tokens = tokens or TokenProvider(registry.snowflake, credentials, http)
        if spcs is None:
            from spcs_gateway.spcs_client import SpcsClient

            startup = None
            if state_table:
                from spcs_gateway.service_activity import ResumeWindow
                from spcs_gateway.service_state import ServiceStateStore

                # A 401 while the control plane resumes the service is "starting", not auth.
                startup = ResumeWindow(ServiceStateStore.from_env(environ=env))
            spcs = SpcsClient(registry, tokens, http, startup=startup)
        if sink is None:
            from spcs_gateway.results import ResultsSink
            from spcs_gateway.sql import SnowflakeSql, make_connect

            sql = sql or SnowflakeSql(make_connect(tokens))
            sink = ResultsSink(sql, registry.snowflake.results_table)

    refs = registry.references
    allow_listed = (
        bool(refs.note_tables)
        if service.task is Task.TOKEN_CLASSIFICATION
        else bool(refs.image_tables or refs.image_stages)
    )
    if references is None and allow_listed and sql is not None:
        # The registry allow-lists source tables for this task: reference events run their
        # model inside Snowflake, on the sink's session (docs/REFERENCE_ROUTE.md).
        from spcs_gateway.reference.route import ReferenceRoute

        references = ReferenceRoute(sql, registry.snowflake.results_table, registry.references)

    if dead_letters is None or visibility is None:
        from spcs_gateway.dlq import DeadLetters
        from spcs_gateway.visibility import SourceQueue

        # One SQS client (built on first use when none is given: a batch without poison or
        # retries never calls SQS) and one source-queue URL cache for both adapters.
        source = SourceQueue(sqs_client, environ=env)
        visibility = visibility or source
        dead_letters = dead_letters or DeadLetters(environ=env, source=source)

    if images is None and service.task is Task.ZERO_SHOT_IMAGE_CLASSIFICATION:
        from spcs_gateway.images import ImageSource

        images = ImageSource(registry.images, s3_client, dicom_size=service.image_size)

    if subjects is None and service.task is Task.TOKEN_CLASSIFICATION:
        from spcs_gateway.ehr.subjects import SubjectIds

        # The key is read on the first EHR message only (an envelope-only feed never reads it).
        subjects = SubjectIds(registry.ehr, registry.snowflake.secret)

    if readiness is None and (control_function := env_str(env, CONTROL_FUNCTION_ENV)):
        # Unavailable service -> async ensure_ready on the control function (control_invoke.py).
        # The Lambda client is built on the first such call (None here): healthy batches never
        # invoke the control function.
        from spcs_gateway.control_invoke import ControlReadinessHook, LambdaControlClient

        readiness = ControlReadinessHook(
            LambdaControlClient(None, control_function),
            logger or observability.get_logger(),
        )

    if activity is None and state_table:
        from spcs_gateway.service_activity import ActivityRecorder
        from spcs_gateway.service_state import ServiceStateStore

        activity = ActivityRecorder(ServiceStateStore.from_env(environ=env))

    return Pipeline(
        service,
        spcs=spcs,
        sink=sink,
        dead_letters=dead_letters,
        visibility=visibility,
        images=images,
        subjects=subjects,
        readiness=readiness,
        activity=activity,
        references=references,
        backoff=backoff or BackoffPolicy.from_env(env),
        logger=logger or observability.get_logger(),
        metrics=metrics or observability.get_metrics(service.name),
        tracer=tracer or observability.get_tracer(),
        rng=rng,
    )
