"""PHI canary: input text, attributes, labels, image keys and model output carry canary strings;
none may appear in any log line, EMF metric blob, trace annotation/metadata or DLQ attribute."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gw_support import (
    IMAGES_QUEUE,
    NOTES_QUEUE,
    OTHER_BUCKET,
    FakeSink,
    GatewayEnv,
    Router,
    SpcsFake,
    image_body,
    note_body,
)

CANARIES = (
    "CanaryNoteText7781",
    "CanaryAttr5521",
    "CanaryLabel3390",
    "CanaryS3Key4410",
    "CanaryOutput9902",
    "CanaryExtraField6613",
    "CanaryBrokenJson2207",
    "CanaryExceptionMsg8150",
)
(TEXT, ATTR, LABEL, S3KEY, OUTPUT, EXTRA, BROKEN, EXC) = CANARIES


class TraceRecorder:
    """Stands in for the X-Ray provider: records every annotation and metadata write."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str, Any]] = []

    def put_annotation(self, key: str, value: Any) -> None:
        self.written.append(("annotation", key, value))

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        self.written.append(("metadata", key, value))

    def add_exception(self, exception: BaseException, stack: Any = None) -> None:
        self.written.append(("exception", type(exception).__name__, str(exception)))

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **_: Any) -> Iterator[TraceRecorder]:
        self.written.append(("subsegment", "name", name))
        yield self


@pytest.fixture
def captured(
    router: Callable[..., Router], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[dict[str, Any]]:
    notes = router("note_router")
    images = router("image_router")
    stream = io.StringIO()
    trace = TraceRecorder()
    handlers = []
    for app in (notes.app, images.app):
        handler = app.logger.registered_handler
        handlers.append((handler, handler.setStream(stream)))
        monkeypatch.setattr(app.tracer, "provider", trace)
        monkeypatch.setattr(app.tracer, "disabled", False)
    caplog.set_level(logging.DEBUG)  # everything any library logs through the root logger
    yield {"notes": notes, "images": images, "stream": stream, "trace": trace, "caplog": caplog}
    for handler, old in handlers:
        handler.setStream(old)


def test_no_canary_leaks_anywhere(
    captured: dict[str, Any],
    gateway_env: GatewayEnv,
    spcs: SpcsFake,
    capsys: pytest.CaptureFixture[str],
) -> None:
    notes: Router = captured["notes"]
    images: Router = captured["images"]
    spcs.reject_marker = "REJECTME"
    spcs.output_suffix = " " + OUTPUT

    # 1. success, poison (unknown field), model rejection, broken JSON
    batch = [
        note_body("n-ok", text=f"{TEXT} amoxicillin", attributes={"mrn": ATTR}),
        note_body("n-extra", text=TEXT, **{EXTRA: EXTRA}),
        note_body("n-reject", text=f"REJECTME {TEXT}"),
        '{"schema": "clinical-note.v1", "text": "' + BROKEN,
    ]
    first = notes.invoke(gateway_env.sqs_event(NOTES_QUEUE, batch))
    assert first == {"batchItemFailures": []}
    assert notes.sink.rows["n-ok"].output[0]["word"].endswith(OUTPUT)  # the canary was there

    # 2. service unavailable
    spcs.status = 503
    second = notes.invoke(gateway_env.sqs_event(NOTES_QUEUE, [note_body("n-503", text=TEXT)]))
    assert len(second["batchItemFailures"]) == 1
    spcs.status = None

    # 3. an unexpected exception whose message carries PHI (from the pre-check of a redelivery)
    broken = FakeSink()
    broken.existing_error = ValueError(f"row {EXC} {TEXT}")
    notes.app.pipeline._sink = broken
    bug = gateway_env.sqs_event(NOTES_QUEUE, [note_body("n-bug", text=TEXT)])
    third = notes.invoke(gateway_env.redeliver(bug))
    assert broken.existing_calls == 1
    assert len(third["batchItemFailures"]) == 1

    # 4. images: canary labels, a forbidden S3 key, an undecodable image
    image_batch = [
        image_body("i-ok", candidate_labels=[LABEL, "chest x-ray"]),
        image_body("i-s3", {"s3_uri": f"s3://{OTHER_BUCKET}/{S3KEY}.png"}),
        image_body(
            "i-bad",
            {"base64": base64.b64encode(TEXT.encode()).decode(), "content_type": "image/png"},
            candidate_labels=[LABEL],
        ),
    ]
    fourth = images.invoke(gateway_env.sqs_event(IMAGES_QUEUE, image_batch))
    assert fourth == {"batchItemFailures": []}

    logs = captured["stream"].getvalue()
    # Every other logger's records, rendered as a root handler would (traceback included).
    # The Powertools logger's own records are left out here: Powertools filters them from the
    # root handlers and they are checked in their formatted form above (``logs``).
    render = logging.Formatter("%(name)s %(levelname)s %(message)s")
    own = notes.app.logger.name
    root_logs = "\n".join(render.format(r) for r in captured["caplog"].records if r.name != own)
    out = capsys.readouterr()
    trace = json.dumps(captured["trace"].written, default=str)
    dead = gateway_env.dead_letters(NOTES_QUEUE) + gateway_env.dead_letters(IMAGES_QUEUE)
    attributes = json.dumps([m["MessageAttributes"] for m in dead])

    # The captures are real: they hold the lines, metrics, annotations and attributes written.
    assert "batch processed" in logs
    assert "record sent to DLQ" in logs
    assert "withheld" in logs  # the unexpected exception was logged, message withheld
    assert '"CloudWatchMetrics"' in out.out
    assert '"outcome"' in out.out
    assert '"records"' in trace
    assert len(dead) == 5
    assert "MODEL_REJECTED_INPUT" in attributes

    for canary in CANARIES:
        assert canary not in logs, canary
        assert canary not in root_logs, canary
        assert canary not in out.out, canary
        assert canary not in out.err, canary
        assert canary not in trace, canary
        assert canary not in attributes, canary


def test_emf_dimensions_are_service_and_outcome_only(
    router: Callable[..., Router],
    gateway_env: GatewayEnv,
    capsys: pytest.CaptureFixture[str],
) -> None:
    notes = router("note_router")
    batch = [note_body("d-ok"), "not json"]
    notes.invoke(gateway_env.sqs_event(NOTES_QUEUE, batch))

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    dimension_sets = {
        tuple(sorted(dims))
        for blob in blobs
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for dims in directive["Dimensions"]
    }
    assert dimension_sets == {("service",), ("outcome", "service")}
    outcomes = {blob["outcome"]: blob["Records"] for blob in blobs if "outcome" in blob}
    assert outcomes == {"succeeded": [1.0], "poison": [1.0]} or outcomes == {
        "succeeded": 1.0,
        "poison": 1.0,
    }
    assert {blob["service"] for blob in blobs} == {"ner"}
