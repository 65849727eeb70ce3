"""What the doctor needs from the production clients (protocols the real ones satisfy, so
tests pass fakes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from spcs_gateway.registry import ServiceConfig
from spcs_gateway.spcs_client import InferenceInput, RowResult


class Sql(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Inference(Protocol):
    def infer(
        self, service: ServiceConfig, inputs: Sequence[InferenceInput]
    ) -> list[RowResult]: ...


class Search(Protocol):
    def query(
        self,
        query: str,
        *,
        columns: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> tuple[list[dict[str, Any]], str | None]: ...


class Results(Protocol):
    def existing(self, event_ids: Iterable[str]) -> set[str]: ...

    def check_writable(self) -> None: ...


class Tokens(Protocol):
    def ingress_token(self, scope_host: str) -> str: ...
