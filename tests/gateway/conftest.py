"""Fixtures for the gateway's handler tests (helpers and fakes live in ``gw_support.py``).

``private_key_pem``  session RSA key (PKCS#8 PEM) for key-pair auth.
``gateway_env``      moto (``mock_aws``) with the notes/images queues and their DLQs
                     (RedrivePolicy), the allow-listed image bucket, the Snowflake key in Secrets
                     Manager and ``SPCS_GATEWAY_REGISTRY`` (https ingress URLs) in the environment.
``spcs``             respx mock of ``/oauth/token`` and both ingress endpoints (``SpcsFake``).
``router``           ``router("note_router" | "image_router", registry=None, **overrides)``
                     imports ``functions/<name>/app.py`` under that environment and swaps its
                     module-level pipeline for ``build_pipeline(..., **overrides)`` with a real
                     SpcsClient/TokenProvider/DeadLetters and a ``FakeSink``.
"""

from __future__ import annotations

# fake_account first: it sets the Powertools/AWS test environment before any Powertools object.
import fake_account  # isort: skip

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
import respx
from gw_support import (
    IMAGE_BUCKET,
    IMAGES_QUEUE,
    NER_URL,
    NOTES_QUEUE,
    OTHER_BUCKET,
    REGION,
    SECRET_ID,
    SERVICE_OF,
    TOKEN_URL,
    ZSC_URL,
    FakeSink,
    GatewayEnv,
    ReadinessRecorder,
    Router,
    SpcsFake,
    load_app,
    registry_doc,
)
from moto import mock_aws

from spcs_gateway.auth import TokenProvider
from spcs_gateway.http import build_http_client
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.spcs_client import SpcsClient


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    return fake_account.rsa_private_pem().decode()


@pytest.fixture
def gateway_env(private_key_pem: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayEnv]:
    from aws_lambda_powertools.utilities import parameters

    doc = registry_doc()
    monkeypatch.setenv("SPCS_GATEWAY_REGISTRY", json.dumps(doc))
    monkeypatch.delenv("DLQ_URL", raising=False)
    monkeypatch.delenv("SOURCE_QUEUE_URL", raising=False)
    parameters.clear_caches()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(
            Name=SECRET_ID, SecretString=json.dumps({"private_key": private_key_pem})
        )
        queue_urls: dict[str, str] = {}
        dlq_urls: dict[str, str] = {}
        for name in (NOTES_QUEUE, IMAGES_QUEUE):
            dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
            queue_urls[name] = sqs.create_queue(
                QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "60"}
            )["QueueUrl"]
            dlq_urls[name] = dlq_url
        s3.create_bucket(Bucket=IMAGE_BUCKET)
        s3.create_bucket(Bucket=OTHER_BUCKET)
        env = GatewayEnv(sqs, s3, secrets, queue_urls, dlq_urls, parse_registry(doc))

        def record_visibility(params: dict[str, Any], **_: Any) -> None:
            env.visibility_calls.append(json.loads(json.dumps(params, default=str)))

        sqs.meta.events.register(
            "provide-client-params.sqs.ChangeMessageVisibilityBatch", record_visibility
        )
        yield env
    parameters.clear_caches()


@pytest.fixture
def spcs() -> Iterator[SpcsFake]:
    fake = SpcsFake()
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).mock(side_effect=fake.token)
        mock.post(NER_URL).mock(side_effect=fake.infer)
        mock.post(ZSC_URL).mock(side_effect=fake.infer)
        yield fake


@pytest.fixture
def router(
    gateway_env: GatewayEnv, spcs: SpcsFake, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Router]]:
    from spcs_gateway.pipeline import build_pipeline

    made: list[tuple[SpcsClient, httpx.Client]] = []

    def make(name: str, registry: Registry | None = None, **overrides: Any) -> Router:
        service_name, queue = SERVICE_OF[name]
        monkeypatch.setenv("SERVICE_NAME", service_name)
        app = load_app(name)
        reg = registry or gateway_env.registry
        http = build_http_client()
        tokens = TokenProvider(reg.snowflake, CredentialSource(reg.snowflake), http)
        client = SpcsClient(reg, tokens, http, sleep=lambda _s: None)
        made.append((client, http))
        sink = overrides.pop("sink", None) or FakeSink()
        readiness = overrides.pop("readiness", None) or ReadinessRecorder()
        app.pipeline = build_pipeline(
            service_name,
            registry=reg,
            spcs=client,
            sink=sink,
            sqs_client=gateway_env.sqs,
            s3_client=gateway_env.s3,
            readiness=readiness,
            rng=random.Random(7),
            **overrides,
        )
        return Router(app, gateway_env, sink, readiness, client, queue)

    yield make
    for client, http in made:
        client.close()
        http.close()
