"""template.yaml read as CloudFormation reads it: short tags decoded by cfn-lint's loader, the
intrinsic functions the template uses evaluated against parameter values (defaults unless a test
says otherwise), so the properties issue 6 asks for are checked on what would be deployed."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from spcs_gateway.registry import parse_registry

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

KEY = "PhiKey"
FOURTEEN_DAYS = 14 * 24 * 3600
REQUIRED_PARAMS = {
    "SnowflakeAccount": "myorg-myacct",
    "SnowflakeSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:spcs/sf-AbC123",
    "NerServiceUrl": "https://abc-myorg-myacct.snowflakecomputing.app",
    "ClipServiceUrl": "https://def-myorg-myacct.snowflakecomputing.app",
}
# Every optional branch switched on, so no statement hides behind a false condition.
ALL_BRANCHES = {
    **REQUIRED_PARAMS,
    "VpcSubnetIds": "subnet-1,subnet-2",
    "VpcSecurityGroupIds": "sg-1",
    "ImageAllowedBuckets": "scans-a,scans-b",
    "SnowflakeSecretKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1111-2222",
    "AlarmEmail": "oncall@example.org",
}
# Actions AWS accepts only with Resource "*" (no resource-level permissions).
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
PHI_IDENTIFIERS = {
    f"arn:aws:dataprotection::aws:data-identifier/{name}"
    for name in (
        "HealthInsuranceClaimNumber-US",
        "NationalDrugCode-US",
        "MedicareBeneficiaryNumber-US",
        "NationalProviderId-US",
        "HealthcareProcedureCode-US",
        "DrugEnforcementAgencyNumber-US",
        "HealthInsuranceCardNumber-EU",
        "NhsNumber-GB",
        "PersonalHealthNumber-CA",
    )
}
GLOBAL_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
    "POWERTOOLS_TRACER_CAPTURE_ERROR",
    "POWERTOOLS_LOG_LEVEL",
    "HOME",
    "SPCS_GATEWAY_REGISTRY_PARAM",
}
ROUTERS = {
    # function -> (logical service name in the registry, source queue, its DLQ, code dir)
    "NoteRouterFunction": ("biobert_ner", "NotesQueue", "NotesDeadLetterQueue", "note_router"),
    "ImageRouterFunction": ("biomedclip", "ImagesQueue", "ImagesDeadLetterQueue", "image_router"),
}

_NO_VALUE = object()


@cache
def _raw() -> dict[str, Any]:
    # cfn-lint's loader turns !Ref/!Sub/... into {"Ref": ...}; the JSON round trip drops its
    # node subclasses so comparisons below are on plain values.
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


class Cfn:
    """Evaluates the intrinsic functions this template uses, like CloudFormation would."""

    def __init__(self, params: Mapping[str, str] | None = None, *, partition: str = "aws") -> None:
        self.t = _raw()
        self.values: dict[str, Any] = {}
        for name, spec in self.t["Parameters"].items():
            raw = str({**REQUIRED_PARAMS, **(params or {})}.get(name, spec.get("Default", "")))
            self.values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
        self.pseudo = {
            "AWS::Partition": partition,
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "spcs-gateway",
        }

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.t["Resources"])

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.t["Conditions"][name]))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.values:
            return self.values[name]
        res = self.resources[name]
        if res["Type"] == "AWS::SSM::Parameter":
            return self.resolve(res["Properties"]["Name"])
        if res["Type"] in ("AWS::Serverless::Function", "AWS::Logs::LogGroup"):
            key = "FunctionName" if "Function" in res["Type"] else "LogGroupName"
            return self.resolve(res["Properties"][key])
        return f"ref:{name}"

    def getatt(self, name: str, attr: str) -> str:
        assert name in self.resources, f"GetAtt of unknown resource {name}"
        return f"arn:{self.pseudo['AWS::Partition']}:fake:::{name}" if attr == "Arn" else name

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                return str(variables[key])
            if "." in key and not key.startswith("AWS::"):
                return self.getatt(*key.split(".", 1))
            value = self.ref(key)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [r for r in (self.resolve(x) for x in node) if r is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::Join":
                assert isinstance(arg[0], str), "Fn::Join takes a literal delimiter"
                return arg[0].join(str(x) for x in self.resolve(arg[1]))
            if fn == "Fn::Split":
                assert isinstance(arg[0], str), "Fn::Split takes a literal delimiter"
                return str(self.resolve(arg[1])).split(arg[0])
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if fn == "Fn::FindInMap":
                m, a, b = (str(self.resolve(x)) for x in arg)
                return self.t["Mappings"][m][a][b]
            if fn == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(name, attr)
            assert not fn.startswith("Fn::"), f"evaluator does not know {fn}"
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    # -- functions --------------------------------------------------------------------------

    def function_prop(self, fn: str, prop: str) -> Any:
        props = self.resources[fn]["Properties"]
        value = props.get(prop, self.t["Globals"]["Function"].get(prop))
        return self.resolve(value)

    def function_env(self, fn: str) -> dict[str, str]:
        glob = self.t["Globals"]["Function"]["Environment"]["Variables"]
        own = self.resources[fn]["Properties"].get("Environment", {}).get("Variables", {})
        return self.resolve({**glob, **own})

    def sqs_events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for fn, res in self.of_type("AWS::Serverless::Function").items():
            for event in res["Properties"].get("Events", {}).values():
                if event["Type"] == "SQS":
                    yield fn, event["Properties"]


def _queue_of(event_props: dict[str, Any]) -> str:
    return str(event_props["Queue"]["Fn::GetAtt"][0])


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    stmts = doc["Statement"]
    return stmts if isinstance(stmts, list) else [stmts]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names_in(node: Any) -> set[str]:
    """Logical ids referenced by Ref / GetAtt / ${X} / ${X.Attr} anywhere in an unresolved node."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= _names_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= _names_in(item)
    return found


