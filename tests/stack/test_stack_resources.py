"""The resources the local stack creates in moto match what template.yaml declares, and its
event source mappings are served by the local Lambda API the way boto3 expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stack_support import stack_template

from spcs_local.stack.stack import LocalStack, StackOptions
from spcs_local.stack.template import Template


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # No container is started (nothing is sent): resources and mappings only.
    options = StackOptions(
        template=stack_template(),
        work_dir=tmp_path_factory.mktemp("stack-resources"),
        warm_containers=False,
        warm_ner=False,
        schedule_seconds=3600,
    )
    with LocalStack(options) as running:
        yield running


def _expected() -> Template:
    """The template evaluated on its own (defaults + the values the stack passes)."""
    return Template(stack_template())


def _queue_props(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical: template.resolve(res["Properties"])
        for logical, res in template.of_type("AWS::SQS::Queue").items()
    }


def test_stack_queues_match_the_template(stack: LocalStack) -> None:
    assert stack.resources is not None
    sqs = stack.client("sqs")
    template = _expected()
    declared = _queue_props(template)
    raw = template.of_type("AWS::SQS::Queue")
    assert set(stack.resources.queues) == set(declared)
    arn_of = {q.logical_id: q.arn for q in stack.resources.queues.values()}
    for logical, props in declared.items():
        queue = stack.resources.queues[logical]
        assert queue.name == props["QueueName"]
        attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "KmsDataKeyReusePeriodSeconds"):
            if key in props:
                assert attrs[key] == str(props[key]), (logical, key)
        if "KmsMasterKeyId" in props:
            assert attrs["KmsMasterKeyId"] in stack.resources.kms_keys.values()
        if "RedrivePolicy" in props:
            redrive = json.loads(attrs["RedrivePolicy"])
            target = raw[logical]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
            target = target["Fn::GetAtt"][0]
            assert redrive["deadLetterTargetArn"] == arn_of[target]
            assert int(redrive["maxReceiveCount"]) == int(props["RedrivePolicy"]["maxReceiveCount"])
        else:
            assert "RedrivePolicy" not in attrs
    # Every source queue has its own DLQ, and the routers' DLQ_URL is that queue.
    assert len(stack.resources.source_queues) == len(stack.resources.dead_letter_queues) >= 2


def test_stack_tables_secret_and_registry_parameter(stack: LocalStack) -> None:
    assert stack.resources is not None
    template = _expected()
    tables = {
        template.resolve(res["Properties"]["TableName"])
        for res in template.of_type("AWS::DynamoDB::Table").values()
    }
    assert set(stack.resources.tables.values()) == tables
    listed = set(stack.client("dynamodb").list_tables()["TableNames"])
    assert tables <= listed
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.secret_arn)
    assert "PRIVATE KEY" in json.loads(secret["SecretString"])["private_key"]
    (param,) = stack.resources.registry_parameters
    document = json.loads(stack.client("ssm").get_parameter(Name=param)["Parameter"]["Value"])
    assert document["snowflake"]["secret"] == {"secret_id": stack.secret_arn}
    assert {s["name"] for s in document["services"]} == {"biobert_ner", "biomedclip"}
    for fn in stack.resources.functions:
        env = stack.environments.get(fn.name) or stack._function_environment(fn)
        assert env["SPCS_GATEWAY_REGISTRY_PARAM"] == param
        assert env["AWS_ENDPOINT_URL"] == stack.moto.url
        assert env["AWS_ENDPOINT_URL_LAMBDA"] == stack.lambda_api.url  # type: ignore[union-attr]
        for key, value in env.items():  # the template's references resolve to local resources
            if key in ("SOURCE_QUEUE_URL", "DLQ_URL"):
                assert value in {q.url for q in stack.resources.queues.values()}
            if key == "SERVICE_STATE_TABLE":
                assert value in stack.resources.tables.values()


def test_stack_mappings_match_the_template_through_the_lambda_api(stack: LocalStack) -> None:
    assert stack.resources is not None
    assert stack.lambda_api is not None
    client = boto3.client(
        "lambda",
        endpoint_url=stack.lambda_api.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pages = client.get_paginator("list_event_source_mappings").paginate(
        PaginationConfig={"PageSize": 1}
    )
    listed = [m for page in pages for m in page["EventSourceMappings"]]
    template = _expected()
    declared = []
    for logical, res in template.of_type("AWS::Serverless::Function").items():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                declared.append((logical, template.resolve(event["Properties"])))
    assert len(listed) == len(declared) >= 2
    by_arn = {m["EventSourceArn"]: m for m in listed}
    for logical, props in declared:
        fn = next(f for f in stack.resources.functions if f.logical_id == logical)
        queue_arn = fn.sqs_events[0].queue_arn
        mapping = by_arn[queue_arn]
        assert mapping["FunctionArn"] == fn.target_arn  # the published alias (AutoPublishAlias)
        assert mapping["BatchSize"] == int(props["BatchSize"])
        assert mapping["MaximumBatchingWindowInSeconds"] == int(
            props["MaximumBatchingWindowInSeconds"]
        )
        assert mapping["FunctionResponseTypes"] == props["FunctionResponseTypes"]
        assert mapping["ScalingConfig"]["MaximumConcurrency"] == int(
            props["ScalingConfig"]["MaximumConcurrency"]
        )
        assert mapping["State"] == "Enabled"
        assert queue_arn == stack.resources.queue_by_arn(queue_arn).arn
        one = client.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
        assert [m["UUID"] for m in one] == [mapping["UUID"]]
        got = client.get_event_source_mapping(UUID=mapping["UUID"])
        assert got["EventSourceArn"] == queue_arn
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000")


def test_stack_unemulated_resources_are_listed_not_silently_dropped(stack: LocalStack) -> None:
    assert stack.resources is not None
    kinds = set(stack.resources.skipped.values())
    assert "AWS::IAM::Role" in kinds  # IAM is not enforced locally, and says so
    assert not kinds & {"AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::KMS::Key"}
