"""Reading template.yaml as CloudFormation reads it (shared by the tests/infra modules).

``Cfn`` evaluates the intrinsic functions the template uses against parameter values (defaults
unless a test says otherwise), on the SAM template itself or on its translation, with the local
stack's evaluator (``spcs_local.stack.template``) and test placeholders for created resources.
``sam_translate`` runs the real SAM transform (aws-sam-translator) offline, as ``sam deploy``
would have CloudFormation do, so tests can check the resources SAM generates (event source
mappings, the API stage, the schedule rule, permissions) and lint the result as plain
CloudFormation.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from spcs_local.stack.template import Template, load_template, names_in

__all__ = ["names_in"]  # re-exported for the tests

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
GATEWAY = ROOT / "layers" / "gateway" / "spcs_gateway"

KEY = "PhiKey"
REQUIRED_PARAMS = {
    "SnowflakeAccount": "myorg-myacct",
    "SnowflakeSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:spcs/sf-AbC123",
    "NerServiceUrl": "https://abc-myorg-myacct.snowflakecomputing.app",
    "ClipServiceUrl": "https://def-myorg-myacct.snowflakecomputing.app",
}
# Every optional branch switched on, so no statement hides behind a false condition.
ALL_BRANCHES = {
    **REQUIRED_PARAMS,
    "VpcSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "VpcSecurityGroupIds": "sg-0a1b2c3d",
    "ImageAllowedBuckets": "scans-a,scans-b",
    "ImageBucketsAccountId": "210987654321",
    "SnowflakeSecretKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1111-2222",
    "SnowflakeSecretExtraReaderArns": "arn:aws:iam::123456789012:role/gateway-doctor",
    "ApiCallerPrincipalArns": (
        "arn:aws:iam::123456789012:role/clinician-app,arn:aws:iam::123456789012:role/notebook-*"
    ),
    "AlarmEmail": "oncall@example.org",
}
# What DataClassification=phi (the default) needs on top of the required parameters (Rules).
PHI_READY = {
    **REQUIRED_PARAMS,
    "VpcSubnetIds": ALL_BRANCHES["VpcSubnetIds"],
    "VpcSecurityGroupIds": ALL_BRANCHES["VpcSecurityGroupIds"],
    "SnowflakeSecretKmsKeyArn": ALL_BRANCHES["SnowflakeSecretKmsKeyArn"],
}
ROUTERS = {
    # function -> (logical service name in the registry, source queue, its DLQ, code dir)
    "NoteRouterFunction": ("biobert_ner", "NotesQueue", "NotesDeadLetterQueue", "note_router"),
    "ImageRouterFunction": ("biomedclip", "ImagesQueue", "ImagesDeadLetterQueue", "image_router"),
}
CONTROL = "ControlFunction"
API_FUNCTION = "ApiFunction"
FUNCTIONS = {*ROUTERS, CONTROL, API_FUNCTION}
# The functions that run with SnapStart behind a published alias (docs/PERFORMANCE.md).
SNAPSTART_FUNCTIONS = {*ROUTERS, API_FUNCTION}
SNAPSTART_ALIAS = "live"


@cache
def _raw() -> dict[str, Any]:
    # cfn-lint's loader turns !Ref/!Sub/... into {"Ref": ...}, as plain dicts and lists.
    return load_template(TEMPLATE)


def raw_template() -> dict[str, Any]:
    return _raw()


@cache
def _translated() -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(_raw())
    for res in sam["Resources"].values():
        props = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):  # what `sam package` does to local paths
                props[key] = f"s3://artifacts/{props[key]}"
    # A session with a region only: nothing is sent anywhere.
    session = boto3.session.Session(region_name="us-east-1")
    translator = Translator({}, Parser(), boto_session=session)
    out = translator.translate(sam, parameter_values={}, get_managed_policy_map=lambda: {})
    return json.loads(json.dumps(out))


def sam_translate() -> dict[str, Any]:
    """The CloudFormation template SAM makes of template.yaml (cached; do not mutate)."""
    return _translated()


# Ref of a resource of these types is its name property (what the tests compare against).
_NAME_PROPS = {
    "AWS::SSM::Parameter": "Name",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::DynamoDB::Table": "TableName",
}


class Cfn(Template):
    """The template (or its SAM translation) evaluated like CloudFormation would, by the local
    stack's evaluator, with recognisable placeholders for what only exists once deployed:
    Ref of another resource is ``ref-<Name>``, of a SAM-generated mapping ``uuid-of-<Name>``,
    GetAtt Arn is ``arn:<partition>:fake:::<Name>``. A Ref/GetAtt of an unknown name fails."""

    def __init__(
        self,
        params: Mapping[str, str] | None = None,
        *,
        partition: str = "aws",
        template: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            TEMPLATE,
            {**REQUIRED_PARAMS, **(params or {})},
            partition=partition,
            doc=template if template is not None else _raw(),
        )

    @property
    def t(self) -> dict[str, Any]:
        return self.doc

    def of_type(self, *kinds: str) -> dict[str, dict[str, Any]]:
        # Whatever their Condition: the tests look at the template's structure.
        return {k: v for k, v in self.resources.items() if v["Type"] in kinds}

    def sam_generated(self, name: str) -> str | None:
        """Type of a resource SAM generates under ``name`` (``<Function><Event>`` for SQS and
        schedule events), or None."""
        for fn, res in self.of_type("AWS::Serverless::Function").items():
            for event_name, event in res["Properties"].get("Events", {}).items():
                if name == fn + event_name and event["Type"] == "SQS":
                    return "AWS::Lambda::EventSourceMapping"
                if name == fn + event_name and event["Type"] == "Schedule":
                    return "AWS::Events::Rule"
        return None

    def ref(self, name: str) -> Any:
        if name not in self.resources and self.sam_generated(name):
            return f"uuid-of-{name}"
        return super().ref(name)  # unknown names raise TemplateError

    def _placeholder_ref(self, name: str) -> Any:
        res = self.resources[name]
        if res["Type"] in _NAME_PROPS:
            return self.resolve(res["Properties"][_NAME_PROPS[res["Type"]]])
        return f"ref-{name}"

    def getatt(self, name: str, attr: str) -> str:
        assert name in self.resources, f"GetAtt of unknown resource {name}"
        return f"arn:{self.pseudo['AWS::Partition']}:fake:::{name}" if attr == "Arn" else name

    def function_env(self, fn: str) -> dict[str, str]:
        return self.function_environment(fn)

    def sqs_events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for fn, res in self.of_type("AWS::Serverless::Function").items():
            for event in res["Properties"].get("Events", {}).values():
                if event["Type"] == "SQS":
                    yield fn, event["Properties"]

    def role_of(self, fn: str) -> str:
        return str(self.resources[fn]["Properties"]["Role"]["Fn::GetAtt"][0])

    def role_grants(self, role: str) -> dict[str, set[str]]:
        """Resource -> actions granted to ``role`` by its inline policies and by every
        AWS::IAM::RolePolicy / AWS::IAM::Policy attached to it (evaluated)."""
        docs = [p["PolicyDocument"] for p in self.resources[role]["Properties"].get("Policies", [])]
        for res in self.resources.values():
            props = res.get("Properties", {})
            if res["Type"] == "AWS::IAM::RolePolicy" and props["RoleName"] == {"Ref": role}:
                docs.append(props["PolicyDocument"])
            if res["Type"] == "AWS::IAM::Policy" and {"Ref": role} in props.get("Roles", []):
                docs.append(props["PolicyDocument"])
        grants: dict[str, set[str]] = {}
        for doc in docs:
            for stmt in statements(self.resolve(doc)):
                assert stmt["Effect"] == "Allow", role
                for resource in as_list(stmt["Resource"]):
                    grants.setdefault(resource, set()).update(as_list(stmt["Action"]))
        return grants


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    stmts = doc["Statement"]
    return stmts if isinstance(stmts, list) else [stmts]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def iam_documents(cfn: Cfn) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity policy document of the template, evaluated."""
    for name, res in cfn.resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield name, cfn.resolve(policy["PolicyDocument"])
        elif res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::RolePolicy"):
            yield name, cfn.resolve(props["PolicyDocument"])
        elif res["Type"] == "AWS::Serverless::Function":
            # SAM-generated roles attach managed policies with Resource "*": bring your own.
            assert "Policies" not in props, name
            assert "Role" in props, name


def boto_calls(module: str, client_attr: str) -> set[str]:
    """IAM action names of the boto3 client calls ``spcs_gateway/<module>`` makes through
    ``self.<client_attr>`` (``get_item`` -> ``GetItem``), paginators included."""
    source = (GATEWAY / module).read_text(encoding="utf-8")
    calls = set(re.findall(rf"self\.{client_attr}\.(\w+)\(", source))
    calls |= set(re.findall(rf"self\.{client_attr}\.get_paginator\(\"(\w+)\"\)", source))
    calls.discard("get_paginator")
    return {"".join(part.title() for part in call.split("_")) for call in calls}


def api_routes_from_openapi() -> set[tuple[str, str]]:
    """(path, METHOD) of every route the committed OpenAPI document (the API code) declares."""
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
