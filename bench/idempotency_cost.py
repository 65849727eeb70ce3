"""Cost per 10-record batch of the two ways to avoid a second inference for a redelivered event.

(a) Powertools Idempotency per record, DynamoDB persistence (moto, in process).
(b) The batch-level check the pipeline uses: one ``SELECT EVENT_ID ... IN (...)`` per batch
    (``ResultsSink.existing``) against the local Snowflake emulator through the real connector.

Both are timed for a first delivery (10 new events) and a redelivery (10 known events); (a) also
counts DynamoDB calls. Numbers are loopback/in-process: they show the shape (calls per batch),
not cloud latency. Run: ``.venv/bin/python bench/idempotency_cost.py [--registry PATH]``; without
``--registry`` the emulator is started in a subprocess and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BATCH = 10
ROUNDS = 30


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def bench_powertools_idempotency() -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from moto import mock_aws

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        calls: list[str] = []
        ddb.meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
        )
        layer = DynamoDBPersistenceLayer(table_name="idempotency", boto3_client=ddb)
        # Status only: the stored "result" is a constant marker, never model output.
        config = IdempotencyConfig(event_key_jmespath="event_id", use_local_cache=False)

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="record", persistence_store=layer, config=config
        )
        def process(record: dict[str, str]) -> str:
            return "SUCCEEDED"

        first: list[float] = []
        again: list[float] = []
        first_calls = again_calls = 0
        for round_no in range(ROUNDS):
            records = [{"event_id": f"r{round_no}-e{i}"} for i in range(BATCH)]
            calls.clear()
            start = time.perf_counter()
            for record in records:
                process(record=record)
            first.append(time.perf_counter() - start)
            first_calls = len(calls)
            calls.clear()
            start = time.perf_counter()
            for record in records:
                process(record=record)
            again.append(time.perf_counter() - start)
            again_calls = len(calls)
    return {
        "first_delivery_ms": _median_ms(first),
        "redelivery_ms": _median_ms(again),
        "dynamodb_calls_first": first_calls,
        "dynamodb_calls_redelivery": again_calls,
    }


@contextmanager
def _emulator(registry: str | None) -> Iterator[str]:
    if registry:
        yield registry
        return
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "registry.json"
        log = (Path(tmp) / "emulator.out").open("wb")
        cmd = [
            sys.executable, "-m", "spcs_local.cli", "emulator", "--port", "0",
            "--state-dir", str(Path(tmp) / "state"), "--config-out", str(out_path),
        ]  # fmt: skip
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            deadline = time.monotonic() + 30
            while not out_path.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("emulator did not start")
                time.sleep(0.05)
            yield str(out_path)
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()


def bench_batch_select(registry_path: str) -> dict[str, Any]:
    from spcs_gateway.auth import TokenProvider
    from spcs_gateway.http import build_http_client
    from spcs_gateway.registry import load_registry
    from spcs_gateway.results import ResultRow, ResultsSink
    from spcs_gateway.secrets import CredentialSource
    from spcs_gateway.sql import SnowflakeSql, make_connect

    registry = load_registry({"SPCS_GATEWAY_REGISTRY_FILE": registry_path})
    http = build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    sql = SnowflakeSql(make_connect(tokens))
    sink = ResultsSink(sql, registry.snowflake.results_table)
    statements: list[str] = []
    real_execute: Callable[..., Any] = sql.execute

    def counting_execute(statement: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(statement.split()[0])
        return real_execute(statement, *args, **kwargs)

    sql.execute = counting_execute  # type: ignore[method-assign,assignment]
    try:
        start = time.perf_counter()
        sink.existing(["warm-up"])  # the login is paid once per container, not per batch
        login_ms = round((time.perf_counter() - start) * 1000, 1)
        first: list[float] = []
        again: list[float] = []
        for round_no in range(ROUNDS):
            ids = [f"b{round_no}-{time.time_ns()}-e{i}" for i in range(BATCH)]
            statements.clear()
            start = time.perf_counter()
            sink.existing(ids)
            first.append(time.perf_counter() - start)
            selects = statements.count("SELECT")
            now = datetime.now(UTC)
            sink.merge(
                [ResultRow(e, "clinical-note", e, "DB.S.SVC", "V1", {"ok": 1}, 1, now) for e in ids]
            )
            start = time.perf_counter()
            assert sink.existing(ids) == set(ids)
            again.append(time.perf_counter() - start)
    finally:
        sql.close()
        http.close()
    return {
        "login_ms_once_per_container": login_ms,
        "first_delivery_ms": _median_ms(first),
        "redelivery_ms": _median_ms(again),
        "statements_per_batch": selects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="an emulator --config-out registry (else start one)")
    args = parser.parse_args()
    results: dict[str, Any] = {"batch_size": BATCH, "rounds": ROUNDS}
    results["powertools_idempotency_moto_dynamodb"] = bench_powertools_idempotency()
    try:
        with _emulator(args.registry) as registry:
            results["batch_select_emulator"] = bench_batch_select(registry)
    except (ImportError, RuntimeError) as exc:
        results["batch_select_emulator"] = f"not measured: {type(exc).__name__}"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
