"""SnapStart in template.yaml: which functions run a published alias, what SAM makes of it, and
that the control plane still finds and pauses the routers' (alias-qualified) mappings."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from infra_support import (
    API_FUNCTION,
    CONTROL,
    ROUTERS,
    SNAPSTART_ALIAS,
    SNAPSTART_FUNCTIONS,
    Cfn,
    raw_template,
    sam_translate,
)
from moto import mock_aws

from spcs_gateway.queues import EventSourceMappings

REGION = "us-east-1"


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = raw_template()["Resources"][name]["Properties"]
    return props


@pytest.mark.parametrize("fn", sorted(SNAPSTART_FUNCTIONS))
def test_infra_snapstart_functions_publish_a_version_behind_an_alias(fn: str) -> None:
    props = _props(fn)
    assert props["AutoPublishAlias"] == SNAPSTART_ALIAS
    # A layer or environment change must publish a new version (and snapshot), not only code.
    assert props["AutoPublishAliasAllProperties"] is True
    # Each retained version with SnapStart keeps a billed snapshot.
    assert props["VersionDeletionPolicy"] == "Delete"
    # What SnapStart excludes is absent.
    assert "ProvisionedConcurrencyConfig" not in props
    assert "FileSystemConfigs" not in props
    assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
    assert raw_template()["Globals"]["Function"]["Runtime"] >= "python3.12"


@pytest.mark.parametrize(("switch", "applied"), [("true", "PublishedVersions"), ("false", "None")])
def test_infra_snapstart_parameter_switches_it_on_the_three_functions(
    switch: str, applied: str
) -> None:
    cfn = Cfn({"SnapStart": switch})
    for fn in SNAPSTART_FUNCTIONS:
        assert cfn.resolve(_props(fn)["SnapStart"]) == {"ApplyOn": applied}
    # The control function: nobody waits on its init (docs/PERFORMANCE.md).
    assert "SnapStart" not in _props(CONTROL)
    assert "AutoPublishAlias" not in _props(CONTROL)


def test_infra_events_and_the_api_call_the_published_alias() -> None:
    resources = sam_translate()["Resources"]
    for fn in SNAPSTART_FUNCTIONS:
        alias = resources[f"{fn}Alias{SNAPSTART_ALIAS}"]
        version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert resources[version_id]["Type"] == "AWS::Lambda::Version"
        assert resources[version_id]["DeletionPolicy"] == "Delete"
        assert resources[fn]["Properties"]["SnapStart"] == {
            "ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}
        }
    targets = {
        name: r["Properties"]["FunctionName"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert targets == {
        f"{fn}{queue}": {"Ref": f"{fn}Alias{SNAPSTART_ALIAS}"}
        for fn, (_, queue, _, _) in ROUTERS.items()
    }
    api_permissions = [
        r["Properties"]["FunctionName"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Permission" and name.startswith(API_FUNCTION)
    ]
    assert api_permissions
    assert all(p == {"Ref": f"{API_FUNCTION}Alias{SNAPSTART_ALIAS}"} for p in api_permissions)
    body = str(resources["Api"]["Properties"]["Body"])
    assert f"{API_FUNCTION}Alias{SNAPSTART_ALIAS}" in body
    assert "'ApiFunction.Arn'" not in body
    assert "['ApiFunction', 'Arn']" not in body


def test_infra_control_plane_pauses_and_resumes_an_alias_qualified_mapping() -> None:
    """With AutoPublishAlias the mapping belongs to ``<function>:live``. The control plane finds
    mappings by queue ARN, not by function, so it still finds, pauses and resumes it (moto)."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        lam = boto3.client("lambda", region_name=REGION)
        url = sqs.create_queue(QueueName="notes")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        role = iam.create_role(
            RoleName="router",
            AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}',
        )["Role"]["Arn"]
        lam.create_function(
            FunctionName="note-router",
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": b"def lambda_handler(event, context):\n    return {}\n"},
        )
        version = lam.publish_version(FunctionName="note-router")["Version"]
        alias_arn = lam.create_alias(
            FunctionName="note-router", Name=SNAPSTART_ALIAS, FunctionVersion=version
        )["AliasArn"]
        created = lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=alias_arn, BatchSize=10
        )
        # Lambda records the alias ARN, moto the version the alias points at: a qualified ARN
        # either way, which a lookup by function name would miss and the lookup by queue finds.
        unqualified = lam.get_function(FunctionName="note-router")["Configuration"]["FunctionArn"]
        assert created["FunctionArn"].startswith(unqualified + ":")

        mappings = EventSourceMappings(lam, {"notes": arn})
        (state,) = mappings.states(["notes"])
        assert state.uuid == created["UUID"]
        assert state.enabled

        assert mappings.pause(["notes"]) == 1
        after_pause = lam.get_event_source_mapping(UUID=created["UUID"])
        assert after_pause["State"] in ("Disabled", "Disabling")
        assert after_pause["FunctionArn"] == created["FunctionArn"]  # still the alias
        assert mappings.resume(["notes"]) == 1
        assert lam.get_event_source_mapping(UUID=created["UUID"])["State"] in (
            "Enabled",
            "Enabling",
        )
