"""SpcsClient against a respx-mocked SPCS ingress: batching, concurrency, errors, refresh."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from fake_account import rsa_private_pem

from spcs_gateway.auth import TokenProvider
from spcs_gateway.errors import (
    ConfigurationError,
    ErrorCode,
    PoisonError,
    ServiceUnavailableError,
    ThrottledError,
    TransientError,
)
from spcs_gateway.http import build_http_client
from spcs_gateway.registry import Registry, parse_registry
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.spcs_client import InferenceInput, RowResult, SpcsClient, parse_retry_after

NER_URL = "https://abc-org-acct.snowflakecomputing.app/--call--"
IMG_URL = "https://img-org-acct.snowflakecomputing.app/predict"
TOKEN_URL = "https://myorg-acct.snowflakecomputing.com/oauth/token"
PAT = "pat-0123"
NOW = 1_750_000_000.0


def _registry(auth: str = "pat", **ner: Any) -> Registry:
    ner_doc: dict[str, Any] = {
        "name": "ner",
        "service": "PEDIATRIC_ML.MODELS.NER_SVC",
        "compute_pool": "CPU_POOL",
        "url": "https://abc-org-acct.snowflakecomputing.app",
        "task": "token-classification",
        "max_batch_rows": 4,
        "max_concurrency": 3,
        "max_request_bytes": 4096,
    }
    ner_doc.update(ner)
    return parse_registry(
        {
            "snowflake": {
                "account": "myorg-acct",
                "user": "svc",
                "auth": auth,
                "secret": {"secret_id": "arn:secret"},
            },
            "services": [
                ner_doc,
                {
                    "name": "img",
                    "service": "PEDIATRIC_ML.MODELS.IMG_SVC",
                    "compute_pool": "GPU_POOL",
                    "url": "https://img-org-acct.snowflakecomputing.app",
                    "method": "predict",
                    "task": "zero-shot-image-classification",
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def key_pem() -> str:
    return rsa_private_pem().decode()


class Harness:
    def __init__(self, registry: Registry, secret: str) -> None:
        self.registry = registry
        self.sleeps: list[float] = []
        self.http = build_http_client()
        settings = registry.snowflake
        source = CredentialSource(settings, fetch_secret=lambda _id, _age, _force: secret)
        self.tokens = TokenProvider(settings, source, self.http)
        self.client = SpcsClient(
            registry, self.tokens, self.http, sleep=self.sleeps.append, clock=lambda: NOW
        )
        self.ner = registry.service("ner")
        self.img = registry.service("img")

    def close(self) -> None:
        self.client.close()
        self.http.close()


@pytest.fixture
def make_harness(key_pem: str) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(auth: str = "pat", **ner: Any) -> Harness:
        secret = PAT if auth == "pat" else json.dumps({"private_key": key_pem})
        harness = Harness(_registry(auth, **ner), secret)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def _rows(request: httpx.Request) -> list[list[Any]]:
    rows: list[list[Any]] = json.loads(request.content)["data"]
    return rows


def _echo(request: httpx.Request) -> httpx.Response:
    """A token-classification service that returns one entity naming the input text."""
    data = [[row[0], {"outputs": [{"word": row[1], "score": 0.9}]}] for row in _rows(request)]
    return httpx.Response(200, json={"data": data})


def _inputs(n: int, prefix: str = "note") -> list[InferenceInput]:
    return [InferenceInput(key=f"msg-{i}", values=(f"{prefix} {i}",)) for i in range(n)]


def _words(results: list[RowResult]) -> list[Any]:
    return [r.output[0]["word"] if r.output else None for r in results]


# -- success, batching, concurrency ----------------------------------------------------------


def test_all_success_multi_batch_respects_max_batch_rows(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=_echo)
        results = h.client.infer(h.ner, _inputs(10))
    assert [r.key for r in results] == [f"msg-{i}" for i in range(10)]
    assert all(r.ok and r.error is None for r in results)
    assert _words(results) == [f"note {i}" for i in range(10)]
    sizes = sorted(len(_rows(call.request)) for call in route.calls)
    assert sizes == [2, 4, 4]
    assert h.client.stats.requests == 3
    assert h.client.stats.rows_sent == 10
    request = route.calls[0].request
    assert request.headers["authorization"] == f'Snowflake Token="{PAT}"'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    # Row indices on the wire are request-local; the caller's keys are never sent.
    for call in route.calls:
        assert [row[0] for row in _rows(call.request)] == list(range(len(_rows(call.request))))
        assert b"msg-" not in call.request.content


def test_batches_split_by_bytes(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_batch_rows=100, max_request_bytes=1024)
    inputs = [InferenceInput(key=str(i), values=("x" * 300,)) for i in range(6)]
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=_echo)
        results = h.client.infer(h.ner, inputs)
    assert all(r.ok for r in results)
    assert all(len(call.request.content) <= 1024 for call in route.calls)
    assert sorted(len(_rows(call.request)) for call in route.calls) == [3, 3]


def test_oversize_row_is_poison_and_not_sent(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_request_bytes=1024)
    inputs = [*_inputs(2), InferenceInput(key="big", values=("y" * 2000,))]
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=_echo)
        results = h.client.infer(h.ner, inputs)
    assert results[0].ok
    assert results[1].ok
    err = results[2].error
    assert isinstance(err, PoisonError)
    assert err.code is ErrorCode.REQUEST_TOO_LARGE
    assert all(b"yyyy" not in call.request.content for call in route.calls)


def test_unencodable_row_is_poison(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    inputs = [*_inputs(1), InferenceInput(key="odd", values=(object(),))]
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=_echo)
        results = h.client.infer(h.ner, inputs)
    assert results[0].ok
    assert isinstance(results[1].error, PoisonError)


class InFlight:
    def __init__(self, delay: float = 0.05) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.delay = delay

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        time.sleep(self.delay)
        with self.lock:
            self.current -= 1
        return _echo(request)


def test_concurrency_limit_respected(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_batch_rows=1, max_concurrency=3)
    tracker = InFlight()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=tracker)
        results = h.client.infer(h.ner, _inputs(12))
    assert all(r.ok for r in results)
    assert route.call_count == 12
    assert 1 < tracker.peak <= 3


def test_concurrent_infer_calls_share_the_limit(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_batch_rows=1, max_concurrency=2)
    tracker = InFlight()
    outcomes: list[list[RowResult]] = []
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=tracker)
        threads = [
            threading.Thread(target=lambda: outcomes.append(h.client.infer(h.ner, _inputs(6))))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
    assert len(outcomes) == 3
    assert all(r.ok for results in outcomes for r in results)
    assert tracker.peak == 2


def test_latency_is_the_request_duration(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=InFlight(delay=0.06))
        results = h.client.infer(h.ner, _inputs(2))
    assert all(55 <= r.latency_ms < 2000 for r in results)


def test_image_service_sends_base64_and_decodes_labels(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    image = b"\x89PNG\r\n\x1a\n" + bytes(100)

    def zero_shot(request: httpx.Request) -> httpx.Response:
        data = []
        # Flat format: inputs, then every parameter column of the inferred signature.
        for index, encoded, labels, template, timeout in _rows(request):
            assert base64.b64decode(encoded) == image
            assert (template, timeout) == ("This is a photo of {}.", None)
            data.append([index, {"labels": [{"label": labels[0], "score": 1.0}]}])
        return httpx.Response(200, json={"data": data})

    with respx.mock(assert_all_called=False) as router:
        route = router.post(IMG_URL).mock(side_effect=zero_shot)
        results = h.client.infer(
            h.img, [InferenceInput(key="i1", values=(image, ("pneumonia", "normal")))]
        )
    assert route.call_count == 1
    assert results[0].output == [{"label": "pneumonia", "score": 1.0}]


# -- 400 isolation ---------------------------------------------------------------------------


def _reject(marker: str, then: Callable[[httpx.Request], httpx.Response] = _echo) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if any(marker in row[1] for row in _rows(request)):
            return httpx.Response(400, json={"error": "bad input"})
        return then(request)

    return handler


def test_400_isolates_exactly_one_bad_row(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_batch_rows=8)
    inputs = _inputs(8)
    inputs[5] = InferenceInput(key="msg-5", values=("REJECT-CANARY note",))
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=_reject("REJECT"))
        results = h.client.infer(h.ner, inputs)
    bad = [r for r in results if not r.ok]
    assert [r.key for r in bad] == ["msg-5"]
    err = bad[0].error
    assert isinstance(err, PoisonError)
    assert err.code is ErrorCode.MODEL_REJECTED_INPUT
    assert "CANARY" not in str(err)
    good = [r for r in results if r.ok]
    assert _words(good) == [f"note {i}" for i in range(8) if i != 5]
    # 1 + 2 * log2(8) requests: the full batch, then two halves at each of three levels.
    assert route.call_count == 7
    assert h.client.stats.splits == 3


def test_400_on_single_row_is_poison_without_split(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=_reject("REJECT"))
        results = h.client.infer(h.ner, [InferenceInput(key="k", values=("REJECT",))])
    assert isinstance(results[0].error, PoisonError)
    # The row, then one probe row: the service accepts the probe, so the row is bad input.
    assert route.call_count == 2
    assert h.client.stats.splits == 0
    assert h.client.stats.probes == 1


def test_a_service_refusing_everything_is_a_signature_mismatch_not_poison(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(max_batch_rows=4)
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).respond(400, json={"error": "wrong number of columns"})
        results = h.client.infer(h.ner, _inputs(4))
        again = h.client.infer(h.ner, _inputs(2))
    for result in [*results, *again]:
        assert isinstance(result.error, ConfigurationError)
        assert result.error.code is ErrorCode.SIGNATURE_MISMATCH
        assert not isinstance(result.error, PoisonError)
    # 4 rows bisected to single rows (7 requests), one probe; the second call reuses the
    # probe's verdict (3 requests, no second probe).
    assert h.client.stats.probes == 1
    assert route.call_count == 7 + 1 + 3


def test_refused_rows_whose_probe_cannot_be_judged_are_kept_for_retry(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()

    def handler(request: httpx.Request) -> httpx.Response:
        if any("REJECT" in row[1] for row in _rows(request)):
            return httpx.Response(400)
        return httpx.Response(503)  # the probe finds the service unavailable

    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=handler)
        results = h.client.infer(h.ner, [InferenceInput(key="k", values=("REJECT",))])
    assert isinstance(results[0].error, ServiceUnavailableError)


def test_rows_refused_beside_accepted_rows_are_poison_without_a_probe(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(max_batch_rows=2)
    inputs = _inputs(4)
    inputs[0] = InferenceInput(key="bad", values=("REJECT",))
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=_reject("REJECT"))
        results = h.client.infer(h.ner, inputs)
    assert isinstance(results[0].error, PoisonError)
    assert all(r.ok for r in results[1:])
    assert h.client.stats.probes == 0


def test_split_halves_keep_other_failure_classes(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_batch_rows=4)

    def down_if_marked(request: httpx.Request) -> httpx.Response:
        if any("DOWN" in row[1] for row in _rows(request)):
            return httpx.Response(503)
        return _echo(request)

    inputs = [
        InferenceInput(key="a", values=("fine",)),
        InferenceInput(key="b", values=("REJECT",)),
        InferenceInput(key="c", values=("fine too",)),
        InferenceInput(key="d", values=("DOWN",)),
    ]
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=_reject("REJECT", then=down_if_marked))
        results = h.client.infer(h.ner, inputs)
    assert results[0].ok
    assert isinstance(results[1].error, PoisonError)
    assert isinstance(results[2].error, ServiceUnavailableError)
    assert isinstance(results[3].error, ServiceUnavailableError)


def test_413_on_single_row_is_request_too_large(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).respond(413)
        results = h.client.infer(h.ner, _inputs(2))
    assert all(isinstance(r.error, PoisonError) for r in results)
    assert all(r.error and r.error.code is ErrorCode.REQUEST_TOO_LARGE for r in results)


# -- auth ------------------------------------------------------------------------------------


def test_401_refreshes_token_once_then_succeeds(make_harness: Callable[..., Harness]) -> None:
    h = make_harness("keypair", max_batch_rows=2, max_concurrency=3)
    issued = iter(["ingress-1", "ingress-2", "ingress-3"])

    def ingress(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != 'Snowflake Token="ingress-2"':
            # Staggered 401s: later batches learn of the expiry after the first one has
            # already refreshed, and must reuse that token instead of refreshing again.
            batch = int(_rows(request)[0][1].split()[-1]) // 2
            time.sleep(0.04 * batch)
            return httpx.Response(401)
        return InFlight(delay=0.01)(request)

    with respx.mock(assert_all_called=False) as router:
        exchange = router.post(TOKEN_URL).mock(
            side_effect=lambda request: httpx.Response(200, text=next(issued))
        )
        route = router.post(NER_URL).mock(side_effect=ingress)
        results = h.client.infer(h.ner, _inputs(8))
    assert all(r.ok for r in results)
    assert exchange.call_count == 2  # the first exchange and exactly one re-exchange
    assert route.call_count >= 5  # four batches, at least one of them sent twice
    assert h.client.stats.token_refreshes == route.call_count - 4


def test_second_401_is_auth_failed(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).respond(401)
        results = h.client.infer(h.ner, _inputs(1))
    err = results[0].error
    assert isinstance(err, ConfigurationError)
    assert err.code is ErrorCode.AUTH_FAILED
    assert route.call_count == 2


def test_second_401_while_the_service_starts_is_unavailable_not_auth_failed(
    make_harness: Callable[..., Harness],
) -> None:
    # A resuming endpoint answers 503/502 while the model loads, then refuses valid tokens
    # for a moment: that is the service starting, not a revoked credential.
    h = make_harness()
    answers = iter([503, 503, 401, 401])
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=lambda _r: httpx.Response(next(answers)))
        first = h.client.infer(h.ner, _inputs(1))
        second = h.client.infer(h.ner, _inputs(1))
    assert isinstance(first[0].error, ServiceUnavailableError)
    err = second[0].error
    assert isinstance(err, ServiceUnavailableError)
    assert err.code is ErrorCode.SERVICE_UNAVAILABLE
    assert err.status == 401


@pytest.mark.parametrize(("starting", "kind"), [(True, "unavailable"), (False, "configuration")])
def test_a_401_after_refresh_asks_the_control_planes_resume_window(
    key_pem: str, starting: bool, kind: str
) -> None:
    class Window:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def starting(self, service: Any) -> bool:
            self.asked.append(service.name)
            return starting

    registry = _registry()
    http = build_http_client()
    settings = registry.snowflake
    source = CredentialSource(settings, fetch_secret=lambda _id, _age, _force: PAT)
    window = Window()
    client = SpcsClient(
        registry,
        TokenProvider(settings, source, http),
        http,
        sleep=lambda _s: None,
        clock=lambda: NOW,
        startup=window,
    )
    try:
        with respx.mock(assert_all_called=False) as router:
            router.post(NER_URL).respond(401)
            [result] = client.infer(registry.service("ner"), _inputs(1))
    finally:
        client.close()
        http.close()
    assert result.error is not None
    assert result.error.kind.value == kind
    assert window.asked == ["ner"]


def test_403_after_refresh_is_a_missing_endpoint_grant(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).respond(403)
        [result] = h.client.infer(h.ner, _inputs(1))
    assert isinstance(result.error, ConfigurationError)
    assert result.error.code is ErrorCode.PRIVILEGE_MISSING


def test_token_exchange_failure_fails_rows(make_harness: Callable[..., Harness]) -> None:
    h = make_harness("keypair")
    with respx.mock(assert_all_called=False) as router:
        router.post(TOKEN_URL).respond(403)
        route = router.post(NER_URL).mock(side_effect=_echo)
        results = h.client.infer(h.ner, _inputs(2))
    assert all(isinstance(r.error, ConfigurationError) for r in results)
    assert route.call_count == 0


def test_404_is_endpoint_not_found(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).respond(404)
        results = h.client.infer(h.ner, _inputs(1))
    assert isinstance(results[0].error, ConfigurationError)
    assert results[0].error.code is ErrorCode.ENDPOINT_NOT_FOUND
    assert route.call_count == 1


# -- throttling, unavailability, server errors -------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (format_datetime(datetime.fromtimestamp(NOW + 30, tz=UTC), usegmt=True), 30.0),
    ],
)
def test_429_with_retry_after(
    make_harness: Callable[..., Harness], header: str, expected: float
) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).respond(429, headers={"Retry-After": header})
        results = h.client.infer(h.ner, _inputs(2))
    err = results[0].error
    assert isinstance(err, ThrottledError)
    assert err.code is ErrorCode.THROTTLED
    assert err.retry_after == pytest.approx(expected)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("soon", None), ("-5", 0.0), ("1.5", 1.5), ("nan", None)],
)
def test_parse_retry_after_edge_cases(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_statuses_are_unavailable_after_one_quick_retry(
    make_harness: Callable[..., Harness], status: int
) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).respond(status)
        results = h.client.infer(h.ner, _inputs(3))
    assert all(isinstance(r.error, ServiceUnavailableError) for r in results)
    assert all(r.error and r.error.code is ErrorCode.SERVICE_UNAVAILABLE for r in results)
    assert route.call_count == 2  # one in-call retry, then the readiness path
    assert len(h.sleeps) == 1
    assert h.sleeps[0] < 1.0


def test_a_single_503_blip_is_absorbed_in_call(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    answers = iter([httpx.Response(503), None])

    def side_effect(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer if answer is not None else _echo(request)

    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=side_effect)
        results = h.client.infer(h.ner, _inputs(2))
    assert all(r.ok for r in results)
    assert route.call_count == 2
    assert h.client.stats.retries == 1


@pytest.mark.parametrize(
    ("exc", "calls"),
    [
        (httpx.ConnectError("connection refused"), 2),
        (httpx.ReadTimeout("timed out"), 1),  # slow, not gone: a second wait would double it
        (httpx.RemoteProtocolError("peer closed"), 2),
        (httpx.ReadError("reset"), 2),
    ],
)
def test_transport_failures_are_unavailable(
    make_harness: Callable[..., Harness], exc: Exception, calls: int
) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=exc)
        results = h.client.infer(h.ner, _inputs(2))
    assert all(isinstance(r.error, ServiceUnavailableError) for r in results)
    assert route.call_count == calls


def test_pool_timeout_is_transient(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=httpx.PoolTimeout("pool"))
        results = h.client.infer(h.ner, _inputs(1))
    assert type(results[0].error) is TransientError


def test_500_retried_once_then_ok(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    answers = iter([httpx.Response(500)])

    def flaky(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or _echo(request)

    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=flaky)
        results = h.client.infer(h.ner, _inputs(3))
    assert all(r.ok for r in results)
    assert route.call_count == 2
    assert len(h.sleeps) == 1
    assert 0 < h.sleeps[0] <= 0.5
    assert h.client.stats.retries == 1


def test_500_twice_is_service_error(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).respond(500, text="Traceback CANARY")
        results = h.client.infer(h.ner, _inputs(1))
    err = results[0].error
    assert type(err) is TransientError
    assert err.code is ErrorCode.SERVICE_ERROR
    assert "CANARY" not in str(err)
    assert route.call_count == 2


@pytest.mark.parametrize(
    "respond",
    [
        lambda request: httpx.Response(200, text="<html>CANARY</html>"),
        lambda request: httpx.Response(200, json={"data": [[0, {"outputs": []}]]}),
    ],
)
def test_malformed_response_is_bad_response(
    make_harness: Callable[..., Harness], respond: Callable[[httpx.Request], httpx.Response]
) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        router.post(NER_URL).mock(side_effect=respond)
        results = h.client.infer(h.ner, _inputs(2))
    for result in results:
        assert isinstance(result.error, TransientError)
        assert result.error.code is ErrorCode.BAD_RESPONSE
        assert "CANARY" not in str(result.error)


def test_empty_input(make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL)
        assert h.client.infer(h.ner, []) == []
    assert route.call_count == 0


def test_rows_and_results_keep_phi_out_of_repr() -> None:
    from spcs_gateway.spcs_client import InferenceInput, RowResult

    row = InferenceInput(key="m-1", values=("PHI-CANARY-TEXT",))
    result = RowResult(key="m-1", output=[{"word": "PHI-CANARY-WORD"}], error=None, latency_ms=3)
    assert "PHI-CANARY" not in repr(row)
    assert "PHI-CANARY" not in repr(result)
    assert "m-1" in repr(row)


def test_429_with_a_short_retry_after_is_retried_in_call(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    answers = iter([httpx.Response(429, headers={"Retry-After": "1"}), None])

    def side_effect(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer if answer is not None else _echo(request)

    with respx.mock(assert_all_called=False) as router:
        route = router.post(NER_URL).mock(side_effect=side_effect)
        results = h.client.infer(h.ner, _inputs(1))
    assert results[0].ok
    assert route.call_count == 2
    assert h.sleeps == [pytest.approx(1.0)]  # Retry-After honoured (longer than the jitter)