# ---------------------------------------------------------------------------------------------


def test_infra_cfn_lint_reports_no_errors_or_warnings() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE, config=ManualArgs())
    problems = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id[0] in "EW"]
    assert problems == []


def test_infra_every_sqs_event_reports_batch_item_failures_with_tunable_batching() -> None:
    cfn = Cfn()
    events = list(cfn.sqs_events())
    assert {fn for fn, _ in events} == set(ROUTERS)
    params = cfn.t["Parameters"]
    for fn, props in events:
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], fn
        for key in ("BatchSize", "MaximumBatchingWindowInSeconds"):
            assert props[key]["Ref"] in params, (fn, key)
        concurrency = props["ScalingConfig"]["MaximumConcurrency"]["Ref"]
        assert int(params[concurrency]["MinValue"]) >= 2  # the ESM's lower bound
        window = params[props["MaximumBatchingWindowInSeconds"]["Ref"]]
        assert int(window["MaxValue"]) <= 300  # the ESM's upper bound, used by the visibility rule


def test_infra_every_queue_is_kms_encrypted_and_every_source_has_its_own_dlq() -> None:
    cfn = Cfn()
    queues = cfn.of_type("AWS::SQS::Queue")
    key = cfn.resources[KEY]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    dlq_of: dict[str, str] = {}
    for name, res in queues.items():
        props = res["Properties"]
        assert props["KmsMasterKeyId"] == {"Ref": KEY}, name
        if "RedrivePolicy" in props:
            redrive = props["RedrivePolicy"]
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"]
            assert target[1] == "Arn"
            assert target[0] in queues
            assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
            dlq_of[name] = target[0]
    assert set(dlq_of) == {"NotesQueue", "ImagesQueue"}
    assert len(set(dlq_of.values())) == len(dlq_of), "each source queue needs its own DLQ"
    assert set(queues) == set(dlq_of) | set(dlq_of.values()), "neither a source nor a DLQ"
    for dlq in dlq_of.values():
        assert "RedrivePolicy" not in queues[dlq]["Properties"]
        assert cfn.resolve(queues[dlq]["Properties"]["MessageRetentionPeriod"]) == FOURTEEN_DAYS


