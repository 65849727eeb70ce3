"""In-process stand-ins for the network, for the cold-start bench's simulated SnapStart restore.

``install()`` replaces only what would leave the process, at the lowest level the gateway's
code reaches, so everything above it runs for real (boto3 client creation, Powertools
Parameters, the token provider and the JWT, the codec, the connector's import and our SQL):

* ``botocore.client.BaseClient._make_api_call``: canned answers per operation (the secret,
  DynamoDB updates, a Lambda invoke);
* ``httpx.HTTPTransport.handle_request``: the account's ``/oauth/token`` and the SPCS ingress
  (answers every row it was sent, in the flat ``{"data": [[i, {column: value}]]}`` format);
* ``snowflake.connector.connect``: a session whose statements return no rows.

What is faked away is the I/O every fresh execution environment pays, with or without
SnapStart (TCP and TLS handshakes, the Snowflake login, AWS round trips): the bench measures
the gateway's own first-request overhead on top of that.

Synthetic values only: the notes and images come from ``events/`` (made-up, PHI-free).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

_TOKENS = itertools.count(1)
NER_OUTPUT = [
    {"word": "otitis", "score": 0.98, "entity": "B-DISEASE", "index": 5, "start": 19, "end": 25},
    {"word": "media", "score": 0.97, "entity": "I-DISEASE", "index": 6, "start": 26, "end": 31},
]
ZSC_OUTPUT = [{"label": "chest x-ray", "score": 0.91}, {"label": "brain MRI", "score": 0.09}]


class FakeCursor:
    def __init__(self) -> None:
        self.description: list[tuple[str]] | None = None

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        self.description = [("EVENT_ID",)] if sql.lstrip().upper().startswith("SELECT") else None
        return self

    def fetchall(self) -> list[Any]:
        return []


class FakeConnection:
    def __init__(self) -> None:
        self._closed = False

    def cursor(self, *args: Any) -> FakeCursor:
        return FakeCursor()

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True


def _aws_answer(operation: str, params: dict[str, Any], secret: str) -> dict[str, Any]:
    if operation == "GetSecretValue":
        return {"Name": params.get("SecretId", ""), "SecretString": secret, "VersionId": "v1"}
    if operation == "GetItem":
        return {}
    if operation in ("UpdateItem", "PutItem"):
        return {}
    if operation == "Invoke":
        return {"StatusCode": 202}
    raise AssertionError(f"the bench did not expect AWS {operation} on the first request")


def install(secret: str) -> None:
    """Replace the network for the rest of this process (``secret``: the credential's value)."""
    import botocore.client
    import httpx
    import snowflake.connector

    from spcs_gateway.registry import Task, load_registry

    registry = load_registry()
    services = {svc.url.rstrip("/").split("//", 1)[1]: svc for svc in registry.services}

    def make_api_call(self: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return _aws_answer(operation, params, secret)

    def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, text=f"ingress-token-{next(_TOKENS)}", request=request)
        service = services[request.url.host]
        output = NER_OUTPUT if service.task is Task.TOKEN_CLASSIFICATION else ZSC_OUTPUT
        rows = json.loads(request.read())["data"]
        body = {"data": [[row[0], {service.out_column: output}] for row in rows]}
        return httpx.Response(200, json=body, request=request)

    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[attr-defined]
    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    snowflake.connector.connect = lambda **kwargs: FakeConnection()  # type: ignore[assignment]


class Context:
    """The attributes Powertools reads from a LambdaContext."""

    function_name = "bench"
    function_version = "1"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench:live"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
