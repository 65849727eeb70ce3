"""The SQL surface through the real snowflake-connector-python, against wire.WireProtocol.

Each test starts a small werkzeug server mounting WireProtocol with a stub authenticator (one
known PAT, any user of the account) over a FakeClock-driven account built by the real set-up
SQL (infra/snowflake, ``bootstrap.run_setup``), and stops it afterwards. ``connect()`` logs in
as the gateway's user (GATEWAY_SVC, role SPCS_GATEWAY_ROLE); ``connect(user=ADMIN)`` as the
emulator's administrator (ACCOUNTADMIN). Other modules reuse ``start`` and ``Emulator``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from snowflake.connector.errors import DatabaseError, IntegrityError, ProgrammingError
from werkzeug.serving import make_server
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from spcs_local.emulator.bootstrap import Admin, bootstrap
from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.privileges import ADMIN_USER
from spcs_local.emulator.sqlengine import SqlEngine
from spcs_local.emulator.state import Account, Store
from spcs_local.emulator.wire import AuthRejected, LoginRequest, WireProtocol

NER = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
CLIP = "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE"
PAT = "pat-for-tests-0123456789"
GATEWAY = "GATEWAY_SVC"
ADMIN = ADMIN_USER
RESULTS = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
NOTES = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"
# Client-side variables of the set-up SQL, as the emulator's server passes them.
SETUP_VARIABLES = {"gateway_public_key": "", "lambda_egress_cidrs": "'127.0.0.1/32'"}

# The gateway's statements, exactly as docs/ARCHITECTURE.md gives them (n rows).
MERGE = """MERGE INTO {table} AS t
USING (SELECT column1 AS EVENT_ID, column2 AS KIND, column3 AS SUBJECT_ID, column4 AS SERVICE,
              column5 AS MODEL_VERSION, column6 AS STATUS, PARSE_JSON(column7) AS OUTPUT,
              column8 AS LATENCY_MS, TO_TIMESTAMP_TZ(column9) AS PROCESSED_AT
       FROM VALUES {values}) AS s
ON t.EVENT_ID = s.EVENT_ID
WHEN NOT MATCHED THEN INSERT (EVENT_ID, KIND, SUBJECT_ID, SERVICE, MODEL_VERSION, STATUS,
  OUTPUT, LATENCY_MS, PROCESSED_AT)
