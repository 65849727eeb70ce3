"""Helpers for the local-stack tests (tests/stack)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spcs_local.stack.stack import DEFAULT_TEMPLATE
from spcs_local.stack.template import Template

# Another template for these tests (e.g. one with parts not yet in template.yaml).
TEMPLATE_ENV = "SPCS_LOCAL_TEST_TEMPLATE"


def stack_template() -> Path:
    return Path(os.environ.get(TEMPLATE_ENV) or DEFAULT_TEMPLATE)


def function_ids(*, schedule: bool = False, api: bool = False, sqs: bool = False) -> list[str]:
    """Logical ids of the template's functions with a Schedule / Api / SQS event."""
    functions = Template(stack_template()).functions()
    return [
        f.logical_id
        for f in functions
        if (schedule and f.schedules) or (api and f.apis) or (sqs and f.sqs_events)
    ]


def require_control_plane() -> list[str]:
    """The control function(s) (a Schedule event), or skip: the scenario needs the template's
    control plane."""
    found = function_ids(schedule=True)
    if not found:
        pytest.skip("template.yaml declares no scheduled (control) function yet")
    return found


def router_for(service: str) -> str:
    for fn in Template(stack_template()).functions():
        if fn.environment.get("SERVICE_NAME") == service and fn.sqs_events:
            return fn.logical_id
    raise AssertionError(f"no router for {service} in the template")


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
