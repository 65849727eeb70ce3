"""ResultsSink + SnowflakeSql + TokenProvider.connector_kwargs() against the running emulator,
through the real snowflake-connector-python: MERGE twice gives one row per event_id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from spcs_gateway.auth import TokenProvider
from spcs_gateway.http import build_http_client
from spcs_gateway.registry import parse_registry
from spcs_gateway.results import ResultRow, ResultsSink
from spcs_gateway.secrets import CredentialSource
from spcs_gateway.sql import SnowflakeSql, make_connect

pytestmark = pytest.mark.emulator


def _row(event_id: str, output: Any) -> ResultRow:
    return ResultRow(
        event_id=event_id,
        kind="clinical-note",
        subject_id=f"NOTE-{event_id}",
        service="PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
        model_version="V1",
        output=output,
        latency_ms=17,
        processed_at=datetime(2025, 1, 15, 9, 30, 0, tzinfo=UTC),
    )


def test_merge_twice_keeps_one_row_per_event(emulator: Any) -> None:
    registry = parse_registry(emulator.config)
    http = build_http_client()
    tokens = TokenProvider(registry.snowflake, CredentialSource(registry.snowflake), http)
    sql = SnowflakeSql(make_connect(tokens))
    sink = ResultsSink(sql, registry.snowflake.results_table)
    table = registry.snowflake.results_table
    ids = ["gw-int-1", "gw-int-2"]
    try:
        assert sink.existing(ids) == set()
        first = [{"entity": "B-DRUG", "word": "amoxicillin", "score": 0.98}]
        sink.merge([_row("gw-int-1", first), _row("gw-int-2", [])])
        # A redelivery with a different output must not add or change a row.
        sink.merge([_row("gw-int-1", [{"entity": "B-DISEASE"}]), _row("gw-int-1", [])])

        assert sink.existing([*ids, "gw-int-unknown"]) == set(ids)
        counts = sql.execute(
            f"SELECT EVENT_ID, COUNT(*) FROM {table} WHERE EVENT_ID IN (?, ?) GROUP BY EVENT_ID",
            ids,
        )
        assert sorted(counts) == [("gw-int-1", 1), ("gw-int-2", 1)]
        [(output, status, latency)] = sql.execute(
            f"SELECT OUTPUT, STATUS, LATENCY_MS FROM {table} WHERE EVENT_ID = ?", ["gw-int-1"]
        )
        assert json.loads(output) == first
        assert (status, int(latency)) == ("SUCCEEDED", 17)
        assert sql.connects == 1  # one login reused for every statement
    finally:
        sql.close()
        http.close()
