"""Ingress against a running emulator subprocess: key-pair exchange, 401s, request formats."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

pytestmark = pytest.mark.emulator

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
NOTE = "Started amoxicillin for acute otitis media; history of asthma."
LABELS = ["pneumonia", "normal chest radiograph", "pleural effusion"]
TEMPLATE = "this is a photo of {}"  # the deployment's hypothesis_template default


def fingerprint(key: rsa.RSAPrivateKey) -> str:
    import hashlib

    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def build_jwt(
    key: rsa.RSAPrivateKey,
    *,
    account: str = "LOCALTEST",
    user: str = "GATEWAY_SVC",
    iat: float | None = None,
    lifetime: int = 3000,
    fp_key: rsa.RSAPrivateKey | None = None,
) -> str:
    """A key-pair JWT built by hand with PyJWT (Snowflake's documented claims)."""
    now = int(time.time() if iat is None else iat)
    qualified = f"{account}.{user}"
    claims = {
        "iss": f"{qualified}.{fingerprint(fp_key or key)}",
        "sub": qualified,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, key, algorithm="RS256")


def exchange(emulator: Any, assertion: str, scope: str) -> httpx.Response:
    return httpx.post(
        f"{emulator.account_url}/oauth/token",
        data={"grant_type": GRANT, "scope": scope, "assertion": assertion},
        timeout=10,
    )


def snowflake_token(token: str) -> dict[str, str]:
    return {"Authorization": f'Snowflake Token="{token}"'}


def png_base64(color: tuple[int, int, int] = (120, 120, 120)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def ner_headers(emulator: Any) -> dict[str, str]:
    return emulator.token_header("biobert_ner")


@pytest.fixture(scope="module")
def image_headers(emulator: Any) -> dict[str, str]:
    return emulator.token_header("biomedclip")


def test_keypair_exchange_then_inference(emulator: Any) -> None:
    key = emulator.private_key()
    scope = f"session:role:SPCS_GATEWAY_ROLE {emulator.scope_host('biobert_ner')}"
    answer = exchange(emulator, build_jwt(key), scope)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    token = answer.text
    assert jwt.decode(token, options={"verify_signature": False})["exp"] > time.time() + 3000

    response = httpx.post(
        emulator.inference_url("biobert_ner"),
        json={"data": [[0, NOTE]]},
        headers=snowflake_token(token),
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["X-Emulator-Backend"] == "lexicon"
    [[row, out]] = response.json()["data"]
    assert row == 0
    entities = out["outputs"]
    by_word = {e["word"].lower(): e for e in entities}
    assert by_word["amoxicillin"]["entity"] == "B-CHEMICAL"
    assert by_word["asthma"]["entity"] == "B-DISEASE"
    for entity in entities:
        assert NOTE[entity["start"] : entity["end"]] == entity["word"]
        assert set(entity) == {"word", "score", "entity", "index", "start", "end"}


def test_token_is_bound_to_its_endpoint(emulator: Any, ner_headers: dict[str, str]) -> None:
    response = httpx.post(
        emulator.inference_url("biomedclip"),
        json={"data": [[0, png_base64(), LABELS, TEMPLATE]]},
        headers=ner_headers,
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_wrong_key_gets_401(emulator: Any) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = exchange(emulator, build_jwt(stranger), emulator.scope_host("biobert_ner"))
    assert answer.status_code == 401
    assert set(answer.json()) == {"error", "message"}
    # A JWT naming the registered key's fingerprint but signed by another key.
    forged = build_jwt(stranger, fp_key=emulator.private_key())
    assert exchange(emulator, forged, emulator.scope_host("biobert_ner")).status_code == 401


def test_expired_jwt_gets_401(emulator: Any) -> None:
    old = build_jwt(emulator.private_key(), iat=time.time() - 7200, lifetime=3600)
    answer = exchange(emulator, old, emulator.scope_host("biobert_ner"))
    assert answer.status_code == 401
    assert "expired" in answer.json()["message"]


def test_lowercase_account_gets_401(emulator: Any) -> None:
    token = build_jwt(emulator.private_key(), account="localtest")
    assert exchange(emulator, token, emulator.scope_host("biobert_ner")).status_code == 401


def test_wrong_scope_gets_401(emulator: Any) -> None:
    answer = exchange(emulator, build_jwt(emulator.private_key()), "127.0.0.1:1")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_scope"


def test_missing_or_bad_header_gets_401(emulator: Any) -> None:
    url = emulator.inference_url("biobert_ner")
    missing = httpx.post(url, json={"data": [[0, NOTE]]}, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"] == "missing_token"
    assert missing.headers["X-Emulator-Backend"] == "lexicon"
    bogus = httpx.post(url, json={"data": [[0, NOTE]]}, headers=snowflake_token("x"), timeout=10)
    assert bogus.status_code == 401
    raw_jwt = {"Authorization": f"Bearer {build_jwt(emulator.private_key())}"}
    assert httpx.post(url, json={"data": [[0, NOTE]]}, headers=raw_jwt).status_code == 401


def test_token_request_errors_are_400(emulator: Any) -> None:
    url = f"{emulator.account_url}/oauth/token"
    assert httpx.post(url, data={"grant_type": "password"}).status_code == 400
    no_scope = httpx.post(url, data={"grant_type": GRANT, "assertion": "x"})
    assert no_scope.status_code == 400
    assert no_scope.json()["error"] == "invalid_scope"


NER_BODIES = [
    {"data": [[0, NOTE], [1, "clear"]]},
    {"data": [[0, {"inputs": NOTE}], [1, {"inputs": "clear"}]]},
    {
        "dataframe_split": {
            "index": [0, 1],
            "columns": ["inputs"],
            "data": [[NOTE], ["no findings"]],
        }
    },
    {"dataframe_records": [{"inputs": NOTE}, {"inputs": "clear"}], "params": {}},
]


@pytest.mark.parametrize("body", NER_BODIES, ids=["flat", "wide", "split", "records"])
def test_ner_request_formats(emulator: Any, ner_headers: dict[str, str], body: Any) -> None:
    response = httpx.post(
        emulator.inference_url("biobert_ner"), json=body, headers=ner_headers, timeout=30
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert [row for row, _ in data] == [0, 1]
    assert any(e["word"] == "amoxicillin" for e in data[0][1]["outputs"])
    assert data[1][1]["outputs"] == []


def image_bodies(image: str) -> list[dict[str, Any]]:
    return [
        {"data": [[5, image, LABELS, TEMPLATE]]},  # flat: inputs, then every parameter
        {"data": [[5, {"images": image, "candidate_labels": LABELS}]]},  # default parameter
        {
            "dataframe_split": {
                "index": [5],
                "columns": ["images", "candidate_labels"],
                "data": [[image, LABELS]],
            },
            "params": {"hypothesis_template": "a chest x-ray showing {}"},
        },
        {
            "dataframe_records": [{"images": image, "candidate_labels": LABELS}],
            "params": {"hypothesis_template": "a chest x-ray showing {}"},
        },
    ]


@pytest.mark.parametrize("form", range(4), ids=["flat", "wide", "split", "records"])
def test_image_request_formats(emulator: Any, image_headers: dict[str, str], form: int) -> None:
    body = image_bodies(png_base64())[form]
    response = httpx.post(
        emulator.inference_url("biomedclip"), json=body, headers=image_headers, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["X-Emulator-Backend"] == "stand-in"
    [[row, out]] = response.json()["data"]
    assert row == (0 if form == 3 else 5)
    assert sorted(item["label"] for item in out["labels"]) == sorted(LABELS)
    assert abs(sum(item["score"] for item in out["labels"]) - 1.0) < 1e-6


def test_image_scores_are_deterministic(emulator: Any, image_headers: dict[str, str]) -> None:
    body = {"data": [[0, png_base64((10, 200, 30)), LABELS, TEMPLATE]]}
    url = emulator.inference_url("biomedclip")
    first = httpx.post(url, json=body, headers=image_headers).json()
    assert httpx.post(url, json=body, headers=image_headers).json() == first


def test_bad_requests_get_400_with_a_reason(
    emulator: Any, ner_headers: dict[str, str], image_headers: dict[str, str]
) -> None:
    ner = emulator.inference_url("biobert_ner")
    malformed = httpx.post(ner, json={"rows": []}, headers=ner_headers)
    assert malformed.status_code == 400
    assert malformed.json()["message"]
    not_an_image = base64.b64encode(b"PHI-looking text, not an image").decode()
    bad_image = httpx.post(
        emulator.inference_url("biomedclip"),
        json={"data": [[0, not_an_image, LABELS, TEMPLATE]]},
        headers=image_headers,
    )
    assert bad_image.status_code == 400
    assert "PHI" not in bad_image.text
    assert bad_image.headers["X-Emulator-Backend"] == "stand-in"


def test_unknown_path_is_404(emulator: Any, ner_headers: dict[str, str]) -> None:
    assert emulator.inference_url("biobert_ner").endswith("/predict")  # the deployment's method
    response = httpx.post(
        emulator.url("biobert_ner") + "/--call--", json={"data": [[0, NOTE]]}, headers=ner_headers
    )
    assert response.status_code == 404


def test_admin_status_counts_requests(emulator: Any, ner_headers: dict[str, str]) -> None:
    before = emulator.admin_get("status")["ingress"]["biobert_ner"]["stats"]["requests"]
    httpx.post(
        emulator.inference_url("biobert_ner"), json={"data": [[0, "x"]]}, headers=ner_headers
    )
    status = emulator.admin_get("status")
    assert status["ingress"]["biobert_ner"]["stats"]["requests"] == before + 1
    assert status["ingress"]["biobert_ner"]["backend"] == "lexicon"
    names = {s["name"] for s in status["account"]["services"]}
    assert names == {
        "PEDIATRIC_ML.MODELS.BIOBERT_NER_SERVICE",
        "PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE",
    }
