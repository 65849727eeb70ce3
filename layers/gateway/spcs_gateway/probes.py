"""Synthetic, PHI-free probe rows: one known-good input per task. Pure.

Used where the gateway must tell "this input is bad" from "every input is refused": the SPCS
client sends a probe when a model service refuses every row of a call (a refused probe means
the registry's signature does not match the deployed model: a configuration fault, not poison),
and ``spcs-gateway doctor`` sends one per service as its end-to-end check.
"""

from __future__ import annotations

import base64
from typing import Any

from spcs_gateway.registry import ServiceConfig, Task

# A drug and a disease the NER models were trained on, in a sentence about nobody.
PROBE_NOTE = "Patient was given aspirin for a headache and has a history of asthma."
# An 8x8 mid-grey RGB PNG.
PROBE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFUlEQVR42mNsaGhgwAaYGHCAwSkBADAXAZDUexXGAAAAAElFTkSuQmCC"
)
PROBE_LABELS = ("normal radiograph", "abnormal radiograph")


def probe_values(service: ServiceConfig) -> tuple[Any, ...]:
    """Input column values (signature order) of the probe row for ``service``'s task."""
    if service.task is Task.TOKEN_CLASSIFICATION:
        return (PROBE_NOTE,)
    return (PROBE_PNG, list(PROBE_LABELS))
