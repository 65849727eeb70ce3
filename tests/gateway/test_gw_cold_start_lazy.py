"""Cold-start savings keep behaviour: the S3 URI rule, lazily built AWS clients, no Pillow in the
note router."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import Field, TypeAdapter, ValidationError

from spcs_gateway.control_invoke import LambdaControlClient
from spcs_gateway.dlq import DeadLetters
from spcs_gateway.errors import ErrorCode
from spcs_gateway.events import MAX_S3_KEY_CHARS, S3_URI_PATTERN, S3Image
from spcs_gateway.visibility import SourceQueue

# The rule as one pattern, validated by pydantic-core's Rust engine (what S3Image used to be).
_FULL_RULE: TypeAdapter[str] = TypeAdapter(Annotated[str, Field(pattern=S3_URI_PATTERN)])

_URIS = [
    "s3://scans/a.png",
    "s3://scans/k",
    "s3://scans/" + "k" * MAX_S3_KEY_CHARS,
    "s3://scans/" + "k" * (MAX_S3_KEY_CHARS + 1),
    "s3://scans/" + "é" * MAX_S3_KEY_CHARS,  # characters, not bytes
    "s3://scans/" + "é" * (MAX_S3_KEY_CHARS + 1),
    "s3://scans/" + "k/" * 600,
    "s3://scans/",
    "s3://scans//",
    "s3://scans/a b.png",
    "s3://scans/a\u00a0b",  # no-break space
    "s3://scans/a\u2003",  # em space
    "s3://scans/a.png\n",
    "s3://scans/a\x1cb",  # a separator Python's str.isspace() counts, Unicode does not
    "s3://Scans/a.png",
    "s3://ab/c",
    "s3://a/c",
    "s3://" + "b" * 63 + "/c",
    "s3://" + "b" * 64 + "/c",
    "https://scans/a.png",
    "s3://scans",
]


def _outcome_full(uri: str) -> str | None:
    try:
        _FULL_RULE.validate_python(uri)
    except ValidationError as exc:
        return exc.errors()[0]["type"]
    return None


def _outcome_model(uri: str) -> str | None:
    try:
        S3Image(s3_uri=uri)
    except ValidationError as exc:
        [error] = exc.errors(include_input=False, include_url=False, include_context=False)
        assert error["loc"] == ("s3_uri",)
        return error["type"]
    return None


@pytest.mark.parametrize("uri", _URIS, ids=range(len(_URIS)))
def test_gw_s3_uri_rule_matches_the_single_pattern(uri: str) -> None:
    assert _outcome_model(uri) == _outcome_full(uri)


def test_gw_s3_uri_rule_bounds_the_key() -> None:
    assert _outcome_model("s3://scans/" + "k" * MAX_S3_KEY_CHARS) is None
    assert _outcome_model("s3://scans/" + "k" * 1025) == "string_pattern_mismatch"


# -- AWS clients built on first use ------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Any:
        def call(**kwargs: Any) -> dict[str, Any]:
            self.calls.append((operation, kwargs))
            return {}

        return call


def _patch_boto3(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], _Recorder]:
    import boto3

    made: list[str] = []
    client = _Recorder()

    def fake_client(service: str, *args: Any, **kwargs: Any) -> _Recorder:
        made.append(service)
        return client

    monkeypatch.setattr(boto3, "client", fake_client)
    return made, client


def _record() -> SQSRecord:
    return SQSRecord(
        {
            "messageId": "m-1",
            "receiptHandle": "rh-1",
            "body": "{}",
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:notes",
            "awsRegion": "us-east-1",
        }
    )


def test_gw_dead_letters_build_their_sqs_client_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, client = _patch_boto3(monkeypatch)
    env = {"DLQ_URL": "https://sqs/dlq", "SOURCE_QUEUE_URL": "https://sqs/notes"}
    source = SourceQueue(environ=env)
    dead = DeadLetters(environ=env, source=source)  # the pipeline's wiring: one client
    assert made == []
    dead.send_poison(_record(), ErrorCode.INVALID_EVENT)
    assert source.change_visibility_many([(_record(), 30)]) == 0
    assert made == ["sqs"]  # one client, reused
    assert [op for op, _ in client.calls] == ["send_message", "change_message_visibility_batch"]
    assert client.calls[0][1]["QueueUrl"] == "https://sqs/dlq"


def test_gw_control_client_builds_its_lambda_client_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, client = _patch_boto3(monkeypatch)
    control = LambdaControlClient(None, "control-fn", dedupe_seconds=0)
    assert made == []
    assert control.ensure_ready("ner")
    assert control.ensure_ready("zsc")
    assert made == ["lambda"]
    assert [kw["InvocationType"] for _, kw in client.calls] == ["Event", "Event"]


def test_gw_note_router_modules_do_not_import_pillow() -> None:
    code = (
        "import sys\n"
        "import spcs_gateway.pipeline, spcs_gateway.dlq, spcs_gateway.secrets\n"
        "bad = [m for m in ('PIL', 'spcs_gateway.images') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
