"""What the doctor needs from the production clients (protocols the real ones satisfy, so
tests pass fakes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from spcs_gateway.api.ports import Search  # the API's Cortex Search port, shared
from spcs_gateway.spcs_client import Inference

__all__ = ["Inference", "Results", "Search", "Sql", "Tokens"]


class Sql(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Results(Protocol):
    def existing(self, event_ids: Iterable[str]) -> set[str]: ...

    def check_writable(self) -> None: ...


class Tokens(Protocol):
    def ingress_token(self, scope_host: str) -> str: ...
