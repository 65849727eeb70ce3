"""Readiness hook: how a router tells the control plane that a service is not answering.

The one thing a router may ask of the control plane is "make this service ready": the hook has
no suspend, status or reconcile. ``control_invoke.ControlReadinessHook`` sends it (async
``ensure_ready`` through the control function's ensure-ready alias, where nothing else is
served); without a control function the routers use ``NoopReadinessHook`` and simply back off.
"""

from __future__ import annotations

from typing import Protocol

from spcs_gateway.registry import ServiceConfig


class ReadinessHook(Protocol):
    def service_unavailable(self, service: ServiceConfig) -> None:
        """Called at most once per invocation when the service answered 502/503/504 or not at all.

        Must be cheap and must not raise: the router already returns the records for retry.
        """


class NoopReadinessHook:
    def service_unavailable(self, service: ServiceConfig) -> None:
        return None
