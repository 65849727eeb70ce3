"""The chaos run (``bench/chaos.py``, ``make chaos``) at a few hundred events.

The whole local stack under the issue's faults (5 % 503, 2 % 429, 1 % dropped connections,
200 ms latency spikes on both services), a note-router container killed mid-batch, the NER
service suspended by SQL half-way through the feed and the control container killed while it
resumes it. Reconciled from the results table and the DLQs: nothing lost, nothing twice, the
DLQs hold exactly the poison with its reason codes; the emulator counted at least one fault of
each kind and both kills hit a running invocation.

Seed 281: the NER service's fault stream (one draw per request, in arrival order) holds a 429,
a 503, a dropped connection and a latency spike within its first 6 requests, and 300 events make
more than that (237 notes at 32 rows per request at least), so every kind is injected whatever
the timing. The killed router's batch comes back after the 30 s visibility timeout. Settings:
the module docstring of ``bench/chaos.py`` (the template's MaxReceiveCount=5 among them).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from bench.chaos import FAULT_KINDS, ChaosConfig, chaos_split, reconcile_dlq, run  # noqa: E402

pytestmark = pytest.mark.emulator

EVENTS = 300
SEED = 281


def test_reconcile_dlq_flags_missing_extra_wrong_and_counts_copies() -> None:
    expected = {"a": "INVALID_JSON", "b": "INVALID_EVENT"}
    assert reconcile_dlq(expected, [("a", "INVALID_JSON"), ("b", "INVALID_EVENT")])["exact"]
    copies = reconcile_dlq(expected, [("a", "INVALID_JSON")] * 2 + [("b", "INVALID_EVENT")])
    assert copies["exact"]
    assert copies["redelivered_copies"] == 1
    bad = reconcile_dlq(expected, [("a", "RETRIES_EXHAUSTED"), ("c", "INVALID_JSON")])
    assert not bad["exact"]
    assert bad["missing"] == ["b"]
    assert bad["unexpected"] == ["c"]
    assert bad["wrong_code"] == ["a"]
    assert chaos_split(10_000) == (7920, 1980, 100)
    assert chaos_split(300)[2] == 4  # one poison event of each kind at least


def test_chaos_small_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    out = io.StringIO()
    figures = run(
        ChaosConfig(events=EVENTS, seed=SEED, rate=40, timeout_s=75, work_dir=tmp_path / "w"),
        stream=out,
    )
    detail = out.getvalue()[-3000:]
    assert figures["events_sent"] == EVENTS, detail
    assert figures["lost"] == 0, detail
    assert figures["duplicate_results"] == 0, detail
    assert figures["source_queues_left"] == 0, detail
    check = figures["dlq_check"]
    assert check["exact"], (check, detail)
    assert figures["dlq"] == figures["dlq_expected"] or check["redelivered_copies"], detail
    assert figures["dlq_expected"] == {
        "INVALID_EVENT": 1,
        "INVALID_IMAGE": 1,
        "INVALID_JSON": 1,
        "UNKNOWN_SCHEMA": 1,
    }
    assert figures["rows"] == EVENTS - 4
    injected = figures["faults_injected"]["total"]
    assert all(injected[kind] >= 1 for kind in FAULT_KINDS), injected
    router, control = figures["kills"]["router"], figures["kills"]["control"]
    assert router["done"], router
    assert router["invocation_failed"], router
    assert control["done"], control
    assert control["mapping_paused"], control
    assert figures["suspend"]["done"]
    # The pause the killed control left behind was lifted (by a later control round), and the
    # service was resumed once, whoever asked how often.
    assert figures["notes_mapping"]["reenabled_after_control_kill_s"] is not None
    assert figures["notes_mapping"]["enabled_at_end"]
    assert figures["resumes"]["biobert_ner"] == len(figures["suspend"]["at_s"])
    assert figures["ok"], figures["problems"]
