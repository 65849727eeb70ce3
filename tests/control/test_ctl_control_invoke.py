"""Control function event contract, the Lambda control client and the routers' readiness hook."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ctl_control_support import NER, AwsWorld, World, aws_world, make_registry, memory_world

from spcs_gateway.control import Outcome, handle_control_event, is_schedule_event
from spcs_gateway.control_invoke import (
    ControlClientError,
    ControlReadinessHook,
    LambdaControlClient,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"


class StubLambda:
    """Records invokes; answers RequestResponse calls with ``answer``."""

    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = answer if answer is not None else {"ok": True}
        self.error = error
        self.function_error = False

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({**kwargs, "Payload": json.loads(kwargs["Payload"])})
        if self.error is not None:
            raise self.error
        response: dict[str, Any] = {
            "StatusCode": 202 if kwargs["InvocationType"] == "Event" else 200
        }
        if self.function_error:
            response["FunctionError"] = "Unhandled"
        response["Payload"] = io.BytesIO(json.dumps(self.answer).encode())
        return response


class Tick:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world() -> World:
    return memory_world()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsWorld]:
    yield from aws_world(monkeypatch)


# -- event contract ------------------------------------------------------------------------------


def test_ctl_control_event_samples_dispatch(world: World) -> None:
    control = world.control()
    tick = json.loads((EVENTS / "schedule_tick.json").read_text())
    assert is_schedule_event(tick)
    answer = handle_control_event(control, tick)
    assert answer["ok"]
    assert answer["action"] == "reconcile"
    assert [s["name"] for s in answer["services"]] == ["biobert_ner", "biomedclip"]

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 70_000

    sample = json.loads((EVENTS / "control_ensure_ready.json").read_text())
    answer = handle_control_event(control, sample, Context())
    # 70 s left minus the 10 s margin: enough for the fake's resume (a few 5 s polls).
    assert (answer["ok"], answer["outcome"], answer["resumed"]) == (True, "ready", True)
    assert world.services.count("resume", NER) == 1


def test_ctl_control_event_without_context_does_not_wait(world: World) -> None:
    answer = handle_control_event(
        world.control(), {"action": "ensure_ready", "service": "biobert_ner"}
    )
    assert answer["outcome"] == Outcome.RESUMING.value
    assert answer["resumed"]


def test_ctl_control_event_suspend_status_and_invalid(world: World) -> None:
    control = world.control()
    answer = handle_control_event(control, {"action": "suspend", "service": "biomedclip"})
    assert answer["outcome"] == "already_suspended"
    status = handle_control_event(control, {"action": "status"})
    assert status["ok"]
    assert {s["name"] for s in status["services"]} == {
        "biobert_ner",
        "biomedclip",
    }
    unknown = handle_control_event(control, {"action": "status", "services": ["nope"]})
    assert unknown == {"ok": False, "code": "UNKNOWN_SERVICE", "services": ["nope"]}
    assert handle_control_event(control, {"action": "explode"})["code"] == "INVALID_REQUEST"
    missing = handle_control_event(control, {"action": "suspend"})
    assert missing == {"ok": False, "code": "INVALID_REQUEST", "fields": ["service"]}
    bad = handle_control_event(control, {"action": "suspend", "service": "x", "force": "maybe"})
    assert bad["fields"] == ["force"]
    assert world.services.changes == []


# -- client ----------------------------------------------------------------------------------------


def test_ctl_control_client_ensure_ready_is_async_and_deduplicated() -> None:
    stub, tick = StubLambda(), Tick()
    client = LambdaControlClient(stub, "control-fn", dedupe_seconds=10, clock=tick)  # type: ignore[arg-type]
    assert client.ensure_ready("biobert_ner")
    assert not client.ensure_ready("biobert_ner")
    assert client.ensure_ready("biomedclip")  # per service
    tick.t += 9.9
    assert not client.ensure_ready("biobert_ner")
    tick.t += 0.2
    assert client.ensure_ready("biobert_ner")
    assert [c["Payload"] for c in stub.calls] == [
        {"action": "ensure_ready", "service": "biobert_ner"},
        {"action": "ensure_ready", "service": "biomedclip"},
        {"action": "ensure_ready", "service": "biobert_ner"},
    ]
    assert {c["InvocationType"] for c in stub.calls} == {"Event"}
    assert {c["FunctionName"] for c in stub.calls} == {"control-fn"}


def test_ctl_control_client_failed_invoke_is_retried_at_once() -> None:
    error = ClientError({"Error": {"Code": "TooManyRequestsException"}}, "Invoke")
    stub, tick = StubLambda(error=error), Tick()
    client = LambdaControlClient(stub, "control-fn", clock=tick)  # type: ignore[arg-type]
    with pytest.raises(ControlClientError, match="TooManyRequestsException"):
        client.ensure_ready("biobert_ner")
    stub.error = None
    assert client.ensure_ready("biobert_ner")  # not swallowed by the dedupe window
    assert len(stub.calls) == 2


def test_ctl_control_client_request_response_calls() -> None:
    stub = StubLambda({"ok": True, "outcome": "refused", "code": "BACKLOG"})
    client = LambdaControlClient(stub, "control-fn")  # type: ignore[arg-type]
    assert client.suspend("biobert_ner", force=False)["code"] == "BACKLOG"
    assert stub.calls[-1]["InvocationType"] == "RequestResponse"
    assert stub.calls[-1]["Payload"] == {
        "action": "suspend",
        "service": "biobert_ner",
        "force": False,
    }
    stub.answer = {"ok": True, "action": "status", "services": [{"name": "biobert_ner"}]}
    assert client.status() == [{"name": "biobert_ner"}]
    stub.function_error = True
    with pytest.raises(ControlClientError):
        client.status()
    stub.function_error = False
    stub.answer = {"ok": False, "code": "UNKNOWN_SERVICE"}
    with pytest.raises(ControlClientError):
        client.status()


def test_ctl_control_readiness_hook_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    error = ClientError({"Error": {"Code": "AccessDeniedException"}}, "Invoke")
    stub = StubLambda(error=error)
    hook = ControlReadinessHook(LambdaControlClient(stub, "control-fn"))  # type: ignore[arg-type]
    service = make_registry().service("biobert_ner")
    with caplog.at_level(logging.INFO, logger="spcs_gateway.control_invoke"):
        hook.service_unavailable(service)  # no exception
        stub.error = None
        hook.service_unavailable(service)
        hook.service_unavailable(service)  # deduplicated: nothing sent, nothing logged
    assert len(stub.calls) == 2
    records = [(r.getMessage(), r.__dict__.get("error_code")) for r in caplog.records]
    assert records == [
        ("ensure_ready request failed", "DEPENDENCY_ERROR"),
        ("ensure_ready requested", None),
    ]


def test_ctl_control_readiness_hook_survives_unexpected_errors() -> None:
    class Broken:
        def ensure_ready(self, name: str) -> bool:
            raise RuntimeError("boom")

    ControlReadinessHook(Broken()).service_unavailable(make_registry().service("biomedclip"))  # type: ignore[arg-type]


# -- wiring in the routers' pipeline ---------------------------------------------------------------


class _UnavailableSpcs:
    def infer(self, service: Any, inputs: Any) -> list[Any]:
        from spcs_gateway.errors import ErrorCode, ServiceUnavailableError
        from spcs_gateway.spcs_client import RowResult

        error = ServiceUnavailableError(ErrorCode.SERVICE_UNAVAILABLE, "HTTP 503", status=503)
        return [RowResult(i.key, None, error, 1) for i in inputs]


class _EmptySink:
    def existing(self, event_ids: Any) -> set[str]:
        return set()

    def merge(self, rows: Any) -> None:
        raise AssertionError("nothing succeeds")


class _NoDeadLetters:
    def send_poison(self, record: Any, code: Any) -> None:
        raise AssertionError("no poison here")


class _Visibility:
    def __init__(self) -> None:
        self.delays: list[int] = []

    def change_visibility_many(self, items: Any) -> int:
        self.delays.extend(delay for _, delay in items)
        return 0


def _pipeline(environ: dict[str, str], visibility: _Visibility) -> Any:
    from aws_lambda_powertools import Logger, Metrics, Tracer

    from spcs_gateway.pipeline import build_pipeline

    return build_pipeline(
        "biobert_ner",
        environ=environ,
        registry=make_registry(),
        spcs=_UnavailableSpcs(),
        sink=_EmptySink(),
        dead_letters=_NoDeadLetters(),
        visibility=visibility,
        logger=Logger(service="test"),
        metrics=Metrics(namespace="Test"),
        tracer=Tracer(disabled=True),
    )


def test_ctl_control_pipeline_wires_the_control_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from spcs_gateway.readiness import NoopReadinessHook

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert isinstance(_pipeline({}, _Visibility())._readiness, NoopReadinessHook)
    visibility = _Visibility()
    pipeline = _pipeline({"CONTROL_FUNCTION_NAME": "spcs-gateway-control"}, visibility)
    hook = pipeline._readiness
    assert isinstance(hook, ControlReadinessHook)
    stub = StubLambda()
    hook._client._lambda = stub
    event = json.loads((EVENTS / "sqs_notes_batch.json").read_text())
    for _ in range(2):  # a second failing batch within the dedupe window asks nothing more
        answer = pipeline.handle(event)
        assert len(answer["batchItemFailures"]) == len(event["Records"])
    assert [c["Payload"] for c in stub.calls] == [
        {"action": "ensure_ready", "service": "biobert_ner"}
    ]
    assert stub.calls[0]["FunctionName"] == "spcs-gateway-control"
    assert visibility.delays
    assert all(delay > 0 for delay in visibility.delays)  # records go back with a delay


def test_ctl_control_function_handler(aws: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world = aws
    import importlib.util

    from ctl_control_support import TABLE, registry_doc

    monkeypatch.setenv("SPCS_GATEWAY_REGISTRY", json.dumps(registry_doc()))
    monkeypatch.setenv("SERVICE_STATE_TABLE", TABLE)
    monkeypatch.setenv("QUEUE_URLS", json.dumps(world.urls))
    monkeypatch.setenv("QUEUE_ARNS", json.dumps(world.arns))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    path = EVENTS.parent / "functions" / "control" / "app.py"
    spec = importlib.util.spec_from_file_location("control_function_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Context:
        function_name = "spcs-gateway-control"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:control"
        aws_request_id = "req-1"

        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    # Neither call reaches Snowflake: unknown names and bad events touch nothing.
    answer = module.lambda_handler({"action": "ensure_ready", "service": "nope"}, Context())
    assert answer["code"] == "UNKNOWN_SERVICE"
    assert module.lambda_handler({"action": 1}, Context())["code"] == "INVALID_REQUEST"
    assert module.control.registry.service("biobert_ner").queues == ["notes"]
