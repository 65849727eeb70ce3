"""template.yaml read as CloudFormation reads it (``infra_support.Cfn``): the data plane - queues,
DLQs, the layer, the routers, logs, IAM, alarms, the dashboard - checked on what would be deployed.
The control plane and the API: test_infra_control_api.py; the PHI hardening (Rules, key policy,
resource policies, audit trail): test_infra_security.py."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
from infra_support import (
    ALL_BRANCHES,
    API_FUNCTION,
    CONTROL,
    FUNCTIONS,
    KEY,
    PHI_READY,
    REQUIRED_PARAMS,
    ROOT,
    ROUTERS,
    TEMPLATE,
    Cfn,
    as_list,
    iam_documents,
    names_in,
    raw_template,
    statements,
)

from spcs_gateway.control_invoke import ENSURE_READY_QUALIFIER
from spcs_gateway.registry import Signature, parse_registry
from spcs_models import spec

FOURTEEN_DAYS = 14 * 24 * 3600
# Actions AWS accepts only with Resource "*" (no resource-level permissions), each with why.
STAR_RESOURCE_ACTIONS = {
    # X-Ray: trace segments belong to no resource.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # CloudWatch metrics have no resource ARN (the gateway emits EMF instead; allowed anyway).
    "cloudwatch:PutMetricData",
    # Lambda's ENI management in a VPC: EC2 Describe*/Create* calls take no resource ARN.
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    # Listing event source mappings (control finds its queues' mappings) has no resource-level
    # permission; Get/UpdateEventSourceMapping are granted on the exact mapping ARNs.
    "lambda:ListEventSourceMappings",
}
# Where each allow-listed action may appear (no other role gets it).
STAR_ACTION_ROLES = {"lambda:ListEventSourceMappings": {"ControlRole"}}
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
        # What notes carry next to them, and the key the gateway authenticates with.
        "Address",
        "PhoneNumber-US",
        "OpenSshPrivateKey",
        "PgpPrivateKey",
        "PkcsPrivateKey",
        "PuttyPrivateKey",
    )
} | {"MedicalRecordNumber"}
# The functions' groups only: the access log keeps callers' addresses and session names.
FUNCTION_ONLY_IDENTIFIERS = {
    f"arn:aws:dataprotection::aws:data-identifier/{name}" for name in ("Name", "IpAddress")
}
AUDIT_GROUPS = {"ApiAccessLogGroup", "DataProtectionFindingsLogGroup"}
GLOBAL_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
    "POWERTOOLS_TRACER_CAPTURE_ERROR",
    "POWERTOOLS_LOG_LEVEL",
    "HOME",
    "SPCS_GATEWAY_REGISTRY_PARAM",
}


def _queue_of(event_props: dict[str, Any]) -> str:
    return str(event_props["Queue"]["Fn::GetAtt"][0])


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
        # The audit trail is kept for years (and outlives the stack); operational logs are not.
        retention = "AuditLogRetentionDays" if name in AUDIT_GROUPS else "LogRetentionDays"
        assert props["RetentionInDays"] == {"Ref": retention}, name
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
        identifiers = set(audits[0]["DataIdentifier"])
        assert identifiers >= PHI_IDENTIFIERS, name
        if name == "ApiAccessLogGroup":
            assert not identifiers & FUNCTION_ONLY_IDENTIFIERS
        else:
            assert identifiers >= FUNCTION_ONLY_IDENTIFIERS, name
        # The custom medical record number identifier, its pattern a parameter.
        (custom,) = policy["Configuration"]["CustomDataIdentifier"]
        assert custom["Name"] == "MedicalRecordNumber"
        raw_regex = props["DataProtectionPolicy"]["Configuration"]["CustomDataIdentifier"][0]
        assert raw_regex["Regex"] == {"Ref": "MedicalRecordNumberPattern"}
        dest = props["DataProtectionPolicy"]["Statement"][0]["Operation"]["Audit"]
        destinations.add(dest["FindingsDestination"]["CloudWatchLogs"]["LogGroup"]["Ref"])
    # Every function's own group and the API access log are protected ...
    function_groups = {
        cfn.resources[fn]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for fn in FUNCTIONS
    }
    assert len(function_groups) == len(FUNCTIONS)
    assert protected == len(function_groups) + 1
    assert "DataProtectionPolicy" in groups["ApiAccessLogGroup"]["Properties"]
    # ... and only the findings group is not: it receives identifier names and offsets only,
    # never the data itself.
    assert destinations == {"DataProtectionFindingsLogGroup"}
    unprotected = {n for n, r in groups.items() if "DataProtectionPolicy" not in r["Properties"]}
    assert unprotected == destinations


def test_infra_every_function_logs_to_its_own_explicit_log_group() -> None:
    cfn = Cfn()
    assert set(cfn.of_type("AWS::Serverless::Function")) == FUNCTIONS
    for fn in cfn.of_type("AWS::Serverless::Function"):
        props = cfn.resources[fn]["Properties"]
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert cfn.resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert cfn.ref(group) == f"/aws/lambda/{cfn.resolve(props['FunctionName'])}"


def test_infra_no_iam_statement_uses_star_resource_except_where_aws_requires_it() -> None:
    cfn = Cfn(ALL_BRANCHES)
    star_statements = 0
    for name, doc in iam_documents(cfn):
        for stmt in statements(doc):
            actions = set(as_list(stmt["Action"]))
            assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)
            if stmt["Effect"] == "Allow" and "*" in as_list(stmt["Resource"]):
                star_statements += 1
                assert actions <= STAR_RESOURCE_ACTIONS, (name, actions - STAR_RESOURCE_ACTIONS)
                assert as_list(stmt["Resource"]) == ["*"], name  # never mixed with exact ARNs
                for action in actions & set(STAR_ACTION_ROLES):
                    assert name in STAR_ACTION_ROLES[action], (name, action)
    # X-Ray and VPC interfaces once per function, plus the control plane's mapping listing.
    assert star_statements == 2 * len(FUNCTIONS) + 1
    # Managed policies are not statements this test sees: the only one attached is AWS's own
    # for API Gateway's account-wide logging role (see test_infra_control_api.py).
    attached = {
        name: res["Properties"]["ManagedPolicyArns"]
        for name, res in cfn.of_type("AWS::IAM::Role").items()
        if "ManagedPolicyArns" in res["Properties"]
    }
    assert set(attached) == {"ApiGatewayCloudWatchRole"}


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
    assert names_in(raw_doc) & all_queues == {queue, dlq}
    doc = cfn.resolve(raw_doc)
    by_resource: dict[str, set[str]] = {}
    conditioned: list[dict[str, Any]] = []
    for stmt in statements(doc):
        if "Condition" in stmt:
            conditioned.append(stmt)
            continue
        for resource in as_list(stmt["Resource"]):
            by_resource.setdefault(resource, set()).update(as_list(stmt["Action"]))
    # Every key use goes through the service that holds the data: SQS for the queues, DynamoDB
    # for the state table, Secrets Manager for the credential; S3 reads are pinned to the
    # buckets' owner account.
    conditions = {s["Sid"]: s["Condition"] for s in conditioned}
    via = {
        sid: c["StringEquals"]["kms:ViaService"]
        for sid, c in conditions.items()
        if "kms:ViaService" in c.get("StringEquals", {})
    }
    assert via == {
        "UsePhiKeyForQueues": "sqs.us-east-1.amazonaws.com",
        "UsePhiKeyThroughDynamoDb": "dynamodb.us-east-1.amazonaws.com",
        "DecryptSnowflakeSecret": "secretsmanager.us-east-1.amazonaws.com",
    }
    if fn == "ImageRouterFunction":
        assert conditions["ReadAllowListedImages"] == {
            "StringEquals": {"s3:ResourceAccount": ALL_BRANCHES["ImageBucketsAccountId"]}
        }
        assert set(conditions) == set(via) | {"ReadAllowListedImages"}
    else:
        assert set(conditions) == set(via)
    for stmt in conditioned:
        if stmt["Sid"] in ("UsePhiKeyThroughDynamoDb",):
            continue
        for resource in as_list(stmt["Resource"]):
            by_resource.setdefault(resource, set()).update(as_list(stmt["Action"]))
    # Last activity for the idle timer: one UpdateItem on the state table, nothing more.
    assert by_resource[cfn.getatt("ServiceStateTable", "Arn")] == {"dynamodb:UpdateItem"}
    env = cfn.resources[fn]["Properties"]["Environment"]["Variables"]
    assert env["SERVICE_STATE_TABLE"] == {"Ref": "ServiceStateTable"}
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
    # An unavailable service: ask the control function (and no other function) to resume it -
    # through its ensure-ready alias only, never the unqualified function.
    alias = f"{cfn.getatt(CONTROL, 'Arn')}:ensure-ready"
    assert by_resource[alias] == {"lambda:InvokeFunction"}
    invokes = {r for r, actions in by_resource.items() if "lambda:InvokeFunction" in actions}
    assert invokes == {alias}
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
        stmts = statements(cfn.resolve(role))
        return [r for s in stmts if s["Action"] == "s3:GetObject" for r in as_list(s["Resource"])]

    gov = Cfn({"ImageAllowedBuckets": "scans-a,scans-b"}, partition="aws-us-gov")
    assert s3_resources(gov) == ["arn:aws-us-gov:s3:::scans-a/*", "arn:aws-us-gov:s3:::scans-b/*"]
    china = Cfn({"ImageAllowedBuckets": "scans-a"}, partition="aws-cn")
    assert s3_resources(china) == ["arn:aws-cn:s3:::scans-a/*"]
    assert s3_resources(Cfn()) == []


def test_infra_functions_are_python313_arm64_traced_with_the_gateway_layer_and_env() -> None:
    cfn = Cfn()
    functions = cfn.of_type("AWS::Serverless::Function")
    assert set(functions) == FUNCTIONS
    code_dirs = {CONTROL: "control", API_FUNCTION: "api"} | {f: s[3] for f, s in ROUTERS.items()}
    for fn, code_dir in code_dirs.items():
        assert cfn.function_prop(fn, "Runtime") == "python3.13"
        assert cfn.function_prop(fn, "Architectures") == ["arm64"]
        assert cfn.function_prop(fn, "Tracing") == "Active"
        assert cfn.function_prop(fn, "Handler") == "app.lambda_handler"
        assert cfn.function_prop(fn, "CodeUri") == f"functions/{code_dir}"
        assert (ROOT / "functions" / code_dir / "app.py").is_file()
        assert {"Ref": "GatewayLayer"} in functions[fn]["Properties"]["Layers"]
        env = cfn.function_env(fn)
        assert set(env) >= GLOBAL_ENV
        assert env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
        assert env["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
        assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
        assert env["HOME"] == "/tmp"
        assert env["SPCS_GATEWAY_REGISTRY_PARAM"] == "/spcs-gateway/registry"
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
        # pipeline.build_pipeline wires the ControlReadinessHook only when this is set; it names
        # the control function's ensure-ready alias, where control answers ensure_ready only.
        assert cfn.ref(CONTROL) == "spcs-gateway-control"
        assert env["CONTROL_FUNCTION_NAME"] == f"{cfn.ref(CONTROL)}:{ENSURE_READY_QUALIFIER}"
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
    assert ner.method_path == "/predict"
    assert ner.entity_labels == ["B-CHEMICAL", "I-CHEMICAL", "B-DISEASE", "I-DISEASE"]
    assert ner.effective_signature.params == []
    # The image service's signature is the deployed BiomedCLIP model's (spcs_models.spec):
    # the gateway sends its one parameter column, not the inferred pipeline's two.
    clip = registry.service("biomedclip")
    assert clip.signature is not None
    assert clip.signature.model_dump(exclude_none=True) == Signature.model_validate(
        spec.CLIP_SIGNATURE.to_dict()
    ).model_dump(exclude_none=True)
    assert [name for name, _ in clip.param_columns] == ["hypothesis_template"]
    # The control plane's idle window comes from a template parameter.
    assert {s.idle_seconds for s in registry.services} == {900}
    idle = Cfn({"ServiceIdleSeconds": "1800"})
    idle_doc = idle.resolve(idle.resources["RegistryParameter"]["Properties"]["Value"])
    assert {s.idle_seconds for s in parse_registry(idle_doc).services} == {1800}
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
    root = by_sid["AccountAdministersKeyThroughIam"]
    assert root["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    logs = by_sid["CloudWatchLogsEncryptsThisStacksLogGroups"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    scoped = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    names = [cfn.ref(g) for g in cfn.of_type("AWS::Logs::LogGroup")]
    for name in names:  # every log group of the stack matches one of the scoped patterns
        arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{name}"
        assert any(re.fullmatch(p.replace("*", ".*"), arn) for p in scoped), name
    alarms = by_sid["CloudWatchAlarmsPublishToEncryptedTopic"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    # Confused-deputy protection: this account's alarms of this stack only.
    assert alarms["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {
            "aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:spcs-gateway-*"
        },
    }
    for name in cfn.of_type("AWS::CloudWatch::Alarm"):
        alarm = cfn.resolve(cfn.resources[name]["Properties"]["AlarmName"])
        assert alarm.startswith("spcs-gateway-"), name
    assert set(by_sid) == {
        "AccountAdministersKeyThroughIam",
        "AccountUsesKeyOnlyThroughSqsAndDynamoDb",
        "DynamoDbCreatesGrantsForTheStateTable",
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
            if alarm.get("MetricName") == metric:
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
    assert set(watched("Errors")) == FUNCTIONS
    assert set(watched("Throttles")) == set(ROUTERS)
    for alarm in alarms:  # alarm texts carry names only, and every alarm can clear
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["TreatMissingData"] == "notBreaching"


def test_infra_dashboard_is_valid_json_over_every_queue_and_function() -> None:
    cfn = Cfn()
    body = json.loads(cfn.resolve(cfn.resources["Dashboard"]["Properties"]["DashboardBody"]))
    titles = " | ".join(w["properties"]["title"].lower() for w in body["widgets"])
    for word in (
        "queue depth",
        "throughput",
        "latency",
        "errors",
        "dead-letter",
        "service status",
        "resumes and suspends",
        "api",
    ):
        assert word in titles
    text = json.dumps(body)
    for queue in cfn.of_type("AWS::SQS::Queue"):
        assert f'"{queue}"' in text, queue  # GetAtt X.QueueName resolves to X here
    for fn in FUNCTIONS:
        assert f'"{cfn.ref(fn)}"' in text, fn
    # Widgets do not overlap on the 24-column grid.
    cells: set[tuple[int, int]] = set()
    for widget in body["widgets"]:
        x, y, w, h = (widget[k] for k in ("x", "y", "width", "height"))
        assert x + w <= 24
        area = {(i, j) for i in range(x, x + w) for j in range(y, y + h)}
        assert not cells & area, widget["properties"]["title"]
        cells |= area
    assert 'MetricName=\\"Records\\"' in text  # the gateway's EMF outcome counts


def test_infra_outputs_give_a_user_what_they_need() -> None:
    outputs = set(raw_template()["Outputs"])
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
        "ApiUrl",
        "ApiClientPolicyArn",
        "ApiOperatorPolicyArn",
        "ServiceStateTableName",
        "ControlFunctionName",
    }
    cfn = Cfn()
    outputs_resolved = cfn.resolve(raw_template()["Outputs"])
    assert outputs_resolved["ApiUrl"]["Value"] == (
        "https://ref-Api.execute-api.us-east-1.amazonaws.com/prod"
    )
    assert outputs_resolved["ServiceStateTableName"]["Value"] == "spcs-gateway-service-state"
    assert outputs_resolved["ControlFunctionName"]["Value"] == "spcs-gateway-control"


def test_infra_samconfig_has_safe_defaults_and_names_every_required_parameter() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config["default"]["deploy"]["parameters"]
    assert config["default"]["global"]["parameters"]["stack_name"] == "spcs-gateway"
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    overrides = {item.split("=", 1)[0] for item in deploy["parameter_overrides"]}
    params = raw_template()["Parameters"]
    required = {name for name, spec in params.items() if "Default" not in spec}
    # And what the Rules require of a PHI stack (DataClassification=phi, the default).
    required |= set(PHI_READY)
    assert overrides == required
    # The placeholders must not pass the template's own checks: a forgotten one fails the deploy.
    for item in deploy["parameter_overrides"]:
        name, value = item.split("=", 1)
        assert not re.fullmatch(params[name]["AllowedPattern"], value), name
    for name, value in REQUIRED_PARAMS.items():
        assert re.fullmatch(params[name]["AllowedPattern"], value), name


def test_infra_deploy_guide_documents_every_parameter_and_alarm() -> None:
    guide = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(\w+)`", guide))
    missing = set(raw_template()["Parameters"]) - documented
    assert missing == set()
    cfn = Cfn()
    for alarm in cfn.of_type("AWS::CloudWatch::Alarm").values():
        suffix = cfn.resolve(alarm["Properties"]["AlarmName"]).removeprefix("spcs-gateway")
        assert f"{suffix}`" in guide, suffix  # listed in the guide's alarm table
    assert "Growing the stack" not in guide  # nothing is left "to add later"
