"""Create in moto server what template.yaml declares, so the local stack cannot drift from it.

Walks the template's resources by type (no names are hard-coded) in dependency order and creates
SQS queues (visibility, retention, KMS attributes, redrive policy to their DLQ), queue policies,
DynamoDB tables (``AWS::DynamoDB::Table`` and SAM's ``SimpleTable``), KMS keys and aliases,
Secrets Manager secrets, SSM parameters, SNS topics (each subscribed by a local notifications
queue so what is published can be audited), CloudWatch log groups and alarms. Functions are not
created in moto: the local runner runs them (moto would try to invoke them through Docker), and
it serves the Lambda API for their event source mappings.

The service registry parameter (the one the functions' ``SPCS_GATEWAY_REGISTRY_PARAM`` names)
holds the local registry document instead of the template's, which points at a real account.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .template import FunctionDef, Template, TemplateError

log = logging.getLogger(__name__)

REGISTRY_PARAM_ENV = "SPCS_GATEWAY_REGISTRY_PARAM"

_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
_KEY_TYPES = {"String": "S", "Number": "N", "Binary": "B"}


@dataclass(frozen=True)
class QueueInfo:
    logical_id: str
    name: str
    url: str
    arn: str
    attributes: dict[str, str]
    dlq_arn: str | None = None
    max_receive_count: int | None = None


@dataclass
class LocalResources:
    queues: dict[str, QueueInfo] = field(default_factory=dict)  # by logical id
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    topics: dict[str, str] = field(default_factory=dict)  # logical id -> topic ARN
    kms_keys: dict[str, str] = field(default_factory=dict)  # logical id -> key id
    parameters: dict[str, str] = field(default_factory=dict)  # logical id -> parameter name
    secrets: dict[str, str] = field(default_factory=dict)  # logical id -> secret ARN
    log_groups: dict[str, str] = field(default_factory=dict)
    alarms: dict[str, str] = field(default_factory=dict)
    registry_parameters: list[str] = field(default_factory=list)
    notifications_queue_url: str | None = None
    functions: list[FunctionDef] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # logical id -> type (not emulated)

    def queue_by_arn(self, arn: str) -> QueueInfo:
        for queue in self.queues.values():
            if queue.arn == arn:
                return queue
        raise KeyError(arn)

    @property
    def dead_letter_queues(self) -> list[QueueInfo]:
        targets = {q.dlq_arn for q in self.queues.values() if q.dlq_arn}
        return [q for q in self.queues.values() if q.arn in targets]

    @property
    def source_queues(self) -> list[QueueInfo]:
        return [q for q in self.queues.values() if q.dlq_arn]

    def function(self, logical_or_name: str) -> FunctionDef:
        for fn in self.functions:
            if logical_or_name in (fn.logical_id, fn.name):
                return fn
        raise KeyError(logical_or_name)


class AwsClients:
    """boto3 clients on moto server (fake credentials, one region)."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        import boto3

        self.endpoint_url = endpoint_url
        self.region = region
        self._session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
            region_name=region,
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            make: Any = self._session.client  # typed per service name; ours is a variable
            self._clients[service] = make(service, endpoint_url=self.endpoint_url)
        return self._clients[service]


def create_secret(aws: AwsClients, name: str, value: str) -> str:
    """The Snowflake credential secret (the template takes it as a parameter): its ARN."""
    answer = aws.client("secretsmanager").create_secret(Name=name, SecretString=value)
    return str(answer["ARN"])


