"""The fake Snowflake account, its ingress URLs and a Lambda context, shared by the gateway and
API tests (plain module; ``tests/conftest.py`` puts ``tests/support`` on sys.path).

Importing it sets the Powertools/AWS test environment defaults, so import it before anything
that builds a Powertools object (the functions build theirs at import).
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

for _name, _value in {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "SpcsGatewayTest",
    "POWERTOOLS_SERVICE_NAME": "spcs-gateway-test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}.items():
    os.environ.setdefault(_name, _value)

ACCOUNT_URL = "https://myorg-acct.snowflakecomputing.com"
TOKEN_URL = f"{ACCOUNT_URL}/oauth/token"
NER_BASE = "https://ner-myorg-acct.snowflakecomputing.app"
ZSC_BASE = "https://zsc-myorg-acct.snowflakecomputing.app"
NER_URL = f"{NER_BASE}/--call--"
ZSC_URL = f"{ZSC_BASE}/--call--"
RADIOLOGY_LABELS = ["chest x-ray", "brain MRI", "CT abdomen"]


def snowflake_section(secret: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The registry's ``snowflake`` block for the fake account (key-pair auth)."""
    return {
        "account": "myorg-acct",
        "user": "svc_gateway",
        "role": "GATEWAY_ROLE",
        "auth": "keypair",
        "secret": secret,
        **extra,
    }


def ner_service(name: str, **extra: Any) -> dict[str, Any]:
    """A registry entry for the token-classification service at ``NER_BASE``."""
    return {
        "name": name,
        "service": "PEDIATRIC_ML.MODELS.BIOBERT_NER",
        "compute_pool": "CPU_POOL",
        "url": NER_BASE,
        "task": "token-classification",
        "model_version": "v1",
        "max_batch_rows": 8,
        **extra,
    }


def zsc_service(name: str, **extra: Any) -> dict[str, Any]:
    """A registry entry for the zero-shot image classification service at ``ZSC_BASE``."""
    return {
        "name": name,
        "service": "PEDIATRIC_ML.MODELS.BIOMEDCLIP",
        "compute_pool": "GPU_POOL",
        "url": ZSC_BASE,
        "task": "zero-shot-image-classification",
        "model_version": "v1",
        "label_sets": {"radiology-modality": list(RADIOLOGY_LABELS)},
        "max_candidate_labels": 5,
        **extra,
    }


def rsa_private_pem() -> bytes:
    """A fresh 2048-bit RSA key as unencrypted PKCS#8 PEM (the key-pair secret)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LambdaContextStub:
    """The context attributes the handlers and Powertools read."""

    function_version = "$LATEST"
    memory_limit_in_mb = 512
    log_stream_name = "stream"

    def __init__(self, function_name: str, *, request_id: str, remaining_ms: int = 60_000) -> None:
        self.function_name = function_name
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
