"""Roles, grants and ownership as Snowflake enforces them, through snowflake-connector-python.

The account is the one infra/snowflake/*.sql builds (test_emu_sql_wire.start); the gateway's
user GATEWAY_SVC logs in with SPCS_GATEWAY_ROLE. Another team's service and job share the
gateway's compute pool, owned by a role the gateway cannot see.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from snowflake.connector.errors import DatabaseError, ProgrammingError
from test_emu_sql_wire import (
    ADMIN,
    CLIP,
    NER,
    NOTES,
    RESULTS,
    Emulator,
    merge_sql,
    result_row,
    rows_as_dicts,
    start,
)

from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.state import ServiceSpec
from spcs_models import spec as model_spec

POOL = "ML_INFERENCE_POOL"
OTHER_ROLE = "OTHER_TEAM_ROLE"
OTHER_SVC = "PEDIATRIC_ML.MODELS.OTHER_TEAM_SERVICE"
OTHER_JOB = "PEDIATRIC_ML.MODELS.OTHER_TEAM_JOB"
GATEWAY_ROLE = "SPCS_GATEWAY_ROLE"
T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    emulator = start(tmp_path, FakeClock(T0), min_zero_idle_secs=600)
    yield emulator
    emulator.stop()


@pytest.fixture
def cur(emu: Emulator) -> Iterator[Any]:
    conn = emu.connect()
    yield conn.cursor()
    conn.close()


def add_other_team(emu: Emulator) -> None:
    """A service and a job of another team on the gateway's pool (their role, not granted to
    the gateway's)."""
    emu.admin(
        f"CREATE ROLE IF NOT EXISTS {OTHER_ROLE};\n"
        f"GRANT USAGE ON DATABASE PEDIATRIC_ML TO ROLE {OTHER_ROLE};\n"
        f"GRANT USAGE ON SCHEMA PEDIATRIC_ML.MODELS TO ROLE {OTHER_ROLE}"
    )
    emu.account.create_service(ServiceSpec(OTHER_SVC, POOL, public=False), OTHER_ROLE)
    emu.account.create_service(
        ServiceSpec(OTHER_JOB, POOL, public=False, is_job=True), OTHER_ROLE, job_seconds=300
    )


def services(cur: Any, clause: str = "") -> dict[str, dict[str, Any]]:
    cur.execute(f"SHOW SERVICES{clause}")
    return {f"{r['database_name']}.{r['schema_name']}.{r['name']}": r for r in rows_as_dicts(cur)}


def pool_row(cur: Any) -> dict[str, Any]:
    cur.execute(f"SHOW COMPUTE POOLS LIKE '{POOL}'")
    (row,) = rows_as_dicts(cur)
    return row


def error_of(cur: Any, sql: str, *args: Any) -> ProgrammingError:
    with pytest.raises(ProgrammingError) as info:
        cur.execute(sql, *args)
    return info.value


# -- visibility ---------------------------------------------------------------------------------


def test_show_services_hides_another_owners_service_but_the_pool_counts_it(
    emu: Emulator, cur: Any
) -> None:
    add_other_team(emu)
    assert set(services(cur)) == {NER, CLIP}
    assert set(services(cur, f" IN COMPUTE POOL {POOL}")) == {NER, CLIP}
    pool = pool_row(cur)
    assert (pool["num_services"], pool["num_jobs"]) == (4, 1)  # every owner's, jobs included
    assert pool["owner"] == "ACCOUNTADMIN"
    assert pool["active_nodes"] + pool["idle_nodes"] <= pool["max_nodes"]

    # Suspending the gateway's two services leaves the pool ACTIVE: somebody else runs on it.
    cur.execute(f"ALTER SERVICE {NER} SUSPEND")
    cur.execute(f"ALTER SERVICE {CLIP} SUSPEND")
    pool = pool_row(cur)
    assert (pool["state"], pool["num_services"]) == ("ACTIVE", 2)
    emu.clock.advance(300)  # the job is done
    assert (pool_row(cur)["num_services"], pool_row(cur)["num_jobs"]) == (1, 0)

    admin = emu.connect(user=ADMIN)
    try:
        seen = services(admin.cursor())
        assert set(seen) == {NER, CLIP, OTHER_SVC, OTHER_JOB}
        assert seen[OTHER_SVC]["owner"] == OTHER_ROLE
        assert seen[OTHER_JOB]["is_job"] == "true"
        assert seen[OTHER_JOB]["status"] == "DONE"
        assert seen[NER]["owner"] == "MODEL_DEPLOYER_ROLE"
        assert set(services(admin.cursor(), " EXCLUDE JOBS")) == {NER, CLIP, OTHER_SVC}
    finally:
        admin.close()


