"""Cortex Search emulation: full-text ranking over a table held by the emulator's ``Store``.

Services are what ``CREATE CORTEX SEARCH SERVICE`` made (infra/snowflake/07_cortex_search.sql,
stored in the account's catalog: ``catalog_lookup``), or a fixed mapping given by a test. The
caller's role needs USAGE on the service (server.py asks ``Account.role_can_use_search``).

REST contract (Snowflake REST API, "Query a Cortex Search Service"):
``POST /api/v2/databases/<db>/schemas/<schema>/cortex-search-services/<name>:query`` with body
``{"query": str, "columns": [str], "filter": {...}, "limit": 1..1000 (default 10)}``, answered
``{"results": [{<column>: value, ..., "@scores": {"text_match": float}}], "request_id": str}``.
Without ``columns`` only the search column is returned. Filters work on the service's
ATTRIBUTES columns: ``{"@eq": {COL: v}}``, ``{"@contains": {COL: v}}`` (ARRAY membership; a
scalar column counts as a one-element array), ``{"@gte"|"@lte": {COL: v}}``,
``{"@and": [f, ...]}``, ``{"@or": [f, ...]}``, ``{"@not": f}``. ``scoring_config``,
``scoring_profile`` and ``experimental`` are accepted and ignored; other keys are rejected.

Ranking is SQLite FTS5 BM25 (porter stemming, unicode61) over the search column: a query's
words are OR-ed, each quoted as an FTS5 string, so user text can never become FTS5 syntax. It
is a lexical stand-in for Cortex Search's hybrid vector + keyword ranking: only rows sharing a
word with the query are returned (an empty query returns the filtered rows in table order).

Index freshness: each query reads the source rows under the store lock and hashes them; the
service's private in-memory FTS5 index is rebuilt only when that digest changed. Exact for any
change (insert, update, delete, replace), costs one table scan per query, which suits the
emulator's table sizes; the index never lives in the shared database, so the SQL engine never
sees it.

Errors are ``SearchError(status, code, message)`` with fixed messages: never the query text,
filter values or row data.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DEFAULT_SERVICE",
    "CortexSearch",
    "SearchError",
    "SearchServiceSpec",
    "SearchStore",
]

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_QUERY_TERMS = 64
MAX_FILTER_NODES = 256
MAX_FILTER_DEPTH = 16
_IGNORED_KEYS = frozenset({"scoring_config", "scoring_profile", "experimental"})
_KNOWN_KEYS = frozenset({"query", "columns", "filter", "limit"}) | _IGNORED_KEYS
# Letters and digits only: what FTS5's unicode61 tokenizer keeps as token characters.
_TERM_RE = re.compile(r"[^\W_]+")


class SearchError(Exception):
    """A failed query: ``status`` for the HTTP answer, ``code`` and a fixed ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> SearchError:
    return SearchError(400, "invalid_request", message)


