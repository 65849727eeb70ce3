"""The resume scenario through the local runner: a suspended service with 500 queued notes gets
exactly one RESUME, its event source mapping is paused and re-enabled, every note ends with a
result row and none lands in the DLQ.

Real handlers in their own processes, moto SQS with the template's redrive policy, the control
function invoked asynchronously by the router (Lambda API) and by the schedule, the emulator's
SPCS lifecycle (no auto-resume: only the control plane's ALTER SERVICE ... RESUME wakes it).
"""

from __future__ import annotations

from pathlib import Path

from stack_support import require_control_plane, router_for, stack_template, wait_for

from spcs_local.stack.demo import count_results, drain_dlqs, read_results
from spcs_local.stack.feed import send_events, synthetic_feed
from spcs_local.stack.stack import LocalStack, StackOptions, mapping_of

NOTES = 500


def test_stack_resume_scenario_500_notes_one_resume_no_dlq(tmp_path: Path) -> None:
    control = require_control_plane()
    options = StackOptions(
        template=stack_template(),
        work_dir=tmp_path / "work",
        functions=[router_for("biobert_ner"), *control],
        start_suspended=True,
        resume_seconds=2,
        schedule_seconds=1,
        warm_ner=True,
    )
    with LocalStack(options) as stack:
        assert stack.service_states()["biobert_ner"] == "SUSPENDED"
        queue = stack.source_queue("token-classification")
        mapping = mapping_of(stack, queue.logical_id)
        started = stack.emulator.clock.now()
        events = synthetic_feed(NOTES, 0, 0, seed=5, run_id="resume")
        report = send_events(stack.client("sqs"), events, {"notes": queue.url})
        assert report.sent == NOTES

        wait_for(lambda: count_results(stack) >= NOTES, 150, f"{NOTES} result rows", every=1.0)

        rows = read_results(stack)
        assert sorted(r["EVENT_ID"] for r in rows) == sorted(e.key for e in events)
        assert drain_dlqs(stack) == []
        resumes, _ = stack.lifecycle_counts(since=started)
        assert resumes["biobert_ner"] == 1  # exactly one RESUME, whoever asked how often
        assert resumes["biomedclip"] == 0  # no work for it: left suspended
        history = [enabled for at, enabled in mapping.history]
        assert history[:2] == [False, True]  # paused while it resumed, then re-enabled
        assert mapping.enabled
        # Paused from before the service was RUNNING until after: no receive was burned on it.
        transitions = [
            t
            for t in stack.emulator.account.transitions()
            if t.kind == "service" and t.name.endswith("BIOBERT_NER_SERVICE") and t.ts >= started
        ]
        running_at = next(t.ts for t in transitions if t.to_state == "RUNNING")
        paused_at, resumed_at = mapping.history[0][0], mapping.history[1][0]
        assert paused_at < running_at <= resumed_at
        depths = stack.queue_depths()
        assert depths[queue.name] == (0, 0)
