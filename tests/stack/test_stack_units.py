"""Pure parts of the local stack: template evaluation, the ESM's batch rules, the SQS event
shape, the feed, reconciliation and the API Gateway proxy mapping. No servers."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from spcs_gateway.errors import PoisonError
from spcs_gateway.events import parse_event
from spcs_gateway.images import check_image, decode_base64
from spcs_local.stack.apigw import Route, build_event, to_response
from spcs_local.stack.demo import DemoRun, DlqMessage, summarize
from spcs_local.stack.feed import (
    IMAGES_QUEUE,
    NOTES_QUEUE,
    event_key,
    events_from_file,
    route,
    split_total,
    synthetic_feed,
)
from spcs_local.stack.runner import failed_ids, scheduled_event, sqs_record
from spcs_local.stack.template import Template, TemplateError

# -- template evaluation ------------------------------------------------------------------------

MINI = textwrap.dedent(
    """
    Parameters:
      Env: {Type: String, Default: dev}
      Timeout: {Type: Number, Default: 60}
      Buckets: {Type: CommaDelimitedList, Default: "a,b"}
    Mappings:
      Vis: {"60": {Seconds: 660}}
    Conditions:
      IsProd: !Equals [!Ref Env, prod]
    Globals:
      Function:
        Timeout: !Ref Timeout
        Environment:
          Variables:
            SHARED: !Sub "${AWS::StackName}-shared"
    Resources:
      Dlq:
        Type: AWS::SQS::Queue
        Properties: {QueueName: !Sub "${AWS::StackName}-dlq"}
      Queue:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: !Join ["-", [!Ref "AWS::StackName", q]]
          VisibilityTimeout: !FindInMap [Vis, !Ref Timeout, Seconds]
          RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 3}
      ProdOnly:
        Type: AWS::SQS::Queue
        Condition: IsProd
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          FunctionName: !Sub "${AWS::StackName}-fn"
          CodeUri: code
          Handler: app.handler
          Environment:
            Variables:
              QUEUE: !Ref Queue
              PICK: !If [IsProd, prod-value, !Select [1, !Ref Buckets]]
          Events:
            Q:
              Type: SQS
              Properties:
                Queue: !GetAtt Queue.Arn
                BatchSize: 7
                FunctionResponseTypes: [ReportBatchItemFailures]
            Tick:
              Type: Schedule
              Properties: {Schedule: rate(1 minute)}
            Web:
              Type: Api
              Properties: {Path: "/v1/{proxy+}", Method: any}
    """
)


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(MINI)
    return path


def test_stack_template_resolves_intrinsics_and_created_values(mini: Path) -> None:
    t = Template(mini, stack_name="st")
    assert t.creation_order(["Queue", "Dlq"]) == ["Dlq", "Queue"]
    assert t.active("ProdOnly") is False
    t.set_physical("Dlq", "http://q/st-dlq", Arn="arn:aws:sqs:us-east-1:1:st-dlq")
    props = t.resolve(t.resources["Queue"]["Properties"])
    assert props["QueueName"] == "st-q"
    assert props["VisibilityTimeout"] == 660
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == "arn:aws:sqs:us-east-1:1:st-dlq"
    t.set_physical("Queue", "http://q/st-q", Arn="arn:aws:sqs:us-east-1:1:st-q")
    (fn,) = t.functions()
    assert fn.name == "st-fn"
    assert fn.handler == "app.handler"
    assert fn.timeout_s == 60
    assert fn.code_dir == (mini.parent / "code").resolve()
    assert fn.environment == {"SHARED": "st-shared", "QUEUE": "http://q/st-q", "PICK": "b"}
    (event,) = fn.sqs_events
    assert (event.queue_arn, event.batch_size, event.window_s) == (
        "arn:aws:sqs:us-east-1:1:st-q",
        7,
        0,
    )
    assert event.report_batch_item_failures
    assert event.enabled
    assert event.max_concurrency is None
    assert fn.schedules[0].expression == "rate(1 minute)"
    assert (fn.apis[0].path, fn.apis[0].method) == ("/v1/{proxy+}", "ANY")


def test_stack_template_parameters_override_and_unknown_rejected(mini: Path) -> None:
    t = Template(mini, {"Env": "prod"})
    assert t.active("ProdOnly") is True
    with pytest.raises(TemplateError, match="Nope"):
        Template(mini, {"Nope": "x"})


def test_stack_template_reads_the_project_template() -> None:
    t = Template(Path(__file__).resolve().parents[2] / "template.yaml")
    routers = {f.environment.get("SERVICE_NAME"): f for f in t.functions() if f.sqs_events}
    assert {"biobert_ner", "biomedclip"} <= set(routers)
    notes = routers["biobert_ner"].sqs_events[0]
    assert notes.report_batch_item_failures
    assert notes.batch_size == int(t.parameters["NotesBatchSize"])


# -- event source mapping rules -----------------------------------------------------------------

IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
        ({}, set()),
        (None, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": "other"}]}, None),
        ({"batchItemFailures": [{"id": "m1"}]}, None),
        ({"batchItemFailures": "m1"}, None),
        ([1, 2], None),
    ],
)
def test_stack_batch_item_failures_follow_lambda_rules(
    answer: object, expected: set[str] | None
) -> None:
    assert failed_ids(json.dumps(answer).encode(), IDS, True) == expected


def test_stack_batch_item_failures_ignored_without_report_type_and_bad_json_fails_all() -> None:
    payload = json.dumps({"batchItemFailures": [{"itemIdentifier": "m1"}]}).encode()
    assert failed_ids(payload, IDS, False) == set()
    assert failed_ids(b"{not json", IDS, True) is None


def test_stack_sqs_record_has_the_lambda_event_shape() -> None:
    message = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "MD5OfBody": "md5",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "MessageAttributes": {
            "error_code": {"DataType": "String", "StringValue": "X"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
        "MD5OfMessageAttributes": "md5a",
    }
    record = sqs_record(message, "arn:aws:sqs:us-east-1:1:q", "us-east-1")
    assert record["messageId"] == "id-1"
    assert record["receiptHandle"] == "rh"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":q")
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["error_code"] == {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
        "stringValue": "X",
    }
    assert (
        record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    )
    assert record["md5OfMessageAttributes"] == "md5a"


def test_stack_scheduled_event_is_what_the_control_function_recognises() -> None:
    from spcs_gateway.control import is_schedule_event

    event = scheduled_event("arn:aws:events:us-east-1:1:rule/r", "us-east-1", "1")
    assert is_schedule_event(event)
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == ["arn:aws:events:us-east-1:1:rule/r"]


# -- feed ---------------------------------------------------------------------------------------


def _router_checks(body: str) -> None:
    """What the routers check before inference: the event, then an inline image."""
    parse_event(body)
    data = json.loads(body)["image"]
    check_image(
        decode_base64(data["base64"], max_bytes=10**6),
        content_type=data["content_type"],
        max_pixels=10**6,
        max_bytes=10**6,
    )


def test_stack_feed_is_deterministic_and_poison_has_the_router_codes() -> None:
    a, b = synthetic_feed(12, 3, 4, seed=3), synthetic_feed(12, 3, 4, seed=3)
    assert [e.body for e in a] == [e.body for e in b]
    assert [e.body for e in synthetic_feed(12, 3, 4, seed=4)] != [e.body for e in a]
    assert len({e.key for e in a}) == 19
    kinds = {k: [e for e in a if e.kind == k] for k in ("note", "image", "poison")}
    assert (len(kinds["note"]), len(kinds["image"]), len(kinds["poison"])) == (12, 3, 4)
    assert all(e.queue == NOTES_QUEUE and e.note_row for e in kinds["note"])
    assert all(e.queue == IMAGES_QUEUE for e in kinds["image"])
    for event in kinds["note"] + kinds["image"]:
        parsed = parse_event(event.body)
        assert parsed.event_id == event.key
    for event in kinds["poison"]:
        with pytest.raises(PoisonError) as caught:
            _router_checks(event.body)
        assert caught.value.code == event.expected_code
    assert sorted(e.expected_code or "" for e in kinds["poison"]) == [
        "INVALID_EVENT",
        "INVALID_IMAGE",
        "INVALID_JSON",
        "UNKNOWN_SCHEMA",
    ]


def test_stack_feed_notes_name_drugs_and_diagnoses_the_lexicon_finds() -> None:
    from spcs_local.emulator.backends import NerBackend
    from spcs_local.stack.feed import _CASES

    texts = [f"Started {drug} for {dx}." for dx, drug, _ in _CASES]
    for (dx, drug, _), found in zip(_CASES, NerBackend().predict(texts), strict=True):
        kinds = {entity["entity"].split("-", 1)[1] for entity in found}
        assert kinds == {"CHEMICAL", "DISEASE"}, (dx, drug)


def test_stack_events_file_routes_by_schema_and_keys_unreadable_bodies(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps({"schema": "medical-image.v1", "event_id": "i1"}),
        json.dumps({"schema": "clinical-note.v1", "event_id": "n1"}),
        "not json at all",
        json.dumps({"event_id": "x1"}),
        "",
    ]
    path.write_text("\n".join(lines))
    events = events_from_file(path)
    assert [e.queue for e in events] == [IMAGES_QUEUE, NOTES_QUEUE, NOTES_QUEUE, NOTES_QUEUE]
    assert [e.key for e in events][:2] == ["i1", "n1"]
    assert events[2].key.startswith("sha256:")
    assert events[2].key == event_key("not json at all")
    assert route(json.dumps({"schema": "medical-image.v2"})) == IMAGES_QUEUE
    assert split_total(120) == (97, 19, 4)
    assert sum(split_total(7)) == 7


# -- reconciliation ---------------------------------------------------------------------------


def _dlq(key: str, code: str) -> DlqMessage:
    return DlqMessage("q-dlq", "mid", key, code, {}, {"error_code": code}, 10)


def test_stack_summary_reconciles_results_and_dlqs_not_counters() -> None:
    events = synthetic_feed(3, 0, 2, seed=1)
    notes = [e for e in events if e.kind == "note"]
    poison = [e for e in events if e.kind == "poison"]
    sent_at = {e.key: 1000.0 for e in events}
    results = [
        {"EVENT_ID": notes[0].key, "PROCESSED_AT": 1000.5},
        {"EVENT_ID": notes[1].key, "PROCESSED_AT": 1002.0},
        {"EVENT_ID": notes[1].key, "PROCESSED_AT": 1003.0},  # a second row: a duplicate
    ]
    run = DemoRun(events=events, sent_at=sent_at, started=990.0, finished=1010.0)
    run.results = results
    run.dlq = [_dlq(poison[0].key, "INVALID_JSON")]
    run.resumes, run.suspends = {"svc": 1}, {"svc": 1}
    summary = summarize(run)
    assert summary["events_sent"] == 5
    assert summary["results_rows"] == 3
    assert summary["lost"] == 2  # notes[2] and poison[1]
    assert summary["duplicate_results"] == 1
    assert summary["dlq"] == {"INVALID_JSON": 1}
    assert summary["latency_ms"] == {"p50": 2000.0, "p95": 3000.0, "max": 3000.0}
    assert summary["duration_s"] == 20.0
    run.dlq.append(_dlq(notes[0].key, "RETRIES_EXHAUSTED"))  # a row and a dead letter: twice
    assert summarize(run)["duplicate_results"] == 2


# -- API Gateway proxy ----------------------------------------------------------------------------


def test_stack_api_route_matching_and_proxy_event() -> None:
    route_ = Route("/v1/services/{name}", "GET", None, None)  # type: ignore[arg-type]
    proxy = Route("/{proxy+}", "ANY", None, None)  # type: ignore[arg-type]
    assert route_.match("GET", "/v1/services/biobert_ner") == {"name": "biobert_ner"}
    assert route_.match("POST", "/v1/services/biobert_ner") is None
    assert proxy.match("PATCH", "/v1/a/b") == {"proxy": "v1/a/b"}
    builder = EnvironBuilder(
        path="/v1/services/x",
        method="GET",
        query_string="a=1&a=2&b=3",
        headers={"X-Thing": "y"},
    )
    event = build_event(Request(builder.get_environ()), route_, {"name": "x"}, "123456789012")
    assert event["resource"] == "/v1/services/{name}"
    assert event["path"] == "/v1/services/x"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"name": "x"}
    assert event["queryStringParameters"] == {"a": "2", "b": "3"}
    assert event["multiValueQueryStringParameters"]["a"] == ["1", "2"]
    assert event["headers"]["X-Thing"] == "y"
    assert event["body"] is None
    ctx = event["requestContext"]
    assert ctx["requestId"]
    assert ctx["identity"]["sourceIp"]
    assert ctx["stage"] == "local"
    post = EnvironBuilder(path="/p", method="POST", data=b"\x89PNG\x00", content_type="image/png")
    binary = build_event(Request(post.get_environ()), proxy, {"proxy": "p"}, "1")
    assert binary["isBase64Encoded"]
    assert base64.b64decode(binary["body"]) == b"\x89PNG\x00"


def test_stack_api_proxy_answer_becomes_http_and_bad_answers_are_502() -> None:
    answer = {
        "statusCode": 503,
        "headers": {"Retry-After": "5", "Content-Type": "application/json"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": '{"code": "SERVICE_NOT_READY"}',
    }
    response = to_response(json.dumps(answer).encode(), "rid")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers.getlist("X-Multi") == ["a", "b"]
    assert json.loads(response.get_data()) == {"code": "SERVICE_NOT_READY"}
    assert to_response(b"[]", "rid").status_code == 502
    assert to_response(b"not json", "rid").status_code == 502
