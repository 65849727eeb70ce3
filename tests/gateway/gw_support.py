"""Helpers and fakes for the gateway handler tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# fake_account first: it sets the Powertools/AWS test environment before any Powertools object.
import fake_account
import httpx
from fake_account import ner_service, snowflake_section, zsc_service
from PIL import Image

from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.registry import Registry
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import SpcsClient

# Re-exported for the tests that import them from here.
NER_URL, TOKEN_URL, ZSC_URL = fake_account.NER_URL, fake_account.TOKEN_URL, fake_account.ZSC_URL

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
NOTES_QUEUE = "spcs-gateway-notes"
IMAGES_QUEUE = "spcs-gateway-images"
IMAGE_BUCKET = "imaging-allowed"
OTHER_BUCKET = "imaging-elsewhere"
SECRET_ID = "spcs-gateway/snowflake"


# -- registry and key ------------------------------------------------------------------------


def registry_doc(**ner: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "snowflake": snowflake_section({"secret_id": SECRET_ID}, warehouse="GATEWAY_WH"),
        "services": [
            {**ner_service("ner", max_concurrency=2), **ner},
            zsc_service("zsc", max_batch_rows=8),
        ],
        "images": {
            "allowed_buckets": [IMAGE_BUCKET],
            "max_image_bytes": 256 * 1024,
            "max_pixels": 1_000_000,
        },
    }


# -- event bodies ----------------------------------------------------------------------------


def png_bytes(size: tuple[int, int] = (8, 8), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(buf, format=fmt)
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but whose data is tiny."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def note_body(event_id: str, text: str = "otitis media, amoxicillin", **extra: Any) -> str:
    body: dict[str, Any] = {
        "schema": "clinical-note.v1",
        "event_id": event_id,
        "note_id": f"NOTE-{event_id}",
        "source": "epic-clarity",
        "occurred_at": "2025-01-15T09:30:00Z",
        "text": text,
    }
    body.update(extra)
    return json.dumps(body)


def image_body(event_id: str, image: dict[str, Any] | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {
        "schema": "medical-image.v1",
        "event_id": event_id,
        "image_id": f"IMG-{event_id}",
        "source": "pacs",
        "occurred_at": "2025-01-15T10:00:00+01:00",
        "image": image
        or {"base64": base64.b64encode(png_bytes()).decode(), "content_type": "image/png"},
    }
    if "label_set" not in extra:
        body["candidate_labels"] = ["chest x-ray", "brain MRI"]
    body.update(extra)
    return json.dumps(body)


# -- AWS (moto) ------------------------------------------------------------------------------


@dataclass
class GatewayEnv:
    sqs: Any
    s3: Any
    secrets: Any
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    registry: Registry
    visibility_calls: list[dict[str, Any]] = field(default_factory=list)

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"

    def sqs_event(self, queue: str, bodies: Sequence[str]) -> dict[str, Any]:
        """Send ``bodies`` to ``queue`` and receive them back in the Lambda SQS event shape
        (real message ids and receipt handles, so DLQ and visibility calls work)."""
        url = self.queue_urls[queue]
        for body in bodies:
            self.sqs.send_message(QueueUrl=url, MessageBody=body)
        messages: list[dict[str, Any]] = []
        while len(messages) < len(bodies):
            got = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        assert len(messages) == len(bodies)
        order = {body: i for i, body in enumerate(bodies)}
        messages.sort(key=lambda m: order.get(m["Body"], 0))
        return {"Records": [self._record(queue, m) for m in messages]}

    def redeliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """The same messages delivered again (receive count + 1, same message ids)."""
        records = []
        for record in event["Records"]:
            again = json.loads(json.dumps(record))
            count = int(again["attributes"]["ApproximateReceiveCount"]) + 1
            again["attributes"]["ApproximateReceiveCount"] = str(count)
            records.append(again)
        return {"Records": records}

    def _record(self, queue: str, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn(queue),
            "awsRegion": REGION,
        }

    def dead_letters(self, queue: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.dlq_urls[queue],
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not got:
                return found
            found.extend(got)

    def visibility_by_receipt(self) -> dict[str, int]:
        return {
            entry["ReceiptHandle"]: entry["VisibilityTimeout"]
            for call in self.visibility_calls
            for entry in call["Entries"]
        }


# -- SPCS (respx) ----------------------------------------------------------------------------


class SpcsFake:
    """A fake model service behind both ingress URLs plus the OAuth token exchange."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exchanges = 0
        self.tokens_issued: list[str] = []
        self.requests: list[list[list[Any]]] = []  # rows per request, both services
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self.status: int | None = None  # force this status for every inference call
        self.retry_after: str | None = None  # Retry-After header sent with a forced status
        self.reject_marker: str | None = None  # 400 if any row contains it
        self.expire_first_token = False
        self.output_suffix = ""  # appended to every entity word (canary tests)

    def token(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.exchanges += 1
            token = f"ingress-token-{self.exchanges}"
            self.tokens_issued.append(token)
        return httpx.Response(200, text=token)

    def infer(self, request: httpx.Request) -> httpx.Response:
        rows: list[list[Any]] = json.loads(request.content)["data"]
        auth = request.headers.get("authorization", "")
        if self.expire_first_token and '"ingress-token-1"' in auth:
            return httpx.Response(401, text="token expired")
        with self.lock:
            self.requests.append(rows)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.status is not None:
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return httpx.Response(self.status, text="unavailable", headers=headers)
            if self.reject_marker and any(self.reject_marker in json.dumps(r) for r in rows):
                return httpx.Response(400, text="bad input")
            if "zsc" in str(request.url.host):
                data = [
                    [row[0], {"labels": [{"label": label, "score": 0.5} for label in row[2]]}]
                    for row in rows
                ]
            else:
                data = [
                    [
                        row[0],
                        {
                            "outputs": [
                                {
                                    "entity": "B-DRUG",
                                    "word": row[1] + self.output_suffix,
                                    "score": 0.99,
                                    "start": 0,
                                    "end": 3,
                                }
                            ]
                        },
                    ]
                    for row in rows
                ]
            return httpx.Response(200, json={"data": data})
        finally:
            with self.lock:
                self.in_flight -= 1

    @property
    def rows_sent(self) -> int:
        return sum(len(rows) for rows in self.requests)


# -- results sink fake -------------------------------------------------------------------------


class FakeSink:
    """``ResultsSink`` semantics keyed by event_id: MERGE inserts only new event_ids."""

    def __init__(self) -> None:
        self.rows: dict[str, ResultRow] = {}
        self.existing_calls = 0
        self.merge_calls = 0
        self.fail_merge = False
        self.existing_error: Exception | None = None

    def existing(self, event_ids: Iterable[str]) -> set[str]:
        self.existing_calls += 1
        if self.existing_error is not None:
            raise self.existing_error
        return {event_id for event_id in event_ids if event_id in self.rows}

    def merge(self, rows: Sequence[ResultRow]) -> None:
        self.merge_calls += 1
        if self.fail_merge:
            raise TransientError(ErrorCode.RESULTS_WRITE_FAILED, "Snowflake statement failed")
        for row in rows:
            self.rows.setdefault(row.event_id, row)


# -- routers ---------------------------------------------------------------------------------


class LambdaContextStub(fake_account.LambdaContextStub):
    """The routers' context."""

    def __init__(self, remaining_ms: int = 60_000) -> None:
        super().__init__(
            "spcs-gateway-router",
            request_id="00000000-0000-0000-0000-000000000001",
            remaining_ms=remaining_ms,
        )


class ReadinessRecorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def service_unavailable(self, service: Any) -> None:
        self.calls.append(service.name)


@dataclass
class Router:
    app: ModuleType
    env: GatewayEnv
    sink: FakeSink
    readiness: ReadinessRecorder
    client: SpcsClient
    queue: str

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.app.lambda_handler(event, LambdaContextStub())
        return result

    def failures(self, response: dict[str, Any]) -> set[str]:
        return {item["itemIdentifier"] for item in response["batchItemFailures"]}


SERVICE_OF = {"note_router": ("ner", NOTES_QUEUE), "image_router": ("zsc", IMAGES_QUEUE)}


def load_app(name: str) -> ModuleType:
    path = REPO / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"{name}_app_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
