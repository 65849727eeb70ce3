"""The library's environment parsers: one per type, one boolean vocabulary.

Every module that reads configuration from the environment goes through these (the control
plane's ``ControlSettings`` in ``control/settings.py``, the routers' wiring, the API, the CLI).
Each takes the mapping to read (``os.environ`` or a test's dict) and the variable's name.

- unset or blank means "not configured": ``None`` or the caller's default;
- booleans: ``true``/``1``/``yes``/``on`` and ``false``/``0``/``no``/``off`` (any case);
- a malformed value raises ``ValueError`` naming the variable, never echoing its value (a
  mistyped secret or URL must not reach a log line).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TypeVar, overload

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

N = TypeVar("N", int, float)


@overload
def env_str(environ: Mapping[str, str], key: str) -> str | None: ...
@overload
def env_str(environ: Mapping[str, str], key: str, default: str) -> str: ...
def env_str(environ: Mapping[str, str], key: str, default: str | None = None) -> str | None:
    """The value without surrounding spaces, or ``default`` when unset or blank."""
    return (environ.get(key) or "").strip() or default


def env_bool(environ: Mapping[str, str], key: str, default: bool) -> bool:
    """Unset or blank: ``default``; else one of the boolean words (any case, spaces ignored)."""
    raw = environ.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ValueError(f"{key} must be one of {sorted(TRUE_WORDS | FALSE_WORDS)}")


def env_float(environ: Mapping[str, str], key: str, default: float) -> float:
    """A number; unset or blank: ``default``."""
    return _env_number(environ, key, default, float, "a number")


def env_int(environ: Mapping[str, str], key: str, default: int) -> int:
    """A whole number; unset or blank: ``default``."""
    return _env_number(environ, key, default, int, "a whole number")


def _env_number(
    environ: Mapping[str, str], key: str, default: N, parse: Callable[[str], N], what: str
) -> N:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"{key} must be {what}") from None


def parse_json_map(text: str, name: str) -> dict[str, str]:
    """``text`` as a JSON object of strings; ``ValueError`` naming ``name`` otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{name} is not valid JSON") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{name} must be a JSON object of strings")
    return value


def env_int_map(environ: Mapping[str, str], key: str) -> dict[str, int] | None:
    """A JSON object of strings to integers of at least 1, or None when unset or empty."""
    raw = environ.get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"{key} is not valid JSON") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 1 for k, v in value.items()
    ):
        raise ValueError(f"{key} must be a JSON object of positive integers")
    return value


def env_json_map(environ: Mapping[str, str], key: str) -> dict[str, str] | None:
    """A JSON object of strings, or None when unset or empty."""
    raw = environ.get(key)
    return parse_json_map(raw, key) if raw else None
