"""moto helpers shared by the control-plane tests (plain module; ``tests/conftest.py`` puts
``tests/support`` on sys.path). Call them inside ``mock_aws()``."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from typing import Any

import pytest

REGION = "us-east-1"


def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def create_state_table(dynamodb: Any, table: str, key: str = "service") -> None:
    """A DynamoDB table keyed by the string attribute ``key`` (on-demand billing)."""
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def create_queues(
    sqs: Any, names: Iterable[str], suffix: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """Queues ``<name><suffix>``; returns ({name: url}, {name: arn})."""
    urls = {n: sqs.create_queue(QueueName=f"{n}{suffix}")["QueueUrl"] for n in names}
    arns = {
        n: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for n, u in urls.items()
    }
    return urls, arns


def create_function(lam: Any, iam: Any, name: str, *, role_name: str | None = None) -> None:
    """A Lambda function with a no-op handler (event source mappings need one to point at)."""
    role = iam.create_role(
        RoleName=role_name or f"{name}-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def lambda_handler(event, context):\n    return {}\n")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": buf.getvalue()},
    )