@pytest.mark.parametrize("timeout", ["30", "60", "90", "120", "180", "300", "600", "900"])
def test_infra_visibility_timeout_is_at_least_six_consumer_timeouts(timeout: str) -> None:
    cfn = Cfn({"FunctionTimeout": timeout})
    allowed = [str(v) for v in cfn.t["Parameters"]["FunctionTimeout"]["AllowedValues"]]
    assert timeout in allowed
    consumers: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for fn, props in cfn.sqs_events():
        consumers.setdefault(_queue_of(props), []).append((fn, props))
    assert set(consumers) == {"NotesQueue", "ImagesQueue"}
    for queue, fns in consumers.items():
        visibility = int(cfn.resolve(cfn.resources[queue]["Properties"]["VisibilityTimeout"]))
        assert visibility <= 43_200  # the SQS maximum
        for fn, props in fns:
            fn_timeout = int(cfn.function_prop(fn, "Timeout"))
            window_param = props["MaximumBatchingWindowInSeconds"]["Ref"]
            max_window = int(cfn.t["Parameters"][window_param]["MaxValue"])
            assert fn_timeout == int(timeout)
            assert visibility >= 6 * fn_timeout + max_window, (queue, fn)


def test_infra_every_log_group_has_retention_kms_and_a_phi_data_protection_policy() -> None:
    cfn = Cfn()
    groups = cfn.of_type("AWS::Logs::LogGroup")
    destinations: set[str] = set()
    protected = 0
    for name, res in groups.items():
        props = res["Properties"]
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert props["KmsKeyId"] == {"Fn::GetAtt": [KEY, "Arn"]}, name
        if "DataProtectionPolicy" not in props:
            continue
        protected += 1
        policy = cfn.resolve(props["DataProtectionPolicy"])
        assert policy["Version"] == "2021-06-01"
        audits = [s for s in policy["Statement"] if "Audit" in s["Operation"]]
        masks = [s for s in policy["Statement"] if "Deidentify" in s["Operation"]]
        assert len(audits) == 1, name
        assert len(masks) == 1, name
        assert masks[0]["Operation"]["Deidentify"] == {"MaskConfig": {}}
        assert audits[0]["DataIdentifier"] == masks[0]["DataIdentifier"]  # AWS requires it
        assert set(audits[0]["DataIdentifier"]) >= PHI_IDENTIFIERS, name
        dest = props["DataProtectionPolicy"]["Statement"][0]["Operation"]["Audit"]
        destinations.add(dest["FindingsDestination"]["CloudWatchLogs"]["LogGroup"]["Ref"])
    assert protected == len(ROUTERS)
    # The findings group receives identifier names and offsets only, never the data itself.
    assert destinations == {"DataProtectionFindingsLogGroup"}
    unprotected = {n for n, r in groups.items() if "DataProtectionPolicy" not in r["Properties"]}
    assert unprotected == destinations


def test_infra_every_function_logs_to_its_own_explicit_log_group() -> None:
    cfn = Cfn()
    for fn in cfn.of_type("AWS::Serverless::Function"):
        props = cfn.resources[fn]["Properties"]
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert cfn.resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert cfn.ref(group) == f"/aws/lambda/{cfn.resolve(props['FunctionName'])}"


def _iam_documents(cfn: Cfn) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, res in cfn.resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield name, cfn.resolve(policy["PolicyDocument"])
        elif res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield name, cfn.resolve(props["PolicyDocument"])
        elif res["Type"] == "AWS::Serverless::Function":
            # SAM-generated roles attach managed policies with Resource "*": bring your own.
            assert "Policies" not in props, name
            assert "Role" in props, name


