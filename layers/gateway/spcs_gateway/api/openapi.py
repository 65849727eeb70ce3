"""The API's OpenAPI document, generated from the routes and models.

``python -m spcs_gateway.api.openapi > openapi.json`` (or ``make openapi``) regenerates the
committed copy; a test fails when it is stale. No collaborator is built and no environment is
read: the document depends on the code only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from spcs_gateway.api.app import API_TITLE, API_VERSION, build_resolver

DESCRIPTION = (
    "On-demand access to the model services that run on Snowflake SPCS: entities in clinical "
    "notes, zero-shot image classification, semantic search over notes (Cortex Search), and "
    "service status and control. Callers are authorised AWS principals (API Gateway IAM auth, "
    "SigV4). Responses may carry PHI back to the caller; errors never do. Every response "
    "carries X-Request-Id."
)


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    """Powertools always adds its default 422 schemas; this API answers 422 with its own."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    used = _references({k: v for k, v in document.items() if k != "components"})
    frontier = set(used)
    while frontier:  # schemas referenced by used schemas, transitively
        found = _references([schemas[name] for name in frontier if name in schemas]) - used
        used |= found
        frontier = found
    for name in [name for name in schemas if name not in used]:
        del schemas[name]


def openapi_document() -> str:
    """The document as JSON text (stable: sorted components, 2-space indent, final newline)."""
    app = build_resolver(enable_swagger=False)
    raw = app.get_openapi_json_schema(title=API_TITLE, version=API_VERSION, description=DESCRIPTION)
    document: dict[str, Any] = json.loads(raw)
    _drop_unused_schemas(document)
    document["paths"] = dict(sorted(document.get("paths", {}).items()))
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(openapi_document())


if __name__ == "__main__":
    main()