def test_alter_service_not_visible_not_authorized_and_if_exists_trap(
    emu: Emulator, cur: Any
) -> None:
    add_other_team(emu)
    missing = error_of(cur, f"ALTER SERVICE {OTHER_SVC} SUSPEND")
    assert (missing.errno, missing.sqlstate) == (2003, "02000")
    assert missing.raw_msg == (
        f"SQL compilation error:\nService '{OTHER_SVC}' does not exist or not authorized."
    )
    # The trap: IF EXISTS turns "not authorized" into a silent success that changes nothing.
    cur.execute(f"ALTER SERVICE IF EXISTS {OTHER_SVC} SUSPEND")
    assert cur.fetchall() == [("Statement executed successfully.",)]
    assert emu.account.service(OTHER_SVC).status == "RUNNING"

    # Visible (MONITOR) but not operable.
    emu.admin(f"GRANT MONITOR ON SERVICE {OTHER_SVC} TO ROLE {GATEWAY_ROLE}", role=OTHER_ROLE)
    assert OTHER_SVC in services(cur)
    for statement in (
        f"ALTER SERVICE {OTHER_SVC} SUSPEND",
        f"ALTER SERVICE IF EXISTS {OTHER_SVC} SUSPEND",
        f"ALTER SERVICE {OTHER_SVC} SET AUTO_SUSPEND_SECS = 60",
    ):
        refused = error_of(cur, statement)
        assert (refused.errno, refused.sqlstate) == (3001, "42501")
        assert refused.raw_msg == (
            "SQL access control error:\n"
            "Insufficient privileges to operate on service 'OTHER_TEAM_SERVICE'"
        )
    assert emu.account.service(OTHER_SVC).status == "RUNNING"
    cur.execute(f"SHOW SERVICE CONTAINERS IN SERVICE {OTHER_SVC}")  # MONITOR is enough here
    assert rows_as_dicts(cur)[0]["status"] == "READY"
    assert error_of(cur, f"SHOW ENDPOINTS IN SERVICE {OTHER_SVC}").errno == 3001


def test_compute_pool_needs_a_privilege_to_see_and_operate_to_alter(
    emu: Emulator, cur: Any
) -> None:
    emu.admin(
        "CREATE COMPUTE POOL IF NOT EXISTS OTHER_POOL MIN_NODES = 1 MAX_NODES = 1 "
        "INSTANCE_FAMILY = CPU_X64_XS"
    )
    cur.execute("SHOW COMPUTE POOLS")
    assert [r["name"] for r in rows_as_dicts(cur)] == [POOL]
    assert error_of(cur, "ALTER COMPUTE POOL OTHER_POOL SUSPEND").errno == 2003
    cur.execute("ALTER COMPUTE POOL IF EXISTS OTHER_POOL SUSPEND")
    assert emu.account.pool("OTHER_POOL").state == "IDLE"

    emu.admin(f"GRANT MONITOR ON COMPUTE POOL OTHER_POOL TO ROLE {GATEWAY_ROLE}")
    cur.execute("SHOW COMPUTE POOLS")
    assert [r["name"] for r in rows_as_dicts(cur)] == [POOL, "OTHER_POOL"]
    refused = error_of(cur, "ALTER COMPUTE POOL OTHER_POOL SUSPEND")
    assert refused.errno == 3001
    assert "compute pool 'OTHER_POOL'" in refused.raw_msg

    emu.admin(f"REVOKE OPERATE ON COMPUTE POOL {POOL} FROM ROLE {GATEWAY_ROLE}")
    assert error_of(cur, f"ALTER COMPUTE POOL {POOL} SUSPEND").errno == 3001
    assert emu.account.pool(POOL).state == "ACTIVE"


