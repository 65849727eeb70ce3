"""Production wiring: ``build_dependencies`` from the environment, and service selection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spcs_gateway.api.search import CortexSearchClient
from spcs_gateway.api.wiring import build_dependencies, pick_service
from spcs_gateway.control_invoke import LambdaControlClient
from spcs_gateway.errors import ConfigurationError
from spcs_gateway.registry import Registry, Task
from spcs_gateway.service_state import ServiceStateStore


def env(doc: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        "SPCS_GATEWAY_REGISTRY": json.dumps(doc),
        "CONTROL_FUNCTION_NAME": "spcs-gateway-control",
        "SERVICE_STATE_TABLE": "service-state",
        **extra,
    }


def test_api_build_dependencies_from_environment(api_registry_doc: dict[str, Any]) -> None:
    deps = build_dependencies(env(api_registry_doc))
    try:
        assert isinstance(deps.control, LambdaControlClient)
        assert isinstance(deps.state, ServiceStateStore)
        assert deps.state.table_name == "service-state"
        assert isinstance(deps.search, CortexSearchClient)
        assert deps.search.url.endswith(
            "/databases/PEDIATRIC_ML/schemas/CLINICAL_DATA"
            "/cortex-search-services/CLINICAL_NOTES_SEARCH:query"
        )
        assert deps.ner_service is not None
        assert deps.ner_service.name == "biobert_ner"
        assert deps.image_service is not None
        assert deps.image_service.name == "biomedclip"
        assert deps.sink.table == "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS"
    finally:
        deps.spcs.close()  # type: ignore[attr-defined]


def test_api_search_service_from_environment(api_registry_doc: dict[str, Any]) -> None:
    deps = build_dependencies(env(api_registry_doc, CORTEX_SEARCH_SERVICE="db1.sch.other_search"))
    assert isinstance(deps.search, CortexSearchClient)
    assert deps.search.url.endswith(
        "/databases/DB1/schemas/SCH/cortex-search-services/OTHER_SEARCH:query"
    )


def test_api_build_dependencies_needs_control_function(api_registry_doc: dict[str, Any]) -> None:
    values = env(api_registry_doc)
    del values["CONTROL_FUNCTION_NAME"]
    with pytest.raises(ConfigurationError):
        build_dependencies(values)


def test_api_pick_service(api_registry: Registry) -> None:
    assert pick_service(api_registry, Task.TOKEN_CLASSIFICATION, None).name == "biobert_ner"  # type: ignore[union-attr]
    assert pick_service(api_registry, Task.ZERO_SHOT_IMAGE_CLASSIFICATION, "biomedclip") is not None
    with pytest.raises(ConfigurationError):
        pick_service(api_registry, Task.TOKEN_CLASSIFICATION, "biomedclip")  # wrong task
    with pytest.raises(ConfigurationError):
        pick_service(api_registry, Task.TOKEN_CLASSIFICATION, "missing")
