"""Reference route vs inline route: notes per second and Lambda time per note, same notes, one run.

One emulator (faults off) serves both. The synthetic notes (``throughput.synthetic_notes``) are
first stored in its EHR_NOTES table, as an EHR export would, then processed twice, as SQS
batches, each client in a fresh subprocess that warms up on one batch and is timed over the rest:

``inline``     the real note router (``throughput``'s gateway child): the text travels in the
               message, the router calls the ingress and MERGEs the results;
``reference``  the same note router, fed ``clinical-note-ref.v1`` bodies that name the stored
               notes: its pipeline hands them to ``reference.route.ReferenceRoute``, one MERGE per
               batch through ``SnowflakeSql``; the model runs inside the statement.

"Lambda time per note" is the client's wall time per note: the time a Lambda would be billed
for, waiting included (on the reference route the Lambda waits for the statement, in which the
model runs; on the inline route it waits for the ingress). The two alternate per repetition.
The emulator runs both models in its own process, so the model's cost is in both figures alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.throughput import (
    REPO,
    _child_env,
    _run_child,
    emulator,
    sqs_batches,
    synthetic_notes,
)

NOTES_TABLE = "PEDIATRIC_ML.CLINICAL_DATA.EHR_NOTES"  # infra/snowflake/11
_INSERT_CHUNK = 50


def note_key(index: int) -> str:
    return f"BENCH-NOTE-{index:06d}"


def store_notes(registry: dict[str, Any], texts: Sequence[str]) -> None:
    """The notes into EHR_NOTES as the table's owner (the emulator's admin endpoint)."""
    sf = registry["snowflake"]
    url = f"{sf['protocol']}://{sf['host']}:{sf['port']}/admin/sql"
    for start in range(0, len(texts), _INSERT_CHUNK):
        part = list(enumerate(texts[start : start + _INSERT_CHUNK], start))
        marks = ", ".join(["(?, ?)"] * len(part))
        answer = httpx.post(
            url,
            json={
                "sql": f"INSERT INTO {NOTES_TABLE} (NOTE_ID, NOTE_TEXT) VALUES {marks}",
                "role": "SYSADMIN",
                "bindings": [v for i, text in part for v in (note_key(i), text)],
            },
            timeout=60,
        )
        answer.raise_for_status()


def reference_batches(count: int, batch: int, prefix: str) -> list[dict[str, Any]]:
    """SQS events whose bodies name the stored notes (ids only), in the shape the router gets."""
    events = sqs_batches([""] * count, batch, prefix)
    for event in events:
        for record in event["Records"]:
            index = int(record["messageId"].rsplit("-", 1)[-1])
            body = {
                "schema": "clinical-note-ref.v1",
                "event_id": f"{prefix}-{index:06d}",
                "source": "bench",
                "occurred_at": "2025-03-03T09:00:00Z",
                "note": {"table": NOTES_TABLE, "key": note_key(index)},
            }
            record["body"] = json.dumps(body, separators=(",", ":"))
    return events


def _run_reference(workdir: Path, registry: Path, count: int, batch: int, prefix: str) -> Any:
    events_path = workdir / f"{prefix}.events.json"
    result_path = workdir / f"{prefix}.result.json"
    warm = reference_batches(batch, batch, prefix + "-warm")[:1]
    events_path.write_text(json.dumps(warm + reference_batches(count, batch, prefix)))
    cmd = [
        sys.executable, "-m", "bench.throughput", "--child", "gateway",
        "--registry", str(registry), "--events", str(events_path), "--out", str(result_path),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=_child_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed: {proc.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["notes_per_s"] = result["notes"] / result["elapsed_s"]
    # A reference the router could not serve would be dead-lettered, not failed: count rows.
    result["rows"] = _rows_written(json.loads(registry.read_text()), prefix)
    events_path.unlink()
    return result


def _rows_written(registry: dict[str, Any], prefix: str) -> int:
    sf = registry["snowflake"]
    table = sf.get("results_table", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS")
    answer = httpx.post(
        f"{sf['protocol']}://{sf['host']}:{sf['port']}/admin/sql",
        json={
            "sql": f"SELECT COUNT(*) FROM {table} WHERE EVENT_ID LIKE ? AND EVENT_ID NOT LIKE ?",
            "role": "ACCOUNTADMIN",
            "bindings": [f"{prefix}-%", f"{prefix}-warm-%"],  # the timed events only
        },
        timeout=60,
    )
    answer.raise_for_status()
    return int(answer.json()["results"][-1]["rows"][0][0])


def run(*, notes: int = 500, reps: int = 3, batches: Sequence[int] = (10, 100)) -> dict[str, Any]:
    texts = synthetic_notes(notes)
    out: dict[str, Any] = {
        "notes": notes,
        "reps": reps,
        "mean_note_chars": round(statistics.mean(len(t) for t in texts)),
        "batches": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp, emulator(Path(tmp)) as emu:
        workdir = Path(tmp)
        registry = json.loads(emu.registry_path.read_text())
        if not registry.get("references", {}).get("note_tables"):
            raise RuntimeError("the emulator's registry has no reference allow-list")
        store_notes(registry, texts)
        samples: dict[str, list[dict[str, Any]]] = {}
        for rep in range(reps):
            for batch in batches:
                order = ("inline", "reference") if rep % 2 == 0 else ("reference", "inline")
                for kind in order:
                    prefix, path = f"{kind}-b{batch}-r{rep}", emu.registry_path
                    if kind == "inline":
                        res = _run_child(workdir, "gateway", path, texts, batch, prefix)
                    else:
                        res = _run_reference(workdir, path, notes, batch, prefix)
                    samples.setdefault(f"{kind}/{batch}", []).append(res)
    for batch in batches:
        inline, ref = samples[f"inline/{batch}"], samples[f"reference/{batch}"]
        inline_rate = statistics.median(r["notes_per_s"] for r in inline)
        ref_rate = statistics.median(r["notes_per_s"] for r in ref)
        out["batches"][str(batch)] = {
            "inline_notes_per_s": round(inline_rate, 1),
            "reference_notes_per_s": round(ref_rate, 1),
            "reference_over_inline": round(ref_rate / inline_rate, 3),
            "inline_lambda_ms_per_note": round(1000.0 / inline_rate, 2),
            "reference_lambda_ms_per_note": round(1000.0 / ref_rate, 2),
            "inline_failures": sum(r["failures"] for r in inline),
            "reference_failures": sum(r["failures"] for r in ref),
            # Timed references with no result row (0: the router served every one).
            "reference_rows_missing": sum(r["notes"] - r["rows"] for r in ref),
            "samples_notes_per_s": {
                "inline": [round(r["notes_per_s"], 1) for r in inline],
                "reference": [round(r["notes_per_s"], 1) for r in ref],
            },
        }
    return out


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"{'batch':>6}{'inline/s':>10}{'ref/s':>9}{'ref/inline':>12}"
        f"{'inline ms/note':>16}{'ref ms/note':>13}{'failures':>10}{'missing':>9}"
    ]
    for batch, b in result["batches"].items():
        lines.append(
            f"{batch:>6}{b['inline_notes_per_s']:>10.1f}{b['reference_notes_per_s']:>9.1f}"
            f"{b['reference_over_inline']:>12.3f}{b['inline_lambda_ms_per_note']:>16.2f}"
            f"{b['reference_lambda_ms_per_note']:>13.2f}"
            f"{b['inline_failures'] + b['reference_failures']:>10}"
            f"{b['reference_rows_missing']:>9}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="reference route vs inline route")
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(notes=args.notes, reps=args.reps)
    print(json.dumps(result, indent=2) if args.json else "\n".join(table(result)))


if __name__ == "__main__":
    main()
