"""Injected faults on a running emulator: rates from --fault, run-time changes via /admin."""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

pytestmark = pytest.mark.emulator


def png_base64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


IMAGE_BODY = {"data": [[0, png_base64(), ["pneumonia", "normal"], "this is a photo of {}"]]}
SPEC = "biomedclip:503=0.5,seed=20240611"


@pytest.fixture(scope="module")
def emu(emulator_factory: Callable[..., Any]) -> Any:
    return emulator_factory("--fault", SPEC)


def test_fault_rate_from_the_command_line(emu: Any) -> None:
    headers = emu.token_header("biomedclip")
    url = emu.inference_url("biomedclip")
    seen: Counter[int] = Counter()
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(200):
            response = client.post(url, json=IMAGE_BODY)
            assert response.headers["X-Emulator-Backend"] == "stand-in"
            seen[response.status_code] += 1
    assert set(seen) == {200, 503}
    assert 70 <= seen[503] <= 130  # p=0.5 over 200 calls, far outside 4.5 sigma otherwise
    stats = emu.admin_get("status")["ingress"]["biomedclip"]["stats"]
    assert stats["faults"]["503"] == seen[503]
    assert emu.admin_get("faults")["faults"] == [SPEC]


def test_other_services_are_untouched(emu: Any) -> None:
    headers = emu.token_header("biobert_ner")
    url = emu.inference_url("biobert_ner")
    # 20 malformed requests: every one reaches the request parser (400), none is a fault
    # (malformed on purpose: the parser answers before the NER dictionaries are needed).
    codes = {httpx.post(url, json={}, headers=headers).status_code for _ in range(20)}
    assert codes == {400}


def test_faults_set_at_run_time(emu: Any) -> None:
    url = emu.inference_url("biobert_ner")
    headers = emu.token_header("biobert_ner")
    original = emu.admin_get("faults")["faults"]
    try:
        emu.admin_post("faults", {"faults": ["biobert_ner:429=1,retry_after=2"]})
        throttled = httpx.post(url, json={}, headers=headers)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "2"
        assert throttled.headers["X-Emulator-Backend"] == "lexicon"

        emu.admin_post("faults", {"faults": ["biobert_ner:drop=1"]})
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(url, json={}, headers=headers)

        bad = httpx.post(f"{emu.admin_url}/faults", json={"faults": ["biobert_ner:503=2"]})
        assert bad.status_code == 400
        assert emu.admin_get("faults")["faults"] == ["biobert_ner:drop=1"]  # unchanged

        emu.admin_post("faults", {"faults": ["*:latency_ms=300"]})
        response = httpx.post(url, json={}, headers=headers)
        assert response.status_code == 400
        assert response.elapsed.total_seconds() >= 0.29
        assert httpx.delete(f"{emu.admin_url}/faults").json() == {"faults": []}
        assert httpx.post(url, json={}, headers=headers).status_code == 400
    finally:
        emu.admin_post("faults", {"faults": original})  # other tests here rely on the CLI spec