VALUES (s.EVENT_ID, s.KIND, s.SUBJECT_ID, s.SERVICE, s.MODEL_VERSION, s.STATUS, s.OUTPUT,
  s.LATENCY_MS, s.PROCESSED_AT)"""


def merge_sql(rows: int) -> str:
    return MERGE.format(table=RESULTS, values=", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


def result_row(event_id: str, output: Any) -> list[Any]:
    return [
        event_id,
        "clinical-note",
        "subject-1",
        NER,
        "V1",
        "SUCCEEDED",
        json.dumps(output),
        42,
        "2024-05-06T07:08:09.123456+00:00",
    ]


@dataclass
class Emulator:
    state_dir: Path
    clock: FakeClock
    store: Store
    account: Account
    engine: SqlEngine
    port: int
    _server: Any
    _thread: threading.Thread

    def admin(self, sql: str, role: str = "ACCOUNTADMIN", **kwargs: Any) -> list[Any]:
        """Run a script as the emulator's administrator acting as ``role`` (rows per
        statement)."""
        return [r.rows for r in Admin(self.engine).run(sql, role=role, **kwargs)]

    def connect(self, **overrides: Any) -> Any:
        kwargs: dict[str, Any] = {
            "account": "localtest",
            "user": GATEWAY,
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
            "authenticator": "PROGRAMMATIC_ACCESS_TOKEN",
            "token": PAT,
            "paramstyle": "qmark",
            "login_timeout": 10,
            "request_timeout": 10,
            "enable_server_session_keep_alive_auto_detection": False,
        }
        kwargs.update(overrides)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return snowflake.connector.connect(**kwargs)

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
        self.store.close()


def authenticate(login: LoginRequest) -> str:
    if login.authenticator == "PROGRAMMATIC_ACCESS_TOKEN" and login.token == PAT:
        return str(login.login_name)
    raise AuthRejected("Programmatic access token is invalid.")


def start(state_dir: Path, clock: FakeClock, **account_kwargs: Any) -> Emulator:
    store = Store(state_dir)
    account = Account(store, clock, resume_seconds=5, **account_kwargs)
    engine = SqlEngine(account, store)
    bootstrap(engine, variables=SETUP_VARIABLES)
    account.set_ingress_url(NER, "127.0.0.1:41001")
    account.set_ingress_url(CLIP, "127.0.0.1:41002")
    wire = WireProtocol(engine, authenticate)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        response = wire.dispatch(Request(environ)) or Response("not found", status=404)
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return Emulator(state_dir, clock, store, account, engine, server.server_port, server, thread)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = start(tmp_path, FakeClock(dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC).timestamp()))
    yield emulator
    emulator.stop()


@pytest.fixture
def cur(emu: Emulator) -> Iterator[Any]:
    conn = emu.connect()
    cursor = conn.cursor()
    yield cursor
    conn.close()


def rows_as_dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def show_service(cursor: Any, name: str = "BIOBERT_NER_SERVICE") -> dict[str, Any]:
    cursor.execute(f"SHOW SERVICES LIKE '{name.lower()}'")
    (row,) = rows_as_dicts(cursor)
    return row


def describe_status(cursor: Any, fqn: str = NER) -> str:
    cursor.execute(f"DESCRIBE SERVICE {fqn}")
    (row,) = rows_as_dicts(cursor)
    return str(row["status"])


def pool(cursor: Any) -> dict[str, Any]:
    cursor.execute("SHOW COMPUTE POOLS")
    (row,) = rows_as_dicts(cursor)
    return row


def test_show_services_columns_and_values(cur: Any) -> None:
    cur.execute("SHOW SERVICES IN ACCOUNT")
    rows = rows_as_dicts(cur)
    assert [r["name"] for r in rows] == ["BIOBERT_NER_SERVICE", "BIOMEDCLIP_SERVICE"]
    first = rows[0]
    for column in [
        "name",
        "status",
        "database_name",
        "schema_name",
        "owner",
        "compute_pool",
        "dns_name",
        "current_instances",
        "target_instances",
        "min_ready_instances",
        "min_instances",
        "max_instances",
        "auto_resume",
        "external_access_integrations",
        "created_on",
        "updated_on",
        "resumed_on",
        "suspended_on",
        "auto_suspend_secs",
        "comment",
        "owner_role_type",
        "query_warehouse",
        "is_job",
        "is_async_job",
        "spec_digest",
        "is_upgrading",
        "managing_object_domain",
        "managing_object_name",
    ]:
        assert column in first
    assert first["status"] == "RUNNING"
    assert first["database_name"] == "PEDIATRIC_ML"
    assert first["compute_pool"] == "ML_INFERENCE_POOL"
    assert first["auto_resume"] == "true"
    assert first["current_instances"] == 1
    assert isinstance(first["created_on"], dt.datetime)
    cur.execute("SHOW SERVICES IN SCHEMA PEDIATRIC_ML.OTHER")
    assert cur.fetchall() == []
    cur.execute("SHOW SERVICES IN COMPUTE POOL ML_INFERENCE_POOL")
    assert len(cur.fetchall()) == 2


def test_show_and_describe_reflect_every_transition(emu: Emulator, cur: Any) -> None:
    cur.execute(f"ALTER SERVICE {NER} SUSPEND")
    assert cur.fetchall() == [("Statement executed successfully.",)]
    assert show_service(cur)["status"] == "SUSPENDED"
    assert describe_status(cur) == "SUSPENDED"
    assert show_service(cur)["suspended_on"] is not None
    cur.execute(f"SHOW SERVICE CONTAINERS IN SERVICE {NER}")
    (container,) = rows_as_dicts(cur)
    assert container["service_status"] == "SUSPENDED"
    assert container["instance_id"] is None

    cur.execute(f"ALTER SERVICE {NER} RESUME")
    assert show_service(cur)["status"] == "PENDING"
    assert describe_status(cur) == "PENDING"
    cur.execute(f"SHOW SERVICE CONTAINERS IN SERVICE {NER}")
    assert [(r["instance_id"], r["status"]) for r in rows_as_dicts(cur)] == [("0", "PENDING")]

    emu.clock.advance(5)
    assert show_service(cur)["status"] == "RUNNING"
    assert describe_status(cur) == "RUNNING"
    cur.execute(f"SHOW SERVICE CONTAINERS IN SERVICE {NER}")
    assert [(r["instance_id"], r["status"]) for r in rows_as_dicts(cur)] == [("0", "READY")]


def test_pool_suspension_cascades(emu: Emulator, cur: Any) -> None:
    assert pool(cur)["state"] == "ACTIVE"
    cur.execute("ALTER COMPUTE POOL ML_INFERENCE_POOL SUSPEND")
    assert pool(cur)["state"] == "SUSPENDED"
    cur.execute("SHOW SERVICES")
    assert {r["status"] for r in rows_as_dicts(cur)} == {"SUSPENDED"}


def test_resume_on_suspended_pool_resumes_the_pool_first(emu: Emulator, cur: Any) -> None:
    cur.execute("ALTER COMPUTE POOL ML_INFERENCE_POOL SUSPEND")
    cur.execute("ALTER SERVICE BIOBERT_NER_SERVICE RESUME")
    assert pool(cur)["state"] == "STARTING"
    assert show_service(cur)["status"] == "PENDING"
    emu.clock.advance(5)
    assert pool(cur)["state"] == "ACTIVE"
    assert show_service(cur)["status"] == "RUNNING"
    assert show_service(cur, "BIOMEDCLIP_SERVICE")["status"] == "SUSPENDED"


def test_resume_on_suspended_pool_without_auto_resume_is_an_error(cur: Any) -> None:
    cur.execute("ALTER COMPUTE POOL ML_INFERENCE_POOL SUSPEND")
    cur.execute("ALTER COMPUTE POOL ML_INFERENCE_POOL SET AUTO_RESUME = FALSE")
    with pytest.raises(ProgrammingError):
        cur.execute("ALTER SERVICE BIOBERT_NER_SERVICE RESUME")
    assert show_service(cur)["status"] == "SUSPENDED"


def test_auto_suspend_secs_is_honoured(emu: Emulator, cur: Any) -> None:
    cur.execute(
        "ALTER SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE SET AUTO_SUSPEND_SECS = 120 "
        "MIN_INSTANCES = 1 MAX_INSTANCES = 2 AUTO_RESUME = TRUE"
    )
    row = show_service(cur)
    assert (row["auto_suspend_secs"], row["max_instances"]) == (120, 2)
    emu.clock.advance(119)
    assert show_service(cur)["status"] == "RUNNING"
    emu.clock.advance(1)
    assert show_service(cur)["status"] == "SUSPENDED"
    assert show_service(cur, "BIOMEDCLIP_SERVICE")["status"] == "RUNNING"


def test_alter_service_errors(cur: Any) -> None:
    with pytest.raises(ProgrammingError) as missing:
        cur.execute("ALTER SERVICE NO_SUCH_SERVICE SUSPEND")
    assert missing.value.errno == 2003
    cur.execute("ALTER SERVICE IF EXISTS NO_SUCH_SERVICE SUSPEND")
    assert cur.fetchall() == [("Statement executed successfully.",)]
    with pytest.raises(ProgrammingError):
        cur.execute(f"ALTER SERVICE {NER} SET MIN_INSTANCES = 3 MAX_INSTANCES = 2")


def test_system_get_service_status(emu: Emulator, cur: Any) -> None:
    cur.execute("SELECT SYSTEM$GET_SERVICE_STATUS(?)", [NER])
    ((value,),) = cur.fetchall()
    (entry,) = json.loads(value)
    assert entry["status"] == "READY"
    assert entry["serviceName"] == "BIOBERT_NER_SERVICE"
    assert entry["instanceId"] == "0"
    assert {"message", "containerName", "image", "restartCount", "startTime"} <= entry.keys()
    cur.execute(f"ALTER SERVICE {NER} SUSPEND")
    cur.execute(f"ALTER SERVICE {NER} RESUME")
    cur.execute(f"SELECT SYSTEM$GET_SERVICE_STATUS('{NER}')")
    assert json.loads(cur.fetchone()[0])[0]["status"] == "PENDING"


def test_system_wait_for_services(emu: Emulator, cur: Any) -> None:
    cur.execute(f"SELECT SYSTEM$WAIT_FOR_SERVICES(1, '{NER}', '{CLIP}')")
    assert cur.fetchone() == ("OK",)
    cur.execute(f"ALTER SERVICE {NER} SUSPEND")
    cur.execute(f"ALTER SERVICE {NER} RESUME")
    with pytest.raises(ProgrammingError):  # the fake clock never reaches READY: times out
        cur.execute(f"SELECT SYSTEM$WAIT_FOR_SERVICES(0.2, '{NER}')")


def test_show_endpoints_gives_the_ingress_url(emu: Emulator, cur: Any) -> None:
    # SHOW ENDPOINTS needs USAGE on the service: the owner's (deployer's) view, not the gateway's.
    with pytest.raises(ProgrammingError) as refused:
        cur.execute(f"SHOW ENDPOINTS IN SERVICE {NER}")
    assert refused.value.errno == 3001
    conn = emu.connect(user=ADMIN, role="MODEL_DEPLOYER_ROLE")
    try:
        owner = conn.cursor()
        owner.execute("SHOW ENDPOINTS IN SERVICE PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE")
        (row,) = rows_as_dicts(owner)
    finally:
        conn.close()
    assert row["ingress_url"] == "127.0.0.1:41001"
    assert (row["name"], row["protocol"], row["is_public"]) == ("inference", "HTTP", "true")


def test_usage_history_is_non_zero_after_uptime(emu: Emulator, cur: Any) -> None:
    emu.clock.advance(2 * 3600)
    cur.execute(
        "SELECT START_TIME, END_TIME, COMPUTE_POOL_NAME, CREDITS_USED FROM TABLE("
        "INFORMATION_SCHEMA.COMPUTE_POOL_USAGE_HISTORY("
        "DATE_RANGE_START => DATEADD('hour', -3, CURRENT_TIMESTAMP()), "
        "COMPUTE_POOL_NAME => 'ML_INFERENCE_POOL')) ORDER BY START_TIME"
    )
    rows = rows_as_dicts(cur)
    assert len(rows) == 2
    assert all(r["COMPUTE_POOL_NAME"] == "ML_INFERENCE_POOL" for r in rows)
    assert all(r["CREDITS_USED"] > 0 for r in rows)
    assert isinstance(rows[0]["START_TIME"], dt.datetime)
    cur.execute(
        "SELECT SUM(CREDITS_USED) AS TOTAL FROM TABLE("
        "INFORMATION_SCHEMA.COMPUTE_POOL_USAGE_HISTORY(START_TIME => '2025-03-01T00:00:00Z'))"
    )
    (total,) = cur.fetchone()
    assert float(total) == pytest.approx(float(sum(r["CREDITS_USED"] for r in rows)))


def test_unsupported_and_invalid_statements_raise_programming_error(cur: Any) -> None:
    for statement in (
        "CREATE STREAM s ON TABLE t",
        "FROBNICATE EVERYTHING",
        "SELECT * FROM PEDIATRIC_ML.RESULTS.NO_SUCH_TABLE",
        "SELECT 1; SELECT 2",
        "SHOW STAGES",
    ):
        with pytest.raises(ProgrammingError):
            cur.execute(statement)
    cur.execute("SELECT 1")  # the session is still usable
    assert cur.fetchone() == (1,)


def test_gateway_merge_twice_gives_one_row_and_in_check(cur: Any) -> None:
    rows = result_row("evt-1", {"outputs": [{"word": "amoxicillin"}]}) + result_row("evt-2", [])
    cur.execute(merge_sql(2), rows)
    assert cur.rowcount == 2
    cur.execute(merge_sql(2), rows)
    assert cur.rowcount == 0
    cur.execute(f"SELECT COUNT(*) FROM {RESULTS}")
    assert cur.fetchone() == (2,)

    cur.execute(
        f"SELECT EVENT_ID FROM {RESULTS} WHERE EVENT_ID IN (?, ?, ?)", ["evt-1", "evt-3", "evt-2"]
    )
    assert sorted(r[0] for r in cur.fetchall()) == ["evt-1", "evt-2"]

    cur.execute(
        f"SELECT OUTPUT, LATENCY_MS, PROCESSED_AT, KIND FROM {RESULTS} WHERE EVENT_ID = ?",
        ["evt-1"],
    )
    output, latency, processed_at, kind = cur.fetchone()
    assert json.loads(output) == {"outputs": [{"word": "amoxicillin"}]}  # VARIANT as JSON text
    assert latency == 42
    assert processed_at == dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    assert kind == "clinical-note"


def test_insert_clinical_notes_and_select(emu: Emulator) -> None:
    notes = NOTES
    conn = emu.connect(user=ADMIN, role="SYSADMIN", warehouse="GATEWAY_WH")  # the table's owner
    cur = conn.cursor()
    cur.execute(
        f"INSERT INTO {notes} (NOTE_ID, PATIENT_ID, NOTE_TYPE, DEPARTMENT, NOTE_DATE, NOTE_TEXT) "
        "VALUES (?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?)",
        ["N1", "P1", "progress", "PICU", "2024-01-02", "text one",
         "N2", "P2", "discharge", "NICU", "2024-01-03", "text two"],
    )  # fmt: skip
    assert cur.rowcount == 2
    cur.execute(
        f"SELECT NOTE_ID, NOTE_DATE FROM {notes} WHERE DEPARTMENT = ? ORDER BY NOTE_ID", ["NICU"]
    )
    assert cur.fetchall() == [("N2", dt.date(2024, 1, 3))]
    cur.execute(f"DELETE FROM {notes} WHERE NOTE_ID = ?", ["N1"])
    assert cur.rowcount == 1
    cur.execute(f"SELECT COUNT(*) FROM {notes}")
    assert cur.fetchone() == (1,)
    conn.close()


def test_create_table_and_not_null(emu: Emulator) -> None:
    conn = emu.connect(user=ADMIN, role="SYSADMIN", warehouse="GATEWAY_WH")
    cur = conn.cursor()
    cur.execute("USE DATABASE PEDIATRIC_ML")
    with pytest.raises(ProgrammingError) as missing:
        cur.execute("USE SCHEMA SCRATCH")  # a schema is created before it is used
    assert missing.value.errno == 2043
    cur.execute("CREATE SCHEMA IF NOT EXISTS SCRATCH")
    cur.execute("USE SCHEMA SCRATCH")
    cur.execute(
        "CREATE OR REPLACE TABLE T1 (ID STRING NOT NULL PRIMARY KEY, N NUMBER(10,2), B BOOLEAN)"
    )
    cur.execute("CREATE TABLE IF NOT EXISTS T1 (ID STRING)")
    with pytest.raises(IntegrityError) as null:  # the connector's class for vendor code 100072
        cur.execute("INSERT INTO T1 (ID, N) VALUES (NULL, 1)")
    assert null.value.errno == 100072
    cur.execute("INSERT INTO PEDIATRIC_ML.SCRATCH.T1 VALUES ('a', 1.25, TRUE)")
    cur.execute("SELECT ID, N, B FROM T1")
    assert cur.fetchall() == [("a", pytest.approx(1.25), True)]
    cur.execute("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), CURRENT_USER(), CURRENT_ROLE()")
    assert cur.fetchone() == ("PEDIATRIC_ML", "SCRATCH", ADMIN, "SYSADMIN")
    conn.close()


def test_default_pyformat_paramstyle_works(emu: Emulator) -> None:
    conn = emu.connect(paramstyle="pyformat")
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT EVENT_ID FROM PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS WHERE EVENT_ID = %s",
            ("it's",),
        )
        assert cursor.fetchall() == []
        cursor.execute("SELECT %s, %s", ("it's", 3))
        assert cursor.fetchone() == ("it's", 3)
    finally:
        conn.close()


def test_failed_login_raises(emu: Emulator) -> None:
    with pytest.raises(DatabaseError) as failure:
        emu.connect(token="not-the-pat")
    assert failure.value.errno == 390144


def test_data_and_statuses_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock(dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp())
    first = start(tmp_path, clock)
    try:
        conn = first.connect()
        cursor = conn.cursor()
        cursor.execute(merge_sql(1), result_row("evt-keep", {"labels": []}))
        cursor.execute(f"ALTER SERVICE {CLIP} SUSPEND")
        cursor.execute(f"ALTER SERVICE {NER} SET AUTO_SUSPEND_SECS = 3600")
        conn.close()
    finally:
        first.stop()

    second = start(tmp_path, clock)
    try:
        conn = second.connect()
        cursor = conn.cursor()
        cursor.execute(f"SELECT EVENT_ID FROM {RESULTS}")
        assert cursor.fetchall() == [("evt-keep",)]
        assert show_service(cursor, "BIOMEDCLIP_SERVICE")["status"] == "SUSPENDED"
        assert show_service(cursor)["auto_suspend_secs"] == 3600
        conn.close()
    finally:
        second.stop()


def _wire(emu_dir: Path) -> tuple[WireProtocol, Store]:
    store = Store(emu_dir)
    engine = SqlEngine(Account(store, FakeClock()), store)
    bootstrap(engine, variables=SETUP_VARIABLES)
    return WireProtocol(engine, authenticate), store


def _client(wire: WireProtocol) -> Client:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        response = wire.dispatch(Request(environ)) or Response("not found", status=404)
        return response(environ, start_response)

    return Client(app)


def test_gzip_requests_and_session_tokens(tmp_path: Path) -> None:
    wire, store = _wire(tmp_path)
    client = _client(wire)
    login = {"data": {"ACCOUNT_NAME": "localtest", "LOGIN_NAME": ADMIN,
                      "AUTHENTICATOR": "PROGRAMMATIC_ACCESS_TOKEN", "TOKEN": PAT}}  # fmt: skip
    answer = client.post(
        "/session/v1/login-request?roleName=SYSADMIN",
        data=gzip.compress(json.dumps(login).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    ).get_json()
    assert answer["success"] is True
    token = answer["data"]["token"]
    assert answer["data"]["sessionInfo"]["roleName"] == "SYSADMIN"

    query = json.dumps({"sqlText": "SELECT CURRENT_ROLE()"}).encode()
    headers = {"Authorization": f'Snowflake Token="{token}"', "Content-Encoding": "gzip"}
    reply = client.post(
        "/queries/v1/query-request", data=gzip.compress(query), headers=headers
    ).get_json()
    assert reply["data"]["rowset"] == [["SYSADMIN"]]
    assert reply["data"]["queryResultFormat"] == "json"

    bad = {"Authorization": 'Snowflake Token="forged"'}
    refused = client.post("/queries/v1/query-request", data=query, headers=bad).get_json()
    assert (refused["success"], refused["code"]) == (False, "390111")

    renewed = client.post(
        "/session/token-request",
        json={"oldSessionToken": token, "requestType": "RENEW"},
        headers={"Authorization": f'Snowflake Token="{answer["data"]["masterToken"]}"'},
    ).get_json()
    assert renewed["success"] is True
    assert renewed["data"]["sessionToken"] != token
    stale = client.post(
        "/queries/v1/query-request",
        data=query,
        headers={"Authorization": f'Snowflake Token="{token}"'},
    )
    assert stale.get_json()["code"] == "390111"

    assert wire.dispatch(Request.from_values("/oauth/token", method="POST")) is None
    store.close()
