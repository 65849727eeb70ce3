"""The clinical-notes search service as the API documents it: its columns and its filter grammar.

The service is ``CLINICAL_NOTES_SEARCH`` (``infra/snowflake/07_cortex_search.sql``): ``ON
NOTE_TEXT ATTRIBUTES NOTE_TYPE, DEPARTMENT, PATIENT_ID`` over ``NOTE_ID, PATIENT_ID, NOTE_TYPE,
DEPARTMENT, NOTE_DATE, NOTE_TEXT``. A Cortex Search filter is one operator object:

* ``{"@eq": {ATTRIBUTE: value}}``, ``{"@contains": {...}}`` (array membership),
  ``{"@gte": {...}}``, ``{"@lte": {...}}`` with one attribute column and a string or number;
* ``{"@and": [filter, ...]}``, ``{"@or": [filter, ...]}`` with at least one filter;
* ``{"@not": filter}``.

The API passes the filter and the column names on; Cortex Search checks them and refuses others
with HTTP 400 (the API answers 400 ``SEARCH_REJECTED``). These models exist so the OpenAPI
document states the grammar (``SearchRequest.filter``): a client generated from it sends only
filters the service accepts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NOTE_COLUMNS = ("NOTE_ID", "PATIENT_ID", "NOTE_TYPE", "DEPARTMENT", "NOTE_DATE", "NOTE_TEXT")
NOTE_ATTRIBUTES = ("NOTE_TYPE", "DEPARTMENT", "PATIENT_ID")

Attribute = Literal["NOTE_TYPE", "DEPARTMENT", "PATIENT_ID"]
FilterValue = str | float
# Exactly one attribute and its value.
Comparison = Annotated[dict[Attribute, FilterValue], Field(min_length=1, max_length=1)]


class _Operator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EqFilter(_Operator):
    """The attribute equals the value."""

    eq: Comparison = Field(alias="@eq")


class ContainsFilter(_Operator):
    """The attribute (an array, or a value taken as a one-element array) holds the value."""

    contains: Comparison = Field(alias="@contains")


class GteFilter(_Operator):
    """The attribute is at least the value (numbers, or dates as text)."""

    gte: Comparison = Field(alias="@gte")


class LteFilter(_Operator):
    """The attribute is at most the value."""

    lte: Comparison = Field(alias="@lte")


class AndFilter(_Operator):
    """Every filter holds."""

    all_of: list[SearchFilter] = Field(alias="@and", min_length=1)


class OrFilter(_Operator):
    """At least one filter holds."""

    any_of: list[SearchFilter] = Field(alias="@or", min_length=1)


class NotFilter(_Operator):
    """The filter does not hold."""

    negated: SearchFilter = Field(alias="@not")


SearchFilter = EqFilter | ContainsFilter | GteFilter | LteFilter | AndFilter | OrFilter | NotFilter
NoFilter = Annotated[dict[str, Any], Field(max_length=0)]

for _model in (AndFilter, OrFilter, NotFilter):
    _model.model_rebuild()

# What ``SearchRequest.filter`` is documented as: a filter, or none ({} or null).
SEARCH_FILTER_SCHEMA_TYPE: Any = SearchFilter | NoFilter | None
