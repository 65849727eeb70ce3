"""Replay of a user's traffic (spcs_gateway.replay, `spcs-gateway replay`): both file formats,
the JSON it prints, and how it compares with the exact baselines."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from spcs_gateway import replay
from spcs_gateway.cli import main


def write_azure(
    path: Path, rows: dict[str, dict[int, int]], *, trigger: bool = True, prefix: str = ""
) -> None:
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        ids = ["HashOwner", "HashApp", "HashFunction"] + (["Trigger"] if trigger else [])
        w.writerow(ids + [f"{prefix}{m}" for m in range(1, 1441)])
        for name, counts in rows.items():
            w.writerow(
                ["o", "a", name]
                + (["http"] if trigger else [])
                + [counts.get(m, 0) for m in range(1, 1441)]
            )


HOURLY = {m: 5 for m in range(10, 1441, 60)}  # 5 calls at minute 10 of every hour
SPARSE = {100: 1, 700: 1, 1300: 1}


@pytest.mark.parametrize(("trigger", "prefix"), [(True, ""), (False, "minute_")])
def test_azure_csv_layouts_and_the_printed_json(tmp_path: Path, trigger: bool, prefix: str) -> None:
    path = tmp_path / "day.csv"
    write_azure(path, {"hourly": HOURLY, "sparse": SPARSE}, trigger=trigger, prefix=prefix)
    out = io.StringIO()
    assert main(["replay", str(path), "--json"], out=out) == 0
    doc = json.loads(out.getvalue())
    rows = {r["service"]: r for r in doc["services"]}
    assert rows["hourly"]["events"] == 5 * 24
    assert rows["sparse"]["events"] == 3
    for row in rows.values():
        assert set(row["policies"]) >= {"always_on", "fixed_1800s", "fixed", "adaptive", "optimum"}
        for p in row["policies"].values():
            assert set(p) == {"billed_s", "resumes", "added_wait_p95_s"}
        pol = row["policies"]
        assert pol["optimum"]["added_wait_p95_s"] == 0
        assert pol["always_on"]["billed_s"] == 86_400
        assert pol["adaptive"]["billed_s"] <= pol["fixed_1800s"]["billed_s"]
    assert set(doc["recommendation"]) == {"hourly", "sparse"}
    assert doc["recommendation"]["sparse"]["policy"] in ("adaptive", "fixed")


def test_jsonl_and_the_learned_pre_resume(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"service": "cron", "at": f"2025-03-03T{h:02d}:05:00Z"}) for h in range(24)]
    path.write_text("\n".join(lines) + "\n")
    result = replay.replay(path, 180.0)
    (row,) = result["services"]
    pol = row["policies"]
    # Learned after a few hours: later calls find it pre-resumed.
    assert pol["adaptive"]["resumes"] <= 26  # one an hour, plus the end of the day
    assert pol["adaptive"]["billed_s"] < 2 * pol["optimum"]["billed_s"]
    assert pol["optimum"]["billed_s"] == pytest.approx(24 * 180)


def test_fast_evaluation_matches_the_exact_baselines_of_the_simulator() -> None:
    arrivals = [1000.0, 1010.0, 20_000.0, 60_000.0]
    opt = replay.optimum(arrivals, 86_400, 180)
    assert opt.billed_s == pytest.approx(3 * 180 + 10)
    fixed = replay.snowflake_fixed(arrivals, 86_400, 180, 86_400)
    assert fixed.resumes == 1
    assert fixed.billed_s == pytest.approx(86_400 - 1000)
    assert replay.p95([180.0] * 5, 100) == 0.0
    assert replay.p95([180.0] * 6, 100) == 180.0
