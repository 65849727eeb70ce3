"""Former name of ``spcs_services`` (SPCS services and pools through SQL), kept so existing
importers keep working; new code imports ``spcs_gateway.spcs_services``."""

from __future__ import annotations

from spcs_gateway.spcs_services import QueryRunner, checked_identifier
from spcs_gateway.spcs_services import SqlSpcsServices as ServiceController
from spcs_gateway.status import PoolObservation, ServiceObservation

__all__ = [
    "PoolObservation",
    "QueryRunner",
    "ServiceController",
    "ServiceObservation",
    "checked_identifier",
]
