"""The PHI hardening of template.yaml (docs/SECURITY.md), checked on what would be deployed:
the Rules a PHI stack must pass, the key policy and the kms:ViaService conditions, the resource
policies of the secret, the API and the DLQs, TLS, reserved concurrency, the audit trail, the
control function's ensure-ready alias, the mapping-change alarm, and the checkov skips."""

from __future__ import annotations

import json
import re
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
    raw_template,
    sam_translate,
    statements,
)

from spcs_gateway.control_invoke import (
    ENSURE_READY_QUALIFIER,
    ControlClientError,
    ControlReadinessHook,
    LambdaControlClient,
    action_allowed,
    invoked_qualifier,
    qualifier_of,
)

ACCOUNT = "123456789012"
ROLES = ("NoteRouterRole", "ImageRouterRole", "ControlRole", "ApiRole")
AUDIT_GROUPS = ("ApiAccessLogGroup", "DataProtectionFindingsLogGroup")


# -- Rules: a PHI stack needs a VPC and a customer-managed key on the credential ----------------


def _rule_value(cfn: Cfn, node: Any) -> Any:
    """The intrinsic functions CloudFormation allows in Rules, over the stack's parameters."""
    if isinstance(node, dict) and len(node) == 1:
        ((fn, arg),) = node.items()
        if fn == "Ref":
            return cfn.parameters[arg]
        if fn == "Fn::Equals":
            a, b = (_rule_value(cfn, x) for x in arg)
            return a == b
        if fn == "Fn::Not":
            return not _rule_value(cfn, arg[0])
        if fn == "Fn::And":
            return all(_rule_value(cfn, x) for x in arg)
        if fn == "Fn::Or":
            return any(_rule_value(cfn, x) for x in arg)
        if fn == "Fn::Contains":
            items, value = (_rule_value(cfn, x) for x in arg)
            return value in items
        raise AssertionError(f"{fn} is not allowed in Rules")
    return node


def failed_rules(params: dict[str, str]) -> set[str]:
    """Names of the template's rules whose assertions fail for ``params`` (CloudFormation
    refuses the stack before creating anything)."""
    cfn = Cfn(params)
    failed: set[str] = set()
    for name, rule in raw_template()["Rules"].items():
        if "RuleCondition" in rule and not _rule_value(cfn, rule["RuleCondition"]):
            continue
        if not all(_rule_value(cfn, a["Assert"]) for a in rule["Assertions"]):
            failed.add(name)
    return failed


def test_infra_a_phi_stack_refuses_to_deploy_without_vpc_egress_and_a_secret_key() -> None:
    assert raw_template()["Parameters"]["DataClassification"]["Default"] == "phi"
    # The defaults alone (plus the required parameters) are not deployable as a PHI stack.
    assert failed_rules(REQUIRED_PARAMS) == {
        "PhiStackRunsInAVpc",
        "PhiSecretHasACustomerManagedKey",
    }
    assert failed_rules(PHI_READY) == set()
    no_key = {k: v for k, v in PHI_READY.items() if k != "SnowflakeSecretKmsKeyArn"}
    assert failed_rules(no_key) == {"PhiSecretHasACustomerManagedKey"}
    no_sg = {k: v for k, v in PHI_READY.items() if k != "VpcSecurityGroupIds"}
    assert failed_rules(no_sg) == {"PhiStackRunsInAVpc"}
    # A synthetic-data stack (a test account) may run without either.
    assert failed_rules({**REQUIRED_PARAMS, "DataClassification": "synthetic"}) == set()
    # And a PHI stack's functions really run in that VPC.
    cfn = Cfn(PHI_READY)
    for fn in FUNCTIONS:
        vpc = cfn.function_prop(fn, "VpcConfig")
        assert vpc["SubnetIds"] == PHI_READY["VpcSubnetIds"].split(","), fn


def test_infra_rules_survive_the_sam_transform() -> None:
    assert sam_translate()["Rules"] == raw_template()["Rules"]


# -- the key: administration and use apart, use only through the services -----------------------


