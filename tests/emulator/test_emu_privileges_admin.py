"""`spcs-local emulator` as a process: the admin entry points that shape the account (SQL as the
administrator, another team's service and job, one more model deployment with another
signature) and what the gateway's own credentials then see and may do."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

pytestmark = pytest.mark.emulator

POOL = "ML_INFERENCE_POOL"
NER = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
SEARCH = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH"
SEARCH_PATH = (
    "/api/v2/databases/PEDIATRIC_ML/schemas/CLINICAL_DATA/"
    "cortex-search-services/CLINICAL_NOTES_SEARCH:query"
)


@pytest.fixture(scope="module")
def emu(emulator_factory: Callable[..., Any]) -> Any:
    return emulator_factory()


def admin_sql(emu: Any, sql: str, role: str = "ACCOUNTADMIN") -> httpx.Response:
    return httpx.post(f"{emu.admin_url}/sql", json={"sql": sql, "role": role}, timeout=10)


def show(emu: Any, sql: str) -> list[dict[str, Any]]:
    with emu.connect() as conn:
        cur = conn.cursor()
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_admin_sql_runs_scripts_and_reports_the_failing_statement(emu: Any) -> None:
    ok = admin_sql(emu, "CREATE ROLE IF NOT EXISTS ANALYST; SHOW GRANTS TO ROLE SPCS_GATEWAY_ROLE")
    assert ok.status_code == 200
    results = ok.json()["results"]
    assert results[0]["rows"] == [["Role ANALYST successfully created."]]
    assert "privilege" in results[1]["columns"]
    failed = admin_sql(emu, "USE ROLE SPCS_GATEWAY_ROLE; CREATE DATABASE NOPE")
    assert failed.status_code == 400
    assert (failed.json()["statement"], failed.json()["code"]) == (2, "003001")


def test_another_teams_service_and_job_share_the_pool_unseen(emu: Any) -> None:
    for body in (
        {"name": "PEDIATRIC_ML.MODELS.OTHER_TEAM_SERVICE", "owner_role": "OTHER_TEAM_ROLE"},
        {
            "name": "PEDIATRIC_ML.MODELS.OTHER_TEAM_JOB",
            "owner_role": "OTHER_TEAM_ROLE",
            "job": True,
            "job_seconds": 3600,
        },
    ):
        created = httpx.post(f"{emu.admin_url}/services", json=body, timeout=10)
        assert created.status_code == 201, created.text
        assert created.json()["owner"] == "OTHER_TEAM_ROLE"
    names = {r["name"] for r in show(emu, f"SHOW SERVICES IN COMPUTE POOL {POOL}")}
    assert names == {"BIOBERT_NER_SERVICE", "BIOMEDCLIP_SERVICE"}
    (pool,) = show(emu, f"SHOW COMPUTE POOLS LIKE '{POOL}'")
    assert (pool["num_services"], pool["num_jobs"]) == (4, 1)
    with emu.connect() as conn, pytest.raises(Exception) as refused:  # noqa: PT011
        conn.cursor().execute("ALTER SERVICE PEDIATRIC_ML.MODELS.OTHER_TEAM_SERVICE SUSPEND")
    assert getattr(refused.value, "errno", None) == 2003


def test_a_deployment_with_another_signature_gets_its_own_endpoint(emu: Any) -> None:
    answer = httpx.post(
        f"{emu.admin_url}/deployments",
        json={
            "base": "biomedclip",
            "logical_name": "biomedclip_hf",
            "service": "PEDIATRIC_ML.MODELS.BIOMEDCLIP_HF_SERVICE",
            "model_name": "PEDIATRIC_ML.MODELS.BIOMEDCLIP_HF",
            "signature": "hf-zero-shot",
            "settings": {"min_instances": 0},
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    deployed = answer.json()
    assert deployed["service"] == "PEDIATRIC_ML.MODELS.BIOMEDCLIP_HF_SERVICE"
    assert deployed["url"].startswith("http://127.0.0.1:")

    versions = admin_sql(
        emu,
        "ALTER SESSION SET SHOW_MODEL_DETAILS_IN_SHOW_VERSIONS_IN_MODEL = TRUE;"
        "SHOW VERSIONS IN MODEL PEDIATRIC_ML.MODELS.BIOMEDCLIP_HF",
        role="MODEL_DEPLOYER_ROLE",
    ).json()["results"][1]
    row = dict(zip(versions["columns"], versions["rows"][0], strict=True))
    params = yaml.safe_load(row["model_spec"])["signatures"]["predict"]["params"]
    assert [p["name"] for p in params] == ["hypothesis_template", "timeout"]

    # Deployed by the deployer: the gateway's role holds no service role on it (yet).
    token = httpx.post(
        f"{emu.account_url}/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "scope": deployed["url"].split("://", 1)[1],
            "assertion": emu.keypair_jwt(),
        },
        timeout=10,
    )
    assert token.status_code == 200
    buf = io.BytesIO()
    Image.new("L", (4, 4), 100).save(buf, format="PNG")
    image = base64.b64encode(buf.getvalue()).decode()

    def call() -> httpx.Response:
        return httpx.post(
            deployed["url"] + "/predict",
            json={"dataframe_records": [{"images": image, "candidate_labels": ["a", "b"]}]},
            headers={"Authorization": f'Snowflake Token="{token.text}"'},
            timeout=30,
        )

    assert call().status_code == 403
    assert show(emu, "SHOW SERVICES LIKE 'BIOMEDCLIP_HF_SERVICE'") == []  # no MONITOR either
    granted = admin_sql(
        emu,
        "GRANT SERVICE ROLE PEDIATRIC_ML.MODELS.BIOMEDCLIP_HF_SERVICE!ALL_ENDPOINTS_USAGE "
        "TO ROLE SPCS_GATEWAY_ROLE",
        role="MODEL_DEPLOYER_ROLE",
    )
    assert granted.status_code == 200
    assert call().status_code != 403


def test_cortex_search_needs_usage_on_the_service(emu: Any) -> None:
    headers = {
        "Authorization": f"Bearer {emu.keypair_jwt()}",
        "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
    }
    url = emu.account_url + SEARCH_PATH
    assert httpx.post(url, json={"query": "asthma"}, headers=headers).status_code == 200
    revoked = admin_sql(
        emu,
        f"REVOKE USAGE ON CORTEX SEARCH SERVICE {SEARCH} FROM ROLE SPCS_GATEWAY_ROLE",
        role="SYSADMIN",
    )
    assert revoked.status_code == 200
    refused = httpx.post(url, json={"query": "asthma"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "403"
