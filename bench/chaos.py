"""Chaos run: the whole local stack under faults, a suspension and two crashes, then a drain.

Through ``spcs_local.stack.LocalStack`` (moto server, the Snowflake/SPCS emulator, the real
handlers in Lambda-like containers driven by the event-source-mapping runner, the control
function and its schedule), a synthetic feed of mixed events (clinical notes, images, 1 %
poison of four kinds) is sent while:

- the emulator's ingress injects, per request to either service, 5 % HTTP 503, 2 % HTTP 429,
  1 % dropped connections and a 200 ms latency spike on 10 % of requests
  (``--fault biobert_ner:503=0.05,429=0.02,drop=0.01,latency_ms=200,latency_p=0.1,seed=S``,
  the same for ``biomedclip``): per request, so the count follows the work, not the clock;
- a note-router container is killed (SIGKILL) in the middle of a batch, once the feed has sent
  ``--router-kill-at`` (25 %) of the events;
- the NER service is suspended by SQL (``ALTER SERVICE ... SUSPEND`` through
  snowflake-connector-python) once the feed has sent ``--suspend-at`` (50 %), right after a
  control round;
- the control function's container is killed while it resumes that service: the notes
  mapping is paused, the service is PENDING (RESUME issued) and ``ensure_ready`` is polling.

Every chaos step waits for a state of the system (events sent, a busy container, a control
round, PENDING + paused), never for a number of seconds.

**Pacing.** The feed offers ``--rate`` events/s. With ``--pacing adaptive`` (default) it holds
back while the source queues hold more than ``--max-backlog`` messages (visible + delayed + in
flight), so a slower machine gets a slower feed instead of an ever deeper queue; with
``--pacing fixed`` it keeps the rate whatever happens. The JSON has both the offered and the
achieved rate, the time held back and the sustained throughput.

**Verdict.** After the feed, the run drains: it waits until every event is accounted for (a
result row or a DLQ message) and the source queues are empty, or until nothing has progressed
for ``--stall-seconds``. Then every sent event id is reconciled against the results table (read
through the connector) and the DLQs (every message received and parsed), never against
counters (``bench/chaos_accounting.py``): ``lost`` = not in the results, not in a DLQ and not
in any queue after a full drain. A run that stops on the no-progress interval with messages
still queued reports a **stall** with what is where (queues, mappings, services, invocations in
flight), and no "lost" figure. ``--cpus N`` pins the whole stack to N CPUs (the slow-machine
check: ``make chaos CHAOS_ARGS="--cpus 1"``).

Local settings (flags change them; template parameters are passed as ``sam deploy`` takes them):

- ``FunctionTimeout=30`` (the template's smallest value) and the source queues' visibility
  timeout set to 30 s by SetQueueAttributes once the stack is up: the template derives
  6 x timeout + 300 = 480 s, so a crashed router's batch would wait 8 minutes; 30 s is Lambda's
  lower bound (visibility >= function timeout). The killed batch is not deleted (the invocation
  fails, as on Lambda) and comes back after those 30 s.
- ``MaxReceiveCount=5``, the template's default. Since the SPCS client retries a 502/503/504, a
  dropped connection or a short 429 once in-call, a blip no longer costs a receive.
- ``NotesBatchSize=100``, ``ImagesBatchSize=20``, batching windows of 1 s, 2 containers per
  function, a 4 s emulated resume, the control schedule every 5 s (production: 60 s).

    python -m bench.chaos                      # 10,000 events -> bench/results/chaos.json
    python -m bench.chaos --cpus 1             # the same on one CPU -> chaos-1cpu.json
    python -m bench.chaos --events 500 --seed 3 --out /tmp/chaos.json
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.chaos_accounting import (
    FAULT_KINDS,
    account,
    fault_counts,
    function_log_stats,
    latency_breakdown,
    reconcile_dlq,
    verdict,
)

if TYPE_CHECKING:
    from spcs_local.stack.runner import Scheduler

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS = RESULTS_DIR / "chaos.json"
NER, CLIP = "biobert_ner", "biomedclip"
_CHUNK = 20  # events per send round (SendMessageBatch of up to 10 per queue)
_SUSPEND_ATTEMPTS = 3


def _advanced(schedule: Scheduler, rounds: int) -> bool:
    return schedule.rounds > rounds


_POLL_S = 1.0  # the monitor's sampling period
_DRAINED_CHECKS = 3  # consecutive samples with empty source queues before the final count
FAULT_BODY = "503=0.05,429=0.02,drop=0.01,latency_ms=200,latency_p=0.1"

__all__ = [
    "FAULT_KINDS",
    "ChaosConfig",
    "chaos_split",
    "fault_specs",
    "main",
    "reconcile_dlq",
    "run",
]


@dataclass
class ChaosConfig:
    events: int = 10_000
    seed: int = 7
    rate: float = 35.0  # offered events/s (0: as fast as the stack takes them)
    pacing: str = "adaptive"  # "adaptive": hold back above max_backlog; "fixed": never
    max_backlog: int = 1_000  # source-queue messages above which an adaptive feed waits
    # No accounting progress for this long ends the run as a stall. It must outlast the
    # longest wait a record can legitimately have: a crashed batch's visibility timeout (30 s)
    # plus the router's longest retry delay below MaxReceiveCount (transient: 5 s x 2^3).
    stall_s: float = 180.0
    progress_s: float = 10.0  # a progress line this often
    cpus: int | None = None  # pin the whole stack to this many CPUs (None: all)
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
    """The faults for both services, each with its own reproducible random stream."""
    return [f"{NER}:{FAULT_BODY},seed={seed}", f"{CLIP}:{FAULT_BODY},seed={seed + 1}"]


def chaos_split(total: int) -> tuple[int, int, int]:
    """(notes, images, poison): 1 % poison (at least one of each of the four kinds), a fifth
    of the rest images."""
    poison = max(4, round(total / 100))
    images = (total - poison) // 5
    return total - images - poison, images, poison


def pin_cpus(count: int | None) -> list[int] | None:
    """Restrict this process, and so everything it starts (moto, the containers), to the first
    ``count`` CPUs it may use. Returns the CPUs, or None when not pinned."""
    if count is None:
        return None
    if count < 1:
        raise ValueError("--cpus must be at least 1")
    allowed = sorted(os.sched_getaffinity(0))
    if count > len(allowed):
        raise ValueError(f"--cpus {count}: only {len(allowed)} CPU(s) available")
    chosen = allowed[:count]
    os.sched_setaffinity(0, chosen)
    return chosen


# -- the run ---------------------------------------------------------------------------------


class _Say:
    def __init__(self, stream: Any, began: float) -> None:
        self._stream = stream
        self._began = began
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        if self._stream is not None:
            with self._lock:
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


@dataclass
class _Sample:
    """One look at the system (the monitor takes one per ``_POLL_S``)."""

    at: float  # epoch
    sent: int
    rows: int
    dlq: int  # DLQ messages (copies included)
    queues: dict[str, dict[str, int]]  # source queue name -> visible/delayed/in_flight
    services: dict[str, str]
    mappings: dict[str, bool]  # source queue name -> Enabled

    @property
    def queued(self) -> int:
        return sum(sum(q.values()) for q in self.queues.values())

    def as_row(self, began: float) -> dict[str, Any]:
        return {
            "t_s": round(self.at - began, 1),
            "sent": self.sent,
            "rows": self.rows,
            "dlq": self.dlq,
            "queued": {name: dict(q) for name, q in self.queues.items()},
            "services": dict(self.services),
            "mappings_enabled": dict(self.mappings),
        }


class ChaosRun:
    """One chaos run on a started stack: the feed, the chaos, the drain, the reconciliation."""

    def __init__(self, stack: Any, config: ChaosConfig, say: Callable[[str], None]) -> None:
        from spcs_local.stack.feed import synthetic_feed
        from spcs_local.stack.stack import mapping_of

        if config.pacing not in ("adaptive", "fixed"):
            raise ValueError("pacing must be 'adaptive' or 'fixed'")
        self.stack = stack
        self.cfg = config
        self.say = say
        notes, images, poison = chaos_split(config.events)
        self.events = synthetic_feed(
            notes, images, poison, seed=config.seed, run_id=f"c{config.seed}"
        )
        self.notes_queue = stack.source_queue("token-classification")
        self.images_queue = stack.source_queue("zero-shot-image-classification")
        self.source_names = [self.notes_queue.name, self.images_queue.name]
        self.notes_mapping = mapping_of(stack, self.notes_queue.logical_id)
        self.images_mapping = mapping_of(stack, self.images_queue.logical_id)
        self.note_router = stack.pools[_function(stack, service=NER).name]
        self.control = stack.pools[_function(stack, schedule=True).name]
        self.ner_fqn = next(
            s["service"] for s in stack.emulator_registry["services"] if s["name"] == NER
        )
        self.dead_names = [q.name for q in stack.resources.dead_letter_queues]
        self.sent = 0
        self.sent_at: dict[str, float] = {}
        self.message_ids: dict[str, list[str]] = {}  # event key -> SQS message id(s)
        self.kills: dict[str, dict[str, Any]] = {
            "router": {"done": False, "function": self.note_router.name},
            "control": {"done": False, "function": self.control.name},
        }
        self.suspend: dict[str, Any] = {"done": False, "service": NER}
        self.feed: dict[str, Any] = {}
        self._stop = threading.Event()
        self._sql_lock = threading.Lock()  # one connector session, used by two threads
        self._errors: dict[str, BaseException] = {}
        self._latest: _Sample | None = None
        self._feed_began = 0.0  # epoch of the first send

    # -- looking -------------------------------------------------------------------------------

    def _sample(self) -> _Sample:
        from spcs_local.stack.demo import count_results

        detail = self.stack.queue_detail()
        with self._sql_lock:
            rows = count_results(self.stack)
        mappings = {
            self.notes_queue.name: self.notes_mapping.enabled,
            self.images_queue.name: self.images_mapping.enabled,
        }
        return _Sample(
            at=time.time(),
            sent=self.sent,
            rows=rows,
            dlq=sum(sum(detail[name].values()) for name in self.dead_names),
            queues={name: detail[name] for name in self.source_names},
            services=self.stack.service_states(),
            mappings=mappings,
        )

    def _backlog(self) -> int:
        latest = self._latest
        return latest.queued if latest is not None else 0

    # -- feed --------------------------------------------------------------------------------

    def _send(self) -> None:
        """The feed at ``rate`` events/s in chunks of ``_CHUNK``; adaptive: wait while the
        source backlog is above ``max_backlog`` (and do not catch up afterwards)."""
        cfg = self.cfg
        sqs = self.stack.client("sqs")
        urls = {"notes": self.notes_queue.url, "images": self.images_queue.url}
        began = time.monotonic()
        self._feed_began = time.time()
        due = began
        held = 0.0
        holds = 0
        try:
            for start in range(0, len(self.events), _CHUNK):
                if self._stop.is_set():
                    return
                if cfg.pacing == "adaptive" and self._backlog() > cfg.max_backlog:
                    holds += 1
                    wait_began = time.monotonic()
                    while self._backlog() > cfg.max_backlog and not self._stop.wait(0.25):
                        pass
                    held += time.monotonic() - wait_began
                    due = max(due, time.monotonic())
                part = self.events[start : start + _CHUNK]
                self._send_chunk(sqs, urls, part)
                self.sent += len(part)
                if cfg.rate > 0:
                    due += len(part) / cfg.rate
                    self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self._errors["feed"] = exc
        finally:
            elapsed = time.monotonic() - began
            self.feed = {
                "offered_rate_eps": cfg.rate,
                "pacing": cfg.pacing,
                "max_backlog": cfg.max_backlog if cfg.pacing == "adaptive" else None,
                "sent": self.sent,
                "feed_s": round(elapsed, 1),
                "achieved_rate_eps": round(self.sent / elapsed, 2) if elapsed > 0 else None,
                "held_back_s": round(held, 1),
                "holds": holds,
                "ended_epoch": time.time(),
            }

    def _send_chunk(self, sqs: Any, urls: dict[str, str], part: Sequence[Any]) -> None:
        """SendMessageBatch per queue (10 a call); keeps each event's SQS message id, so an
        event that cannot be accounted for can be followed through the mapping trace."""
        by_queue: dict[str, list[Any]] = {}
        for event in part:
            by_queue.setdefault(event.queue, []).append(event)
        for queue, events in by_queue.items():
            for first in range(0, len(events), 10):
                chunk = events[first : first + 10]
                entries = [{"Id": str(i), "MessageBody": e.body} for i, e in enumerate(chunk)]
                answer = sqs.send_message_batch(QueueUrl=urls[queue], Entries=entries)
                if answer.get("Failed"):
                    raise RuntimeError(f"SendMessageBatch failed for {len(answer['Failed'])}")
                now = time.time()
                for done in answer.get("Successful", []):
                    event = chunk[int(done["Id"])]
                    self.sent_at.setdefault(event.key, now)
                    self.message_ids.setdefault(event.key, []).append(done["MessageId"])

    # -- chaos ---------------------------------------------------------------------------------

    def _until(self, check: Callable[[], bool], every: float = 0.05) -> bool:
        """Wait for a state of the system; bounded only by the run's end (a stall stops it)."""
        while not self._stop.is_set():
            if check():
                return True
            time.sleep(every)
        return check()

    def _chaos(self) -> None:
        try:
            total = len(self.events)
            if self._until(lambda: self.sent >= self.cfg.router_kill_at * total, every=0.1):
                self._kill_router()
            if self._until(lambda: self.sent >= self.cfg.suspend_at * total, every=0.1):
                self._suspend_and_kill_control()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self._errors["chaos"] = exc

    def _rel(self) -> float:
        return round(time.time() - self._feed_began, 1)

    def _kill_router(self) -> None:
        """A note-router container in the middle of a batch (running >= 0.2 s)."""
        errors = self.note_router.errors
        holder: dict[str, int] = {}

        def busy_one_killed() -> bool:
            if self.notes_mapping.enabled:
                index = self.note_router.kill_busy_container(min_busy_s=0.2)
                if index is not None:
                    holder["index"] = index
                    return True
            return False

        if not self._until(busy_one_killed, every=0.02):
            self.say("router kill: the run ended before a note-router container was busy")
            return
        at = self._rel()
        # The invocation it was running must fail (so the batch is not deleted).
        failed = self._until(lambda: self.note_router.errors > errors, every=0.05)
        self.kills["router"].update(
            done=failed, at_s=at, container=holder["index"], invocation_failed=failed
        )
        self.say(f"router kill: note-router container {holder['index']} killed mid-batch")

    def _suspend_and_kill_control(self) -> None:
        """Suspend the NER service by SQL right after a control round, so the next scheduled
        round is a schedule period away and a router's ``ensure_ready`` (invoked on its first
        503) issues the resume and polls it; kill the control container then. If a scheduled
        round issued the resume instead (it returns at once: nothing polls), wait until the
        resume is over and suspend again, at most ``_SUSPEND_ATTEMPTS`` times."""
        schedule = self.stack.schedulers[0]
        for _ in range(_SUSPEND_ATTEMPTS):
            rounds = schedule.rounds
            if not self._until(functools.partial(_advanced, schedule, rounds)):
                return
            with self._sql_lock:
                self.stack.sql().execute(f"ALTER SERVICE {self.ner_fqn} SUSPEND")
            self.suspend["done"] = True
            self.suspend.setdefault("at_s", []).append(self._rel())
            self.suspend.setdefault("epochs", []).append(time.time())
            self.say(f"ALTER SERVICE {self.ner_fqn} SUSPEND (through the connector)")
            if self._kill_control():
                return
            self._until(
                lambda: (
                    self.stack.service_states()[NER] == "RUNNING" and self.notes_mapping.enabled
                ),
                every=0.5,
            )

    def _kill_control(self) -> bool:
        """The control container while ``ensure_ready`` polls the resume it issued: the notes
        mapping is paused, the service PENDING (RESUME issued), a control invocation running.
        False when the resume finished with nothing polling it (a scheduled round issued it)."""
        seen_resume = False
        outcome: dict[str, bool] = {}

        def decided() -> bool:
            nonlocal seen_resume
            state = self.stack.service_states()[NER]
            if seen_resume and state == "RUNNING" and self.notes_mapping.enabled:
                outcome["killed"] = False  # the resume is over: nothing was polling it
                return True
            seen_resume = seen_resume or state == "PENDING"
            if not self.notes_mapping.enabled and state == "PENDING":
                index = self.control.kill_busy_container(min_busy_s=0.3)
                if index is not None:
                    self.kills["control"].update(
                        done=True,
                        at_s=self._rel(),
                        epoch=time.time(),
                        container=index,
                        mapping_paused=not self.notes_mapping.enabled,
                    )
                    self.say(f"control kill: control container {index} killed mid-resume")
                    outcome["killed"] = True
                    return True
            return False

        self._until(decided, every=0.1)
        if not outcome.get("killed"):
            self.say("control kill: no ensure_ready was seen polling this resume")
        return bool(outcome.get("killed"))

    # -- progress ------------------------------------------------------------------------------

    def _status_line(self, sample: _Sample, total: int, rate: float | None) -> str:
        queued = " ".join(
            f"{name.rsplit('-', 1)[-1]} {q['visible']}/{q['delayed']}/{q['in_flight']}"
            for name, q in sample.queues.items()
        )
        states = " ".join(f"{k}={v}" for k, v in sorted(sample.services.items()))
        paused = [n.rsplit("-", 1)[-1] for n, on in sample.mappings.items() if not on]
        accounted = sample.rows + sample.dlq
        speed = f" {rate:.1f}/s" if rate is not None else ""
        return (
            f"sent {sample.sent}/{total} accounted {accounted} (rows {sample.rows}, dlq "
            f"{sample.dlq}){speed} | queued vis/delayed/in-flight {queued} | {states}"
            + (f" | PAUSED {' '.join(paused)}" if paused else "")
        )

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from spcs_local.stack.demo import DemoRun, drain_dlqs, read_results, summarize

        cfg, total = self.cfg, len(self.events)
        self.say(
            f"feed: {total} events offered at {cfg.rate:g}/s ({cfg.pacing} pacing"
            + (f", hold above {cfg.max_backlog} queued" if cfg.pacing == "adaptive" else "")
            + f"); drain until accounted or {cfg.stall_s:g} s without progress"
        )
        self.say(f"faults {cfg.fault_specs()}")
        self._latest = self._sample()
        started = time.time()
        sender = threading.Thread(target=self._send, name="chaos-feed", daemon=True)
        chaos = threading.Thread(target=self._chaos, name="chaos-steps", daemon=True)
        sender.start()
        chaos.start()
        timeline: list[_Sample] = []
        last_line = last_kept = 0.0
        progress_mark = (-1, -1)
        progress_at = time.monotonic()
        drained_checks = 0
        stalled_for: float | None = None
        previous: _Sample | None = None
        try:
            while True:
                sample = self._sample()
                self._latest = sample
                now = time.monotonic()
                mark = (sample.sent, sample.rows + sample.dlq)
                if mark > progress_mark:
                    progress_mark, progress_at = mark, now
                if now - last_kept >= 5.0 or not timeline:
                    timeline.append(sample)
                    last_kept = now
                if now - last_line >= cfg.progress_s:
                    rate = None
                    if previous is not None and sample.at > previous.at:
                        done = (sample.rows + sample.dlq) - (previous.rows + previous.dlq)
                        rate = done / (sample.at - previous.at)
                    self.say(self._status_line(sample, total, rate))
                    previous, last_line = sample, now
                if self._errors:
                    break
                feeding = sender.is_alive() or chaos.is_alive()
                if not feeding and sample.queued == 0:
                    drained_checks += 1
                    if drained_checks >= _DRAINED_CHECKS:
                        break
                else:
                    drained_checks = 0
                if now - progress_at >= cfg.stall_s:
                    stalled_for = now - progress_at
                    break
                time.sleep(_POLL_S)
        finally:
            self._stop.set()
            sender.join(timeout=60)
            chaos.join(timeout=60)
        if self._errors:
            where, exc = next(iter(self._errors.items()))
            raise RuntimeError(f"the {where} thread failed ({type(exc).__name__})") from exc
        ended = time.time()
        final = self._sample()
        timeline.append(final)
        run = DemoRun(events=self.events, sent_at=self.sent_at, started=started)
        run.results = read_results(self.stack)
        run.dlq = drain_dlqs(self.stack)
        run.resumes, run.suspends = self.stack.lifecycle_counts(since=started)
        run.finished = time.time()
        summary = summarize(run)
        books = account(
            self.sent_at,
            [str(r["EVENT_ID"]) for r in run.results],
            [m.key for m in run.dlq],
            final.queued,
        )
        stall = None
        if stalled_for is not None and not books["drained"]:
            stall = self._stall_report(final, books, stalled_for)
        missing = self._whereabouts(books["unaccounted_keys"][:50])
        expected = {e.key: str(e.expected_code) for e in self.events if e.expected_code}
        dlq_check = reconcile_dlq(expected, [(m.key, m.code) for m in run.dlq])
        dlq_check["unexpected_detail"] = [
            {
                "key": m.key,
                "code": m.code,
                "receive_count": m.attributes.get("ApproximateReceiveCount"),
                "sent_s": _rel_ms(m.attributes.get("SentTimestamp"), self._feed_began),
            }
            for m in run.dlq
            if m.key not in expected
        ]
        status = _admin_status(self.stack)
        feed_end = float(self.feed.get("ended_epoch") or ended)  # the feed thread's own clock
        accounted_s = ended - self._feed_began
        feed = self.feed or {"offered_rate_eps": cfg.rate, "pacing": cfg.pacing, "sent": self.sent}
        throughput = {
            "feed_s": None,
            "achieved_rate_eps": None,
            "held_back_s": None,
            **{k: v for k, v in feed.items() if k != "ended_epoch"},
            "accounted": books["accounted"],
            "accounted_s": round(accounted_s, 1),
            "drain_s": round(max(0.0, ended - feed_end), 1),
            "sustained_eps": round(books["accounted"] / accounted_s, 2) if accounted_s else None,
            "max_queued": max(s.queued for s in timeline),
        }
        figures: dict[str, Any] = {
            "events": total,
            "events_sent": books["sent"],
            "mix": dict(Counter(e.kind for e in self.events)),
            "rows": summary["results_rows"],
            "dlq": summary["dlq"],
            "dlq_expected": dict(sorted(Counter(expected.values()).items())),
            "dlq_check": dlq_check,
            "drained": books["drained"],
            "lost": books["lost"],
            "unaccounted": books["unaccounted"],
            # Per event not accounted for (at most 50): its message id(s) and every batch the
            # event source mappings delivered it in (receive count, outcome, deleted or kept).
            "unaccounted_detail": missing,
            "duplicate_results": books["duplicate_results"],
            "stall": stall,
            "throughput": throughput,
            "faults_injected": fault_counts(status),
            "ingress_requests": {
                name: ingress["stats"]["requests"] for name, ingress in status["ingress"].items()
            },
            "kills": self.kills,
            "suspend": self.suspend,
            "resumes": summary["resumes"],
            "notes_mapping": self._mapping_story(),
            "source_queues_left": final.queued,
            "latency_ms": summary["latency_ms"],
            "latency": self._latency(run),
            "functions": function_log_stats(
                {pool.name: pool.log_paths for pool in self.stack.pools.values()}
            ),
            "history": self._history(started),
            "timeline": [s.as_row(self._feed_began) for s in timeline],
        }
        for kill in figures["kills"].values():
            kill.pop("epoch", None)
        figures["suspend"].pop("epochs", None)
        return figures

    def _stall_report(
        self, final: _Sample, books: dict[str, Any], stalled_for: float
    ) -> dict[str, Any]:
        """What is stuck where (ids, counts and states only)."""
        kinds = {e.key: e.kind for e in self.events}
        keys = books["unaccounted_keys"]
        return {
            "no_progress_s": round(stalled_for, 1),
            "unaccounted": len(keys),
            "unaccounted_by_kind": dict(Counter(kinds.get(k, "?") for k in keys)),
            "unaccounted_sample": keys[:20],
            "source_queues": final.queues,
            "mappings_enabled": final.mappings,
            "services": final.services,
            "invocations_in_flight": {
                name: pool.in_flight for name, pool in self.stack.pools.items()
            },
            "batches_in_flight": {
                m.queue_url.rsplit("/", 1)[-1]: m.in_flight_batches for m in self.stack.mappings
            },
        }

    def _whereabouts(self, keys: Sequence[str]) -> dict[str, Any]:
        trace = self.stack.mapping_trace
        entries = trace.read() if trace is not None else []
        out: dict[str, Any] = {}
        for key in keys:
            ids = self.message_ids.get(key, [])
            deliveries = []
            for entry in entries:
                counts = {mid: n for mid, n in entry.get("messages", [])}
                for mid in ids:
                    if mid not in counts:
                        continue
                    kept = mid in entry.get("kept", [])
                    deliveries.append(
                        {
                            "received_s": round(entry["received_at"] - self._feed_began, 1),
                            "finished_s": round(
                                entry.get("finished_at", entry["received_at"]) - self._feed_began,
                                1,
                            ),
                            "receive_count": counts[mid],
                            "batch_size": len(counts),
                            "invoked_ok": entry.get("invoked_ok"),
                            "error_type": entry.get("error_type"),
                            "outcome": "kept" if kept else "deleted",
                            "delete_failed": mid in entry.get("delete_failed", []),
                        }
                    )
            out[key] = {"message_ids": ids, "deliveries": deliveries}
        return out

    def _latency(self, run: Any) -> dict[str, Any]:
        from spcs_local.stack.demo import _epoch

        latencies: dict[str, float] = {}
        for row in run.results:
            key = str(row["EVENT_ID"])
            at, sent_at = _epoch(row.get("PROCESSED_AT")), self.sent_at.get(key)
            if at is not None and sent_at is not None and key not in latencies:
                latencies[key] = max(0.0, (at - sent_at) * 1000.0)
        windows = {}
        suspended = self.suspend.get("epochs") or []
        back_on = [at for at, on in self.notes_mapping.history if on]
        if suspended:
            # From the first SQL suspension to the notes mapping's last re-enable after it.
            after = [at for at in back_on if at >= suspended[0]]
            windows["ner_suspension"] = (suspended[0], after[-1] if after else time.time())
        return latency_breakdown(
            latencies,
            self.sent_at,
            {e.key: e.kind for e in self.events},
            feed_start=self._feed_began,
            windows=windows,
        )

    def _history(self, since: float) -> dict[str, Any]:
        """Service transitions (the emulator's history) and every mapping Enabled change,
        in seconds from the first send."""
        by_fqn = {s["service"].upper(): s["name"] for s in self.stack.emulator_registry["services"]}
        services = [
            {
                "t_s": round(row.ts - self._feed_began, 1),
                "service": by_fqn.get(str(row.name).upper(), row.name),
                "from": row.from_state,
                "to": row.to_state,
            }
            for row in self.stack.emulator.account.transitions()
            if row.kind == "service" and row.ts >= since
        ]
        mappings = sorted(
            (
                {
                    "t_s": round(at - self._feed_began, 1),
                    "queue": m.queue_url.rsplit("/", 1)[-1],
                    "enabled": on,
                }
                for m in self.stack.mappings
                for at, on in m.history
                if at >= since
            ),
            key=lambda item: item["t_s"],
        )
        return {"services": services, "mappings": mappings}

    def _mapping_story(self) -> dict[str, Any]:
        """Pauses of the notes mapping after the suspension; whether the pause the killed
        control left behind was lifted (by the next reconcile), and when."""
        epochs = self.suspend.get("epochs") or [0.0]
        since = float(epochs[0])
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


