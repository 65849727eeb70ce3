"""Chaos run (issue 8): the whole local stack under faults, a suspension and two crashes.

Through ``spcs_local.stack.LocalStack`` (moto server, the Snowflake/SPCS emulator, the real
handlers in Lambda-like containers driven by the event-source-mapping runner, the control
function and its schedule), a synthetic feed of mixed events (clinical notes, images, 1 %
poison of four kinds) is sent at a steady rate while:

- the emulator's ingress injects, per request to either service, 5 % HTTP 503, 2 % HTTP 429,
  1 % dropped connections and a 200 ms latency spike on 10 % of requests
  (``--fault biobert_ner:503=0.05,429=0.02,drop=0.01,latency_ms=200,latency_p=0.1,seed=S``,
  the same for ``biomedclip``);
- a note-router container is killed (SIGKILL) in the middle of a batch, once;
- the NER service is suspended by SQL (``ALTER SERVICE ... SUSPEND`` through
  snowflake-connector-python) half-way through the feed;
- the control function's container is killed once while it resumes that service: the notes
  mapping is paused, the service is PENDING (RESUME issued) and ``ensure_ready`` is polling.

Then every sent event id is reconciled against the results table (read through the connector)
and the DLQs (every message received and parsed), never against counters: ``lost`` (neither a
row nor a DLQ message), ``duplicate_results`` (rows beyond the first per event id, or a row and
a DLQ message for one event), and whether the DLQs hold exactly the poison, each with its reason
code. Faults injected are the emulator's own counts (``GET /admin/status``).

Local settings (flags change them; template parameters are passed as ``sam deploy`` takes them):

- ``FunctionTimeout=30`` (the template's smallest value) and the source queues' visibility
  timeout set to 30 s by SetQueueAttributes once the stack is up: the template derives
  6 x timeout + 300 = 480 s, so a crashed router's batch would wait 8 minutes; 30 s is Lambda's
  lower bound (visibility >= function timeout). The killed batch is not deleted (the invocation
  fails, as on Lambda) and comes back after those 30 s.
- ``MaxReceiveCount=5``, the template's default. The faults fail about 8 % of requests; since
  the SPCS client retries a 502/503/504, a dropped connection or a short 429 once in-call, a
  blip no longer costs a receive. (Before that change, one of three runs with 5 receives
  dead-lettered a valid note as ``RETRIES_EXHAUSTED``; ``--max-receive-count`` tunes it.)
- ``NotesBatchSize=100``, ``ImagesBatchSize=20``, batching windows of 1 s, 2 containers per
  function (2 cores), a 4 s emulated resume, the control schedule every 5 s (production: 60 s),
  a feed of 35 events/s (moto's SQS costs grow with the queue length: a flood measures moto).

    python -m bench.chaos                      # 10,000 events -> bench/results/chaos.json
    python -m bench.chaos --events 500 --seed 3 --out /tmp/chaos.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "chaos.json"
NER, CLIP = "biobert_ner", "biomedclip"
FAULT_KINDS = ("503", "429", "drop", "latency")
_CHUNK = 20  # events per send round (about 0.6 s of feed)
_SUSPEND_ATTEMPTS = 3
FAULT_BODY = "503=0.05,429=0.02,drop=0.01,latency_ms=200,latency_p=0.1"


@dataclass
class ChaosConfig:
    events: int = 10_000
    seed: int = 7
    # Events per second: a steady feed the stack outpaces, so the backlog a suspension builds
    # drains (moto's SQS costs grow with the queue length: a flood would measure moto, not us).
    rate: float = 35.0
    max_containers: int = 2
    notes_batch: int = 100
    images_batch: int = 20
    batching_window_s: int = 1
    function_timeout_s: int = 30  # must be a key of the template's QueueVisibility mapping
    visibility_s: int = 30
    resume_seconds: float = 4.0
    schedule_seconds: float = 5.0
    max_receive_count: int = 5
    router_kill_at: float = 0.25  # fraction of the feed sent
    suspend_at: float = 0.5
    timeout_s: float = 540.0  # for the accounting, after the feed started
    faults: list[str] = field(default_factory=list)  # default: fault_specs(seed)
    work_dir: Path | None = None

    def fault_specs(self) -> list[str]:
        return self.faults or fault_specs(self.seed)

    def parameter_overrides(self) -> dict[str, str]:
        window = str(self.batching_window_s)
        return {
            "FunctionTimeout": str(self.function_timeout_s),
            "MaxReceiveCount": str(self.max_receive_count),
            "NotesBatchSize": str(self.notes_batch),
            "NotesBatchingWindowSeconds": window,
            "ImagesBatchSize": str(self.images_batch),
            "ImagesBatchingWindowSeconds": window,
        }


def fault_specs(seed: int) -> list[str]:
    """The issue's faults for both services, each with its own reproducible random stream."""
    return [f"{NER}:{FAULT_BODY},seed={seed}", f"{CLIP}:{FAULT_BODY},seed={seed + 1}"]


