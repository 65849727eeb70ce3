"""infra/snowflake/*.sql executed by the emulator (bootstrap.run_setup): the account they build,
idempotence, and that a missing or wrong statement shows up."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_emu_sql_wire import SETUP_VARIABLES

from spcs_local.emulator.bootstrap import (
    SQL_DIR,
    Admin,
    ScriptError,
    bootstrap,
    run_setup,
    setup_scripts,
    split_statements,
    substitute,
)
from spcs_local.emulator.clock import FakeClock
from spcs_local.emulator.search import catalog_lookup
from spcs_local.emulator.sqlengine import SqlEngine, SqlError
from spcs_local.emulator.state import Account, Store
from spcs_models import spec as model_spec

GATEWAY_ROLE = "SPCS_GATEWAY_ROLE"


def engine(sql_dir: Path = SQL_DIR, **kwargs: Any) -> SqlEngine:
    store = Store(None)
    built = SqlEngine(Account(store, FakeClock()), store)
    bootstrap(built, variables=SETUP_VARIABLES, sql_dir=sql_dir, **kwargs)
    return built


def account_state(e: SqlEngine) -> dict[str, Any]:
    """Everything the set-up decides, without timestamps."""
    catalog = e.account.catalog
    return {
        "grants": sorted(
            (g.privilege, g.on_type, g.on_name, g.grantee_type, g.grantee, g.grant_option)
            for g in catalog.grants()
        ),
        "objects": sorted(
            (kind, o.name, repr(sorted(o.props.items())))
            for kind in (
                "DATABASE",
                "SCHEMA",
                "WAREHOUSE",
                "ROLE",
                "USER",
                "NETWORK RULE",
                "NETWORK POLICY",
                "CORTEX SEARCH SERVICE",
                "FUNCTION",
            )
            for o in catalog.objects(kind)
        ),
        "services": [
            (s.fqn, s.status, s.owner, s.min_instances, s.auto_suspend_secs, s.auto_resume)
            for s in e.account.services()
        ],
        "pools": [(p.name, p.owner, p.auto_suspend_secs) for p in e.account.pools()],
        "tables": e.store.tables(),
        "models": e.account.models(),
    }


def test_scripts_01_to_09_and_11_run_with_the_deployment_between_07_and_08() -> None:
    # 10 (a read-only report) is skipped; 11 creates the reference route's source table.
    assert [p.name[:2] for p in setup_scripts()] == [f"{i:02d}" for i in (*range(1, 10), 11)]
    built = engine()
    state = account_state(built)
    assert state["tables"] == [
        "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES",
        "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES",
        "PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGES",
        "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS",
    ]
    stages = [o.name for o in built.account.catalog.objects("STAGE")]
    assert stages == ["PEDIATRIC_ML.CLINICAL_DATA.MEDICAL_IMAGE_STAGE"]
    assert state["services"] == [
        (d.service, "RUNNING", "MODEL_DEPLOYER_ROLE", 1, 0, True)
        for d in sorted(model_spec.DEPLOYMENTS, key=lambda d: d.service)
    ]
    assert state["pools"] == [("ML_INFERENCE_POOL", "ACCOUNTADMIN", 600)]
    assert state["models"] == sorted(d.model_name for d in model_spec.DEPLOYMENTS)
    user = built.account.catalog.user("GATEWAY_SVC")
    assert user is not None
    assert user.props["DEFAULT_ROLE"] == GATEWAY_ROLE
    assert user.props["NETWORK_POLICY"] == "GATEWAY_SVC_POLICY"
    assert user.props["DEFAULT_SECONDARY_ROLES"] == []
    functions = [o.name for o in built.account.catalog.objects("FUNCTION")]
    assert functions == [
        "PEDIATRIC_ML.CLINICAL_DATA.READ_STAGED_FILE(VARCHAR)",  # 11: the staged-file reader
        "PEDIATRIC_ML.MODELS.CLASSIFY_MEDICAL_IMAGE(BINARY, ARRAY)",
        "PEDIATRIC_ML.MODELS.EXTRACT_BIOMEDICAL_ENTITIES(VARCHAR)",
    ]
    # Cortex Search comes from 07's statement, not from emulator code.
    search = catalog_lookup(built.account.catalog)(
        "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH"
    )
    assert search is not None
    assert search.search_column == "NOTE_TEXT"
    assert search.attributes == ("NOTE_TYPE", "DEPARTMENT", "PATIENT_ID")
    assert search.source_table == "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"


def test_setup_is_idempotent() -> None:
    built = engine()
    before = account_state(built)
    run_setup(built, variables=SETUP_VARIABLES)
    run_setup(built, variables=SETUP_VARIABLES)
    assert account_state(built) == before
    assert not bootstrap(built, variables=SETUP_VARIABLES)  # once per state dir


def test_the_key_arrives_by_substitution_and_undefined_variables_fail() -> None:
    built = engine()
    user = built.account.catalog.user("GATEWAY_SVC")
    assert user is not None
    assert "RSA_PUBLIC_KEY" not in user.props  # '' = no key (a PAT-only emulator)
    run_setup(built, variables={**SETUP_VARIABLES, "gateway_public_key": "MIIBIjANBg"})
    assert built.account.user_rsa_public_keys("GATEWAY_SVC") == ["MIIBIjANBg"]
    with pytest.raises(ValueError, match="lambda_egress_cidrs"):
        run_setup(built, variables={"gateway_public_key": ""})
    assert substitute("VALUE_LIST = (&{ x })", {"x": "'a', 'b'"}) == "VALUE_LIST = ('a', 'b')"


def copy_sql(tmp_path: Path, script: str, drop: str) -> Path:
    target = tmp_path / "snowflake"
    shutil.copytree(SQL_DIR, target)
    path = target / script
    text = path.read_text()
    assert drop in text
    path.write_text(text.replace(drop, ""))
    return target


def test_a_missing_create_fails_the_setup_where_it_is_needed(tmp_path: Path) -> None:
    sql_dir = copy_sql(
        tmp_path,
        "01_database_schemas.sql",
        "CREATE SCHEMA IF NOT EXISTS PEDIATRIC_ML.RESULTS\n"
        "  COMMENT = 'Inference results written by spcs-gateway (one row per event)';",
    )
    with pytest.raises(ScriptError) as failed:
        engine(sql_dir)
    assert failed.value.source == "03_gateway_role.sql"
    assert failed.value.error.code == 2003
    assert "PEDIATRIC_ML.RESULTS" in str(failed.value)


def test_a_missing_grant_shows_up_as_the_gateways_failure(tmp_path: Path) -> None:
    sql_dir = copy_sql(
        tmp_path,
        "03_gateway_role.sql",
        "GRANT USAGE ON WAREHOUSE GATEWAY_WH TO ROLE SPCS_GATEWAY_ROLE;",
    )
    built = engine(sql_dir)
    session = built.open_session("GATEWAY_SVC", client_ip="127.0.0.1")
    assert session.warehouse is None
    with pytest.raises(SqlError) as refused:
        built.execute(
            "SELECT COUNT(*) FROM PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS", None, session=session
        )
    assert refused.value.code == 606


def test_a_grant_by_the_wrong_role_is_refused(tmp_path: Path) -> None:
    # 08 as SECURITYADMIN: it may grant most things (MANAGE GRANTS) but not a service role,
    # which only the service's owner grants.
    sql_dir = copy_sql(tmp_path, "08_model_services.sql", "USE ROLE MODEL_DEPLOYER_ROLE;")
    text = (sql_dir / "08_model_services.sql").read_text()
    (sql_dir / "08_model_services.sql").write_text("USE ROLE SECURITYADMIN;\n" + text)
    with pytest.raises(ScriptError) as failed:
        engine(sql_dir)
    assert failed.value.source == "08_model_services.sql"
    assert failed.value.error.code == 3001


def test_a_wrapper_must_call_a_function_the_service_has() -> None:
    admin = Admin(engine())
    with pytest.raises(ScriptError) as failed:
        admin.run(
            "CREATE OR ALTER FUNCTION PEDIATRIC_ML.MODELS.F(T STRING) RETURNS VARIANT "
            'LANGUAGE SQL AS $$ SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!"__CALL__"(T) $$',
            role="SYSADMIN",
        )
    assert failed.value.error.code == 2140
    with pytest.raises(ScriptError) as arity:
        admin.run(
            "CREATE OR ALTER FUNCTION PEDIATRIC_ML.MODELS.G(T STRING) RETURNS VARIANT "
            "LANGUAGE SQL AS $$ SELECT PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE!PREDICT(T, T) $$",
            role="SYSADMIN",
        )
    assert arity.value.error.code == 1044


def test_split_statements_respects_quotes_comments_and_dollar_bodies() -> None:
    sql = (
        "-- header; not a statement\n"
        "CREATE TABLE IF NOT EXISTS T (A STRING DEFAULT ';'); /* x; y */\n"
        "CREATE OR ALTER FUNCTION F() RETURNS INT AS $$ SELECT 1; $$;\n"
        'GRANT USAGE ON SCHEMA "a;b" TO ROLE R'
    )
    assert split_statements(sql) == [
        "CREATE TABLE IF NOT EXISTS T (A STRING DEFAULT ';')",
        "CREATE OR ALTER FUNCTION F() RETURNS INT AS $$ SELECT 1; $$",
        'GRANT USAGE ON SCHEMA "a;b" TO ROLE R',
    ]
