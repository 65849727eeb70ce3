"""Cortex Search over CLINICAL_NOTES in the emulator's SQLite store (the table and the service
as infra/snowflake/06 and 07 define them, given here directly)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spcs_local.emulator.search import (
    DEFAULT_SERVICE,
    CortexSearch,
    SearchError,
    SearchServiceSpec,
)
from spcs_local.emulator.store import Store, TableColumn

NOTES_TABLE = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES"
NOTES_COLUMNS = ("NOTE_ID", "PATIENT_ID", "NOTE_TYPE", "DEPARTMENT", "NOTE_DATE", "NOTE_TEXT")
NOTES_SEARCH = SearchServiceSpec(
    source_table=NOTES_TABLE,
    search_column="NOTE_TEXT",
    attributes=("NOTE_TYPE", "DEPARTMENT", "PATIENT_ID"),
    columns=NOTES_COLUMNS,
)

NOTES = [
    (
        "N1",
        "P1",
        "PROGRESS",
        "PULMONOLOGY",
        "2024-01-05",
        "Asthma exacerbation, albuterol nebs q4h.",
    ),
    ("N2", "P2", "DISCHARGE", "ENT", "2024-01-06", "Acute otitis media treated with amoxicillin."),
    ("N3", "P1", "DISCHARGE", "PULMONOLOGY", "2024-01-07", "Asthma well controlled. Follow up."),
    ("N4", "P3", "PROGRESS", "NEUROLOGY", "2024-01-08", "Febrile seizure, no recurrence."),
    ("N5", "P4", "PROGRESS", "GENERAL", "2024-01-09", "Well-child visit, growth normal."),
]


def insert(store: Store, rows: list[tuple[str, ...]]) -> None:
    table = store.table_name(NOTES_TABLE)
    with store.connection() as conn:
        conn.executemany(
            f'INSERT INTO "{table}" (NOTE_ID, PATIENT_ID, NOTE_TYPE, DEPARTMENT, NOTE_DATE, '
            "NOTE_TEXT) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path)
    s.create_table(
        NOTES_TABLE,
        [TableColumn(c, "DATE" if c == "NOTE_DATE" else "VARCHAR") for c in NOTES_COLUMNS],
    )
    insert(s, NOTES)
    yield s
    s.close()


@pytest.fixture
def search(store: Store) -> CortexSearch:
    return CortexSearch(store, {DEFAULT_SERVICE: NOTES_SEARCH})


def ids(answer: dict[str, Any]) -> list[str]:
    return [r["NOTE_ID"] for r in answer["results"]]


def ask(search: CortexSearch, **body: Any) -> dict[str, Any]:
    body.setdefault("columns", ["NOTE_ID"])
    return search.query(DEFAULT_SERVICE, body)


def test_note_mentioning_all_query_terms_ranks_first(search: CortexSearch) -> None:
    answer = ask(search, query="asthma albuterol")
    assert ids(answer) == ["N1", "N3"]  # only notes sharing a word; N1 has both
    first, second = (r["@scores"]["text_match"] for r in answer["results"])
    assert first > second > 0
    assert isinstance(answer["request_id"], str)
    assert answer["request_id"]
    assert ask(search, query="Seizures")["results"][0]["NOTE_ID"] == "N4"  # stemmed match


def test_default_columns_are_the_search_column(search: CortexSearch) -> None:
    answer = search.query(DEFAULT_SERVICE, {"query": "otitis"})
    assert answer["results"] == [
        {"NOTE_TEXT": NOTES[1][5], "@scores": answer["results"][0]["@scores"]}
    ]


def test_columns_projection(search: CortexSearch) -> None:
    answer = ask(search, query="otitis", columns=["PATIENT_ID", "NOTE_DATE", "NOTE_ID"])
    (row,) = answer["results"]
    assert list(row) == ["PATIENT_ID", "NOTE_DATE", "NOTE_ID", "@scores"]
    assert (row["PATIENT_ID"], row["NOTE_DATE"], row["NOTE_ID"]) == ("P2", "2024-01-06", "N2")


def test_eq_filter_and_composites(search: CortexSearch) -> None:
    q = "asthma otitis seizure"
    assert ids(ask(search, query=q, filter={"@eq": {"NOTE_TYPE": "DISCHARGE"}})) == ["N2", "N3"]
    assert set(ids(ask(search, query=q, filter={"@eq": {"patient_id": "P1"}}))) == {"N1", "N3"}
    both = {"@and": [{"@eq": {"PATIENT_ID": "P1"}}, {"@eq": {"NOTE_TYPE": "PROGRESS"}}]}
    assert ids(ask(search, query=q, filter=both)) == ["N1"]
    either = {"@or": [{"@eq": {"DEPARTMENT": "ENT"}}, {"@eq": {"DEPARTMENT": "NEUROLOGY"}}]}
    assert set(ids(ask(search, query=q, filter=either))) == {"N2", "N4"}
    negated = {"@not": {"@eq": {"DEPARTMENT": "PULMONOLOGY"}}}
    assert set(ids(ask(search, query=q, filter=negated))) == {"N2", "N4"}
    contains = {"@contains": {"DEPARTMENT": "ENT"}}  # a scalar is a one-element array
    assert ids(ask(search, query=q, filter=contains)) == ["N2"]


def test_limit(store: Store, search: CortexSearch) -> None:
    insert(
        store, [(f"X{i}", "P9", "PROGRESS", "GENERAL", "2024-02-01", "fever") for i in range(12)]
    )
    assert len(ask(search, query="fever")["results"]) == 10  # default
    assert len(ask(search, query="fever", limit=3)["results"]) == 3
    assert len(ask(search, query="fever", limit=1000)["results"]) == 12


def test_index_follows_inserts_updates_and_deletes(store: Store, search: CortexSearch) -> None:
    assert ids(ask(search, query="bronchiolitis")) == []
    insert(store, [("N6", "P5", "PROGRESS", "GENERAL", "2024-03-01", "RSV bronchiolitis.")])
    assert ids(ask(search, query="bronchiolitis")) == ["N6"]
    table = store.table_name(NOTES_TABLE)
    with store.connection() as conn:
        conn.execute(f"UPDATE \"{table}\" SET NOTE_TEXT = 'Resolved.' WHERE NOTE_ID = 'N6'")
    assert ids(ask(search, query="bronchiolitis")) == []
    with store.connection() as conn:
        conn.execute(f"DELETE FROM \"{table}\" WHERE NOTE_ID = 'N1'")
    assert ids(ask(search, query="asthma")) == ["N3"]


def test_service_name_resolves_like_snowflake_identifiers(search: CortexSearch) -> None:
    answer = search.query(DEFAULT_SERVICE.lower(), {"query": "otitis", "columns": ["NOTE_ID"]})
    assert ids(answer) == ["N2"]


def test_unknown_service_is_404(search: CortexSearch) -> None:
    for name in ("PEDIATRIC_ML.CLINICAL_DATA.OTHER", "not-qualified"):
        with pytest.raises(SearchError) as info:
            search.query(name, {"query": "asthma"})
        assert info.value.status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"columns": ["NOTE_ID"]},  # no query
        {"query": 5},
        {"query": "asthma", "columns": ["SECRET_COLUMN"]},
        {"query": "asthma", "columns": "NOTE_ID"},
        {"query": "asthma", "limit": 0},
        {"query": "asthma", "limit": 1001},
        {"query": "asthma", "limit": "5"},
        {"query": "asthma", "limit": True},
        {"query": "asthma", "filters": {}},  # typo of "filter"
        {"query": "asthma", "filter": {"@eq": {"NOTE_TEXT": "asthma"}}},  # not an attribute
        {"query": "asthma", "filter": {"@eq": {"NOPE": "x"}}},
        {"query": "asthma", "filter": {"@like": {"NOTE_TYPE": "x"}}},
        {"query": "asthma", "filter": {"@eq": {"NOTE_TYPE": "x", "DEPARTMENT": "y"}}},
        {"query": "asthma", "filter": {"@eq": {"NOTE_TYPE": ["x"]}}},
        {"query": "asthma", "filter": {"@and": []}},
        {"query": "asthma", "filter": {"@and": {"@eq": {"NOTE_TYPE": "x"}}}},
        {"query": "asthma", "filter": "NOTE_TYPE = 'x'"},
        ["asthma"],
    ],
)
def test_bad_requests_are_400_without_echoing_input(search: CortexSearch, body: Any) -> None:
    with pytest.raises(SearchError) as info:
        search.query(DEFAULT_SERVICE, body)
    assert info.value.status == 400
    for secret in ("asthma", "SECRET_COLUMN", "NOPE", "NOTE_TYPE = "):
        assert secret not in info.value.message


def test_deeply_nested_filter_is_400(search: CortexSearch) -> None:
    node: dict[str, Any] = {"@eq": {"NOTE_TYPE": "x"}}
    for _ in range(100):
        node = {"@not": node}
    with pytest.raises(SearchError) as info:
        search.query(DEFAULT_SERVICE, {"query": "asthma", "filter": node})
    assert info.value.status == 400


@pytest.mark.parametrize(
    "query",
    [
        '"',
        'asthma" OR "',
        "asthma AND",
        "NEAR(asthma albuterol)",
        "NOTE_TEXT:asthma",
        "*",
        "^asthma",
        "asthma\x00albuterol",
        "'; DROP TABLE notes; --",
        "(",
        "\ud800 asthma",
        "",
    ],
)
def test_hostile_queries_do_not_crash(search: CortexSearch, query: str) -> None:
    answer = ask(search, query=query)
    assert isinstance(answer["results"], list)
    if "asthma" in query:
        assert ids(answer)[0] in {"N1", "N3"}


def test_missing_source_table_gives_no_results(store: Store) -> None:
    spec = SearchServiceSpec(
        source_table="PEDIATRIC_ML.CLINICAL_DATA.NOT_CREATED",
        search_column="BODY",
        attributes=(),
        columns=("BODY",),
    )
    search = CortexSearch(store, {"PEDIATRIC_ML.CLINICAL_DATA.EMPTY_SEARCH": spec})
    assert search.query("PEDIATRIC_ML.CLINICAL_DATA.EMPTY_SEARCH", {"query": "x"})["results"] == []