def chaos_split(total: int) -> tuple[int, int, int]:
    """(notes, images, poison): 1 % poison (at least one of each of the four kinds), a fifth
    of the rest images."""
    poison = max(4, round(total / 100))
    images = (total - poison) // 5
    return total - images - poison, images, poison


# -- reconciliation (pure) -------------------------------------------------------------------


def reconcile_dlq(expected: dict[str, str], found: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``expected``: poison event key -> reason code; ``found``: (key, code) per DLQ message.

    ``exact``: every poison event is dead-lettered with its code and nothing else is.
    ``redelivered_copies``: DLQ messages beyond the first for one event with the right code
    (a batch that crashed after its poison was dead-lettered is delivered again, and SQS
    dead-letters at least once; consumers dedupe on ``source_message_id``)."""
    codes: dict[str, set[str]] = {}
    for key, code in found:
        codes.setdefault(key, set()).add(code)
    per_key = Counter(key for key, _ in found)
    missing = sorted(set(expected) - set(codes))
    unexpected = sorted(k for k in codes if k not in expected)
    wrong_code = sorted(k for k in codes if k in expected and codes[k] != {expected[k]})
    return {
        "exact": not (missing or unexpected or wrong_code),
        "missing": missing,
        "unexpected": unexpected,
        "wrong_code": wrong_code,
        "redelivered_copies": sum(n - 1 for k, n in per_key.items() if k in expected),
    }


def fault_counts(status: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Faults injected per kind, total and per service, from the emulator's ``/admin/status``."""
    total = dict.fromkeys(FAULT_KINDS, 0)
    per_service: dict[str, dict[str, int]] = {}
    for name, ingress in sorted(status.get("ingress", {}).items()):
        faults = ingress.get("stats", {}).get("faults", {})
        per_service[name] = {k: int(faults.get(k, 0)) for k in FAULT_KINDS}
        for kind in FAULT_KINDS:
            total[kind] += per_service[name][kind]
    return {"total": total, **per_service}


def verdict(figures: dict[str, Any]) -> list[str]:
    """What failed (empty: the run proves its claims)."""
    problems = []
    if figures["lost"]:
        problems.append(f"{figures['lost']} event(s) lost")
    if figures["duplicate_results"]:
        problems.append(f"{figures['duplicate_results']} duplicate result(s)")
    if not figures["dlq_check"]["exact"]:
        problems.append("the DLQs do not hold exactly the poison with its codes")
    missing = [k for k, n in figures["faults_injected"]["total"].items() if not n]
    if missing:
        problems.append(f"no fault injected of kind(s) {', '.join(missing)}")
    for what, kill in figures["kills"].items():
        if not kill.get("done"):
            problems.append(f"the {what} kill did not happen")
    if not figures["suspend"].get("done"):
        problems.append("the SQL suspension did not happen")
    if figures["source_queues_left"]:
        problems.append(f"{figures['source_queues_left']} message(s) left in the source queues")
    return problems


# -- the run ---------------------------------------------------------------------------------


class _Say:
    def __init__(self, stream: Any, began: float) -> None:
        self._stream = stream
        self._began = began

    def __call__(self, text: str) -> None:
        if self._stream is not None:
            self._stream.write(f"[{time.monotonic() - self._began:6.1f}s] {text}\n")
            self._stream.flush()


def _stack_functions() -> list[str]:
    """The routers and the control function (the API plays no part)."""
    from spcs_local.stack.stack import DEFAULT_TEMPLATE
    from spcs_local.stack.template import Template

    return [
        f.logical_id for f in Template(DEFAULT_TEMPLATE).functions() if f.sqs_events or f.schedules
    ]


def _function(stack: Any, *, service: str | None = None, schedule: bool = False) -> Any:
    for fn in stack.functions:
        if schedule and fn.schedules:
            return fn
        if service and fn.sqs_events and fn.environment.get("SERVICE_NAME") == service:
            return fn
    raise LookupError(service or "scheduled function")


class ChaosRun:
    """One chaos run on a started stack: the feed, the chaos, the reconciliation."""

    def __init__(self, stack: Any, config: ChaosConfig, say: Callable[[str], None]) -> None:
        from spcs_local.stack.feed import synthetic_feed
        from spcs_local.stack.stack import mapping_of

        self.stack = stack
        self.cfg = config
        self.say = say
        notes, images, poison = chaos_split(config.events)
        self.events = synthetic_feed(
            notes, images, poison, seed=config.seed, run_id=f"c{config.seed}"
        )
        self.notes_queue = stack.source_queue("token-classification")
        self.images_queue = stack.source_queue("zero-shot-image-classification")
        self.notes_mapping = mapping_of(stack, self.notes_queue.logical_id)
        self.note_router = stack.pools[_function(stack, service=NER).name]
        self.control = stack.pools[_function(stack, schedule=True).name]
        self.ner_fqn = next(
            s["service"] for s in stack.emulator_registry["services"] if s["name"] == NER
        )
        self.sent = 0
        self.sent_at: dict[str, float] = {}
        self.kills: dict[str, dict[str, Any]] = {
            "router": {"done": False, "function": self.note_router.name},
            "control": {"done": False, "function": self.control.name},
        }
        self.suspend: dict[str, Any] = {"done": False, "service": NER}
        self._stop = threading.Event()
        self._send_error: BaseException | None = None

    # -- feed --------------------------------------------------------------------------------

    def _send(self) -> None:
        """The feed at ``rate`` events/s, in chunks of ``_CHUNK`` (SendMessageBatch of up to 10
        per queue; ``send_events``' own pacing would send one message per call)."""
        from spcs_local.stack.feed import send_events

        sqs = self.stack.client("sqs")
        urls = {"notes": self.notes_queue.url, "images": self.images_queue.url}
        began = time.monotonic()
        try:
            for start in range(0, len(self.events), _CHUNK):
                if self._stop.is_set():
                    return
                part = self.events[start : start + _CHUNK]
                report = send_events(sqs, part, urls)
                for key, at in (report.sent_at or {}).items():
                    self.sent_at.setdefault(key, at)
                self.sent += len(part)
                due = began + (start + len(part)) / self.cfg.rate
                self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self._send_error = exc

    # -- chaos -------------------------------------------------------------------------------

    def _kill_router(self, began: float) -> None:
        """A note-router container in the middle of a batch (running >= 0.2 s)."""
        errors = self.note_router.errors
        index = None
        deadline = time.monotonic() + 60
        while index is None and time.monotonic() < deadline:
            if self.notes_mapping.enabled:
                index = self.note_router.kill_busy_container(min_busy_s=0.2)
            if index is None:
                time.sleep(0.02)
        if index is None:
            self.say("router kill: no busy note-router container within 60 s")
            return
        at = time.monotonic() - began
        # The invocation it was running must fail (so the batch is not deleted).
        failed = _wait(lambda: self.note_router.errors > errors, 10)
        self.kills["router"].update(
            done=failed, at_s=round(at, 1), container=index, invocation_failed=failed
        )
        self.say(f"router kill: note-router container {index} killed mid-batch (failed={failed})")

    def _suspend_and_kill_control(self, began: float) -> None:
        """Suspend the NER service by SQL right after a control round, so the next scheduled
        round is a schedule period away and a router's ``ensure_ready`` (invoked on its first
        503) issues the resume and polls it; kill the control container then. If a scheduled
        round issued the resume instead (it returns at once: nothing polls), wait for RUNNING
        and suspend again, at most ``_SUSPEND_ATTEMPTS`` times."""
        schedule = self.stack.schedulers[0]
        for _ in range(_SUSPEND_ATTEMPTS):
            rounds = schedule.rounds
            _wait(lambda n=rounds: schedule.rounds > n, 4 * self.cfg.schedule_seconds + 30)
            self.stack.sql().execute(f"ALTER SERVICE {self.ner_fqn} SUSPEND")
            self.suspend["done"] = True
            self.suspend.setdefault("at_s", []).append(round(time.monotonic() - began, 1))
            self.suspend["epoch"] = time.time()
            self.say(f"ALTER SERVICE {self.ner_fqn} SUSPEND (through the connector)")
            if self._kill_control(began, timeout=30):
                return
            _wait(
                lambda: (
                    self.stack.service_states()[NER] == "RUNNING" and self.notes_mapping.enabled
                ),
                60,
                every=0.5,
            )

    def _kill_control(self, began: float, *, timeout: float) -> bool:
        """The control container while ``ensure_ready`` polls the resume it issued: the notes
        mapping is paused, the service PENDING (RESUME issued), a control invocation running."""
        deadline = time.monotonic() + timeout
        seen_resume = False
        while time.monotonic() < deadline:
            state = self.stack.service_states()[NER]
            if seen_resume and state == "RUNNING" and self.notes_mapping.enabled:
                break  # the resume is over: nothing was polling it when we looked
            seen_resume = seen_resume or state == "PENDING"
            if not self.notes_mapping.enabled and state == "PENDING":
                index = self.control.kill_busy_container(min_busy_s=0.3)
                if index is not None:
                    at = time.monotonic()
                    self.kills["control"].update(
                        done=True,
                        at_s=round(at - began, 1),
                        epoch=time.time(),
                        container=index,
                        mapping_paused=not self.notes_mapping.enabled,
                    )
                    self.say(f"control kill: control container {index} killed mid-resume")
                    return True
            time.sleep(0.05)
        self.say("control kill: no ensure_ready was seen polling this resume")
        return False

    # -- accounting ----------------------------------------------------------------------------

    def _source_backlog(self) -> int:
        return self._counts(rows=False)[2]

    def _counts(self, *, rows: bool = True) -> tuple[int, int, int]:
        """(result rows, DLQ messages, messages in the source queues), one queue listing."""
        from spcs_local.stack.demo import count_results

        assert self.stack.resources is not None
        depths = self.stack.queue_depths()
        dead = sum(sum(depths[q.name]) for q in self.stack.resources.dead_letter_queues)
        backlog = sum(sum(depths[q.name]) for q in (self.notes_queue, self.images_queue))
        return (count_results(self.stack) if rows else 0), dead, backlog

    def _status(self, total: int, rows: int, dead: int, backlog: int) -> None:
        states = " ".join(f"{k}={v}" for k, v in sorted(self.stack.service_states().items()))
        mapping = "on" if self.notes_mapping.enabled else "PAUSED"
        self.say(
            f"sent {self.sent}/{total} rows {rows} dlq {dead} queued {backlog} "
            f"notes mapping {mapping} {states}"
        )

    def run(self) -> dict[str, Any]:
        from spcs_local.stack.demo import DemoRun, drain_dlqs, read_results, summarize

        cfg, total = self.cfg, len(self.events)
        began = time.monotonic()
        started = time.time()
        self.say(f"feed: {total} events at {cfg.rate:g}/s; faults {cfg.fault_specs()}")
        sender = threading.Thread(target=self._send, name="chaos-feed", daemon=True)
        sender.start()
        try:
            _wait(lambda: self.sent >= cfg.router_kill_at * total or not sender.is_alive(), 900)
            self._kill_router(began)
            _wait(lambda: self.sent >= cfg.suspend_at * total or not sender.is_alive(), 900)
            self._suspend_and_kill_control(began)
            deadline = began + cfg.timeout_s
            last = 0.0
            while time.monotonic() < deadline:
                rows, dead, backlog = self._counts()
                if time.monotonic() - last >= 10:
                    self._status(total, rows, dead, backlog)
                    last = time.monotonic()
                if not sender.is_alive() and rows + dead >= total and backlog == 0:
                    break
                time.sleep(2.0)
        finally:
            self._stop.set()
            sender.join(timeout=30)
        if self._send_error is not None:
            raise RuntimeError(f"the feed failed ({type(self._send_error).__name__})")
        accounted_s = time.monotonic() - began
        run = DemoRun(events=self.events, sent_at=self.sent_at, started=started)
        run.results = read_results(self.stack)
        run.dlq = drain_dlqs(self.stack)
        run.resumes, run.suspends = self.stack.lifecycle_counts(since=started)
        run.finished = time.time()
        summary = summarize(run)
        expected = {e.key: str(e.expected_code) for e in self.events if e.expected_code}
        dlq_check = reconcile_dlq(expected, [(m.key, m.code) for m in run.dlq])
        # What SQS knew of each unexpected dead letter (ids, counts and times only).
        dlq_check["unexpected_detail"] = [
            {
                "key": m.key,
                "code": m.code,
                "receive_count": m.attributes.get("ApproximateReceiveCount"),
                "sent_s": _rel(m.attributes.get("SentTimestamp"), started),
                "first_receive_s": _rel(
                    m.attributes.get("ApproximateFirstReceiveTimestamp"), started
                ),
            }
            for m in run.dlq
            if m.key not in expected
        ]
        status = _admin_status(self.stack)
        figures: dict[str, Any] = {
            "events": total,
            "events_sent": summary["events_sent"],
            "mix": dict(Counter(e.kind for e in self.events)),
            "rows": summary["results_rows"],
            "dlq": summary["dlq"],
            "dlq_expected": dict(sorted(Counter(expected.values()).items())),
            "dlq_check": dlq_check,
            "lost": summary["lost"],
            "duplicate_results": summary["duplicate_results"],
            "faults_injected": fault_counts(status),
            "ingress_requests": {
                name: ingress["stats"]["requests"] for name, ingress in status["ingress"].items()
            },
            "kills": self.kills,
            "suspend": self.suspend,
            "resumes": summary["resumes"],
            "notes_mapping": self._mapping_story(),
            "source_queues_left": self._source_backlog(),
            "latency_ms": summary["latency_ms"],
            "accounted_s": round(accounted_s, 1),
            "duration_s": round(time.monotonic() - began, 1),
        }
        for what in ("kills", "suspend"):
            for item in [figures[what]] if what == "suspend" else figures[what].values():
                item.pop("epoch", None)
        return figures

    def _mapping_story(self) -> dict[str, Any]:
        """Pauses of the notes mapping after the suspension; whether the pause the killed
        control left behind was lifted (by the next reconcile), and when."""
        since = float(self.suspend.get("epoch", 0.0))
        kill_at = self.kills["control"].get("epoch")
        changes = [(at, on) for at, on in self.notes_mapping.history if at >= since]
        reenabled = [at for at, on in changes if on and kill_at is not None and at >= kill_at]
        return {
            "changes_after_suspend": [
                {"at_s_after_suspend": round(at - since, 1), "enabled": on} for at, on in changes
            ],
            "reenabled_after_control_kill_s": (
                round(reenabled[0] - kill_at, 1) if reenabled and kill_at is not None else None
            ),
            "enabled_at_end": self.notes_mapping.enabled,
        }


def _wait(check: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def _rel(epoch_ms: str | None, started: float) -> float | None:
    return None if not epoch_ms else round(int(epoch_ms) / 1000 - started, 1)


def _admin_status(stack: Any) -> dict[str, Any]:
    import httpx

    answer = httpx.get(f"{stack.emulator.account_url}/admin/status", timeout=10)
    answer.raise_for_status()
    status: dict[str, Any] = answer.json()
    return status


def run(config: ChaosConfig | None = None, *, stream: Any = sys.stdout) -> dict[str, Any]:
    """Start the stack, run the chaos, reconcile; the figures (``ok``: every claim held)."""
    from spcs_local.stack.stack import LocalStack, StackOptions

    cfg = config or ChaosConfig()
    began = time.monotonic()
    say = _Say(stream, began)
    options = StackOptions(
        work_dir=cfg.work_dir,
        parameter_overrides=cfg.parameter_overrides(),
        faults=cfg.fault_specs(),
        resume_seconds=cfg.resume_seconds,
        schedule_seconds=cfg.schedule_seconds,
        max_containers=cfg.max_containers,
        functions=_stack_functions(),
    )
    say("starting the local stack (emulator, moto server, routers, control function) ...")
    with LocalStack(options) as stack:
        sqs = stack.client("sqs")
        for task in ("token-classification", "zero-shot-image-classification"):
            sqs.set_queue_attributes(
                QueueUrl=stack.source_queue(task).url,
                Attributes={"VisibilityTimeout": str(cfg.visibility_s)},
            )
        say(f"stack up in {time.monotonic() - began:.1f} s")
        figures = ChaosRun(stack, cfg, say).run()
    figures["total_s"] = round(time.monotonic() - began, 1)
    settings = asdict(cfg)
    settings.pop("work_dir", None)
    settings["faults"] = cfg.fault_specs()
    settings["parameter_overrides"] = cfg.parameter_overrides()
    figures["settings"] = settings
    figures["problems"] = verdict(figures)
    figures["ok"] = not figures["problems"]
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = ["", "chaos run", "-" * 60]

    def row(name: str, value: Any) -> None:
        lines.append(f"  {name:<28} {value}")

    row("events sent", f"{figures['events_sent']} {figures['mix']}")
    row("result rows", figures["rows"])
    row("dead-lettered (by code)", figures["dlq"])
    row("  expected (the poison)", figures["dlq_expected"])
    check = figures["dlq_check"]
    row("  exactly the poison", check["exact"])
    row("  redelivered DLQ copies", check["redelivered_copies"])
    row("lost", figures["lost"])
    row("duplicate results", figures["duplicate_results"])
    row("faults injected", figures["faults_injected"]["total"])
    for name, kill in figures["kills"].items():
        row(f"kill: {name}", kill)
    row("SQL suspend", figures["suspend"])
    row("resumes (emulator history)", figures["resumes"])
    story = figures["notes_mapping"]
    row("notes mapping re-enabled", f"{story['reenabled_after_control_kill_s']} s after the kill")
    row("left in source queues", figures["source_queues_left"])
    row(
        "accounted after",
        f"{figures['accounted_s']} s (total with start-up {figures['total_s']} s)",
    )
    lines.append("-" * 60)
    if figures["ok"]:
        lines.append("  OK: nothing lost, nothing twice, the DLQs hold exactly the poison")
    else:
        lines.append("  FAILED: " + "; ".join(figures["problems"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=defaults.events, metavar="N")
    parser.add_argument("--seed", type=int, default=defaults.seed, metavar="S")
    parser.add_argument("--rate", type=float, default=defaults.rate, metavar="EPS")
    parser.add_argument("--max-containers", type=int, default=defaults.max_containers, metavar="N")
    parser.add_argument("--notes-batch", type=int, default=defaults.notes_batch, metavar="N")
    parser.add_argument("--images-batch", type=int, default=defaults.images_batch, metavar="N")
    parser.add_argument("--visibility", type=int, default=defaults.visibility_s, metavar="S")
    parser.add_argument(
        "--max-receive-count", type=int, default=defaults.max_receive_count, metavar="N"
    )
    parser.add_argument(
        "--schedule-seconds", type=float, default=defaults.schedule_seconds, metavar="S"
    )
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s, metavar="S")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="replaces the default faults"
    )
    parser.add_argument("--work-dir", type=Path, metavar="DIR", help="keep state and logs here")
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="PATH")
    args = parser.parse_args(argv)
    for name in ("snowflake.connector", "botocore", "urllib3", "werkzeug", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cfg = ChaosConfig(
        events=args.events,
        seed=args.seed,
        rate=args.rate,
        max_containers=args.max_containers,
        notes_batch=args.notes_batch,
        images_batch=args.images_batch,
        visibility_s=args.visibility,
        max_receive_count=args.max_receive_count,
        schedule_seconds=args.schedule_seconds,
        timeout_s=args.timeout,
        faults=list(args.fault),
        work_dir=args.work_dir,
    )
    figures = run(cfg)
    print(table(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"figures written to {args.out}")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