def test_revoke_takes_privileges_and_the_endpoint_role_away(emu: Emulator, cur: Any) -> None:
    account = emu.account
    assert account.role_can_use_endpoint(GATEWAY_ROLE, NER)
    assert account.role_can_use_endpoint("MODEL_DEPLOYER_ROLE", NER)  # the owner
    assert account.role_can_use_endpoint("SYSADMIN", NER)  # inherits the owner
    assert not account.role_can_use_endpoint("PUBLIC", NER)
    assert not account.role_can_use_endpoint("NO_SUCH_ROLE", NER)
    assert account.user_default_role("gateway_svc") == GATEWAY_ROLE

    emu.admin(f"REVOKE OPERATE ON SERVICE {NER} FROM ROLE {GATEWAY_ROLE}", role="SYSADMIN")
    assert error_of(cur, f"ALTER SERVICE {NER} SUSPEND").errno == 3001
    assert NER in services(cur)  # MONITOR still shows it

    emu.admin(
        f"REVOKE MONITOR ON SERVICE {NER} FROM ROLE {GATEWAY_ROLE};\n"
        f"REVOKE SERVICE ROLE {NER}!ALL_ENDPOINTS_USAGE FROM ROLE {GATEWAY_ROLE}",
        role="MODEL_DEPLOYER_ROLE",
    )
    assert set(services(cur)) == {CLIP}
    assert error_of(cur, f"ALTER SERVICE {NER} RESUME").errno == 2003
    assert not account.role_can_use_endpoint(GATEWAY_ROLE, NER)
    assert account.role_can_use_endpoint(GATEWAY_ROLE, CLIP)

    cur.execute(f"SHOW GRANTS TO ROLE {GATEWAY_ROLE}")
    names = {(r["privilege"], r["granted_on"], r["name"]) for r in rows_as_dicts(cur)}
    assert ("USAGE", "SERVICE_ROLE", f"{CLIP}!ALL_ENDPOINTS_USAGE") in names
    assert not any(name.startswith(NER) for _, _, name in names)


def test_show_grants_columns_and_who_may_look(emu: Emulator, cur: Any) -> None:
    cur.execute(f"SHOW GRANTS TO ROLE {GATEWAY_ROLE}")
    rows = rows_as_dicts(cur)
    assert list(rows[0]) == [
        "created_on",
        "privilege",
        "granted_on",
        "name",
        "granted_to",
        "grantee_name",
        "grant_option",
        "granted_by",
    ]
    grants = {(r["privilege"], r["granted_on"], r["name"]): r for r in rows}
    assert grants[("OPERATE", "SERVICE", NER)]["granted_by"] == "MODEL_DEPLOYER_ROLE"
    assert ("INSERT", "TABLE", RESULTS) in grants
    assert ("USAGE", "MODEL", "PEDIATRIC_ML.MODELS.BIOBERT_NER") in grants
    assert all(r["grantee_name"] == GATEWAY_ROLE for r in rows)
    assert error_of(cur, "SHOW GRANTS TO ROLE SYSADMIN").errno == 3001
    cur.execute("SHOW GRANTS TO USER GATEWAY_SVC")
    assert [(r["role"], r["granted_to"]) for r in rows_as_dicts(cur)] == [(GATEWAY_ROLE, "USER")]


# -- tables ---------------------------------------------------------------------------------------