class SearchStore(Protocol):
    """What Cortex Search needs from the emulator's ``Store``."""

    def connection(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def table_name(self, fqn: str) -> str: ...


@dataclass(frozen=True)
class SearchServiceSpec:
    """A Cortex Search service: ``CREATE CORTEX SEARCH SERVICE .. ON search_column ATTRIBUTES
    attributes .. AS (SELECT columns FROM source_table)``."""

    source_table: str
    search_column: str
    attributes: tuple[str, ...]
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        upper = {c.upper() for c in self.columns}
        if self.search_column.upper() not in upper or any(
            a.upper() not in upper for a in self.attributes
        ):
            raise ValueError("search and attribute columns must be among the service columns")


# The service 07_cortex_search.sql creates (the gateway's API queries it).
DEFAULT_SERVICE = "PEDIATRIC_ML.CLINICAL_DATA.CLINICAL_NOTES_SEARCH"
Lookup = Callable[[str], SearchServiceSpec | None]


class _Catalog(Protocol):
    def get(self, kind: str, name: str) -> Any: ...


def catalog_lookup(catalog: _Catalog) -> Lookup:
    """Services as ``CREATE CORTEX SEARCH SERVICE`` stored them in the account's catalog."""

    def lookup(fqn: str) -> SearchServiceSpec | None:
        found = catalog.get("CORTEX SEARCH SERVICE", fqn)
        if found is None:
            return None
        props = found.props
        return SearchServiceSpec(
            source_table=str(props["source_table"]),
            search_column=str(props["search_column"]),
            attributes=tuple(props.get("attributes") or ()),
            columns=tuple(props.get("columns") or ()),
        )

    return lookup


def normalize_fqn(fqn: str) -> str:
    """``db.schema.name`` with unquoted parts upper-cased, as Snowflake resolves identifiers."""
    parts = [p.strip() for p in fqn.split(".")]
    if len(parts) != 3 or not all(parts):
        return ""
    out = []
    for p in parts:
        if len(p) >= 2 and p.startswith('"') and p.endswith('"'):
            out.append(p[1:-1])
        else:
            out.append(p.upper())
    return ".".join(out)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _scalar(v: Any) -> Any:
    if isinstance(v, str) or _is_number(v):
        return v
    raise _bad("filter values must be strings or numbers")


def _equal(value: Any, wanted: Any) -> bool:
    if value is None:
        return False
    if _is_number(value) and _is_number(wanted):
        return bool(value == wanted)
    return str(value) == str(wanted)


def _as_array(value: Any) -> list[Any]:
    """ARRAY columns are stored as JSON text; any other value is a one-element array."""
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return parsed if isinstance(parsed, list) else [value]
    return [value]


def _compare(value: Any, bound: Any) -> int | None:
    """-1/0/1 comparing a column value with a bound; None when they are not comparable."""
    if value is None:
        return None
    a, b = value, bound
    if _is_number(a) != _is_number(b):
        try:
            a, b = float(a), float(b)
        except (TypeError, ValueError):
            return None
    elif not _is_number(a):
        a, b = str(a), str(b)
    return int(a > b) - int(a < b)


class _FilterCompiler:
    def __init__(self, attributes: Sequence[str]) -> None:
        self._columns = {a.upper(): a for a in attributes}
        self._nodes = 0

    def compile(self, node: Any, depth: int = 0) -> Predicate:
        self._nodes += 1
        if self._nodes > MAX_FILTER_NODES or depth > MAX_FILTER_DEPTH:
            raise _bad("filter is too large")
        if not isinstance(node, dict) or len(node) != 1:
            raise _bad("each filter object must hold exactly one operator")
        ((op, arg),) = node.items()
        if op in ("@and", "@or"):
            if not isinstance(arg, list) or not arg:
                raise _bad("@and and @or take a non-empty list of filters")
            parts = [self.compile(a, depth + 1) for a in arg]
            if op == "@and":
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if op == "@not":
            inner = self.compile(arg, depth + 1)
            return lambda row: not inner(row)
        if op in ("@eq", "@contains", "@gte", "@lte"):
            column, wanted = self._operand(arg)
            if op == "@eq":
                return lambda row: _equal(row.get(column), wanted)
            if op == "@contains":
                return lambda row: any(_equal(v, wanted) for v in _as_array(row.get(column)))
            sign = 1 if op == "@gte" else -1

            def bound(row: Row) -> bool:
                c = _compare(row.get(column), wanted)
                return c is not None and c * sign >= 0

            return bound
        raise _bad("unsupported filter operator")

    def _operand(self, arg: Any) -> tuple[str, Any]:
        if not isinstance(arg, dict) or len(arg) != 1:
            raise _bad("a comparison filter takes one column and one value")
        ((name, value),) = arg.items()
        column = self._columns.get(str(name).upper())
        if column is None:
            raise _bad("filter column is not an attribute of the search service")
        return column, _scalar(value)


# --------------------------------------------------------------------------------------------
# Index
# --------------------------------------------------------------------------------------------


@dataclass
class _Index:
    digest: bytes
    rows: list[dict[str, Any]]
    db: sqlite3.Connection = field(repr=False)

    def rank(self, terms: Sequence[str]) -> Iterator[tuple[int, float]]:
        """(row position, text_match score) best first; every row when there are no terms."""
        if not terms:
            yield from ((i, 0.0) for i in range(len(self.rows)))
            return
        match = " OR ".join('"' + t + '"' for t in terms)  # terms hold no quotes (_TERM_RE)
        cur = self.db.execute(
            "SELECT rowid - 1, bm25(notes) FROM notes WHERE notes MATCH ? "
            "ORDER BY bm25(notes), rowid",
            (match,),
        )
        # FTS5's bm25() is negative, more negative = better; report the positive magnitude.
        yield from ((int(pos), -float(score)) for pos, score in cur)


def _build_index(digest: bytes, rows: list[dict[str, Any]], search_column: str) -> _Index:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute(
        "CREATE VIRTUAL TABLE notes USING fts5("
        "body, tokenize='porter unicode61 remove_diacritics 2')"
    )
    db.executemany(
        "INSERT INTO notes (rowid, body) VALUES (?, ?)",
        (
            (i + 1, "" if r[search_column] is None else str(r[search_column]))
            for i, r in enumerate(rows)
        ),
    )
    return _Index(digest, rows, db)


# --------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    terms: list[str]
    columns: list[tuple[str, str]]  # (key in the answer, source column)
    predicate: Predicate | None
    limit: int


class CortexSearch:
    """Cortex Search services over tables in the emulator's store."""

    def __init__(
        self,
        store: SearchStore,
        services: Mapping[str, SearchServiceSpec] | None = None,
        *,
        lookup: Lookup | None = None,
    ) -> None:
        """Services from ``lookup`` (FQN -> spec, e.g. ``catalog_lookup``) and/or a fixed
        ``services`` mapping; with neither there are none."""
        self._store = store
        self._services: dict[str, SearchServiceSpec] = {}
        for fqn, spec in (services or {}).items():
            key = normalize_fqn(fqn)
            if not key:
                raise ValueError("search service names must be fully qualified")
            self._services[key] = spec
        self._lookup = lookup
        self._lock = threading.Lock()
        self._indexes: dict[str, _Index] = {}

    @property
    def services(self) -> dict[str, SearchServiceSpec]:
        return dict(self._services)

    def service(self, service_fqn: str) -> SearchServiceSpec | None:
        key = normalize_fqn(service_fqn)
        if not key:
            return None
        spec = self._services.get(key)
        if spec is None and self._lookup is not None:
            spec = self._lookup(key)
        return spec

    def query(self, service_fqn: str, body: Any) -> dict[str, Any]:
        """Answer one ``:query`` request; raises ``SearchError`` (400, 404, 500)."""
        key = normalize_fqn(service_fqn)
        spec = self.service(service_fqn)
        if spec is None:
            raise SearchError(404, "not_found", "Cortex Search service does not exist")
        req = self._parse(spec, body)
        rows = self._read(spec)
        digest = _digest(rows)
        with self._lock:
            index = self._indexes.get(key)
            if index is None or index.digest != digest:
                if index is not None:
                    index.db.close()
                index = _build_index(digest, rows, spec.search_column.upper())
                self._indexes[key] = index
            results = []
            for pos, score in index.rank(req.terms):
                row = index.rows[pos]
                if req.predicate is not None and not req.predicate(row):
                    continue
                hit = {name: row[col] for name, col in req.columns}
                hit["@scores"] = {"text_match": round(score, 6)}
                results.append(hit)
                if len(results) >= req.limit:
                    break
        return {"results": results, "request_id": str(uuid.uuid4())}

    # -- request ----------------------------------------------------------------------------
    @staticmethod
    def _parse(spec: SearchServiceSpec, body: Any) -> _Request:
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        if set(body) - _KNOWN_KEYS:
            raise _bad("request body has an unknown field")
        query = body.get("query")
        if not isinstance(query, str):
            raise _bad("query is required and must be a string")
        terms = list(dict.fromkeys(t.lower() for t in _TERM_RE.findall(query)))
        if len(terms) > MAX_QUERY_TERMS:
            raise _bad("query has too many terms")

        by_upper = {c.upper(): c.upper() for c in spec.columns}
        requested = body.get("columns")
        if requested is None:
            columns = [(spec.search_column, spec.search_column.upper())]
        else:
            if not isinstance(requested, list) or not all(isinstance(c, str) for c in requested):
                raise _bad("columns must be a list of column names")
            columns = []
            for name in dict.fromkeys(requested):
                source = by_upper.get(name.upper())
                if source is None:
                    raise _bad("a requested column is not a column of the search service")
                columns.append((name, source))

        raw_filter = body.get("filter")
        predicate = None
        if raw_filter is not None and raw_filter != {}:
            predicate = _FilterCompiler([a.upper() for a in spec.attributes]).compile(raw_filter)

        limit = body.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise _bad("limit must be an integer from 1 to 1000")
        return _Request(terms, columns, predicate, limit)

    # -- source -----------------------------------------------------------------------------
    def _read(self, spec: SearchServiceSpec) -> list[dict[str, Any]]:
        """The source rows (service columns, upper-case keys) in table order; none when the
        table does not exist."""
        table = self._store.table_name(spec.source_table)
        wanted = [c.upper() for c in spec.columns]
        with self._store.connection() as conn:
            info = conn.execute(f"PRAGMA table_info({_quote_ident(table)})").fetchall()
            if not info:
                return []
            actual = {str(col[1]).upper(): str(col[1]) for col in info}
            if any(c not in actual for c in wanted):
                raise SearchError(
                    500, "internal_error", "search service source table lacks a service column"
                )
            select = ", ".join(_quote_ident(actual[c]) for c in wanted)
            fetched = conn.execute(f"SELECT {select} FROM {_quote_ident(table)}").fetchall()
        return [dict(zip(wanted, tuple(r), strict=True)) for r in fetched]


def _digest(rows: list[dict[str, Any]]) -> bytes:
    h = hashlib.sha256()
    for r in rows:
        h.update(repr(tuple(r.values())).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.digest()
