"""The control plane and the on-demand API in template.yaml: checked on the SAM template, on its
real SAM translation (``infra_support.sam_translate``) and against the code that will run with
it - the environment variable names, the boto3 calls the stores make, the API's routes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from infra_support import (
    ALL_BRANCHES,
    API_FUNCTION,
    CONTROL,
    GATEWAY,
    KEY,
    ROUTERS,
    SNAPSTART_ALIAS,
    Cfn,
    api_routes_from_openapi,
    as_list,
    boto_calls,
    raw_template,
    sam_translate,
)

from spcs_gateway import control as control_module
from spcs_gateway.api.search import CORTEX_SEARCH_SERVICE_ENV, SearchService
from spcs_gateway.control_invoke import CONTROL_FUNCTION_ENV, ENSURE_READY_QUALIFIER
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.service_state import KEY_ATTRIBUTE, SERVICE_STATE_TABLE_ENV
from spcs_gateway.status import ServiceObservation

ACCOUNT = "123456789012"
STAGE = "prod"


def _registry(cfn: Cfn) -> Registry:
    return parse_registry(cfn.resolve(cfn.resources["RegistryParameter"]["Properties"]["Value"]))


def _api_props(cfn: Cfn) -> dict[str, Any]:
    return dict(cfn.resources["Api"]["Properties"])


def _template_routes(cfn: Cfn) -> set[tuple[str, str]]:
    events = cfn.resources[API_FUNCTION]["Properties"]["Events"].values()
    assert all(
        e["Type"] == "Api" and e["Properties"]["RestApiId"] == {"Ref": "Api"} for e in events
    )
    return {(e["Properties"]["Path"], e["Properties"]["Method"].upper()) for e in events}


class Recorder:
    """A boto3 client stand-in: records (operation, kwargs) and answers from ``answers``."""

    def __init__(self, answers: dict[str, Callable[..., Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._answers = answers or {}

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        if operation.startswith("_"):
            raise AttributeError(operation)

        def call(**kwargs: Any) -> Any:
            self.calls.append((operation, kwargs))
            return self._answers.get(operation, lambda **_: {})(**kwargs)

        return call

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [kwargs for op, kwargs in self.calls if op == operation]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recorder]:
    """boto3.client(...) returns one Recorder per service: nothing leaves the process."""
    clients = {
        "dynamodb": Recorder({"batch_get_item": lambda **_: {"Responses": {}}}),
        "sqs": Recorder(
            {
                "get_queue_attributes": lambda **_: {
                    "Attributes": {
                        "ApproximateNumberOfMessages": "3",
                        "ApproximateNumberOfMessagesNotVisible": "0",
                        "ApproximateNumberOfMessagesDelayed": "0",
                    }
                }
            }
        ),
        "lambda": Recorder({"invoke": lambda **_: {"StatusCode": 202}}),
        "secretsmanager": Recorder(),
        "ssm": Recorder(),
        "s3": Recorder(),
    }
    monkeypatch.setattr(boto3, "client", lambda name, *a, **k: clients[name])
    return clients


# -- the SAM translation ------------------------------------------------------------------------


def test_infra_sam_translation_is_clean_cloudformation_without_cycles(tmp_path: Path) -> None:
    """cfn-lint reads SAM templates without transforming them, so a Ref to a resource SAM
    generates (the mappings' <Function><Event> ids) or a dependency cycle between the routers
    and the control function would pass it unseen. The translated template shows both."""
    from cfnlint.api import ManualArgs, lint_file

    translated = sam_translate()
    resources = translated["Resources"]
    assert not any(r["Type"].startswith("AWS::Serverless::") for r in resources.values())
    path = tmp_path / "translated.json"
    path.write_text(json.dumps(translated), encoding="utf-8")
    matches = lint_file(path, config=ManualArgs())
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id[0] in "EW"] == []
    for fn, (_, queue, _, _) in ROUTERS.items():
        # The mapping feeds the router's published alias (AutoPublishAlias "live").
        ((name, mapping),) = (
            (n, r)
            for n, r in resources.items()
            if r["Type"] == "AWS::Lambda::EventSourceMapping"
            and r["Properties"]["FunctionName"] == {"Ref": f"{fn}Alias{SNAPSTART_ALIAS}"}
        )
        assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert name == fn + queue  # the id ControlMappingsPolicy references


def test_infra_control_may_pause_exactly_the_routers_mappings_by_arn() -> None:
    cfn = Cfn()
    translated = Cfn(template=sam_translate())
    mappings = translated.of_type("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(ROUTERS)
    grants = cfn.role_grants("ControlRole")
    mapping_arns = {
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:event-source-mapping:uuid-of-{name}"
        for name in mappings
    }
    on_mappings = {r: a for r, a in grants.items() if ":event-source-mapping:" in r}
    assert set(on_mappings) == mapping_arns
    # Exactly the calls queues.EventSourceMappings makes on a mapping, and nothing broader.
    used = {f"lambda:{call}" for call in boto_calls("queues.py", "_lambda")}
    assert used == {
        "lambda:ListEventSourceMappings",
        "lambda:GetEventSourceMapping",
        "lambda:UpdateEventSourceMapping",
    }
    for actions in on_mappings.values():
        assert actions == used - {"lambda:ListEventSourceMappings"}
    assert grants["*"] >= {"lambda:ListEventSourceMappings"}
    lambda_actions = {a for actions in grants.values() for a in actions if a.startswith("lambda:")}
    assert lambda_actions == used  # no InvokeFunction, CreateEventSourceMapping, ...


# -- service-state table --------------------------------------------------------------------------


def test_infra_service_state_table_is_on_demand_with_pitr_and_the_stacks_key() -> None:
    cfn = Cfn()
    ((name, table),) = cfn.of_type("AWS::DynamoDB::Table").items()
    assert name == "ServiceStateTable"
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": [KEY, "Arn"]},
    }
    assert cfn.ref(name) == "spcs-gateway-service-state"


@pytest.mark.parametrize(
    ("fn", "role"), [(CONTROL, "ControlRole"), (API_FUNCTION, "ApiRole")], ids=["control", "api"]
)
def test_infra_state_table_access_is_what_the_state_store_calls(fn: str, role: str) -> None:
    cfn = Cfn(ALL_BRANCHES)
    grants = cfn.role_grants(role)
    table_arn = cfn.getatt("ServiceStateTable", "Arn")
    dynamo = {r: a for r, a in grants.items() if any(x.startswith("dynamodb:") for x in a)}
    assert set(dynamo) == {table_arn}
    store_calls = {f"dynamodb:{c}" for c in boto_calls("service_state.py", "_client")}
    assert store_calls == {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"}
    if fn == CONTROL:
        assert dynamo[table_arn] == store_calls  # reconcile reads all services at once
    else:
        # get, record_activity, begin/end_on_demand: no batch reads.
        assert dynamo[table_arn] == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    # SSE-KMS with the stack's key, usable through DynamoDB only.
    raw_role = cfn.resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (via,) = [
        s for s in raw_role if isinstance(s, dict) and s.get("Sid") == "UsePhiKeyThroughDynamoDb"
    ]
    assert cfn.resolve(via["Condition"]) == {
        "StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}
    }
    assert grants[cfn.getatt(KEY, "Arn")] == {
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:DescribeKey",
    }
    assert cfn.function_env(fn)[SERVICE_STATE_TABLE_ENV] == "spcs-gateway-service-state"


# -- control function -----------------------------------------------------------------------------


def test_infra_control_function_is_bounded_scheduled_and_never_retried() -> None:
    cfn = Cfn()
    params = cfn.t["Parameters"]
    props = cfn.resources[CONTROL]["Properties"]
    assert props["Timeout"] == {"Ref": "ControlFunctionTimeout"}
    assert int(params["ControlFunctionTimeout"]["MinValue"]) >= 300  # resumes take minutes
    assert int(params["ControlFunctionTimeout"]["MaxValue"]) <= 900  # the Lambda maximum
    assert int(cfn.function_prop(CONTROL, "Timeout")) == 300
    assert props["ReservedConcurrentExecutions"] == {"Ref": "ControlReservedConcurrency"}
    assert 2 <= int(params["ControlReservedConcurrency"]["Default"]) <= 10
    invoke = props["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert 60 <= invoke["MaximumEventAgeInSeconds"] <= 120
    (tick,) = props["Events"].values()
    assert tick["Type"] == "Schedule"
    assert tick["Properties"]["Schedule"] == "rate(1 minute)"
    assert tick["Properties"]["Enabled"] is True
    assert tick["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    # SAM makes it an EventBridge rule targeting the function, with the invoke permission.
    translated = sam_translate()["Resources"]
    (rule,) = [
        r
        for r in translated.values()
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [CONTROL, "Arn"]}
    assert any(
        r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"]["Principal"] == "events.amazonaws.com"
        and r["Properties"]["FunctionName"] == {"Ref": CONTROL}
        for r in translated.values()
    )
    # Asynchronous requests are never retried, whether they name the function or the routers'
    # ensure-ready alias (an alias has an invoke configuration of its own).
    configs = {
        r["Properties"]["Qualifier"]: r["Properties"]
        for r in translated.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    assert set(configs) == {"$LATEST", ENSURE_READY_QUALIFIER}
    for config in configs.values():
        assert config["MaximumRetryAttempts"] == 0
        assert 60 <= config["MaximumEventAgeInSeconds"] <= 120


def test_infra_control_environment_names_the_registrys_queues() -> None:
    cfn = Cfn()
    env = cfn.function_env(CONTROL)
    urls = json.loads(env[control_module.QUEUE_URLS_ENV])
    arns = json.loads(env[control_module.QUEUE_ARNS_ENV])
    assert urls == {"notes": cfn.ref("NotesQueue"), "images": cfn.ref("ImagesQueue")}
    assert arns == {
        "notes": cfn.getatt("NotesQueue", "Arn"),
        "images": cfn.getatt("ImagesQueue", "Arn"),
    }
    # Every queue a registry service names has a URL and an ARN, so backlog is never unknown.
    named = {q for s in _registry(cfn).services for q in s.queues}
    assert named == set(urls) == set(arns)
    assert env[control_module.SUSPEND_IDLE_POOLS_ENV] == "true"
    assert env[control_module.MIN_UPTIME_ENV] == "300"
    assert Cfn({"SuspendIdlePools": "false"}).function_env(CONTROL)["SUSPEND_IDLE_POOLS"] == "false"
    # Control reads queue attributes of exactly those queues, and no other SQS action.
    grants = Cfn(ALL_BRANCHES).role_grants("ControlRole")
    sqs = {r: a for r, a in grants.items() if any(x.startswith("sqs:") for x in a)}
    assert sqs == {arn: {"sqs:GetQueueAttributes"} for arn in arns.values()}
    assert {f"sqs:{c}" for c in boto_calls("queues.py", "_sqs")} == {"sqs:GetQueueAttributes"}


class _Snowflake:
    """ServiceController stand-in: every service RUNNING and READY."""

    def __init__(self) -> None:
        self.suspended: list[str] = []

    def observe(self, fqn: str) -> ServiceObservation:
        return ServiceObservation(fqn, ServiceStatus.RUNNING.value, "ML_INFERENCE_POOL", 1, 1)

    def suspend(self, fqn: str) -> None:
        self.suspended.append(fqn)


def test_infra_control_plane_builds_from_the_templates_environment(
    aws: dict[str, Recorder],
) -> None:
    """build_control_plane over the control function's deployed environment: a manual suspend
    is refused because the notes queue (found through QUEUE_URLS) holds messages."""
    cfn = Cfn()
    snowflake = _Snowflake()
    plane = control_module.build_control_plane(
        cfn.function_env(CONTROL),
        registry=_registry(cfn),
        controller=snowflake,  # type: ignore[arg-type]
    )
    result = plane.suspend("biobert_ner")
    assert result.outcome is control_module.Outcome.REFUSED
    assert result.code == control_module.ControlCode.BACKLOG  # not BACKLOG_UNKNOWN
    assert snowflake.suspended == []
    (depth,) = aws["sqs"].of("get_queue_attributes")
    assert depth["QueueUrl"] == cfn.ref("NotesQueue")
    assert {c["TableName"] for c in aws["dynamodb"].of("get_item")} == {
        cfn.ref("ServiceStateTable")
    }
    assert aws["lambda"].calls == []  # QUEUE_ARNS given: no lookups at start


# -- API ------------------------------------------------------------------------------------------


def test_infra_api_routes_are_exactly_the_codes_routes() -> None:
    cfn = Cfn()
    openapi = api_routes_from_openapi()
    assert _template_routes(cfn) == openapi
    assert openapi == {
        ("/v1/notes/entities", "POST"),
        ("/v1/images/classifications", "POST"),
        ("/v1/notes/search", "POST"),
        ("/v1/services", "GET"),
        ("/v1/services/{name}", "GET"),
        ("/v1/services/{name}/resume", "POST"),
        ("/v1/services/{name}/suspend", "POST"),
        ("/v1/services/{name}/scale", "POST"),
        ("/v1/notes/stored/entities", "POST"),
        ("/v1/notes/stored/search", "POST"),
    }


def test_infra_every_api_method_requires_sigv4_and_invokes_without_caller_credentials() -> None:
    cfn = Cfn()
    auth = _api_props(cfn)["Auth"]
    assert auth["DefaultAuthorizer"] == "AWS_IAM"
    assert auth["InvokeRole"] == "NONE"
    assert not any(
        "Auth" in e["Properties"]
        for e in cfn.resources[API_FUNCTION]["Properties"]["Events"].values()
    )
    ((_, rest_api),) = Cfn(template=sam_translate()).of_type("AWS::ApiGateway::RestApi").items()
    body = rest_api["Properties"]["Body"]
    methods = {
        (path, method.upper()): spec
        for path, item in body["paths"].items()
        for method, spec in item.items()
    }
    assert set(methods) == api_routes_from_openapi()
    for route, spec in methods.items():
        assert spec["security"] == [{"AWS_IAM": []}], route
        integration = spec["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", route
        assert "credentials" not in integration, route  # no caller-credential passthrough
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"


FORBIDDEN_ACCESS_LOG = re.compile(
    r"(?i)body|\$input|payload|override|querystring|error\.message|integration\.error"
    r"|integrationErrorMessage|authorizer|\$context\.path\b"
)


def test_infra_api_stage_logs_access_without_bodies_and_never_executions() -> None:
    translated = Cfn(template=sam_translate())
    stages = translated.of_type("AWS::ApiGateway::Stage")
    assert [s["Properties"]["StageName"] for s in stages.values()] == [STAGE]  # no extra "Stage"
    (stage,) = stages.values()
    props = stage["Properties"]
    assert props["TracingEnabled"] is True
    assert "Variables" not in props  # no stage variables
    (settings,) = props["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["LoggingLevel"] == "OFF"  # execution logs would hold requests and responses
    assert settings["DataTraceEnabled"] is False
    assert settings["MetricsEnabled"] is True
    fmt = props["AccessLogSetting"]["Format"]
    assert "\n" not in fmt
    fields = json.loads(fmt)
    assert all(re.fullmatch(r"\$context\.[A-Za-z.]+", v) for v in fields.values()), fields
    assert not FORBIDDEN_ACCESS_LOG.search(fmt)
    for needed in ("requestId", "status", "httpMethod", "resourcePath", "userArn", "caller"):
        assert needed in fields  # who called what, with what outcome
    # From where, and over which TLS: the stage refuses TLS 1.0/1.1 (test_infra_security.py).
    assert fields["sourceIp"] == "$context.identity.sourceIp"
    assert fields["tlsVersion"] == "$context.tlsVersion"
    assert fields["cipherSuite"] == "$context.cipherSuite"
    for flag in ("true", "false"):
        cfn = Cfn({"CreateApiGatewayLoggingRole": flag}, template=sam_translate())
        dest = cfn.resolve(props["AccessLogSetting"]["DestinationArn"])
        # The stack's id ends the name ("local" here, the stack UUID on AWS).
        assert dest == (
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:"
            "/aws/vendedlogs/spcs-gateway/api-access-local"
        )
        assert cfn.condition("CreateApiLoggingRole") is (flag == "true")


def test_infra_api_logging_role_is_optional_retained_and_only_for_api_gateway() -> None:
    cfn = Cfn()
    role = cfn.resources["ApiGatewayCloudWatchRole"]
    account = cfn.resources["ApiGatewayAccount"]
    assert role["Condition"] == account["Condition"] == "CreateApiLoggingRole"
    assert role["DeletionPolicy"] == "Retain"  # the account setting outlives the stack
    assert account["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]
    }
    trust = cfn.resolve(role["Properties"]["AssumeRolePolicyDocument"])
    (stmt,) = trust["Statement"]
    assert stmt["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert stmt["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert cfn.resolve(role["Properties"]["ManagedPolicyArns"]) == [
        "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    ]
    assert "Policies" not in role["Properties"]


def test_infra_api_function_fits_api_gateway_and_talks_to_control_only() -> None:
    cfn = Cfn(ALL_BRANCHES)
    assert int(cfn.function_prop(API_FUNCTION, "Timeout")) <= 29
    env = cfn.function_env(API_FUNCTION)
    assert env[CONTROL_FUNCTION_ENV] == cfn.ref(CONTROL)
    assert SearchService.parse(env[CORTEX_SEARCH_SERVICE_ENV]).name == "CLINICAL_NOTES_SEARCH"
    assert "API_ENABLE_SWAGGER" not in env  # Swagger UI stays off
    grants = cfn.role_grants("ApiRole")
    actions = {a for acts in grants.values() for a in acts}
    assert not any(a.startswith(("sqs:", "s3:")) for a in actions)  # inline images only
    invokes = {r for r, acts in grants.items() if "lambda:InvokeFunction" in acts}
    assert invokes == {cfn.getatt(CONTROL, "Arn")}
    assert grants[ALL_BRANCHES["SnowflakeSecretArn"]] == {"secretsmanager:GetSecretValue"}
    registry_arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/spcs-gateway/registry"
    assert grants[registry_arn] == {"ssm:GetParameter"}


def test_infra_api_dependencies_build_from_the_templates_environment(
    aws: dict[str, Recorder],
) -> None:
    """api.wiring.build_dependencies over the API function's deployed environment reaches the
    template's control function and state table."""
    from spcs_gateway.api.wiring import build_dependencies

    cfn = Cfn()
    with httpx.Client() as http:
        deps = build_dependencies(
            cfn.function_env(API_FUNCTION), registry=_registry(cfn), http=http
        )
        assert deps.ner_service is not None
        assert deps.ner_service.name == "biobert_ner"
        assert deps.image_service is not None
        assert deps.image_service.name == "biomedclip"
        deps.control.ensure_ready("biobert_ner")
        deps.state.get("biobert_ner")
    (invoke,) = aws["lambda"].of("invoke")
    assert invoke["FunctionName"] == "spcs-gateway-control"
    assert invoke["InvocationType"] == "Event"
    (read,) = aws["dynamodb"].of("get_item")
    assert read["TableName"] == "spcs-gateway-service-state"


def test_infra_caller_policies_split_inference_from_operations_and_cover_every_route() -> None:
    cfn = Cfn()
    prefix = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:ref-Api/{STAGE}/"

    def routes(policy: str) -> set[str]:
        doc = cfn.resolve(cfn.resources[policy]["Properties"]["PolicyDocument"])
        (stmt,) = doc["Statement"]
        assert stmt["Action"] == "execute-api:Invoke"
        assert all(r.startswith(prefix) for r in stmt["Resource"])
        return {r.removeprefix(prefix) for r in as_list(stmt["Resource"])}

    client, operator = routes("ApiClientPolicy"), routes("ApiOperatorPolicy")
    assert operator == {
        "POST/v1/services/*/resume",
        "POST/v1/services/*/suspend",
        "POST/v1/services/*/scale",
    }
    assert not any(r.endswith(("/resume", "/suspend", "/scale")) for r in client)
    for path, method in api_routes_from_openapi():
        arn_path = f"{method}{re.sub(r'{[^}]+}', '*', path)}"
        granted = {
            r
            for r in client | operator
            if re.fullmatch(re.escape(r).replace(r"\*", "[^/]+"), arn_path)
        }
        assert granted, (method, path)


# -- alarms and dashboard -------------------------------------------------------------------------


def _emitted_metrics() -> set[str]:
    # The control plane's metrics, whether it is one module or a package of modules.
    control_path = Path(control_module.__file__)
    files = sorted(control_path.parent.glob("*.py")) if control_path.name == "__init__.py" else []
    source = "\n".join(p.read_text(encoding="utf-8") for p in files or [control_path])
    names = set(re.findall(r'\b_?emit\(\s*"(\w+)"', source))
    # The routers' metrics (pipeline.py: single metrics by name=..., add_metric(name=...), and
    # the alarm-able cause counts, a dict of metric name -> sum(...)).
    # One module or a package of modules (pipeline/).
    sources = sorted((GATEWAY / "pipeline").glob("*.py")) or [GATEWAY / "pipeline.py"]
    pipeline = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    names |= set(re.findall(r'\bname="(\w+)"', pipeline))
    return names | set(re.findall(r'"(\w+)":\s*sum\(', pipeline))


def test_infra_control_alarms_watch_failures_and_a_service_stuck_resuming() -> None:
    cfn = Cfn()
    alarms = {
        n: cfn.resolve(r["Properties"]) for n, r in cfn.of_type("AWS::CloudWatch::Alarm").items()
    }
    emitted = _emitted_metrics()
    assert {"ServiceStatus", "ServiceReady", "Resumes", "Suspends", "ReconcileErrors"} <= emitted

    errors = alarms["ControlErrorsAlarm"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": "spcs-gateway-control"}]

    (query,) = alarms["ControlReconcileErrorsAlarm"]["Metrics"]
    assert query["Expression"] == (
        'SELECT SUM(ReconcileErrors) FROM SCHEMA("SpcsGateway", outcome, service)'
    )

    (query,) = alarms["RouterAuthFailuresAlarm"]["Metrics"]
    assert "AuthFailures" in emitted
    assert query["Expression"] == 'SELECT SUM(AuthFailures) FROM SCHEMA("SpcsGateway", service)'

    stuck = alarms["ServiceStuckResumingAlarm"]
    (query,) = stuck["Metrics"]
    assert query["Expression"] == (
        'SELECT MAX(ServiceStatus) FROM SCHEMA("SpcsGateway", outcome, service) '
        f"WHERE outcome = '{ServiceStatus.PENDING.value}' GROUP BY service"
    )
    assert query["Period"] == 60  # one reconcile round per data point
    assert stuck["EvaluationPeriods"] == stuck["DatapointsToAlarm"] == "20"
    assert stuck["Threshold"] == 1
    assert stuck["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    params = cfn.t["Parameters"]["StuckResumingMinutes"]
    assert int(params["MaxValue"]) <= 180  # Metrics Insights alarms evaluate 3 hours at most
    # Every metric an alarm or the dashboard names from the gateway's namespace is emitted.
    body = cfn.resolve(cfn.resources["Dashboard"]["Properties"]["DashboardBody"])
    named = set(re.findall(r'MetricName=\\"(\w+)\\"', body))
    named |= {
        m.group(1)
        for a in alarms.values()
        for q in a.get("Metrics", [])
        if (m := re.search(r"SELECT \w+\((\w+)\)", q.get("Expression", "")))
    }
    assert named - {"Records"} <= emitted
    assert {"ServiceStatus", "ServiceReady", "Resumes", "Suspends", "RunningSeconds"} <= named


def test_infra_api_alarms_watch_its_own_stage() -> None:
    cfn = Cfn()
    api = _api_props(cfn)
    api_name = cfn.resolve(api["Name"])
    assert api["StageName"] == STAGE
    dims = [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": STAGE}]
    alarms = {
        n: cfn.resolve(r["Properties"]) for n, r in cfn.of_type("AWS::CloudWatch::Alarm").items()
    }
    latency = alarms["ApiLatencyAlarm"]
    assert (latency["Namespace"], latency["MetricName"]) == ("AWS/ApiGateway", "Latency")
    assert latency["Dimensions"] == dims
    assert latency["ExtendedStatistic"] == "p90"
    assert int(latency["Threshold"]) < 29_000
    rate = alarms["Api5xxRateAlarm"]
    stats = {m["Id"]: m["MetricStat"] for m in rate["Metrics"] if "MetricStat" in m}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {"5XXError", "Count"}
    assert all(s["Metric"]["Dimensions"] == dims for s in stats.values())
    (expression,) = [m for m in rate["Metrics"] if m.get("ReturnData")]
    assert expression["Expression"] == "IF(requests >= 5, 100 * errors / requests, 0)"
    # 503 while a service resumes is expected: the share must stay high past a resume.
    assert rate["EvaluationPeriods"] * stats["errors"]["Period"] >= 15 * 60
    function = alarms["ApiFunctionErrorsAlarm"]
    assert function["Dimensions"] == [{"Name": "FunctionName", "Value": "spcs-gateway-api"}]
    text = json.dumps(cfn.resolve(cfn.resources["Dashboard"]["Properties"]["DashboardBody"]))
    assert f'\\"{api_name}\\", \\"Stage\\", \\"{STAGE}\\"' in text


def test_infra_outputs_name_the_control_plane_and_api() -> None:
    outputs = raw_template()["Outputs"]
    assert outputs["ControlFunctionName"]["Value"] == {"Ref": CONTROL}
    assert outputs["ServiceStateTableName"]["Value"] == {"Ref": "ServiceStateTable"}
    assert "Api" in Cfn().resolve(outputs["ApiUrl"]["Value"])


class _AliasContext:
    """A Lambda context of an invocation through the routers' ensure-ready alias."""

    invoked_function_arn = (
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:spcs-gateway-control:{ENSURE_READY_QUALIFIER}"
    )

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def test_infra_control_refuses_a_forced_suspend_through_the_ensure_ready_alias(
    aws: dict[str, Recorder],
) -> None:
    cfn = Cfn()
    snowflake = _Snowflake()
    plane = control_module.build_control_plane(
        cfn.function_env(CONTROL),
        registry=_registry(cfn),
        controller=snowflake,  # type: ignore[arg-type]
    )
    for event in (
        {"action": "suspend", "service": "biobert_ner", "force": True},
        {"action": "status"},
        {"action": "reconcile"},
        {"source": "aws.events", "detail-type": "Scheduled Event"},
    ):
        answer = control_module.handle_control_event(plane, event, _AliasContext())
        assert answer == {"ok": False, "code": "ACTION_NOT_ALLOWED"}, event
    assert snowflake.suspended == []
