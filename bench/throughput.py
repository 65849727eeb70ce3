"""Throughput: notes per second through the note router against the unavoidable I/O.

One emulator (SPCS ingress + Snowflake SQL, faults off) is started in a subprocess and shared
by three clients that process the same synthetic notes, as SQS batches of 10 and 100:

``gateway``  the real note router (``functions/note_router/app.py`` run by ``runpy``: the
             production wiring, Powertools Logger/Metrics included; tracing disabled as there
             is no X-Ray daemon) with AWS on moto (in-process ``mock_aws``), in its own process
             so its peak RSS can be read.
``limit``    a minimal script issuing exactly the same SPCS requests (rows split by the
             service's ``max_batch_rows``, run concurrently up to its ``max_concurrency``, one
             kept-alive httpx client) and the same MERGE statement per batch, with no validation,
             no idempotency pre-check, no AWS calls and no logging: the I/O nobody can avoid.
``naive``    what a user would write by hand: per note, one HTTP request with a fresh httpx
             client and one INSERT (one connector connection, reused).

Each client runs in a fresh subprocess, warms up on one batch (login, token exchange) and is
then timed over the notes; gateway and limit runs alternate, so machine noise hits both. Every
run uses its own event ids (the results table is idempotent on EVENT_ID). The naive client runs
on the first ``naive_notes`` notes only: it is slow, and its rate is per note anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOTE_ROUTER = REPO / "functions" / "note_router" / "app.py"
SERVICE = "biobert_ner"
REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE = "spcs-gateway-notes"
START_TIMEOUT_S = 60.0

# -- synthetic notes (no PHI: generated from templates) -----------------------------------------

_CONDITIONS = [
    "asthma", "otitis media", "pneumonia", "type 1 diabetes", "eczema", "bronchiolitis",
    "epilepsy", "migraine", "urinary tract infection", "streptococcal pharyngitis",
    "attention deficit hyperactivity disorder", "gastroenteritis", "croup", "anemia",
]  # fmt: skip
_DRUGS = [
    "amoxicillin", "albuterol", "prednisolone", "insulin glargine", "ibuprofen",
    "acetaminophen", "cetirizine", "ondansetron", "levetiracetam", "methylphenidate",
    "ceftriaxone", "fluticasone", "azithromycin", "ferrous sulfate",
]  # fmt: skip
_SENTENCES = [
    "{age}-year-old seen in clinic for follow-up of {c1}.",
    "Parent reports {sym} for {n} days; no fever at home.",
    "History of {c2}, well controlled on {d1}.",
    "Exam: alert, well hydrated, lungs clear bilaterally, no rash.",
    "Started {d2} {dose} mg twice daily for {n} days.",
    "Continue {d1}; stop {d3} if symptoms resolve.",
    "Assessment: {c1}, improving. Differential includes {c3}.",
    "Plan: recheck in {n} weeks, sooner if worse; return precautions given.",
    "Immunizations up to date. Growth along the 50th percentile.",
    "Discussed medication side effects and adherence with the family.",
]
_SYMPTOMS = ["cough", "ear pain", "wheezing", "sore throat", "vomiting", "headache", "itching"]


def synthetic_notes(count: int, seed: int = 9) -> list[str]:
    """Deterministic pediatric progress-note-like texts, 300-900 characters."""
    rng = random.Random(seed)
    notes: list[str] = []
    for _ in range(count):
        parts = [rng.choice(_SENTENCES) for _ in range(rng.randint(4, 9))]
        text = "Synthetic note: " + " ".join(parts)
        notes.append(
            text.format(
                age=rng.randint(1, 17),
                c1=rng.choice(_CONDITIONS),
                c2=rng.choice(_CONDITIONS),
                c3=rng.choice(_CONDITIONS),
                d1=rng.choice(_DRUGS),
                d2=rng.choice(_DRUGS),
                d3=rng.choice(_DRUGS),
                dose=rng.choice([100, 200, 250, 400, 500]),
                n=rng.randint(2, 10),
                sym=rng.choice(_SYMPTOMS),
            )
        )
    return notes


def sqs_batches(texts: Sequence[str], batch: int, prefix: str) -> list[dict[str, Any]]:
    """SQS event-source-mapping events carrying clinical-note.v1 bodies."""
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"
    records = []
    for i, text in enumerate(texts):
        body = {
            "schema": "clinical-note.v1",
            "event_id": f"{prefix}-{i:06d}",
            "note_id": f"NOTE-{i:06d}",
            "source": "bench",
            "occurred_at": "2025-03-03T09:00:00Z",
            "text": text,
            "attributes": {"note_type": "progress", "department": "pediatrics"},
        }
        records.append(
            {
                "messageId": f"{prefix}-msg-{i:06d}",
                "receiptHandle": f"{prefix}-rh-{i:06d}",
                "body": json.dumps(body, separators=(",", ":")),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1741000000000",
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": "1741000000001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
        )
    return [{"Records": records[i : i + batch]} for i in range(0, len(records), batch)]


# -- emulator --------------------------------------------------------------------------------


@dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    registry_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def emulator(workdir: Path, *flags: str) -> Iterator[Emulator]:
    """``spcs-local emulator`` in a subprocess on ephemeral loopback ports (faults off)."""
    registry = workdir / "registry.json"
    out = (workdir / "emulator.out").open("wb")
    cmd = [
        sys.executable, "-m", "spcs_local.cli", "emulator", "--port", "0",
        "--state-dir", str(workdir / "state"), "--config-out", str(registry), *flags,
    ]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    out.close()
    handle = Emulator(process, registry)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not registry.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                log = (workdir / "emulator.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"emulator did not start:\n{log}")
            time.sleep(0.05)
        time.sleep(0.1)  # the document is written whole, but give the file a moment
        yield handle
    finally:
        handle.stop()


# -- children: each prints one JSON line on its result file ----------------------------------


class _Context:
    function_name = "note-router"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:note-router"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/note-router"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def _child_gateway(registry: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    import runpy

    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dlq = sqs.create_queue(QueueName=QUEUE + "-dlq")["QueueUrl"]
        source = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        os.environ.update(
            {
                "SPCS_GATEWAY_REGISTRY_FILE": str(registry),
                "SERVICE_NAME": SERVICE,
                "DLQ_URL": dlq,
                "SOURCE_QUEUE_URL": source,
            }
        )
        module = runpy.run_path(str(NOTE_ROUTER), run_name="note_router_app")
        handler = module["lambda_handler"]
        context = _Context()
        warm, timed = events[0], events[1:]
        handler(warm, context)
        failures = 0
        started = time.perf_counter()
        for event in timed:
            failures += len(handler(event, context)["batchItemFailures"])
        elapsed = time.perf_counter() - started
    return {
        "notes": sum(len(e["Records"]) for e in timed),
        "elapsed_s": elapsed,
        "failures": failures,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _connect(registry: dict[str, Any]) -> tuple[Any, Any]:
    """(connector connection, ingress token) the way any client would get them."""
    import httpx
    import snowflake.connector
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from spcs_gateway.auth import make_keypair_jwt

    sf = registry["snowflake"]
    key = serialization.load_pem_private_key(Path(sf["secret"]["file"]).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit("the local stack's key-pair secret must be an RSA key")
    conn = snowflake.connector.connect(
        account=sf["account"],
        user=sf["user"],
        role=sf.get("role"),
        warehouse=sf.get("warehouse"),
        host=sf["host"],
        port=sf["port"],
        protocol=sf["protocol"],
        authenticator="SNOWFLAKE_JWT",
        private_key=key,
        paramstyle="qmark",
        enable_server_session_keep_alive_auto_detection=False,
    )
    service = next(s for s in registry["services"] if s["name"] == SERVICE)
    jwt = make_keypair_jwt(sf["account"], sf["user"], key, now=time.time(), lifetime_s=3000)
    token = httpx.post(
        f"{sf['protocol']}://{sf['host']}:{sf['port']}/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "scope": service["url"].split("://", 1)[1],
            "assertion": jwt,
        },
        timeout=10,
    ).text
    return conn, token


def _row(body: dict[str, Any], service: dict[str, Any], output: Any, ms: int) -> tuple[Any, ...]:
    return (
        body["event_id"],
        "clinical-note",
        body["note_id"],
        service["service"],
        service.get("model_version"),
        "SUCCEEDED",
        json.dumps(output, separators=(",", ":")),
        ms,
        datetime.now(UTC).isoformat(),
    )


def _child_limit(registry_path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    import httpx

    from spcs_gateway.results import merge_sql  # the statement text only

    registry = json.loads(registry_path.read_text())
    service = next(s for s in registry["services"] if s["name"] == SERVICE)
    table = registry["snowflake"].get("results_table", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS")
    url = service["url"] + "/" + service.get("method", "__call__").replace("_", "-")
    rows_per_request = int(service.get("max_batch_rows", 32))
    conn, token = _connect(registry)
    headers = {"Authorization": f'Snowflake Token="{token}"'}
    client = httpx.Client(timeout=30)
    pool = ThreadPoolExecutor(max_workers=int(service.get("max_concurrency", 4)))
    cursor = conn.cursor()

    def infer(chunk: list[dict[str, Any]]) -> tuple[list[Any], int]:
        started = time.perf_counter()
        payload = {"data": [[i, body["text"]] for i, body in enumerate(chunk)]}
        response = client.post(url, json=payload, headers=headers)
        response.raise_for_status()
        out = [row[1]["outputs"] for row in response.json()["data"]]
        return out, int((time.perf_counter() - started) * 1000)

    def process(event: dict[str, Any]) -> None:
        bodies = [json.loads(r["body"]) for r in event["Records"]]
        chunks = [bodies[i : i + rows_per_request] for i in range(0, len(bodies), rows_per_request)]
        rows: list[tuple[Any, ...]] = []
        for chunk, (outputs, ms) in zip(chunks, pool.map(infer, chunks), strict=True):
            rows += [_row(b, service, o, ms) for b, o in zip(chunk, outputs, strict=True)]
        cursor.execute(merge_sql(table, len(rows)), [v for row in rows for v in row])

    process(events[0])
    started = time.perf_counter()
    for event in events[1:]:
        process(event)
    elapsed = time.perf_counter() - started
    pool.shutdown()
    conn.close()
    return {"notes": sum(len(e["Records"]) for e in events[1:]), "elapsed_s": elapsed}


def _child_naive(registry_path: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    import httpx

    registry = json.loads(registry_path.read_text())
    service = next(s for s in registry["services"] if s["name"] == SERVICE)
    table = registry["snowflake"].get("results_table", "PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS")
    url = service["url"] + "/" + service.get("method", "__call__").replace("_", "-")
    conn, token = _connect(registry)
    headers = {"Authorization": f'Snowflake Token="{token}"'}
    cursor = conn.cursor()
    insert = (
        f"INSERT INTO {table} (EVENT_ID, KIND, SUBJECT_ID, SERVICE, MODEL_VERSION, STATUS, "
        "OUTPUT, LATENCY_MS, PROCESSED_AT) "
        "SELECT ?, ?, ?, ?, ?, ?, PARSE_JSON(?), ?, TO_TIMESTAMP_TZ(?)"
    )

    def process(record: dict[str, Any]) -> None:
        body = json.loads(record["body"])
        started = time.perf_counter()
        with httpx.Client(timeout=30) as client:  # a fresh client per request
            response = client.post(url, json={"data": [[0, body["text"]]]}, headers=headers)
        response.raise_for_status()
        output = response.json()["data"][0][1]["outputs"]
        ms = int((time.perf_counter() - started) * 1000)
        cursor.execute(insert, _row(body, service, output, ms))

    records = [r for e in events for r in e["Records"]]
    process(records[0])
    started = time.perf_counter()
    for record in records[1:]:
        process(record)
    elapsed = time.perf_counter() - started
    conn.close()
    return {"notes": len(records) - 1, "elapsed_s": elapsed}


_CHILDREN = {"gateway": _child_gateway, "limit": _child_limit, "naive": _child_naive}


def _child_env(workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "note-router",
        "POWERTOOLS_METRICS_NAMESPACE": "SpcsGatewayBench",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def _run_child(
    workdir: Path, kind: str, registry: Path, texts: Sequence[str], batch: int, prefix: str
) -> dict[str, Any]:
    events_path = workdir / f"{prefix}.events.json"
    result_path = workdir / f"{prefix}.result.json"
    # one warm-up batch (ids of its own) + the timed batches
    warm = sqs_batches(texts[:batch], batch, prefix + "-warm")[:1]
    events_path.write_text(json.dumps(warm + sqs_batches(texts, batch, prefix)))
    cmd = [
        sys.executable, "-m", "bench.throughput", "--child", kind,
        "--registry", str(registry), "--events", str(events_path), "--out", str(result_path),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=_child_env(workdir),
        stdout=subprocess.DEVNULL,  # the router's log lines and EMF metrics (stdout in Lambda)
        stderr=subprocess.PIPE,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} run failed: {proc.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["notes_per_s"] = result["notes"] / result["elapsed_s"]
    events_path.unlink()
    return result


GATEWAY_OVER_LIMIT_TARGET = 0.9


def run(
    *, notes: int = 2000, naive_notes: int = 150, reps: int = 3, batches: Sequence[int] = (10, 100)
) -> dict[str, Any]:
    texts = synthetic_notes(notes)
    out: dict[str, Any] = {
        "notes": notes,
        "naive_notes": naive_notes,
        "reps": reps,
        "mean_note_chars": round(statistics.mean(len(t) for t in texts)),
        "batches": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-tput-") as tmp, emulator(Path(tmp)) as emu:
        workdir = Path(tmp)
        samples: dict[str, list[dict[str, Any]]] = {}
        for rep in range(reps):
            for batch in batches:
                for kind in ("gateway", "limit") if rep % 2 == 0 else ("limit", "gateway"):
                    res = _run_child(
                        workdir, kind, emu.registry_path, texts, batch, f"{kind}-b{batch}-r{rep}"
                    )
                    samples.setdefault(f"{kind}/{batch}", []).append(res)
            res = _run_child(
                workdir, "naive", emu.registry_path, texts[:naive_notes], 10, f"naive-r{rep}"
            )
            samples.setdefault("naive", []).append(res)
    naive = statistics.median(r["notes_per_s"] for r in samples["naive"])
    for batch in batches:
        gw = samples[f"gateway/{batch}"]
        lim = samples[f"limit/{batch}"]
        gw_rate = statistics.median(r["notes_per_s"] for r in gw)
        lim_rate = statistics.median(r["notes_per_s"] for r in lim)
        out["batches"][str(batch)] = {
            "gateway_notes_per_s": round(gw_rate, 1),
            "limit_notes_per_s": round(lim_rate, 1),
            "naive_notes_per_s": round(naive, 1),
            "gateway_over_limit": round(gw_rate / lim_rate, 3),
            "gateway_over_naive": round(gw_rate / naive, 2),
            "gateway_failures": sum(r["failures"] for r in gw),
            "gateway_peak_rss_mb": round(max(r["peak_rss_mb"] for r in gw), 1),
            "samples_notes_per_s": {
                "gateway": [round(r["notes_per_s"], 1) for r in gw],
                "limit": [round(r["notes_per_s"], 1) for r in lim],
            },
        }
    b100 = out["batches"].get("100") or out["batches"][str(max(batches))]
    out["naive_samples_notes_per_s"] = [round(r["notes_per_s"], 1) for r in samples["naive"]]
    # Medians of interleaved runs: the gateway keeps >= 0.9 of the bare requests + MERGE.
    out["targets"] = {
        f"gateway_over_limit_b{batch}_ge_0_9": out["batches"][str(batch)]["gateway_over_limit"]
        >= GATEWAY_OVER_LIMIT_TARGET
        for batch in batches
    }
    out["targets"]["gateway_over_naive_ge_10"] = b100["gateway_over_naive"] >= 10
    return out


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"{'batch':>6}{'gateway/s':>11}{'limit/s':>9}{'naive/s':>9}"
        f"{'gw/limit':>10}{'gw/naive':>10}{'peak RSS MB':>13}{'failures':>10}"
    ]
    for batch, b in result["batches"].items():
        lines.append(
            f"{batch:>6}{b['gateway_notes_per_s']:>11.1f}{b['limit_notes_per_s']:>9.1f}"
            f"{b['naive_notes_per_s']:>9.1f}{b['gateway_over_limit']:>10.3f}"
            f"{b['gateway_over_naive']:>10.2f}{b['gateway_peak_rss_mb']:>13.1f}"
            f"{b['gateway_failures']:>10}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="note-router throughput vs limit and naive")
    parser.add_argument("--child", choices=sorted(_CHILDREN))
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--events", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--naive-notes", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        events = json.loads(args.events.read_text())
        args.out.write_text(json.dumps(_CHILDREN[args.child](args.registry, events)))
        return
    result = run(notes=args.notes, naive_notes=args.naive_notes, reps=args.reps)
    print(json.dumps(result, indent=2) if args.json else "\n".join(table(result)))


if __name__ == "__main__":
    main()
