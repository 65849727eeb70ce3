"""ResultsSink SQL shapes/bindings/chunking and SnowflakeSql connection reuse, reconnect, errors."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from snowflake.connector import errors as sf_errors

from spcs_gateway.errors import ConfigurationError, ErrorCode, TransientError
from spcs_gateway.results import (
    MERGE_ROWS_PER_STATEMENT,
    SELECT_IDS_PER_STATEMENT,
    ResultRow,
    ResultsSink,
    check_table_name,
    merge_sql,
    select_existing_sql,
)
from spcs_gateway.sql import SnowflakeSql, make_connect

TABLE = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
DOC = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
WHEN = datetime(2025, 1, 15, 9, 30, 0, 123456, tzinfo=UTC)


def row(event_id: str, output: Any = None) -> ResultRow:
    return ResultRow(
        event_id=event_id,
        kind="clinical-note",
        subject_id=f"NOTE-{event_id}",
        service="PEDIATRIC_ML.MODELS.BIOBERT_NER",
        model_version="v1",
        output=output if output is not None else [{"entity": "B-DRUG", "word": "amoxicillin"}],
        latency_ms=12,
        processed_at=WHEN,
    )


class RecordingSql:
    def __init__(self, answers: list[list[tuple[Any, ...]]] | None = None) -> None:
        self.calls: list[tuple[str, list[Any], ErrorCode]] = []
        self.answers = answers or []

    def execute(
        self, sql: str, params: Any = (), *, error_code: ErrorCode = ErrorCode.RESULTS_WRITE_FAILED
    ) -> list[tuple[Any, ...]]:
        self.calls.append((sql, list(params), error_code))
        return self.answers.pop(0) if self.answers else []


def test_merge_sql_is_exactly_the_documented_shape() -> None:
    block = re.search(r"```sql\n(SELECT EVENT_ID.*?)```", DOC.read_text(), re.S)
    assert block is not None
    documented = block.group(1)
    merge = documented[documented.index("MERGE") :].strip().replace("<table>", TABLE)
    assert merge_sql(TABLE, 2) == merge
    select = documented.splitlines()[0].replace("<table>", TABLE).replace("?, ?, ...", "?, ?, ?")
    assert select_existing_sql(TABLE, 3) == select


def test_merge_binds_nine_values_per_row_with_json_output_and_iso_time() -> None:
    sql = RecordingSql()
    output = [{"entity": "B-DISEASE", "word": "otite", "score": 0.5}]
    ResultsSink(sql, TABLE).merge([row("e1", output), row("e2")])

    [(statement, params, code)] = sql.calls
    assert statement == merge_sql(TABLE, 2)
    assert code is ErrorCode.RESULTS_WRITE_FAILED
    assert len(params) == 18
    assert params[:9] == [
        "e1",
        "clinical-note",
        "NOTE-e1",
        "PEDIATRIC_ML.MODELS.BIOBERT_NER",
        "v1",
        "SUCCEEDED",
        json.dumps(output, separators=(",", ":"), ensure_ascii=False),
        12,
        "2025-01-15T09:30:00.123456+00:00",
    ]
    assert json.loads(params[6]) == output


def test_merge_chunks_and_drops_in_batch_duplicates() -> None:
    sql = RecordingSql()
    rows = [row(f"e{i}") for i in range(450)] + [row("e0", output={"other": 1})]
    ResultsSink(sql, TABLE).merge(rows)

    sizes = [len(params) // 9 for _, params, _ in sql.calls]
    assert sizes == [MERGE_ROWS_PER_STATEMENT, MERGE_ROWS_PER_STATEMENT, 50]
    event_ids = [params[i] for _, params, _ in sql.calls for i in range(0, len(params), 9)]
    assert len(event_ids) == len(set(event_ids)) == 450
    assert json.loads(sql.calls[0][1][6]) != {"other": 1}  # the first copy is kept


def test_merge_of_nothing_issues_no_statement() -> None:
    sql = RecordingSql()
    ResultsSink(sql, TABLE).merge([])
    assert sql.calls == []


def test_existing_is_one_select_per_thousand_ids() -> None:
    sql = RecordingSql(answers=[[("e1",), ("e999",)], [("e1500",)], []])
    ids = [f"e{i}" for i in range(2_100)]
    found = ResultsSink(sql, TABLE).existing([*ids, "e1"])  # a repeated id is asked once

    assert found == {"e1", "e999", "e1500"}
    assert [len(params) for _, params, _ in sql.calls] == [SELECT_IDS_PER_STATEMENT, 1_000, 100]
    assert sql.calls[0][0] == select_existing_sql(TABLE, 1_000)
    assert all(code is ErrorCode.DEPENDENCY_ERROR for _, _, code in sql.calls)


@pytest.mark.parametrize(
    "name",
    ["T; DROP TABLE X", "DB.SCH.T --", '"quoted"', "A.B.C.D", "1ABC", "DB..T", ""],
)
def test_table_name_must_be_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        check_table_name(name)
    with pytest.raises(ValueError, match="identifier"):
        ResultsSink(RecordingSql(), name)


# -- SnowflakeSql --------------------------------------------------------------------------------


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: list[Any] | None = None
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: list[Any]) -> None:
        self.conn.executed.append((sql, params))
        if self.conn.fail_with:
            raise self.conn.fail_with.pop(0)
        self.description = [("EVENT_ID",)]
        self._rows = [(p,) for p in params]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class FakeConnection:
    def __init__(self, fail_with: list[Exception] | None = None) -> None:
        self.fail_with = fail_with or []
        self.executed: list[tuple[str, list[Any]]] = []
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class Connector:
    def __init__(self, *connections: FakeConnection) -> None:
        self.pending = list(connections)
        self.opened: list[FakeConnection] = []

    def __call__(self) -> Any:
        conn = self.pending.pop(0)
        self.opened.append(conn)
        return conn


PHI_IN_ERROR = "SQL compilation error near 'Jane Roe leukemia'"


def test_connection_is_lazy_and_reused() -> None:
    connector = Connector(FakeConnection())
    sql = SnowflakeSql(connector)
    assert connector.opened == []
    assert sql.execute("SELECT ?", ["a"]) == [("a",)]
    assert sql.execute("SELECT ?", ["b"]) == [("b",)]
    assert len(connector.opened) == 1
    assert sql.connects == 1


def test_closed_connection_is_replaced_before_use() -> None:
    first, second = FakeConnection(), FakeConnection()
    sql = SnowflakeSql(Connector(first, second))
    sql.execute("SELECT 1")
    first.closed = True
    sql.execute("SELECT 2")
    assert second.executed == [("SELECT 2", [])]


@pytest.mark.parametrize(
    "gone",
    [
        sf_errors.OperationalError(msg=PHI_IN_ERROR, errno=250003),
        sf_errors.ProgrammingError(msg="Session no longer exists", errno=390111),
        sf_errors.DatabaseError(msg="Authentication token has expired", errno=390114),
    ],
)
def test_expired_session_reconnects_once_and_retries(gone: Exception) -> None:
    first, second = FakeConnection(fail_with=[gone]), FakeConnection()
    sql = SnowflakeSql(Connector(first, second))
    assert sql.execute("MERGE ...", [1]) == [(1,)]
    assert first.closed
    assert sql.connects == 2


def test_second_failure_becomes_transient_without_connector_text() -> None:
    gone = sf_errors.OperationalError(msg=PHI_IN_ERROR, errno=250003)
    again = sf_errors.OperationalError(msg=PHI_IN_ERROR, errno=250003)
    sql = SnowflakeSql(
        Connector(FakeConnection(fail_with=[gone]), FakeConnection(fail_with=[again]))
    )
    with pytest.raises(TransientError) as caught:
        sql.execute("MERGE ...", [1])
    err = caught.value
    assert err.code is ErrorCode.RESULTS_WRITE_FAILED
    assert "Jane" not in str(err)
    assert "250003" in str(err)
    assert err.__cause__ is None
    assert err.__suppress_context__


def test_sql_error_is_not_retried_and_uses_callers_code() -> None:
    bad = sf_errors.ProgrammingError(msg=PHI_IN_ERROR, errno=1003)
    connector = Connector(FakeConnection(fail_with=[bad]), FakeConnection())
    sql = SnowflakeSql(connector)
    with pytest.raises(TransientError) as caught:
        sql.execute("SELECT ...", [], error_code=ErrorCode.DEPENDENCY_ERROR)
    assert caught.value.code is ErrorCode.DEPENDENCY_ERROR
    assert "Jane" not in str(caught.value)
    assert len(connector.opened) == 1


def test_login_failure_is_a_dependency_error() -> None:
    def refuse() -> Any:
        raise sf_errors.DatabaseError(msg="login failed for Jane Roe", errno=250001)

    with pytest.raises(TransientError) as caught:
        SnowflakeSql(refuse).execute("SELECT 1")
    assert caught.value.code is ErrorCode.DEPENDENCY_ERROR
    assert "Jane" not in str(caught.value)


@pytest.mark.parametrize(
    ("errno", "code"),
    [
        (390100, ErrorCode.AUTH_FAILED),
        (390189, ErrorCode.PRIVILEGE_MISSING),
        (390422, ErrorCode.CONFIGURATION_ERROR),
    ],
)
def test_a_refused_login_is_a_configuration_fault(errno: int, code: ErrorCode) -> None:
    def refuse() -> Any:
        raise sf_errors.DatabaseError(msg="user Jane Roe refused", errno=errno)

    with pytest.raises(ConfigurationError) as caught:
        SnowflakeSql(refuse).execute("SELECT 1")
    assert caught.value.code is code
    assert "Jane" not in str(caught.value)


@pytest.mark.parametrize("errno", [2003, 3001])
def test_a_missing_grant_is_privilege_missing_not_transient(errno: int) -> None:
    bad = sf_errors.ProgrammingError(msg=PHI_IN_ERROR, errno=errno)
    sql = SnowflakeSql(Connector(FakeConnection(fail_with=[bad])))
    with pytest.raises(ConfigurationError) as caught:
        sql.execute("MERGE ...", [])
    assert caught.value.code is ErrorCode.PRIVILEGE_MISSING
    assert "Jane" not in str(caught.value)


class KwargsTokens:
    def connector_kwargs(self) -> dict[str, Any]:
        return {"account": "acct", "user": "svc", "authenticator": "SNOWFLAKE_JWT"}


def test_make_connect_passes_qmark_and_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(snowflake.connector, "connect", lambda **kw: seen.update(kw) or "conn")
    monkeypatch.setenv("HOME", "/nonexistent/home")

    assert make_connect(KwargsTokens(), login_timeout=7)() == "conn"  # type: ignore[arg-type]

    assert seen["paramstyle"] == "qmark"
    assert seen["client_session_keep_alive"] is False
    assert seen["login_timeout"] == 7
    assert seen["account"] == "acct"
    assert {"query_timeout", "request_timeout"} <= set(seen)
    assert "network_timeout" not in seen  # deprecated in connector 5.x
    # An unwritable HOME (Lambda) is pointed at the temp dir for the connector's caches.
    assert os.environ["HOME"] == tempfile.gettempdir()
