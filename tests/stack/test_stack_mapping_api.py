"""A disabled event source mapping delivers nothing until it is re-enabled (through boto3's
UpdateEventSourceMapping against the local Lambda API), and the API function answers real HTTP
requests through the local API Gateway."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator

import boto3
import httpx
import pytest
from PIL import Image
from stack_support import function_ids, router_for, stack_template, wait_for

from spcs_local.stack.demo import count_results
from spcs_local.stack.stack import LocalStack, StackOptions, mapping_of


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    functions = [router_for("biomedclip"), *function_ids(api=True), *function_ids(schedule=True)]
    options = StackOptions(
        template=stack_template(),
        work_dir=tmp_path_factory.mktemp("stack-mapping"),
        functions=functions,
        resume_seconds=1,
        schedule_seconds=2,
        api_port=0,
    )
    with LocalStack(options) as running:
        yield running


def _image_event(i: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (i * 40 % 256, 90, 160)).save(out, format="PNG")
    return json.dumps(
        {
            "schema": "medical-image.v1",
            "event_id": f"evt-mapping-{i}",
            "image_id": f"IMG-{i}",
            "source": "test",
            "occurred_at": "2025-03-03T10:00:00Z",
            "image": {
                "base64": base64.b64encode(out.getvalue()).decode(),
                "content_type": "image/png",
            },
            "candidate_labels": ["pneumonia", "normal chest radiograph"],
        }
    )


def test_stack_disabled_mapping_delivers_nothing_until_reenabled(stack: LocalStack) -> None:
    assert stack.lambda_api is not None
    queue = stack.source_queue("zero-shot-image-classification")
    mapping = mapping_of(stack, queue.logical_id)
    client = boto3.client(
        "lambda",
        endpoint_url=stack.lambda_api.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    answer = client.update_event_source_mapping(UUID=mapping.uuid, Enabled=False)
    assert answer["State"] in ("Disabling", "Disabled")
    # A poll already under way may still return messages; once Disabled, none is received.
    wait_for(
        lambda: client.get_event_source_mapping(UUID=mapping.uuid)["State"] == "Disabled",
        10,
        "the mapping to be Disabled",
        every=0.1,
    )
    batches_before, received_before = mapping.batches, mapping.received
    sqs = stack.client("sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=queue.url, MessageBody=_image_event(i))
    time.sleep(4.0)  # two batching windows and several poll rounds
    attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "3"  # untouched: not even received
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert (mapping.batches, mapping.received) == (batches_before, received_before)
    assert count_results(stack) == 0

    client.update_event_source_mapping(UUID=mapping.uuid, Enabled=True)
    wait_for(lambda: count_results(stack) == 3, 60, "3 result rows after re-enabling")
    assert mapping.received == received_before + 3
    assert [enabled for _, enabled in mapping.history][-2:] == [False, True]


def test_stack_api_answers_http_requests(stack: LocalStack) -> None:
    if not stack.api_functions:
        pytest.skip("template.yaml declares no Api function yet")
    assert stack.api_server is not None
    base = stack.api_server.url
    with httpx.Client(base_url=base, timeout=30) as http:
        services = http.get("/v1/services")
        assert services.status_code == 200
        assert services.headers["x-amzn-RequestId"]
        names = {s["name"] for s in services.json()["services"]}
        assert names == {"biobert_ner", "biomedclip"}
        entities = http.post(
            "/v1/notes/entities", json={"text": "Started amoxicillin for acute otitis media."}
        )
        assert entities.status_code == 200
        found = {(e["label"], e["text"]) for e in entities.json()["results"][0]["entities"]}
        assert {("CHEMICAL", "amoxicillin"), ("DISEASE", "otitis media")} <= found
        invalid = http.post("/v1/notes/entities", json={"text": ""})
        assert invalid.status_code == 422
        assert "otitis" not in invalid.text
        assert http.get("/v1/not-a-route").status_code in (403, 404)
