"""Fixtures for the reliability tests (helpers and strategies live in ``rel_support.py``).

Reuses the gateway handler fixtures (``private_key_pem``, ``gateway_env``, ``spcs``, ``router``
from tests/gateway/conftest.py), the emulator fixtures (``emulator``, ``emulator_factory`` from
tests/emulator/conftest.py) and the API fixtures (``api_function``, ``snowflake``, ``api`` ...
from tests/api/conftest.py) without copying them, and selects the Hypothesis profile:
``ci`` (default: derandomized, so a run is repeatable) or ``dev`` (random, more examples);
choose with ``HYPOTHESIS_PROFILE=dev``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, settings

_TESTS = Path(__file__).resolve().parents[1]
# gw_support and api_support (helpers and fakes) are imported by name, as their own tests do.
for _folder in ("gateway", "api"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_gw = _load(_TESTS / "gateway" / "conftest.py", "rel_gateway_fixtures")
_emu = _load(_TESTS / "emulator" / "conftest.py", "rel_emulator_fixtures")
_api = _load(_TESTS / "api" / "conftest.py", "rel_api_fixtures")

private_key_pem = _gw.private_key_pem
gateway_env = _gw.gateway_env
spcs = _gw.spcs
router = _gw.router
emulator = _emu.emulator
emulator_factory = _emu.emulator_factory
api_registry_doc = _api.api_registry_doc
api_registry = _api.api_registry
api_function = _api.api_function
snowflake = _api.snowflake
api = _api.api

# The fuzz tests share one moto/respx set-up across the examples of a test (they clean up per
# example themselves), hence function_scoped_fixture is suppressed.
_SUPPRESSED = (
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
)
settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, suppress_health_check=_SUPPRESSED
)
settings.register_profile("dev", deadline=None, suppress_health_check=_SUPPRESSED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