def test_table_privileges_are_checked_before_anything_runs(emu: Emulator, cur: Any) -> None:
    cur.execute(merge_sql(1), result_row("evt-1", []))  # SELECT + INSERT: granted
    assert cur.rowcount == 1
    for statement in (
        f"DELETE FROM {RESULTS} WHERE 1 = 0",  # no row would change: still refused
        f"UPDATE {RESULTS} SET STATUS = 'X' WHERE EVENT_ID = 'none'",
        f"TRUNCATE TABLE {RESULTS}",
        f"MERGE INTO {RESULTS} AS t USING (SELECT 'e' AS EVENT_ID) AS s "
        "ON t.EVENT_ID = s.EVENT_ID WHEN MATCHED THEN UPDATE SET STATUS = 'X'",
    ):
        refused = error_of(cur, statement)
        assert (refused.errno, refused.sqlstate) == (3001, "42501"), statement
        assert refused.raw_msg.endswith(
            "Insufficient privileges to operate on table 'INFERENCE_RESULTS'"
        )
    # Notes: no privilege at all, so the table is not even visible.
    hidden = error_of(cur, f"INSERT INTO {NOTES} (NOTE_ID) VALUES ('n')")
    assert hidden.raw_msg == (
        f"SQL compilation error:\nObject '{NOTES}' does not exist or not authorized."
    )
    assert error_of(cur, f"SELECT COUNT(*) FROM {NOTES}").errno == 2003

    emu.admin(f"REVOKE INSERT ON TABLE {RESULTS} FROM ROLE {GATEWAY_ROLE}", role="SECURITYADMIN")
    assert error_of(cur, merge_sql(1), result_row("evt-2", [])).errno == 3001
    cur.execute(f"SELECT COUNT(*) FROM {RESULTS}")
    assert cur.fetchone() == (1,)


def test_table_statements_need_a_usable_warehouse(emu: Emulator) -> None:
    conn = emu.connect(warehouse="NO_SUCH_WH")  # the session then has none, as in Snowflake
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_WAREHOUSE()")
        assert cur.fetchone() == (None,)
        refused = error_of(cur, f"SELECT COUNT(*) FROM {RESULTS}")
        assert (refused.errno, refused.sqlstate) == (606, "57P03")
        assert error_of(cur, "USE WAREHOUSE NO_SUCH_WH").errno == 2043
        cur.execute("USE WAREHOUSE GATEWAY_WH")
        cur.execute(f"SELECT COUNT(*) FROM {RESULTS}")
        assert cur.fetchone() == (0,)
    finally:
        conn.close()


# -- sessions and logins ------------------------------------------------------------------------


def test_login_role_use_role_and_secondary_roles(emu: Emulator, cur: Any) -> None:
    cur.execute("SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()")
    assert cur.fetchone() == (GATEWAY_ROLE, "GATEWAY_WH")
    refused = error_of(cur, "USE ROLE SYSADMIN")
    assert (refused.errno, refused.sqlstate) == (3013, "42501")
    cur.execute("USE ROLE PUBLIC")
    assert error_of(cur, f"SELECT COUNT(*) FROM {RESULTS}").errno in {606, 2003}
    with pytest.raises(DatabaseError) as login:
        emu.connect(role="ACCOUNTADMIN")
    assert login.value.errno == 390189
    with pytest.raises(DatabaseError) as unknown:
        emu.connect(user="NOBODY")
    assert unknown.value.errno == 390100

    # DEFAULT_SECONDARY_ROLES = () (04): a role granted later adds nothing to the session.
    emu.admin(
        "CREATE ROLE IF NOT EXISTS NOTES_READER;\n"
        f"GRANT USAGE ON DATABASE PEDIATRIC_ML TO ROLE NOTES_READER;\n"
        f"GRANT USAGE ON SCHEMA PEDIATRIC_ML.CLINICAL_DATA TO ROLE NOTES_READER;\n"
        f"GRANT SELECT ON TABLE {NOTES} TO ROLE NOTES_READER;\n"
        "GRANT ROLE NOTES_READER TO USER GATEWAY_SVC"
    )
    fresh = emu.connect()
    try:
        again = fresh.cursor()
        assert error_of(again, f"SELECT COUNT(*) FROM {NOTES}").errno == 2003
        again.execute("USE SECONDARY ROLES ALL")
        again.execute(f"SELECT COUNT(*) FROM {NOTES}")
        assert again.fetchone() == (0,)
    finally:
        fresh.close()