def _rel_ms(epoch_ms: str | None, began: float) -> float | None:
    return None if not epoch_ms else round(int(epoch_ms) / 1000 - began, 1)


def _admin_status(stack: Any) -> dict[str, Any]:
    import httpx

    answer = httpx.get(f"{stack.emulator.account_url}/admin/status", timeout=10)
    answer.raise_for_status()
    status: dict[str, Any] = answer.json()
    return status


def _machine(cpus: list[int] | None) -> dict[str, Any]:
    return {
        "cpus_available": len(os.sched_getaffinity(0)),
        "cpus_pinned": cpus,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(config: ChaosConfig | None = None, *, stream: Any = sys.stdout) -> dict[str, Any]:
    """Start the stack, run the chaos, drain, reconcile; the figures (``ok``: every claim
    held)."""
    from spcs_local.stack.stack import LocalStack, StackOptions

    cfg = config or ChaosConfig()
    pinned = pin_cpus(cfg.cpus)
    machine = _machine(pinned)
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
        trace_mappings=True,
    )
    where = f" on CPU(s) {pinned}" if pinned is not None else ""
    say(f"starting the local stack (emulator, moto server, routers, control){where} ...")
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
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures["machine"] = machine
    settings = asdict(cfg)
    settings.pop("work_dir", None)
    settings["faults"] = cfg.fault_specs()
    settings["parameter_overrides"] = cfg.parameter_overrides()
    figures["settings"] = settings
    figures["problems"] = verdict(figures)
    figures["ok"] = not figures["problems"]
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = ["", "chaos run", "-" * 72]

    def row(name: str, value: Any) -> None:
        lines.append(f"  {name:<30} {value}")

    machine = figures["machine"]
    row("CPUs", machine["cpus_pinned"] or f"all ({machine['cpus_available']})")
    row("events sent", f"{figures['events_sent']} {figures['mix']}")
    row("result rows", figures["rows"])
    row("dead-lettered (by code)", figures["dlq"])
    row("  expected (the poison)", figures["dlq_expected"])
    check = figures["dlq_check"]
    row("  exactly the poison", check["exact"])
    row("  redelivered DLQ copies", check["redelivered_copies"])
    row("drained (source queues empty)", figures["drained"])
    row("lost", "n/a (stalled, see below)" if figures["lost"] is None else figures["lost"])
    row("duplicate results", figures["duplicate_results"])
    tp = figures["throughput"]
    row("offered / achieved feed", f"{tp['offered_rate_eps']:g} / {tp['achieved_rate_eps']} /s")
    row("feed held back", f"{tp['held_back_s']} s ({tp['pacing']} pacing)")
    row("feed / drain / accounted", f"{tp['feed_s']} s / {tp['drain_s']} s / {tp['accounted_s']} s")
    row("sustained throughput", f"{tp['sustained_eps']} events/s (max queued {tp['max_queued']})")
    lat = figures["latency_ms"]
    row("latency p50/p95/max", f"{lat['p50']} / {lat['p95']} / {lat['max']} ms")
    row("faults injected", figures["faults_injected"]["total"])
    for name, kill in figures["kills"].items():
        row(f"kill: {name}", kill)
    row("SQL suspend", figures["suspend"])
    row("resumes (emulator history)", figures["resumes"])
    story = figures["notes_mapping"]
    row("notes mapping re-enabled", f"{story['reenabled_after_control_kill_s']} s after the kill")
    row("left in source queues", figures["source_queues_left"])
    if figures["stall"]:
        row("STALL", json.dumps(figures["stall"], default=str))
    lines.append("-" * 72)
    if figures["ok"]:
        lines.append("  OK: nothing lost, nothing twice, the DLQs hold exactly the poison")
    else:
        lines.append("  FAILED: " + "; ".join(figures["problems"]))
    return "\n".join(lines)


