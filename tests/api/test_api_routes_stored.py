"""Stored notes by reference through the Lambda handler: the real ``StoredNotes`` over a fake
SQL port that plays Snowflake (the note text stays on its side; only model output comes back),
Cortex Search through respx. The emulator runs the same statement for real
(tests/emulator/test_ref_route_emulator.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest
from api_support import (
    CANARY,
    Api,
    SnowflakeFake,
    api_event,
    body_of,
    installed_api,
    lexicon_output,
)

from spcs_gateway.api.stored import StoredNotes, token_spans
from spcs_gateway.errors import ErrorCode, TransientError
from spcs_gateway.lifecycle import ServiceStatus
from spcs_gateway.registry import Registry, parse_registry

NOTES = "EHR.CLARITY.NOTES"
TEXT = f"Otitis media; started amoxicillin. Patient {CANARY}."


class NotesSql:
    """Plays Snowflake for ``note_select``: the stored notes live here, the service function
    answers with the lexicon's output, and only that output is returned."""

    def __init__(self) -> None:
        self.notes = {("N-1", None): TEXT}
        self.statements: list[tuple[str, list[Any]]] = []
        self.fail: Exception | None = None

    def execute(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        error_code: ErrorCode = ErrorCode.SERVICE_ERROR,
    ) -> list[tuple[Any, ...]]:
        self.statements.append((sql, list(params)))
        if self.fail is not None:
            raise self.fail
        assert sql.startswith("SELECT COALESCE(PARSE_JSON(AS_VARCHAR(GET(p.R, ?)))")
        assert "!PREDICT(q.INPUT)" in sql or "!__CALL__(q.INPUT)" in sql
        assert "SELECT n.NOTE_TEXT AS INPUT FROM EHR.CLARITY.NOTES AS n" in sql
        key = params[2]
        text = self.notes.get((key, None))
        if text is None:
            return []
        return [(json.dumps(lexicon_output(text)),)]


@pytest.fixture
def stored_api(
    api_function: ModuleType,
    api_registry_doc: dict[str, Any],
    snowflake: SnowflakeFake,
) -> Iterator[tuple[Api, NotesSql]]:
    doc = dict(api_registry_doc)
    doc["references"] = {
        "note_tables": [{"table": NOTES, "key_column": "NOTE_ID", "text_column": "NOTE_TEXT"}],
        "search_table": NOTES,
    }
    registry: Registry = parse_registry(doc)
    sql = NotesSql()
    with installed_api(
        api_function, registry, snowflake, StoredNotes(sql, registry.references)
    ) as api:
        yield api, sql


def _entities(api: Api, note: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"note": note, **extra}
    return api.invoke(api_event("POST", "/v1/notes/stored/entities", body=body))


def test_entities_of_a_stored_note_come_from_snowflake_without_its_text(
    stored_api: tuple[Api, NotesSql],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api, sql = stored_api
    caplog.set_level(logging.DEBUG)
    response = _entities(api, {"table": NOTES, "key": "N-1"})
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["note"] == {"table": NOTES, "key": "N-1", "version": None}
    labels = {(e["label"], e["text"]) for e in body["entities"]}
    assert ("DISEASE", CANARY) in labels
    for entity in body["entities"]:
        assert TEXT[entity["start"] : entity["end"]].lower() == entity["text"].lower()
    # The key is a binding; the note text is never part of what the API sent or logged.
    [(statement, params)] = sql.statements
    assert "N-1" in params
    assert "N-1" not in statement
    assert TEXT not in json.dumps(params)
    assert api.snowflake.ingress_calls == []  # no inline call to the model's endpoint
    assert CANARY not in caplog.text
    printed = capsys.readouterr()
    assert CANARY not in printed.out + printed.err
    assert api.state.begins == ["biobert_ner"]
    assert api.state.ends == ["biobert_ner"]


@pytest.mark.parametrize(
    ("note", "status", "code"),
    [
        ({"table": NOTES, "key": "N-404"}, 404, "REFERENCE_NOT_FOUND"),
        ({"table": "EHR.OTHER.NOTES", "key": "N-1"}, 403, "REFERENCE_NOT_ALLOWED"),
        # The table keeps no versions, so no note of it has version 2.
        ({"table": NOTES, "key": "N-1", "version": 2}, 404, "REFERENCE_NOT_FOUND"),
        ({"table": "NOTES", "key": "N-1"}, 422, "VALIDATION_FAILED"),
    ],
)
def test_stored_entities_refusals(
    stored_api: tuple[Api, NotesSql], note: dict[str, Any], status: int, code: str
) -> None:
    api, _ = stored_api
    response = _entities(api, note)
    assert response["statusCode"] == status
    assert body_of(response)["error"]["code"] == code


def test_a_service_that_is_not_ready_is_waited_for_then_503(
    stored_api: tuple[Api, NotesSql],
) -> None:
    api, sql = stored_api
    sql.fail = TransientError(
        ErrorCode.SERVICE_ERROR, "Snowflake statement failed (errno 90010)", errno=90010
    )
    api.state.set("biobert_ner", ServiceStatus.PENDING)
    response = _entities(api, {"table": NOTES, "key": "N-1"}, wait_seconds=0)
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert api.control.ensure_calls == ["biobert_ner"]
    assert response["multiValueHeaders"].get("Retry-After") or response["headers"].get(
        "Retry-After"
    )


def test_search_by_reference_answers_keys_never_text(stored_api: tuple[Api, NotesSql]) -> None:
    api, _ = stored_api
    body = {"query": "otitis", "limit": 5}
    response = api.invoke(api_event("POST", "/v1/notes/stored/search", body=body))
    assert response["statusCode"] == 200
    answer = body_of(response)
    assert answer["results"]
    assert all(set(hit) == {"note"} for hit in answer["results"])
    assert all(hit["note"]["table"] == NOTES for hit in answer["results"])
    [(_, sent)] = api.snowflake.search_requests
    assert sent["columns"] == ["NOTE_ID"]  # never NOTE_TEXT


def test_search_by_reference_is_404_where_no_search_table_is_named(
    stored_api: tuple[Api, NotesSql], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = stored_api
    monkeypatch.setattr(StoredNotes, "search_table", property(lambda _self: None))
    body = {"query": "otitis", "limit": 5}
    response = api.invoke(api_event("POST", "/v1/notes/stored/search", body=body))
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "STORED_SEARCH_NOT_CONFIGURED"
    assert api.snowflake.search_requests == []


def test_token_spans_join_iob_tokens_and_word_pieces() -> None:
    output = [
        {"word": "otitis", "entity": "B-DISEASE", "start": 0, "end": 6, "score": 0.9},
        {"word": "media", "entity": "I-DISEASE", "start": 7, "end": 12, "score": 0.7},
        {"word": "amox", "entity": "B-CHEMICAL", "start": 22, "end": 26, "score": 0.8},
        {"word": "##icillin", "entity": "B-CHEMICAL", "start": 26, "end": 33, "score": 0.6},
        {"word": "x", "entity": "O", "start": 40, "end": 41, "score": 0.9},
        {"word": "y", "entity": "B-DISEASE", "start": -1, "end": 2, "score": 0.9},
    ]
    spans = token_spans(output)
    assert [(s.label, s.text, s.start, s.end, s.score) for s in spans] == [
        ("DISEASE", "otitis media", 0, 12, 0.8),
        ("CHEMICAL", "amoxicillin", 22, 33, 0.7),
    ]
