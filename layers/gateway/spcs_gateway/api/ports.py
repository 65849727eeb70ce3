"""What the API needs from its collaborators: small protocols, so tests pass fakes.

Production wiring (``wiring.build_dependencies``): ``SpcsClient``, ``control_invoke.
LambdaControlClient``, ``service_state.ServiceStateStore``, ``results.ResultsSink``,
``images.ImageSource`` and ``search.CortexSearchClient``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from spcs_gateway.events import InlineImage
from spcs_gateway.images import CheckedImage
from spcs_gateway.lifecycle import ServiceState
from spcs_gateway.reference.allow_list import NoteTable
from spcs_gateway.registry import Registry, ServiceConfig
from spcs_gateway.results import ResultRow
from spcs_gateway.spcs_client import Inference as Inference


class ReadyRequester(Protocol):
    def ensure_ready(self, name: str) -> Any:
        """Ask the control function to make ``name`` ready (asynchronous, returns at once)."""


class ControlClient(ReadyRequester, Protocol):
    def suspend(self, name: str, force: bool = False) -> Mapping[str, Any]:
        """Suspend ``name`` now: a ``control.ControlResult`` as JSON (``outcome`` refused, with a
        ``code``, while work is queued or an on-demand call is in flight, unless ``force``)."""

    def status(self) -> Sequence[Mapping[str, Any]]:
        """One ``control.ServiceOverview`` (as JSON) per managed service."""

    def scale(self, name: str, min_instances: int, max_instances: int) -> Mapping[str, Any]:
        """Set ``name``'s instance range: a ``control.ControlResult`` as JSON (``outcome``
        scaled, or refused with ``code`` OUT_OF_RANGE)."""


class StateStore(Protocol):
    def get(self, name: str) -> ServiceState: ...

    def record_activity(self, name: str, now: datetime) -> bool: ...

    def begin_on_demand(self, name: str, now: datetime, ttl: timedelta = ...) -> None: ...

    def end_on_demand(self, name: str) -> bool: ...


class Sink(Protocol):
    def merge(self, rows: Sequence[ResultRow]) -> None: ...

    @property
    def table(self) -> str: ...


class ImageLoader(Protocol):
    def load(self, image: InlineImage) -> CheckedImage: ...


class StoredNotes(Inference, Protocol):
    """Stored notes by reference (``api/stored.StoredNotes``): an ``Inference`` whose inputs are
    (table, key, version) references, and the note table Cortex Search indexes."""

    @property
    def search_table(self) -> NoteTable | None: ...


class Search(Protocol):
    def query(
        self,
        query: str,
        *,
        columns: list[str] | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> tuple[list[dict[str, Any]], str | None]: ...


@dataclass(frozen=True)
class ApiDeps:
    registry: Registry
    spcs: Inference
    control: ControlClient
    state: StateStore
    sink: Sink
    images: ImageLoader
    search: Search
    ner_service: ServiceConfig | None  # None: the registry has no such service
    image_service: ServiceConfig | None
    # Stored notes by reference (api/stored.py); None: the routes answer CONFIGURATION_ERROR.
    stored: StoredNotes | None = None
