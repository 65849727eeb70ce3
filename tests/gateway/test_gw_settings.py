"""The library's environment parsers: one per type, one boolean vocabulary, and a malformed
value named by its variable, never echoed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spcs_gateway.backoff import BackoffPolicy
from spcs_gateway.settings import (
    env_bool,
    env_float,
    env_int,
    env_int_map,
    env_json_map,
    env_str,
    parse_json_map,
)

CANARY = "s3cr3t-CANARY-value"


def test_env_str_treats_unset_and_empty_as_not_configured() -> None:
    assert env_str({}, "K") is None
    assert env_str({"K": ""}, "K") is None
    assert env_str({"K": ""}, "K", "fallback") == "fallback"
    assert env_str({"K": "   "}, "K") is None
    assert env_str({"K": " v "}, "K") == "v"
    assert env_str({"K": "v"}, "K", "fallback") == "v"


@pytest.mark.parametrize("raw", ["true", "TRUE", " yes ", "1", "On"])
def test_env_bool_true_words(raw: str) -> None:
    assert env_bool({"K": raw}, "K", False) is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", " OFF "])
def test_env_bool_false_words(raw: str) -> None:
    assert env_bool({"K": raw}, "K", True) is False


def test_env_bool_blank_is_the_default() -> None:
    assert env_bool({}, "K", True) is True
    assert env_bool({"K": "  "}, "K", False) is False


@pytest.mark.parametrize(
    ("parse", "raw"),
    [
        (lambda env: env_bool(env, "MY_FLAG", True), CANARY),
        (lambda env: env_float(env, "MY_FLAG", 1.0), CANARY),
        (lambda env: env_int(env, "MY_FLAG", 1), CANARY),
        (lambda env: env_int(env, "MY_FLAG", 1), "2.5"),
        (lambda env: env_json_map(env, "MY_FLAG"), CANARY),
        (lambda env: env_json_map(env, "MY_FLAG"), f'{{"a": ["{CANARY}"]}}'),
        (lambda env: env_int_map(env, "MY_FLAG"), f'{{"notes": "{CANARY}"}}'),
        (lambda env: env_int_map(env, "MY_FLAG"), '{"notes": 0}'),
        (lambda env: env_int_map(env, "MY_FLAG"), '{"notes": true}'),
    ],
)
def test_a_malformed_value_names_the_variable_not_the_value(
    parse: Callable[[dict[str, str]], object], raw: str
) -> None:
    with pytest.raises(ValueError, match="MY_FLAG") as caught:
        parse({"MY_FLAG": raw})
    assert CANARY not in str(caught.value)


def test_numbers_and_json_maps() -> None:
    assert env_float({"K": " 2.5 "}, "K", 1.0) == 2.5
    assert env_float({}, "K", 1.0) == 1.0
    assert env_int({"K": "7"}, "K", 1) == 7
    assert env_int({"K": ""}, "K", 1) == 1
    assert env_json_map({}, "K") is None
    assert env_int_map({}, "K") is None
    assert env_int_map({"K": '{"notes": 5, "images": 2}'}, "K") == {"notes": 5, "images": 2}
    assert env_json_map({"K": '{"notes": "https://q"}'}, "K") == {"notes": "https://q"}
    with pytest.raises(ValueError, match="--queue-urls is not valid JSON"):
        parse_json_map("{", "--queue-urls")


def test_backoff_reads_its_variable_with_the_int_parser() -> None:
    assert BackoffPolicy.from_env({}) == BackoffPolicy()
    assert BackoffPolicy.from_env({"RETRY_UNAVAILABLE_BASE_SECONDS": "45"}).unavailable_base == 45
    with pytest.raises(ValueError, match="whole number"):
        BackoffPolicy.from_env({"RETRY_UNAVAILABLE_BASE_SECONDS": CANARY})