def test_network_policy_is_enforced_at_login(emu: Emulator) -> None:
    emu.connect().close()  # 127.0.0.1/32 is allowed (05, lambda_egress_cidrs)
    emu.admin(
        "ALTER NETWORK RULE PEDIATRIC_ML.NETWORK.GATEWAY_LAMBDA_EGRESS SET "
        "VALUE_LIST = ('203.0.113.10/32')"
    )
    with pytest.raises(DatabaseError) as refused:
        emu.connect()
    assert refused.value.errno == 390422
    emu.connect(user=ADMIN).close()  # no policy on the administrator


# -- models ------------------------------------------------------------------------------------


def test_show_versions_model_spec_round_trips_the_deployed_signature(cur: Any) -> None:
    cur.execute("SHOW VERSIONS IN MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER")
    (plain,) = rows_as_dicts(cur)
    assert "model_spec" not in plain  # only with the session flag, as snowflake-ml sets it
    cur.execute("ALTER SESSION SET SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL = TRUE")
    for deployment in model_spec.DEPLOYMENTS:
        cur.execute(f"SHOW VERSIONS LIKE 'v1' IN MODEL {deployment.model_name}")
        (row,) = rows_as_dicts(cur)
        assert (row["name"], row["is_default_version"]) == ("V1", "true")
        assert (row["database_name"], row["schema_name"]) == ("PEDIATRIC_ML", "MODELS")
        assert row["model_name"] == deployment.model_name.rsplit(".", 1)[1]
        assert yaml.safe_load(row["functions"]) == ["PREDICT"]
        spec = yaml.safe_load(row["model_spec"])
        assert spec["signatures"] == {deployment.method: deployment.signature.to_dict()}
    cur.execute("SHOW VERSIONS LIKE 'V2' IN MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER")
    assert cur.fetchall() == []
    cur.execute("SHOW FUNCTIONS IN MODEL PEDIATRIC_ML.MODELS.BIOMEDCLIP_CLASSIFIER VERSION V1")
    (function,) = rows_as_dicts(cur)
    assert (function["name"], function["min_num_arguments"], function["max_num_arguments"]) == (
        "PREDICT",
        2,
        3,
    )


def test_show_versions_needs_a_privilege_on_the_model(emu: Emulator, cur: Any) -> None:
    emu.admin(
        f"REVOKE USAGE ON MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER FROM ROLE {GATEWAY_ROLE}",
        role="MODEL_DEPLOYER_ROLE",
    )
    hidden = error_of(cur, "SHOW VERSIONS IN MODEL PEDIATRIC_ML.MODELS.BIOBERT_NER")
    assert hidden.raw_msg == (
        "SQL compilation error:\n"
        "Model 'PEDIATRIC_ML.MODELS.BIOBERT_NER' does not exist or not authorized."
    )
    cur.execute("SHOW MODELS IN SCHEMA PEDIATRIC_ML.MODELS")
    assert [r["name"] for r in rows_as_dicts(cur)] == ["BIOMEDCLIP_CLASSIFIER"]


