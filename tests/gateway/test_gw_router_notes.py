"""Note router end to end through ``lambda_handler``: moto SQS/Secrets Manager, respx SPCS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gw_support import (
    NOTES_QUEUE,
    REPO,
    FakeSink,
    GatewayEnv,
    Router,
    SpcsFake,
    note_body,
    registry_doc,
)

from spcs_gateway.errors import ErrorCode
from spcs_gateway.registry import parse_registry

RouterFactory = Callable[..., Router]


def _attr(message: dict[str, object], name: str) -> str:
    attrs = message["MessageAttributes"]
    assert isinstance(attrs, dict)
    return str(attrs[name]["StringValue"])


def test_all_success_batch_writes_one_row_per_event(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body(f"evt-{i}") for i in range(3)])

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["evt-0", "evt-1", "evt-2"]
    row = r.sink.rows["evt-1"]
    assert row.kind == "clinical-note"
    assert row.subject_id == "NOTE-evt-1"
    assert row.service == "PEDIATRIC_ML.MODELS.BIOBERT_NER"
    assert row.model_version == "v1"
    assert row.output[0]["entity"] == "B-DRUG"
    assert row.processed_at.tzinfo is not None
    # First receives: no pre-check SELECT; one inference request (3 rows <= max_batch_rows),
    # one MERGE.
    assert (r.sink.existing_calls, r.sink.merge_calls) == (0, 1)
    assert len(spcs.requests) == 1
    assert spcs.exchanges == 1  # key-pair JWT exchanged once for the ingress token
    assert gateway_env.dead_letters(NOTES_QUEUE) == []
    assert gateway_env.visibility_calls == []


def test_sample_event_file_is_accepted(router: RouterFactory, spcs: SpcsFake) -> None:
    r = router("note_router")
    event = json.loads(Path(REPO / "events" / "sqs_notes_batch.json").read_text())

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["note-evt-0001", "note-evt-0002"]


def test_one_poison_record_goes_to_dlq_others_succeed(
    router: RouterFactory, gateway_env: GatewayEnv
) -> None:
    r = router("note_router")
    poison = note_body("evt-bad", endpoint="https://attacker.example/--call--")
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body("evt-a"), poison, note_body("evt-b")])
    poison_id = event["Records"][1]["messageId"]

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}  # poison is handled, not retried
    assert sorted(r.sink.rows) == ["evt-a", "evt-b"]
    dead = gateway_env.dead_letters(NOTES_QUEUE)
    assert len(dead) == 1
    assert dead[0]["Body"] == poison  # unchanged
    assert _attr(dead[0], "error_code") == ErrorCode.INVALID_EVENT
    assert _attr(dead[0], "source_message_id") == poison_id
    assert set(dead[0]["MessageAttributes"]) == {"error_code", "source_message_id"}


def test_service_unavailable_retries_everything_and_calls_readiness_once(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router", registry=parse_registry(registry_doc(max_batch_rows=2)))
    spcs.status = 503
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body(f"evt-{i}") for i in range(5)])

    response = r.invoke(event)

    ids = {rec["messageId"] for rec in event["Records"]}
    assert r.failures(response) == ids
    assert r.readiness.calls == ["ner"]  # three requests failed, one hook call
    assert gateway_env.dead_letters(NOTES_QUEUE) == []
    assert r.sink.rows == {}
    assert r.sink.merge_calls == 0
    delays = gateway_env.visibility_by_receipt()
    assert set(delays) == {rec["receiptHandle"] for rec in event["Records"]}
    # Unavailable: equal jitter around the 30 s base, never below half of it.
    assert all(15 <= d <= 30 for d in delays.values())


def test_model_rejecting_one_row_isolates_it(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    spcs.reject_marker = "UNPARSEABLE"
    bodies = [note_body("evt-0"), note_body("evt-1", text="UNPARSEABLE"), note_body("evt-2")]
    bodies.append(note_body("evt-3"))
    event = gateway_env.sqs_event(NOTES_QUEUE, bodies)
    bad_id = event["Records"][1]["messageId"]

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["evt-0", "evt-2", "evt-3"]
    dead = gateway_env.dead_letters(NOTES_QUEUE)
    assert [(_attr(m, "error_code"), _attr(m, "source_message_id")) for m in dead] == [
        (ErrorCode.MODEL_REJECTED_INPUT, bad_id)
    ]
    assert len(spcs.requests) > 1  # the 4-row request was split to find the bad row


def test_a_batch_refused_as_a_whole_goes_nowhere_near_the_dlq(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    # The service refuses every row, and a known-good probe row too: the registry's signature
    # does not match the deployed model. That is a configuration fault to alarm on, not 4
    # poison events: the records stay in the queue (backed off) and nothing is dead-lettered.
    r = router("note_router")
    spcs.status = 400
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body(f"evt-{i}") for i in range(4)])

    response = r.invoke(event)

    assert r.failures(response) == {rec["messageId"] for rec in event["Records"]}
    assert gateway_env.dead_letters(NOTES_QUEUE) == []
    assert r.sink.rows == {}
    delays = gateway_env.visibility_by_receipt()
    assert set(delays) == {rec["receiptHandle"] for rec in event["Records"]}
    assert all(0 < d <= 3_600 for d in delays.values())


def test_expired_token_is_refreshed_once(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    spcs.expire_first_token = True
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body("evt-0"), note_body("evt-1")])

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["evt-0", "evt-1"]
    assert spcs.tokens_issued == ["ingress-token-1", "ingress-token-2"]
    assert r.client.stats.token_refreshes == 1


def test_redelivered_event_gets_no_second_row_and_no_second_inference(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body("evt-0"), note_body("evt-1")])
    assert r.invoke(event) == {"batchItemFailures": []}
    first_row = r.sink.rows["evt-0"]
    rows_sent = spcs.rows_sent

    again = r.invoke(gateway_env.redeliver(event))

    assert again == {"batchItemFailures": []}
    assert spcs.rows_sent == rows_sent  # no second inference
    assert r.sink.merge_calls == 1  # nothing new to write
    assert r.sink.rows["evt-0"] is first_row
    assert len(r.sink.rows) == 2


def test_duplicate_event_in_one_batch_is_inferred_once(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    body = note_body("evt-dup")
    event = gateway_env.sqs_event(NOTES_QUEUE, [body, note_body("evt-x"), body])

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert sorted(r.sink.rows) == ["evt-dup", "evt-x"]
    assert spcs.rows_sent == 2


def test_multi_batch_run_respects_max_batch_rows_and_concurrency(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    reg = parse_registry(registry_doc(max_batch_rows=3, max_concurrency=2))
    r = router("note_router", registry=reg)
    spcs.delay_s = 0.05  # long enough for requests to overlap
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body(f"evt-{i}") for i in range(10)])

    response = r.invoke(event)

    assert response == {"batchItemFailures": []}
    assert len(r.sink.rows) == 10
    assert sorted(len(rows) for rows in spcs.requests) == [1, 3, 3, 3]
    assert spcs.max_in_flight == 2  # concurrent, but never above max_concurrency
    assert r.sink.merge_calls == 1  # still one MERGE per invocation


def test_results_write_failure_retries_records_without_loss(
    router: RouterFactory, gateway_env: GatewayEnv
) -> None:
    sink = FakeSink()
    sink.fail_merge = True
    r = router("note_router", sink=sink)
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body("evt-0"), note_body("evt-1")])

    response = r.invoke(event)

    assert r.failures(response) == {rec["messageId"] for rec in event["Records"]}
    assert gateway_env.dead_letters(NOTES_QUEUE) == []
    delays = gateway_env.visibility_by_receipt()
    assert len(delays) == 2
    assert all(1 <= d <= 5 for d in delays.values())  # first receive: transient base 5 s


def test_throttling_honours_retry_after(
    router: RouterFactory, gateway_env: GatewayEnv, spcs: SpcsFake
) -> None:
    r = router("note_router")
    spcs.status = 429
    spcs.retry_after = "120"
    event = gateway_env.sqs_event(NOTES_QUEUE, [note_body("evt-0")])

    response = r.invoke(event)

    assert r.failures(response) == {event["Records"][0]["messageId"]}
    assert r.readiness.calls == []  # throttling is not unavailability
    assert gateway_env.visibility_by_receipt() == {event["Records"][0]["receiptHandle"]: 120}
    assert gateway_env.dead_letters(NOTES_QUEUE) == []


def test_image_event_on_note_router_is_poison(
    router: RouterFactory, gateway_env: GatewayEnv
) -> None:
    from gw_support import image_body

    r = router("note_router")
    event = gateway_env.sqs_event(NOTES_QUEUE, [image_body("img-0")])

    assert r.invoke(event) == {"batchItemFailures": []}
    [dead] = gateway_env.dead_letters(NOTES_QUEUE)
    assert _attr(dead, "error_code") == ErrorCode.UNKNOWN_SCHEMA


def test_router_records_service_activity_for_the_idle_timer(
    router: RouterFactory, gateway_env: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work arriving keeps the control plane from suspending mid-stream (DESIGN: routers
    update last activity, throttled per container); a poison-only batch is not activity."""
    import boto3

    from spcs_gateway.service_state import ServiceStateStore

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="svc-state",
        KeySchema=[{"AttributeName": "service", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "service", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("SERVICE_STATE_TABLE", "svc-state")
    store = ServiceStateStore("svc-state", ddb)

    r = router("note_router")
    r.invoke(gateway_env.sqs_event(NOTES_QUEUE, ["{not json"]))
    assert store.get(r.app.pipeline.service.name).last_activity is None

    r.invoke(gateway_env.sqs_event(NOTES_QUEUE, [note_body("evt-act")]))
    assert store.get(r.app.pipeline.service.name).last_activity is not None
