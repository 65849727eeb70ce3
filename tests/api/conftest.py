"""Fixtures for the API tests (helpers and fakes live in ``api_support.py``).

``api_function``  ``functions/api/app.py`` imported once per session under a test environment
                  (its module-level ``build_api()`` runs for real).
``snowflake``     respx mock of ``/oauth/token``, both ingress endpoints (the NER one answers
                  with the emulator's lexicon backend) and the Cortex Search REST endpoint.
``api``           swaps the function's ``app`` for ``create_api`` over a real SpcsClient,
                  TokenProvider and CortexSearchClient plus fake control client, state store
                  and results sink, and a fake clock for the readiness wait.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import respx
from api_support import (
    NER_URL,
    SEARCH_URL,
    TOKEN_URL,
    ZSC_URL,
    Api,
    SnowflakeFake,
    installed_api,
    load_function,
    registry_doc,
)
from fake_account import rsa_private_pem

from spcs_gateway.registry import Registry, parse_registry


@pytest.fixture(scope="session")
def api_registry_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pem = rsa_private_pem()
    path: Path = tmp_path_factory.mktemp("api-secret") / "snowflake_key.pem"
    path.write_bytes(pem)
    return registry_doc(str(path))


@pytest.fixture(scope="session")
def api_registry(api_registry_doc: dict[str, Any]) -> Registry:
    return parse_registry(api_registry_doc)


@pytest.fixture(scope="session")
def api_function(api_registry_doc: dict[str, Any]) -> ModuleType:
    return load_function(
        {
            "SPCS_GATEWAY_REGISTRY": json.dumps(api_registry_doc),
            "CONTROL_FUNCTION_NAME": "spcs-gateway-control",
            "SERVICE_STATE_TABLE": "spcs-gateway-service-state",
        }
    )


@pytest.fixture
def snowflake() -> Iterator[SnowflakeFake]:
    fake = SnowflakeFake()
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
        mock.post(TOKEN_URL).mock(side_effect=fake.token)
        mock.post(NER_URL).mock(side_effect=fake.infer_ner)
        mock.post(ZSC_URL).mock(side_effect=fake.infer_zsc)
        mock.post(SEARCH_URL).mock(side_effect=fake.search)
        fake.router = mock
        yield fake


@pytest.fixture
def api(
    api_function: ModuleType, api_registry: Registry, snowflake: SnowflakeFake
) -> Iterator[Api]:
    with installed_api(api_function, api_registry, snowflake) as api:
        yield api