def test_min_instances_zero_lets_snowflake_suspend_the_service(emu: Emulator, cur: Any) -> None:
    # snowflake-ml-python's default: min_instances=0 (the deployment tool pins 1 instead).
    lazy = dataclasses.replace(
        model_spec.NER,
        logical_name="biobert_ner_lazy",
        service="PEDIATRIC_ML.MODELS.BIOBERT_NER_LAZY_SERVICE",
        settings=dataclasses.replace(model_spec.NER.settings, min_instances=0),
    )
    fqn = emu.account.create_model_service(lazy, "MODEL_DEPLOYER_ROLE")
    emu.admin(f"GRANT MONITOR ON SERVICE {fqn} TO ROLE {GATEWAY_ROLE}", role="SYSADMIN")
    assert services(cur)[fqn]["min_instances"] == 0
    emu.clock.advance(599)
    assert services(cur)[fqn]["status"] == "RUNNING"
    emu.clock.advance(1)  # Snowflake's own idle timer (min_zero_idle_secs here)
    assert services(cur)[fqn]["status"] == "SUSPENDED"
    assert services(cur)[NER]["status"] == "RUNNING"  # pinned by 08: MIN_INSTANCES = 1
    reasons = [t.reason for t in emu.account.transitions(fqn) if t.to_state == "SUSPENDED"]
    assert reasons == ["idle with MIN_INSTANCES = 0"]


def test_a_public_endpoint_needs_bind_service_endpoint(emu: Emulator) -> None:
    emu.admin("REVOKE BIND SERVICE ENDPOINT ON ACCOUNT FROM ROLE MODEL_DEPLOYER_ROLE")
    other = dataclasses.replace(
        model_spec.BIOMEDCLIP,
        logical_name="clip2",
        service="PEDIATRIC_ML.MODELS.CLIP2_SERVICE",
        version="V2",
    )
    from spcs_local.emulator.privileges import AccessError

    with pytest.raises(AccessError) as refused:
        emu.account.create_model_service(other, "MODEL_DEPLOYER_ROLE")
    assert refused.value.code == 3001
    assert "account 'LOCALTEST'" in refused.value.message
    assert "PEDIATRIC_ML.MODELS.CLIP2_SERVICE" not in {s.fqn for s in emu.account.services()}


def test_cortex_search_usage(emu: Emulator) -> None:
    search = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH"
    assert emu.account.role_can_use_search(GATEWAY_ROLE, search)
    assert emu.account.role_can_use_search("SYSADMIN", search)
    assert not emu.account.role_can_use_search("PUBLIC", search)
    emu.admin(
        f"REVOKE USAGE ON CORTEX SEARCH SERVICE {search} FROM ROLE {GATEWAY_ROLE}",
        role="SYSADMIN",
    )
    assert not emu.account.role_can_use_search(GATEWAY_ROLE, search)


def test_create_service_by_sql_with_the_owners_privileges(emu: Emulator, cur: Any) -> None:
    emu.admin(
        f"CREATE ROLE IF NOT EXISTS {OTHER_ROLE};\n"
        f"GRANT USAGE ON DATABASE PEDIATRIC_ML TO ROLE {OTHER_ROLE};\n"
        f"GRANT USAGE, CREATE SERVICE ON SCHEMA PEDIATRIC_ML.MODELS TO ROLE {OTHER_ROLE};\n"
        f"GRANT ROLE {OTHER_ROLE} TO USER {ADMIN}"
    )
    spec = "$$\nspec:\n  containers:\n  - name: main\n    image: /db/schema/repo/img:1\n{}$$"
    public = "  endpoints:\n  - name: api\n    port: 8080\n    public: true\n"
    create = f"CREATE SERVICE {OTHER_SVC} IN COMPUTE POOL {POOL} FROM SPECIFICATION "
    conn = emu.connect(user=ADMIN, role=OTHER_ROLE)
    try:
        other = conn.cursor()
        assert error_of(other, create + spec.format("")).errno == 2003  # the pool: invisible
        emu.admin(f"GRANT USAGE ON COMPUTE POOL {POOL} TO ROLE {OTHER_ROLE}")
        refused = error_of(other, create + spec.format(public))
        assert "account 'LOCALTEST'" in refused.raw_msg  # BIND SERVICE ENDPOINT
        other.execute(create + spec.format("") + " MIN_INSTANCES = 1 MAX_INSTANCES = 2")
        assert services(other)[OTHER_SVC]["owner"] == OTHER_ROLE
    finally:
        conn.close()
    assert OTHER_SVC not in services(cur)
    assert pool_row(cur)["num_services"] == 3