class _Creator:
    def __init__(self, template: Template, aws: AwsClients, out: LocalResources) -> None:
        self.t = template
        self.aws = aws
        self.out = out
        self.stack = str(template.pseudo["AWS::StackName"])

    def props(self, logical_id: str) -> dict[str, Any]:
        resolved = self.t.resolve(self.t.resources[logical_id].get("Properties", {}))
        return dict(resolved)

    # -- KMS -------------------------------------------------------------------------------------

    def kms_key(self, logical_id: str) -> None:
        p = self.props(logical_id)
        kwargs = {k: p[k] for k in ("Description", "KeyUsage", "KeySpec") if k in p}
        meta = self.aws.client("kms").create_key(**kwargs)["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            self.aws.client("kms").enable_key_rotation(KeyId=meta["KeyId"])
        self.out.kms_keys[logical_id] = meta["KeyId"]
        self.t.set_physical(logical_id, meta["KeyId"], Arn=meta["Arn"], KeyId=meta["KeyId"])

    def kms_alias(self, logical_id: str) -> None:
        p = self.props(logical_id)
        self.aws.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        self.t.set_physical(logical_id, p["AliasName"])

    # -- SQS -------------------------------------------------------------------------------------

    def queue(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("QueueName") or f"{self.stack}-{logical_id}")
        attributes = {k: _attr(p[k]) for k in _QUEUE_ATTRIBUTES if k in p}
        dlq_arn: str | None = None
        max_receive: int | None = None
        if "RedrivePolicy" in p:
            policy = dict(p["RedrivePolicy"])
            dlq_arn = str(policy["deadLetterTargetArn"])
            max_receive = int(policy["maxReceiveCount"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}
            )
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.out.queues[logical_id] = QueueInfo(
            logical_id, name, url, arn, attributes, dlq_arn, max_receive
        )
        self.t.set_physical(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    def queue_policy(self, logical_id: str) -> None:
        p = self.props(logical_id)
        for url in p.get("Queues", []):
            self.aws.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
            )
        self.t.set_physical(logical_id, logical_id)

    # -- DynamoDB --------------------------------------------------------------------------------

    def table(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("TableName") or f"{self.stack}-{logical_id}")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if kwargs["BillingMode"] == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = _throughput(p.get("ProvisionedThroughput"))
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in p:
                kwargs[key] = p[key]
        if "StreamSpecification" in p:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        self._create_table(logical_id, kwargs, p.get("TimeToLiveSpecification"))

    def simple_table(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("TableName") or f"{self.stack}-{logical_id}")
        key = p.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        kwargs = {
            "TableName": name,
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": key["Name"], "AttributeType": _KEY_TYPES[key["Type"]]}
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }
        self._create_table(logical_id, kwargs, None)

    def _create_table(self, logical_id: str, kwargs: dict[str, Any], ttl: Any) -> None:
        ddb = self.aws.client("dynamodb")
        desc = ddb.create_table(**kwargs)["TableDescription"]
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=kwargs["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        self.out.tables[logical_id] = kwargs["TableName"]
        self.t.set_physical(
            logical_id,
            kwargs["TableName"],
            Arn=desc["TableArn"],
            StreamArn=desc.get("LatestStreamArn", ""),
        )

    # -- Secrets, SSM ------------------------------------------------------------------------------

    def secret(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("Name") or f"{self.stack}-{logical_id}")
        value = p.get("SecretString")
        if value is None:
            import secrets

            value = json.dumps({"password": secrets.token_urlsafe(24)})
        kwargs: dict[str, Any] = {"Name": name, "SecretString": str(value)}
        if "KmsKeyId" in p:
            kwargs["KmsKeyId"] = p["KmsKeyId"]
        arn = str(self.aws.client("secretsmanager").create_secret(**kwargs)["ARN"])
        self.out.secrets[logical_id] = arn
        self.t.set_physical(logical_id, arn, Id=arn)

    def parameter(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("Name") or f"/{self.stack}/{logical_id}")
        self.aws.client("ssm").put_parameter(
            Name=name,
            Type=p.get("Type", "String"),
            Value=str(p["Value"]),
            Overwrite=True,
            **({"Description": p["Description"]} if "Description" in p else {}),
        )
        self.out.parameters[logical_id] = name
        self.t.set_physical(logical_id, name, Type=p.get("Type", "String"), Value=str(p["Value"]))

    # -- SNS, logs, alarms -------------------------------------------------------------------------

    def topic(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("TopicName") or f"{self.stack}-{logical_id}")
        attributes = {k: str(p[k]) for k in ("DisplayName", "KmsMasterKeyId") if k in p}
        arn = self.aws.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        self.out.topics[logical_id] = arn
        self.t.set_physical(logical_id, arn, TopicArn=arn, TopicName=name)

    def subscription(self, logical_id: str) -> None:
        p = self.props(logical_id)
        if p.get("Protocol") in ("sqs", "lambda"):
            self.aws.client("sns").subscribe(
                TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"]
            )
        else:  # e-mail/SMS cannot be delivered locally: the notifications queue records them
            self.out.skipped[logical_id] = f"AWS::SNS::Subscription ({p.get('Protocol')})"
        self.t.set_physical(logical_id, logical_id)

    def log_group(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("LogGroupName") or f"/{self.stack}/{logical_id}")
        logs = self.aws.client("logs")
        kwargs: dict[str, Any] = {"logGroupName": name}
        if "KmsKeyId" in p:
            kwargs["kmsKeyId"] = p["KmsKeyId"]
        logs.create_log_group(**kwargs)
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        self.out.log_groups[logical_id] = name
        arn = f"arn:aws:logs:{self.aws.region}:{self.t.pseudo['AWS::AccountId']}:log-group:{name}"
        self.t.set_physical(logical_id, name, Arn=arn)

    def alarm(self, logical_id: str) -> None:
        p = self.props(logical_id)
        name = str(p.get("AlarmName") or f"{self.stack}-{logical_id}")
        kwargs: dict[str, Any] = {"AlarmName": name}
        for key in (
            "AlarmDescription",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "ComparisonOperator",
            "TreatMissingData",
            "AlarmActions",
            "OKActions",
            "Metrics",
        ):
            if key in p:
                kwargs[key] = p[key]
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in p:
                kwargs[key] = int(p[key])
        if "Threshold" in p:
            kwargs["Threshold"] = float(p["Threshold"])
        self.aws.client("cloudwatch").put_metric_alarm(**kwargs)
        self.out.alarms[logical_id] = name
        self.t.set_physical(logical_id, name)


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _throughput(value: Any) -> dict[str, int]:
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


_HANDLERS = {
    "AWS::KMS::Key": "kms_key",
    "AWS::KMS::Alias": "kms_alias",
    "AWS::SQS::Queue": "queue",
    "AWS::SQS::QueuePolicy": "queue_policy",
    "AWS::DynamoDB::Table": "table",
    "AWS::Serverless::SimpleTable": "simple_table",
    "AWS::SecretsManager::Secret": "secret",
    "AWS::SSM::Parameter": "parameter",
    "AWS::SNS::Topic": "topic",
    "AWS::SNS::Subscription": "subscription",
    "AWS::Logs::LogGroup": "log_group",
    "AWS::CloudWatch::Alarm": "alarm",
}


def create_resources(
    template: Template, aws: AwsClients, *, registry_document: Mapping[str, Any]
) -> LocalResources:
    """Create every supported resource of ``template`` in moto (dependencies first), then write
    ``registry_document`` to the registry parameter(s) the functions read."""
    out = LocalResources()
    creator = _Creator(template, aws, out)
    supported = [k for k, v in template.resources.items() if v.get("Type") in _HANDLERS]
    for logical_id, res in template.resources.items():
        if logical_id not in supported and res.get("Type") != "AWS::Serverless::Function":
            out.skipped[logical_id] = str(res.get("Type"))
    for logical_id in template.creation_order(supported):
        if not template.active(logical_id):
            continue
        kind = template.resources[logical_id]["Type"]
        try:
            getattr(creator, _HANDLERS[kind])(logical_id)
        except (ClientError, BotoCoreError, KeyError, TypeError, ValueError) as exc:
            raise TemplateError(
                f"cannot create {logical_id} ({kind}) locally: {type(exc).__name__}"
            ) from exc
    if out.topics:
        _subscribe_notifications(template, aws, out)
    out.functions = template.functions()
    _write_registry(template, aws, out, registry_document)
    return out


def _subscribe_notifications(template: Template, aws: AwsClients, out: LocalResources) -> None:
    """A local queue subscribed to every topic: what alarms and notifications publish."""
    sqs = aws.client("sqs")
    name = f"{template.pseudo['AWS::StackName']}-local-notifications"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for topic_arn in out.topics.values():
        aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    out.notifications_queue_url = url


def _write_registry(
    template: Template,
    aws: AwsClients,
    out: LocalResources,
    registry_document: Mapping[str, Any],
) -> None:
    names = sorted(
        {
            fn.environment[REGISTRY_PARAM_ENV]
            for fn in out.functions
            if fn.environment.get(REGISTRY_PARAM_ENV)
        }
    )
    if not names:
        # The template names no registry parameter: the local stack provides one to every
        # function (stack.py adds the variable).
        names = [f"/{template.pseudo['AWS::StackName']}/registry"]
    for name in names:
        aws.client("ssm").put_parameter(
            Name=name,
            Type="String",
            Value=json.dumps(registry_document),
            Overwrite=True,
            Description="spcs-gateway service registry (local stack: points at the emulator)",
        )
    out.registry_parameters = names