def test_infra_no_iam_statement_uses_star_resource_except_where_aws_requires_it() -> None:
    cfn = Cfn(ALL_BRANCHES)
    star_statements = 0
    for name, doc in _iam_documents(cfn):
        for stmt in _statements(doc):
            actions = set(_as_list(stmt["Action"]))
            assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)
            if stmt["Effect"] == "Allow" and "*" in _as_list(stmt["Resource"]):
                star_statements += 1
                assert actions <= STAR_RESOURCE_ACTIONS, (name, actions - STAR_RESOURCE_ACTIONS)
    assert star_statements == 4  # X-Ray and VPC interfaces, once per router


def test_infra_every_star_resource_line_carries_a_comment_saying_why() -> None:
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    stars = [i for i, line in enumerate(lines) if re.search(r"Resource:\s*[\"']\*[\"']", line)]
    assert stars
    for index in stars:
        # The comment opens the statement the line belongs to (at most ~12 lines up).
        window = lines[max(0, index - 14) : index]
        assert any(line.strip().startswith("#") for line in window), f"line {index + 1}"


@pytest.mark.parametrize(("fn", "spec"), ROUTERS.items())
def test_infra_router_role_touches_only_its_own_queue_dlq_secret_key_and_registry(
    fn: str, spec: tuple[str, str, str, str]
) -> None:
    _, queue, dlq, _ = spec
    cfn = Cfn(ALL_BRANCHES)
    role = cfn.resources[fn]["Properties"]["Role"]["Fn::GetAtt"][0]
    raw_doc = cfn.resources[role]["Properties"]["Policies"][0]["PolicyDocument"]
    all_queues = set(cfn.of_type("AWS::SQS::Queue"))
    assert _names_in(raw_doc) & all_queues == {queue, dlq}
    doc = cfn.resolve(raw_doc)
    by_resource: dict[str, set[str]] = {}
    for stmt in _statements(doc):
        for resource in _as_list(stmt["Resource"]):
            by_resource.setdefault(resource, set()).update(_as_list(stmt["Action"]))
    assert by_resource[cfn.getatt(queue, "Arn")] == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    assert by_resource[cfn.getatt(dlq, "Arn")] == {"sqs:SendMessage"}
    assert by_resource[cfn.getatt(KEY, "Arn")] == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert by_resource[ALL_BRANCHES["SnowflakeSecretArn"]] == {"secretsmanager:GetSecretValue"}
    assert by_resource[ALL_BRANCHES["SnowflakeSecretKmsKeyArn"]] == {"kms:Decrypt"}
    registry_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/spcs-gateway/registry"
    assert by_resource[registry_arn] == {"ssm:GetParameter"}
    log_group = cfn.resources[fn]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    log_actions = {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert by_resource[cfn.getatt(log_group, "Arn")] == log_actions
    s3 = {r for r, actions in by_resource.items() if any(a.startswith("s3:") for a in actions)}
    if fn == "ImageRouterFunction":
        assert s3 == {"arn:aws:s3:::scans-a/*", "arn:aws:s3:::scans-b/*"}
    else:
        assert s3 == set()


def test_infra_image_bucket_arns_follow_the_partition_and_vanish_without_buckets() -> None:
    def s3_resources(cfn: Cfn) -> list[str]:
        role = cfn.resources["ImageRouterRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        stmts = _statements(cfn.resolve(role))
        return [r for s in stmts if s["Action"] == "s3:GetObject" for r in _as_list(s["Resource"])]

    gov = Cfn({"ImageAllowedBuckets": "scans-a,scans-b"}, partition="aws-us-gov")
    assert s3_resources(gov) == ["arn:aws-us-gov:s3:::scans-a/*", "arn:aws-us-gov:s3:::scans-b/*"]
    china = Cfn({"ImageAllowedBuckets": "scans-a"}, partition="aws-cn")
    assert s3_resources(china) == ["arn:aws-cn:s3:::scans-a/*"]
    assert s3_resources(Cfn()) == []


def test_infra_functions_are_python313_arm64_traced_with_the_gateway_layer_and_env() -> None:
    cfn = Cfn()
    functions = cfn.of_type("AWS::Serverless::Function")
    assert set(functions) == set(ROUTERS)
    for fn, (service, queue, dlq, code_dir) in ROUTERS.items():
        assert cfn.function_prop(fn, "Runtime") == "python3.13"
        assert cfn.function_prop(fn, "Architectures") == ["arm64"]
        assert cfn.function_prop(fn, "Tracing") == "Active"
        assert cfn.function_prop(fn, "Handler") == "app.lambda_handler"
        assert cfn.function_prop(fn, "CodeUri") == f"functions/{code_dir}"
        assert (ROOT / "functions" / code_dir).is_dir()
        assert {"Ref": "GatewayLayer"} in functions[fn]["Properties"]["Layers"]
        env = cfn.function_env(fn)
        assert set(env) >= GLOBAL_ENV | {"SERVICE_NAME"}
        assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
        assert env["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
        assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
        assert env["HOME"] == "/tmp"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert env["SPCS_GATEWAY_REGISTRY_PARAM"] == "/spcs-gateway/registry"
        assert env["SERVICE_NAME"] == service
        assert env["SOURCE_QUEUE_URL"] == cfn.ref(queue)
        assert env["DLQ_URL"] == cfn.ref(dlq)
    own = Cfn({"ExistingRegistryParameterName": "/team/registry"})
    assert own.function_env("NoteRouterFunction")["SPCS_GATEWAY_REGISTRY_PARAM"] == "/team/registry"
    assert "RegistryParameter" not in {
        n for n, r in own.resources.items() if own.condition(r.get("Condition", "BuildRegistry"))
    }


def test_infra_layer_builds_for_python313_on_arm64() -> None:
    cfn = Cfn()
    ((name, layer),) = cfn.of_type("AWS::Serverless::LayerVersion").items()
    assert name == "GatewayLayer"
    assert layer["Properties"]["ContentUri"] == "layers/gateway"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert (ROOT / "layers/gateway/requirements.txt").is_file()
    assert (ROOT / "layers/gateway/spcs_gateway/__init__.py").is_file()


def test_infra_registry_document_built_by_the_template_is_a_valid_registry() -> None:
    labels = '{"chest_xray": ["pneumonia", "normal chest x-ray"]}'
    cfn = Cfn({"ImageAllowedBuckets": "scans-a,scans-b", "ImageLabelSets": labels})
    value = cfn.resolve(cfn.resources["RegistryParameter"]["Properties"]["Value"])
    registry = parse_registry(value)
    assert registry.snowflake.secret.secret_id == REQUIRED_PARAMS["SnowflakeSecretArn"]
    assert registry.snowflake.account == "myorg-myacct"
    assert registry.snowflake.results_table == "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
    assert registry.images.allowed_buckets == ["scans-a", "scans-b"]
    assert registry.service("biomedclip").label_sets == {
        "chest_xray": ["pneumonia", "normal chest x-ray"]
    }
    ner = registry.service("biobert_ner")
    assert ner.service == "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
    assert ner.max_batch_rows == 32
    assert ner.method_path == "/--call--"
    # Every router's SERVICE_NAME names a service of the document.
    for fn, (service, *_rest) in ROUTERS.items():
        assert registry.service(cfn.function_env(fn)["SERVICE_NAME"]).name == service
    empty = Cfn()
    doc = parse_registry(empty.resolve(empty.resources["RegistryParameter"]["Properties"]["Value"]))
    assert doc.images.allowed_buckets == []


def test_infra_kms_key_policy_serves_logs_and_alarms_and_leaves_the_rest_to_iam() -> None:
    cfn = Cfn()
    policy = cfn.resolve(cfn.resources[KEY]["Properties"]["KeyPolicy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    root = by_sid["AccountManagesKeyThroughIam"]
    assert root["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    logs = by_sid["CloudWatchLogsEncryptsThisStacksLogGroups"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    scoped = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    names = [cfn.ref(g) for g in cfn.of_type("AWS::Logs::LogGroup")]
    for name in names:  # every log group of the stack matches one of the scoped patterns
        arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{name}"
        assert any(re.fullmatch(p.replace("*", ".*"), arn) for p in scoped), name
    assert by_sid["CloudWatchAlarmsPublishToEncryptedTopic"]["Principal"] == {
        "Service": "cloudwatch.amazonaws.com"
    }
    assert set(by_sid) == {
        "AccountManagesKeyThroughIam",
        "CloudWatchLogsEncryptsThisStacksLogGroups",
        "CloudWatchAlarmsPublishToEncryptedTopic",
    }


def _alarms(cfn: Cfn) -> list[dict[str, Any]]:
    return [r["Properties"] for r in cfn.of_type("AWS::CloudWatch::Alarm").values()]


def test_infra_alarms_cover_dlqs_queue_age_errors_and_throttles_on_an_encrypted_topic() -> None:
    cfn = Cfn()
    topic = cfn.resources["AlarmTopic"]
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": KEY}
    alarms = _alarms(cfn)
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]

    def watched(metric: str) -> dict[str, dict[str, Any]]:
        out = {}
        for alarm in alarms:
            if alarm["MetricName"] == metric:
                (dim,) = alarm["Dimensions"]
                value = dim["Value"]
                out[value.get("Ref") or value["Fn::GetAtt"][0]] = alarm
        return out

    dlq_alarms = watched("ApproximateNumberOfMessagesVisible")
    assert set(dlq_alarms) == {"NotesDeadLetterQueue", "ImagesDeadLetterQueue"}
    for alarm in dlq_alarms.values():
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert set(watched("ApproximateAgeOfOldestMessage")) == {"NotesQueue", "ImagesQueue"}
    assert set(watched("Errors")) == set(ROUTERS)
    assert set(watched("Throttles")) == set(ROUTERS)


def test_infra_dashboard_is_valid_json_over_every_queue_and_function() -> None:
    cfn = Cfn()
    body = json.loads(cfn.resolve(cfn.resources["Dashboard"]["Properties"]["DashboardBody"]))
    titles = " | ".join(w["properties"]["title"].lower() for w in body["widgets"])
    for word in ("queue depth", "throughput", "latency", "errors", "dead-letter"):
        assert word in titles
    text = json.dumps(body)
    for queue in cfn.of_type("AWS::SQS::Queue"):
        assert f'"{queue}"' in text, queue  # GetAtt X.QueueName resolves to X here
    for fn in ROUTERS:
        assert f'"{cfn.ref(fn)}"' in text, fn
    assert 'MetricName=\\"Records\\"' in text  # the gateway's EMF outcome counts


def test_infra_outputs_give_a_user_what_they_need() -> None:
    outputs = set(_raw()["Outputs"])
    assert outputs >= {
        "NotesQueueUrl",
        "NotesQueueArn",
        "NotesDeadLetterQueueUrl",
        "ImagesQueueUrl",
        "ImagesQueueArn",
        "ImagesDeadLetterQueueUrl",
        "AlarmTopicArn",
        "DashboardUrl",
        "GatewayLayerArn",
        "RegistryParameterName",
    }


def test_infra_samconfig_has_safe_defaults_and_names_every_required_parameter() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config["default"]["deploy"]["parameters"]
    assert config["default"]["global"]["parameters"]["stack_name"] == "spcs-gateway"
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    overrides = {item.split("=", 1)[0] for item in deploy["parameter_overrides"]}
    params = _raw()["Parameters"]
    required = {name for name, spec in params.items() if "Default" not in spec}
    assert overrides == required
    # The placeholders must not pass the template's own checks: a forgotten one fails the deploy.
    for item in deploy["parameter_overrides"]:
        name, value = item.split("=", 1)
        assert not re.fullmatch(params[name]["AllowedPattern"], value), name
    for name, value in REQUIRED_PARAMS.items():
        assert re.fullmatch(params[name]["AllowedPattern"], value), name
