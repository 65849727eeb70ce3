"""Service registry validation: bad documents fail at cold start naming fields, never values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spcs_gateway.registry import (
    REGISTRY_ENV,
    REGISTRY_FILE_ENV,
    RegistryError,
    Task,
    load_registry,
    parse_registry,
)


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "snowflake": {
            "account": "myorg-myacct",
            "user": "gateway_svc",
            "role": "SPCS_GATEWAY_ROLE",
            "secret": {"secret_id": "spcs-gateway/snowflake"},
        },
        "services": [
            {
                "name": "biobert_ner",
                "service": "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
                "compute_pool": "ML_INFERENCE_POOL",
                "url": "https://abc123-myorg-myacct.snowflakecomputing.app",
                "task": "token-classification",
                "queues": ["notes"],
            },
            {
                "name": "biomedclip",
                "service": "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE",
                "compute_pool": "ML_INFERENCE_POOL",
                "url": "https://def456-myorg-myacct.snowflakecomputing.app/",
                "method": "predict",
                "task": "zero-shot-image-classification",
                "label_sets": {"chest_xray": ["pneumonia", "normal"]},
            },
        ],
    }
    doc.update(overrides)
    return doc


def test_valid_document_defaults_and_derived_values() -> None:
    reg = parse_registry(json.dumps(_doc()))
    ner = reg.service("biobert_ner")
    clip = reg.service("biomedclip")
    assert ner.task is Task.TOKEN_CLASSIFICATION
    assert ner.columns == ["inputs"]
    assert ner.out_column == "outputs"
    assert clip.columns == ["images", "candidate_labels"]
    assert clip.out_column == "labels"
    assert ner.method_path == "/--call--"
    assert clip.method_path == "/predict"
    assert clip.url == "https://def456-myorg-myacct.snowflakecomputing.app"  # trailing / dropped
    assert ner.ingress_host == "abc123-myorg-myacct.snowflakecomputing.app"
    assert reg.snowflake.token_url == "https://myorg-myacct.snowflakecomputing.com/oauth/token"
    with pytest.raises(KeyError):
        reg.service("nope")


def test_http_url_refused_unless_loopback_and_allowed() -> None:
    doc = _doc()
    doc["services"][0]["url"] = "http://127.0.0.1:8081"
    with pytest.raises(RegistryError, match=r"services\[0\]\.url"):
        parse_registry(doc)
    doc["allow_http_loopback"] = True
    assert parse_registry(doc).services[0].url == "http://127.0.0.1:8081"
    doc["services"][0]["url"] = "http://10.0.0.5:8081"
    with pytest.raises(RegistryError, match="loopback"):
        parse_registry(doc)


def test_snowflake_http_protocol_requires_loopback_host() -> None:
    doc = _doc()
    doc["snowflake"]["protocol"] = "http"
    with pytest.raises(RegistryError, match="snowflake"):
        parse_registry(doc)
    doc["snowflake"].update(host="127.0.0.1", port=8089)
    reg = parse_registry(doc)
    assert reg.snowflake.account_url == "http://127.0.0.1:8089"


def test_error_names_field_and_never_echoes_value() -> None:
    doc = _doc()
    doc["services"][1]["max_batch_rows"] = "SECRET-CANARY-VALUE"
    doc["services"][0]["unexpected"] = "ANOTHER-CANARY"
    with pytest.raises(RegistryError) as info:
        parse_registry(doc)
    message = str(info.value)
    assert "services.1.max_batch_rows" in message
    assert "services.0.unexpected" in message
    assert "CANARY" not in message


def test_duplicate_names_and_bad_secret_ref_rejected() -> None:
    doc = _doc()
    doc["services"][1]["name"] = "biobert_ner"
    with pytest.raises(RegistryError, match="unique"):
        parse_registry(doc)
    doc = _doc()
    doc["snowflake"]["secret"] = {"secret_id": "a", "file": "/tmp/x"}
    with pytest.raises(RegistryError, match="exactly one"):
        parse_registry(doc)


def test_unknown_time_zone_in_warm_window_rejected() -> None:
    doc = _doc()
    doc["services"][0]["warm_windows"] = [
        {"cron": "45 6 * * 1-5", "duration_minutes": 60, "timezone": "Mars/Olympus"}
    ]
    with pytest.raises(RegistryError, match="warm_windows"):
        parse_registry(doc)


def test_invalid_cron_rejected_and_pool_settings() -> None:
    doc = _doc()
    doc["services"][0]["warm_windows"] = [{"cron": "99 6 * * 1-5", "duration_minutes": 60}]
    with pytest.raises(RegistryError, match="warm_windows"):
        parse_registry(doc)
    doc["services"][0]["warm_windows"] = [
        {"cron": "45 6 * * 1-5", "duration_minutes": 60, "timezone": "America/Chicago"}
    ]
    doc["pools"] = [{"name": "ML_INFERENCE_POOL", "suspend_when_idle": False}]
    reg = parse_registry(doc)
    assert reg.pool_suspends_when_idle("ml_inference_pool") is False
    assert reg.pool_suspends_when_idle("OTHER_POOL") is True


def test_invalid_json_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="not valid JSON"):
        parse_registry("{not json")


def test_load_from_env_json_and_file(tmp_path: Path) -> None:
    text = json.dumps(_doc())
    assert load_registry({REGISTRY_ENV: text}).services[0].name == "biobert_ner"
    path = tmp_path / "registry.json"
    path.write_text(text)
    assert load_registry({REGISTRY_FILE_ENV: str(path)}).services[1].name == "biomedclip"
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry({REGISTRY_FILE_ENV: str(tmp_path / "missing.json")})
    with pytest.raises(RegistryError, match="no service registry"):
        load_registry({})
