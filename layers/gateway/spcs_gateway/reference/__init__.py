"""The reference route: events that name a note or image stored in Snowflake (ids only), and
one MERGE per batch that runs the model inside Snowflake (docs/REFERENCE_ROUTE.md).

* ``allow_list.py``: the registry's ``references`` section (tables, key/text/version columns,
  image stages and their reader function);
* ``statement.py``: the SQL builder (pure);
* ``route.py``: ``ReferenceRoute``, the runner over a ``SnowflakeSql``-like port, per-event
  outcomes (done, missing reference, failure).

The event schemas live with the inline ones in ``spcs_gateway.events`` and are re-exported here.
"""

from __future__ import annotations

from typing import Any

# The schemas, re-exported lazily: the registry imports ``allow_list`` from this package, and a
# function that never parses an event (the control function) should not pay for the models.
_FROM_EVENTS = frozenset(
    {
        "IMAGE_REF_SCHEMA",
        "NOTE_REF_SCHEMA",
        "ImageRefEvent",
        "NoteRefEvent",
        "ReferenceEvent",
        "StageFileRef",
        "TableRowRef",
    }
)
__all__ = sorted(_FROM_EVENTS)


def __getattr__(name: str) -> Any:
    if name in _FROM_EVENTS:
        from spcs_gateway import events

        return getattr(events, name)
    raise AttributeError(name)
