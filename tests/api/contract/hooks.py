"""Schemathesis hooks of the contract test: realistic values where JSON Schema can only describe.

The document states every rule a request must meet that JSON Schema can express; two it can
only describe, and a generated value would not meet:

* an image must decode as its content type: a schema-valid case gets a small real image of the
  declared ``content_type`` instead of random base64;
* a label set is one of the image service's registry entry: a schema-valid case gets one of
  the running stack's label sets (read from the endpoints file, ``CONTRACT_ENDPOINTS``).

Negative cases (meant to be refused) are left as generated.
"""

from __future__ import annotations

import base64
import io
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import schemathesis
from PIL import Image

CLASSIFICATIONS = "/v1/images/classifications"
ENDPOINTS_ENV = "CONTRACT_ENDPOINTS"


@cache
def _image(content_type: str) -> str:
    out = io.BytesIO()
    kind = "PNG" if content_type == "image/png" else "JPEG"
    Image.new("RGB", (16, 16), (90, 140, 200)).save(out, format=kind)
    return base64.b64encode(out.getvalue()).decode()


@cache
def _label_sets() -> tuple[str, ...]:
    path = os.environ.get(ENDPOINTS_ENV)
    if not path:
        return ()
    registry = json.loads(Path(path).read_text(encoding="utf-8")).get("registry") or {}
    names: set[str] = set()
    for service in registry.get("services", []):
        if service.get("task") == "zero-shot-image-classification":
            names.update(service.get("label_sets") or {})
    return tuple(sorted(names))


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is None or bool(meta.generation.mode.is_positive)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.operation.path != CLASSIFICATIONS or not _positive(case):
        return case
    body = case.body
    if not isinstance(body, dict):
        return case
    image = body.get("image")
    if isinstance(image, dict) and image.get("content_type") in ("image/png", "image/jpeg"):
        image["base64"] = _image(image["content_type"])
    label_set, sets = body.get("label_set"), _label_sets()
    if isinstance(label_set, str) and sets:
        body["label_set"] = sets[len(label_set) % len(sets)]
    return case