def test_infra_no_kms_star_and_the_account_decrypts_only_through_sqs_and_dynamodb() -> None:
    cfn = Cfn()
    policy = cfn.resolve(cfn.resources[KEY]["Properties"]["KeyPolicy"])
    crypto = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}
    for stmt in statements(policy):
        actions = set(as_list(stmt["Action"]))
        assert "kms:*" not in actions, stmt["Sid"]
        if stmt["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}:
            if actions & (crypto | {"kms:CreateGrant"}):
                # Cryptographic use and grants only on behalf of the services holding PHI.
                via = as_list(stmt["Condition"]["StringEquals"]["kms:ViaService"])
                assert set(via) <= {
                    "sqs.us-east-1.amazonaws.com",
                    "dynamodb.us-east-1.amazonaws.com",
                }, stmt["Sid"]
                assert stmt["Condition"]["StringEquals"]["kms:CallerAccount"] == ACCOUNT
            else:
                # Administration: no wildcard that could hide a cryptographic action.
                assert stmt["Sid"] == "AccountAdministersKeyThroughIam"
                assert not any("*" in a for a in actions), actions
    grants = [s for s in statements(policy) if "kms:CreateGrant" in as_list(s["Action"])]
    (grant,) = grants
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_infra_every_identity_grant_on_the_stacks_key_names_the_service_it_goes_through() -> None:
    cfn = Cfn(ALL_BRANCHES)
    key_arn = cfn.getatt(KEY, "Arn")
    seen = set()
    for name, doc in iam_documents(cfn):
        for stmt in statements(doc):
            if key_arn not in as_list(stmt["Resource"]):
                continue
            via = stmt["Condition"]["StringEquals"]["kms:ViaService"]
            assert via in ("sqs.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com")
            seen.add(name)
    assert seen == {*ROLES, "FeedProducerPolicy"}
    # The credential's own key, likewise through Secrets Manager only.
    for name, doc in iam_documents(cfn):
        for stmt in statements(doc):
            if ALL_BRANCHES["SnowflakeSecretKmsKeyArn"] in as_list(stmt["Resource"]):
                assert stmt["Condition"] == {
                    "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
                }, name


# -- the credential: only the gateway reads it ----------------------------------------------------


@pytest.mark.parametrize("extra", ["", ALL_BRANCHES["SnowflakeSecretExtraReaderArns"]])
def test_infra_the_snowflake_secret_is_readable_by_the_functions_roles_only(extra: str) -> None:
    cfn = Cfn({"SnowflakeSecretExtraReaderArns": extra})
    (res,) = cfn.of_type("AWS::SecretsManager::ResourcePolicy").values()
    props = cfn.resolve(res["Properties"])
    assert props["SecretId"] == REQUIRED_PARAMS["SnowflakeSecretArn"]
    assert props["BlockPublicPolicy"] is True
    (stmt,) = props["ResourcePolicy"]["Statement"]
    assert (stmt["Effect"], stmt["Principal"], stmt["Action"]) == (
        "Deny",
        "*",
        "secretsmanager:GetSecretValue",
    )
    readers = stmt["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    expected = [cfn.getatt(role, "Arn") for role in ROLES] + ([extra] if extra else [])
    assert readers == expected
    assert "" not in readers  # an empty ARN would make IAM reject (or misread) the policy
    # Every function reads it with one of those roles.
    assert {cfn.role_of(fn) for fn in FUNCTIONS} == set(ROLES)


# -- API: TLS 1.2+, deny-only resource policy, bounded concurrency ---------------------------------


def test_infra_api_refuses_old_tls_and_logs_the_version() -> None:
    props = Cfn().resources["Api"]["Properties"]
    assert props["SecurityPolicy"].startswith("SecurityPolicy_TLS13_1_2")  # TLS 1.2 and 1.3
    assert props["EndpointAccessMode"] == "STRICT"
    ((_, rest_api),) = Cfn(template=sam_translate()).of_type("AWS::ApiGateway::RestApi").items()
    assert rest_api["Properties"]["SecurityPolicy"] == props["SecurityPolicy"]
    assert rest_api["Properties"]["EndpointAccessMode"] == "STRICT"
    assert '"tlsVersion":"$context.tlsVersion"' in props["AccessLogSetting"]["Format"]


@pytest.mark.parametrize("callers", ["", ALL_BRANCHES["ApiCallerPrincipalArns"]])
def test_infra_api_resource_policy_only_takes_away(callers: str) -> None:
    cfn = Cfn({"ApiCallerPrincipalArns": callers})
    policy = cfn.resolve(cfn.resources["Api"]["Properties"]["Auth"]["ResourcePolicy"])
    (stmt,) = policy["CustomStatements"]
    assert (stmt["Effect"], stmt["Principal"], stmt["Action"], stmt["Resource"]) == (
        "Deny",
        "*",
        "execute-api:Invoke",
        "execute-api:/*",
    )
    if callers:
        assert stmt["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": callers.split(",")}}
    else:
        assert "Condition" not in stmt  # nobody listed: nobody calls
    pattern = raw_template()["Parameters"]["ApiCallerPrincipalArns"]["AllowedPattern"]
    assert re.fullmatch(pattern, callers)
    # SAM writes it into the API definition as is: no Allow of its own.
    ((_, rest_api),) = Cfn(template=sam_translate()).of_type("AWS::ApiGateway::RestApi").items()
    translated = rest_api["Properties"]["Body"]["x-amazon-apigateway-policy"]
    assert [s["Effect"] for s in translated["Statement"]] == ["Deny"]


def test_infra_reserved_concurrency_keeps_the_api_from_starving_the_routers() -> None:
    cfn = Cfn()
    params = cfn.t["Parameters"]
    for fn, props in cfn.sqs_events():
        # At least the mapping's MaximumConcurrency: the mapping is never throttled.
        assert (
            cfn.resources[fn]["Properties"]["ReservedConcurrentExecutions"]
            == (props["ScalingConfig"]["MaximumConcurrency"])
        ), fn
    api = cfn.resources[API_FUNCTION]["Properties"]["ReservedConcurrentExecutions"]
    assert api == {"Ref": "ApiReservedConcurrency"}
    assert int(params["ApiReservedConcurrency"]["Default"]) <= 20
    reserved = sum(int(cfn.function_prop(fn, "ReservedConcurrentExecutions")) for fn in FUNCTIONS)
    assert reserved <= 50  # defaults fit the standard 1,000 with Lambda's unreserved 100
    translated = Cfn(template=sam_translate()).of_type("AWS::Lambda::Function")
    for fn in FUNCTIONS:
        assert "ReservedConcurrentExecutions" in translated[fn]["Properties"], fn


# -- the audit trail outlives the stack --------------------------------------------------------


def test_infra_audit_trail_is_retained_for_years_under_a_name_that_never_collides() -> None:
    cfn = Cfn()
    params = cfn.t["Parameters"]
    assert int(params["AuditLogRetentionDays"]["Default"]) >= 2192  # six years
    assert min(int(v) for v in params["AuditLogRetentionDays"]["AllowedValues"]) >= 365
    assert max(int(v) for v in params["AuditLogRetentionDays"]["AllowedValues"]) >= 3653
    for name in AUDIT_GROUPS:
        res = cfn.resources[name]
        assert (res["DeletionPolicy"], res["UpdateReplacePolicy"]) == ("Retain", "Retain"), name
        assert res["Properties"]["RetentionInDays"] == {"Ref": "AuditLogRetentionDays"}
        # The stack's id (its UUID on AWS, "local" here) ends the name: a retained group never
        # blocks the next stack of the same name.
        assert cfn.ref(name).endswith("-local"), name
        assert cfn.ref(name).startswith("/aws/vendedlogs/spcs-gateway/"), name
    for name, res in cfn.of_type("AWS::Logs::LogGroup").items():
        if name not in AUDIT_GROUPS:
            assert res["DeletionPolicy"] == "Delete", name


# -- queues: only their own source may dead-letter (and be redriven) ------------------------------


def test_infra_each_dlq_allows_only_its_own_source_queue() -> None:
    cfn = Cfn()
    for source in ("NotesQueue", "ImagesQueue"):
        props = cfn.resources[source]["Properties"]
        dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        allow = cfn.resolve(cfn.resources[dlq]["Properties"]["RedriveAllowPolicy"])
        name = cfn.resolve(props["QueueName"])
        assert allow == {
            "redrivePermission": "byQueue",
            "sourceQueueArns": [f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"],
        }, dlq


def test_infra_image_reads_are_pinned_to_the_buckets_account() -> None:
    def condition(cfn: Cfn) -> Any:
        doc = cfn.resolve(
            cfn.resources["ImageRouterRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        )
        (stmt,) = [s for s in statements(doc) if s["Action"] == "s3:GetObject"]
        return stmt["Condition"]

    own = Cfn({"ImageAllowedBuckets": "scans-a"})
    assert condition(own) == {"StringEquals": {"s3:ResourceAccount": ACCOUNT}}
    other = Cfn({"ImageAllowedBuckets": "scans-a", "ImageBucketsAccountId": "210987654321"})
    assert condition(other) == {"StringEquals": {"s3:ResourceAccount": "210987654321"}}


# -- control: routers reach ensure_ready only; mappings stay pinned; changes alarm ----------------


def test_infra_routers_reach_control_through_the_ensure_ready_alias_only() -> None:
    cfn = Cfn(ALL_BRANCHES)
    ((name, alias),) = cfn.of_type("AWS::Lambda::Alias").items()
    assert alias["Properties"]["Name"] == ENSURE_READY_QUALIFIER
    assert alias["Properties"]["FunctionVersion"] == "$LATEST"  # always the deployed code
    assert alias["Properties"]["FunctionName"] == {"Ref": CONTROL}
    control_arn = cfn.getatt(CONTROL, "Arn")
    for fn in ROUTERS:
        assert cfn.resources[fn]["DependsOn"] == name
        env = cfn.function_env(fn)["CONTROL_FUNCTION_NAME"]
        assert qualifier_of(env) == ENSURE_READY_QUALIFIER
        grants = cfn.role_grants(cfn.role_of(fn))
        invokes = {r for r, a in grants.items() if "lambda:InvokeFunction" in a}
        assert invokes == {f"{control_arn}:{ENSURE_READY_QUALIFIER}"}, fn
    # The API (and operators) use the unqualified function; no role gets every qualifier.
    api = cfn.role_grants("ApiRole")
    assert {r for r, a in api.items() if "lambda:InvokeFunction" in a} == {control_arn}
    for role in ROLES:
        assert not any(r.endswith(":*") for r in cfn.role_grants(role)), role


def test_infra_control_serves_only_ensure_ready_through_the_alias() -> None:
    class Context:
        def __init__(self, arn: str) -> None:
            self.invoked_function_arn = arn

    base = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:spcs-gateway-control"
    alias = Context(f"{base}:{ENSURE_READY_QUALIFIER}")
    assert invoked_qualifier(alias) == ENSURE_READY_QUALIFIER
    assert action_allowed(alias, "ensure_ready")
    for action in ("suspend", "reconcile", "status", None, "anything"):
        assert not action_allowed(alias, action), action
    for unqualified in (Context(base), None, object()):
        assert invoked_qualifier(unqualified) is None
        assert action_allowed(unqualified, "suspend")
    assert qualifier_of("spcs-gateway-control") is None
    assert qualifier_of(f"spcs-gateway-control:{ENSURE_READY_QUALIFIER}") == ENSURE_READY_QUALIFIER


def test_infra_a_client_on_the_alias_sends_ensure_ready_and_nothing_else() -> None:
    class Lambda:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            return {"StatusCode": 202}

    fake = Lambda()
    name = f"spcs-gateway-control:{ENSURE_READY_QUALIFIER}"
    client = LambdaControlClient(fake, name)  # type: ignore[arg-type]
    for refused in (
        lambda: client.suspend("biobert_ner", force=True),
        lambda: client.suspend("biobert_ner"),
        client.reconcile,
        client.status,
    ):
        with pytest.raises(ControlClientError):
            refused()
    assert fake.calls == []  # nothing left the container

    class Service:
        name = "biobert_ner"

    ControlReadinessHook(client).service_unavailable(Service())  # type: ignore[arg-type]
    (call,) = fake.calls
    assert call["FunctionName"] == name
    assert call["InvocationType"] == "Event"
    assert json.loads(call["Payload"]) == {"action": "ensure_ready", "service": "biobert_ner"}


def test_infra_control_may_pause_a_mapping_but_never_repoint_it() -> None:
    cfn = Cfn()
    doc = cfn.resolve(cfn.resources["ControlMappingsPolicy"]["Properties"]["PolicyDocument"])
    pinned = {}
    for stmt in statements(doc):
        (resource,) = as_list(stmt["Resource"])
        function = stmt["Condition"]["ArnEqualsIfExists"]["lambda:FunctionArn"]
        pinned[resource.rsplit(":", 1)[1]] = function
    # Pinned to the router's alias "live", which the mapping targets (AutoPublishAlias).
    assert pinned == {
        f"uuid-of-{fn}{queue}": cfn.getatt(fn, "Arn") + ":live"
        for fn, (_, queue, _, _) in ROUTERS.items()
    }


def test_infra_mapping_changes_beyond_enabled_raise_an_alarm() -> None:
    cfn = Cfn()
    ((name, rule),) = cfn.of_type("AWS::Events::Rule").items()
    props = cfn.resolve(rule["Properties"])
    assert props["State"] == "ENABLED"
    assert "Targets" not in props  # the alarm watches the rule's MatchedEvents
    pattern = props["EventPattern"]
    assert pattern["source"] == ["aws.lambda"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    queues = [cfn.getatt("NotesQueue", "Arn"), cfn.getatt("ImagesQueue", "Arn")]
    branches = pattern["detail"]["$or"]
    kinds: dict[str, set[str]] = {}
    for branch in branches:
        (event,) = branch["eventName"]
        where = branch.get("responseElements") or branch["requestParameters"]
        assert where["eventSourceArn"] == queues  # the PHI queues, whoever the function
        kinds.setdefault(event["prefix"], set()).update(
            k for k in branch.get("requestParameters", {}) if k != "eventSourceArn"
        )
    assert set(kinds) == {
        "CreateEventSourceMapping",
        "DeleteEventSourceMapping",
        "UpdateEventSourceMapping",
    }
    # Every setting but Enabled (control's pause and resume) - above all the target and filters.
    assert kinds["UpdateEventSourceMapping"] >= {"functionName", "filterCriteria", "batchSize"}
    assert "enabled" not in kinds["UpdateEventSourceMapping"]
    json.dumps(pattern)  # plain JSON once resolved
    alarms = [
        r["Properties"]
        for r in cfn.of_type("AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("Namespace") == "AWS/Events"
    ]
    (alarm,) = alarms
    assert alarm["MetricName"] == "MatchedEvents"
    assert alarm["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": name}}]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


# -- checkov: every skip says why ------------------------------------------------------------------

# What the template skips, each for the reason written next to it (checkov's metadata format).
EXPECTED_SKIPS = {
    "NoteRouterFunction": {"CKV_AWS_116", "CKV_AWS_173"},
    "ImageRouterFunction": {"CKV_AWS_116", "CKV_AWS_173"},
    "ControlFunction": {"CKV_AWS_116", "CKV_AWS_173"},
    "ApiFunction": {"CKV_AWS_116", "CKV_AWS_173"},
    "Api": {"CKV_AWS_120"},
}


def test_infra_every_checkov_skip_carries_its_reason() -> None:
    found: dict[str, set[str]] = {}
    for name, res in raw_template()["Resources"].items():
        skips = res.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "").split()) >= 12, (name, skip["id"])
            found.setdefault(name, set()).add(skip["id"])
    assert found == EXPECTED_SKIPS


def test_infra_the_translation_for_checkov_carries_the_same_skips() -> None:
    from sam_translation import translation_with_skips

    out = translation_with_skips()["Resources"]
    stage = next(n for n, r in out.items() if r["Type"] == "AWS::ApiGateway::Stage")
    assert {s["id"] for s in out[stage]["Metadata"]["checkov"]["skip"]} == EXPECTED_SKIPS["Api"]
    for fn in FUNCTIONS:
        assert {s["id"] for s in out[fn]["Metadata"]["checkov"]["skip"]} == EXPECTED_SKIPS[fn]


def test_infra_the_template_and_security_guide_name_no_outside_tracker() -> None:
    for path in (TEMPLATE, ROOT / "samconfig.toml", ROOT / "docs" / "SECURITY.md"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?i)\bissues?\s*#?\d+", text), path
