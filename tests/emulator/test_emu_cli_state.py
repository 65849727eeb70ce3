"""State dir: data and settings survive a restart; Cortex Search over inserted notes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import snowflake.connector

pytestmark = pytest.mark.emulator

NOTES = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"
RESULTS = "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
NER = "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE"
SEARCH_PATH = (
    "/api/v2/databases/PEDIATRIC_ML/schemas/CLINICAL_DATA/"
    "cortex-search-services/CLINICAL_NOTES_SEARCH:query"
)
ROWS = [
    ("N1", "P1", "PROGRESS", "PULMONOLOGY", "2024-03-01", "Wheezing and asthma exacerbation."),
    ("N2", "P2", "PROGRESS", "PULMONOLOGY", "2024-03-02", "Asthma controlled on albuterol."),
    ("N3", "P3", "DISCHARGE", "PULMONOLOGY", "2024-03-03", "Asthma follow-up in two weeks."),
    ("N4", "P4", "PROGRESS", "CARDIOLOGY", "2024-03-04", "Asthma history, murmur noted."),
    ("N5", "P5", "PROGRESS", "NEUROLOGY", "2024-03-05", "Febrile seizure, no recurrence."),
]
MERGE = f"""
MERGE INTO {RESULTS} AS t
USING (SELECT column1 AS EVENT_ID, column2 AS KIND, column3 AS SUBJECT_ID, column4 AS SERVICE,
              column5 AS MODEL_VERSION, column6 AS STATUS, PARSE_JSON(column7) AS OUTPUT,
              column8 AS LATENCY_MS, TO_TIMESTAMP_TZ(column9) AS PROCESSED_AT
       FROM VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)) AS s
ON t.EVENT_ID = s.EVENT_ID
WHEN NOT MATCHED THEN INSERT (EVENT_ID, KIND, SUBJECT_ID, SERVICE, MODEL_VERSION, STATUS,
  OUTPUT, LATENCY_MS, PROCESSED_AT)
VALUES (s.EVENT_ID, s.KIND, s.SUBJECT_ID, s.SERVICE, s.MODEL_VERSION, s.STATUS, s.OUTPUT,
  s.LATENCY_MS, s.PROCESSED_AT)
"""


def search(emu: Any, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(emu.account_url + SEARCH_PATH, json=body, headers=headers, timeout=10)


def test_data_survives_a_restart_and_notes_are_searchable(
    emulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = emulator_factory(state_dir=state)
    # The EHR pipeline loads the notes (the gateway's role may not: it has no INSERT on them).
    for row in ROWS:
        first.admin_post(
            "sql",
            {
                "sql": f"INSERT INTO {NOTES} VALUES (?, ?, ?, ?, ?, ?)",
                "role": "SYSADMIN",
                "bindings": list(row),
            },
        )
    with first.connect(paramstyle="qmark") as conn:
        cur = conn.cursor()
        cur.execute(
            MERGE,
            ("e-1", "clinical-note", "N1", NER, "V1", "SUCCEEDED", "[]", 12,
             "2024-03-01T10:00:00+00:00"),
        )  # fmt: skip
        cur.execute(f"ALTER SERVICE {NER} SET AUTO_SUSPEND_SECS = 600")
    key = first.secret_path.read_bytes()
    assert first.stop() == 0

    second = emulator_factory(state_dir=state)
    assert second.secret_path.read_bytes() == key  # the generated key pair is reused
    stored_notes = second.admin_post(
        "sql", {"sql": f"SELECT NOTE_ID FROM {NOTES} ORDER BY NOTE_ID", "role": "SYSADMIN"}
    )["results"][0]["rows"]
    assert [r[0] for r in stored_notes] == ["N1", "N2", "N3", "N4", "N5"]
    with second.connect(paramstyle="qmark") as conn:
        cur = conn.cursor()
        with pytest.raises(snowflake.connector.ProgrammingError) as denied:
            cur.execute(f"SELECT NOTE_ID FROM {NOTES}")  # the gateway reads notes via search only
        assert denied.value.errno == 2003
        stored = cur.execute(
            f"SELECT EVENT_ID, STATUS FROM {RESULTS} WHERE EVENT_ID IN (?)", ("e-1",)
        ).fetchall()
        assert [tuple(r) for r in stored] == [("e-1", "SUCCEEDED")]
        cur.execute("SHOW SERVICES LIKE 'BIOBERT_NER_SERVICE' IN SCHEMA PEDIATRIC_ML.MODELS")
        names = [d[0].lower() for d in cur.description]
        row = dict(zip(names, cur.fetchone(), strict=True))
        assert int(row["auto_suspend_secs"]) == 600

    jwt_headers = {
        "Authorization": f"Bearer {second.keypair_jwt()}",
        "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
    }
    answer = search(
        second,
        {
            "query": "asthma",
            "columns": ["NOTE_ID", "DEPARTMENT"],
            "filter": {"@eq": {"DEPARTMENT": "PULMONOLOGY"}},
            "limit": 2,
        },
        jwt_headers,
    )
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert len(results) == 2
    assert all(r["DEPARTMENT"] == "PULMONOLOGY" for r in results)
    assert {r["NOTE_ID"] for r in results} <= {"N1", "N2", "N3"}

    unfiltered = search(second, {"query": "asthma", "columns": ["NOTE_ID"]}, jwt_headers)
    assert {r["NOTE_ID"] for r in unfiltered.json()["results"]} == {"N1", "N2", "N3", "N4"}

    assert search(second, {"query": "asthma"}, {}).status_code == 401
    no_type = {"Authorization": jwt_headers["Authorization"]}  # a JWT needs the type header
    assert search(second, {"query": "asthma"}, no_type).status_code == 401