def default_out(cfg: ChaosConfig) -> Path:
    """``chaos.json`` for a run on every CPU, ``chaos-<N>cpu.json`` for a pinned one."""
    return RESULTS if cfg.cpus is None else RESULTS_DIR / f"chaos-{cfg.cpus}cpu.json"


def main(argv: Sequence[str] | None = None) -> int:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=defaults.events, metavar="N")
    parser.add_argument("--seed", type=int, default=defaults.seed, metavar="S")
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, metavar="EPS", help="offered events/s"
    )
    parser.add_argument("--pacing", choices=("adaptive", "fixed"), default=defaults.pacing)
    parser.add_argument(
        "--max-backlog",
        type=int,
        default=defaults.max_backlog,
        metavar="N",
        help="adaptive pacing: hold the feed while more messages than this are queued",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=defaults.stall_s,
        metavar="S",
        help="stop the drain (and report a stall, never 'lost') after this long without progress",
    )
    parser.add_argument(
        "--cpus", type=int, default=None, metavar="N", help="pin the whole stack to N CPUs"
    )
    parser.add_argument("--progress-seconds", type=float, default=defaults.progress_s, metavar="S")
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
    parser.add_argument(
        "--router-kill-at", type=float, default=defaults.router_kill_at, metavar="FRACTION"
    )
    parser.add_argument("--suspend-at", type=float, default=defaults.suspend_at, metavar="FRACTION")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="replaces the default faults"
    )
    parser.add_argument("--work-dir", type=Path, metavar="DIR", help="keep state and logs here")
    parser.add_argument(
        "--out", type=Path, default=None, metavar="PATH", help="default: bench/results/chaos.json"
    )
    args = parser.parse_args(argv)
    for name in ("snowflake.connector", "botocore", "urllib3", "werkzeug", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cfg = ChaosConfig(
        events=args.events,
        seed=args.seed,
        rate=args.rate,
        pacing=args.pacing,
        max_backlog=args.max_backlog,
        stall_s=args.stall_seconds,
        progress_s=args.progress_seconds,
        cpus=args.cpus,
        max_containers=args.max_containers,
        notes_batch=args.notes_batch,
        images_batch=args.images_batch,
        visibility_s=args.visibility,
        max_receive_count=args.max_receive_count,
        schedule_seconds=args.schedule_seconds,
        router_kill_at=args.router_kill_at,
        suspend_at=args.suspend_at,
        faults=list(args.fault),
        work_dir=args.work_dir,
    )
    figures = run(cfg)
    print(table(figures))
    out = args.out or default_out(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"figures written to {out}")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
