"""The ``spcs-gateway`` operator CLI: table, one-line coded errors, exit codes, DLQ redrive."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ctl_control_support import NER, TABLE, AwsWorld, World, aws_world, memory_world, registry_doc

from spcs_gateway.cli import build_from_args, main, parser, redrive_dlq
from spcs_gateway.control import ControlPlane


@pytest.fixture
def world() -> World:
    return memory_world()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsWorld]:
    yield from aws_world(monkeypatch)


def cli(
    world: World | None, *argv: str, environ: dict[str, str] | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs: dict[str, Any] = {}
    if world is not None:
        control = world.control()
        kwargs["build"] = lambda args, env: control
    code = main(list(argv), environ=environ or {}, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_ctl_cli_status_table(world: World) -> None:
    world.services.set_status(NER, "RUNNING")
    world.store.record_activity("biobert_ner", world.clock.now())
    world.send("images", 2)
    code, out, err = cli(world, "status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "SERVICE", "STATUS", "READY", "LAST", "ACTIVITY", "IDLE", "IN", "WHY", "BACKLOG",
        "INSTANCES", "RESUMES", "SUSPENDS", "PAUSED",
    ]  # fmt: skip
    ner = next(line for line in lines if line.startswith("biobert_ner"))
    clip = next(line for line in lines if line.startswith("biomedclip"))
    assert "RUNNING" in ner
    assert "2025-01-15 12:00:00Z (0s ago)" in ner
    assert "SUSPENDED" in clip
    assert "never" in clip
    assert "not_running" in clip
    # Aligned: every column starts at the same offset in every row.
    assert lines[0].index("STATUS") == ner.index("RUNNING") == clip.index("SUSPENDED")
    assert lines[0].index("BACKLOG") == clip.index("2 ")
    assert lines[-1].startswith("RESUMES/SUSPENDS: today (UTC)")


def test_ctl_cli_status_json(world: World) -> None:
    code, out, _ = cli(world, "--json", "status", "biomedclip")
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["biomedclip"]
    assert rows[0]["status"] == "SUSPENDED"


def test_ctl_cli_unknown_service_is_one_coded_line(world: World) -> None:
    for argv in (("status", "nope"), ("resume", "nope"), ("suspend", "nope")):
        code, out, err = cli(world, *argv)
        assert code == 1
        assert out == ""
        assert err.startswith("error: UNKNOWN_SERVICE: ")
        assert err.count("\n") == 1
        assert "Traceback" not in err
    assert world.services.calls == []


def test_ctl_cli_resume_and_suspend(world: World) -> None:
    code, out, err = cli(world, "resume", "biobert_ner", "--wait", "120")
    assert (code, err) == (0, "")
    assert out == "biobert_ner: ready, resumed by this call (RUNNING)\n"
    world.send("notes", 1)
    code, out, err = cli(world, "suspend", "biobert_ner")
    assert code == 1
    assert out == ""
    assert err == (
        "error: BACKLOG: biobert_ner: suspend refused (backlog); --force suspends anyway\n"
    )
    code, out, err = cli(world, "suspend", "biobert_ner", "--force")
    assert (code, out) == (0, "biobert_ner: suspend issued (RUNNING)\n")


def test_ctl_cli_resume_without_waiting(world: World) -> None:
    code, out, _ = cli(world, "resume", "biomedclip", "--wait", "0")
    assert code == 0
    assert "resume issued, not ready yet" in out


def test_ctl_cli_reconcile(world: World) -> None:
    world.send("notes", 1)
    code, out, _ = cli(world, "reconcile")
    assert code == 0
    assert "biobert_ner: SUSPENDED -> RESUME (backlog) resumed" in out
    assert "biomedclip: SUSPENDED -> NONE (suspended_idle) none" in out
    assert "pool ML_INFERENCE_POOL: ACTIVE -> NONE (pool_running)" in out


def test_ctl_cli_snowflake_error_exit_code(world: World) -> None:
    world.services.fail_on = lambda operation, name: True
    code, out, err = cli(world, "resume", "biobert_ner")
    assert (code, out) == (1, "")
    assert err == "error: DEPENDENCY_ERROR: biobert_ner: a Snowflake or AWS call failed\n"
    code, out, _ = cli(world, "status")
    assert code == 1
    assert "UNKNOWN (DEPENDENCY_ERROR)" in out


def test_ctl_cli_configuration_errors(tmp_path: Path, world: World) -> None:
    code, _, err = cli(None, "status")
    assert code == 2
    assert err.startswith("error: CONFIGURATION_ERROR: no state table")
    bad = tmp_path / "registry.json"
    bad.write_text(json.dumps({"version": 1, "services": []}))
    code, _, err = cli(None, "--registry", str(bad), "--state-table", TABLE, "status")
    assert code == 2
    assert err.startswith("error: CONFIGURATION_ERROR: invalid service registry")
    assert "Traceback" not in err
    code, _, err = cli(None, "--state-table", TABLE, "--queue-urls", "{oops", "status")
    assert code == 2
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["frobnicate"])
    assert exc.value.code == 2


def test_ctl_cli_builds_from_flags(tmp_path: Path, aws: AwsWorld) -> None:
    world = aws
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(registry_doc()))
    args = parser().parse_args(
        [
            "--registry", str(registry), "--state-table", TABLE,
            "--queue-urls", json.dumps(world.urls), "status",
        ]
    )  # fmt: skip
    control = build_from_args(args, {})
    assert isinstance(control, ControlPlane)
    assert [s.name for s in control.registry.services] == ["biobert_ner", "biomedclip"]
    # QUEUE_ARNS unset: read from the queues, so the mappings are found.
    assert [m.enabled for m in control.context.mappings.states(["notes"])] == [True]


def test_ctl_cli_dry_run_reconcile_changes_nothing_and_says_what_it_would(world: World) -> None:
    world.send("notes", 2)
    code, out, err = cli(world, "--dry-run", "reconcile")
    assert (code, err) == (0, "")
    assert "biobert_ner: SUSPENDED -> RESUME (backlog) resumed" in out
    assert out.endswith(
        "dry run: nothing was changed; it would have changed:\n"
        f"  ALTER SERVICE {NER} RESUME\n"
        "  disable the event source mappings of notes\n"
    )
    # The real world saw reads only.
    assert world.services.changes == []
    assert {op for op, _ in world.services.calls} == {"observe", "pool"}
    assert world.mapping_enabled("notes")
    assert world.items() == []


def test_ctl_cli_dry_run_resume_json_and_refused_suspend(world: World) -> None:
    code, out, _ = cli(world, "--json", "--dry-run", "resume", "biomedclip")
    assert code == 0
    answer = json.loads(out)
    assert answer["dry_run"] is True
    assert answer["result"]["outcome"] == "resuming"  # a dry run never waits
    assert answer["would"][0].startswith("ALTER SERVICE PEDIATRIC_ML.MODELS.BIOMEDCLIP_SERVICE")
    world.services.set_status(NER, "RUNNING")
    world.send("notes", 1)
    code, out, err = cli(world, "--dry-run", "suspend", "biobert_ner")
    assert code == 1
    assert err.startswith("error: BACKLOG: ")
    assert out == "dry run: nothing was changed; it would have changed:\n  nothing\n"
    code, out, _ = cli(world, "--dry-run", "suspend", "biobert_ner", "--force")
    assert code == 0
    assert f"ALTER SERVICE {NER} SUSPEND" in out
    assert world.services.status(NER) == "RUNNING"
    assert world.services.changes == []


def test_ctl_cli_dry_run_reads_the_production_aws_adapters(aws: AwsWorld) -> None:
    aws.send("notes", 1)
    code, out, _ = cli(aws, "--dry-run", "reconcile")
    assert code == 0
    assert "disable the event source mappings of notes" in out
    assert aws.mapping_enabled("notes")  # the real mapping was only read
    assert aws.items() == []
    assert aws.services.changes == []


# -- redrive ---------------------------------------------------------------------------------------


def _queues_with_dlq(sqs: Any) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName="notes-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    source = sqs.create_queue(
        QueueName="feed",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
        },
    )["QueueUrl"]
    for i in range(3):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=json.dumps({"event_id": f"e{i}"}),
            MessageAttributes={
                "error_code": {"DataType": "String", "StringValue": "SERVICE_UNAVAILABLE"},
                "source_message_id": {"DataType": "String", "StringValue": f"m{i}"},
            },
        )
    return source, dlq


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        got.extend(batch)
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def test_ctl_cli_redrive_moves_messages_with_attributes(aws: AwsWorld) -> None:
    world = aws
    source, dlq = _queues_with_dlq(world.sqs)
    code, out, err = cli(None, "redrive-dlq", "feed", "--max", "2")
    assert (code, err) == (0, "")
    assert out == f"moved 2 message(s) {dlq} -> {source}\n"
    code, out, _ = cli(None, "redrive-dlq", dlq)  # no move-task API in moto: the loop
    assert out == f"moved 1 message(s) {dlq} -> {source}\n"
    moved = _drain(world.sqs, source)
    assert sorted(json.loads(m["Body"])["event_id"] for m in moved) == ["e0", "e1", "e2"]
    for m in moved:
        attrs = m["MessageAttributes"]
        assert attrs["error_code"]["StringValue"] == "SERVICE_UNAVAILABLE"
        assert attrs["source_message_id"]["StringValue"].startswith("m")
    assert _drain(world.sqs, dlq) == []


def test_ctl_cli_redrive_prefers_sqs_move_task(aws: AwsWorld) -> None:
    world = aws
    _, dlq = _queues_with_dlq(world.sqs)

    class MoveTaskSqs:
        def __init__(self, inner: Any) -> None:
            self.inner, self.moves = inner, []

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def start_message_move_task(self, **kwargs: Any) -> dict[str, str]:
            self.moves.append(kwargs)
            return {"TaskHandle": "handle-1"}

    sqs = MoveTaskSqs(world.sqs)
    result = redrive_dlq(sqs, "notes-dlq", wait_seconds=0)  # type: ignore[arg-type]
    assert result.task_handle == "handle-1"
    assert result.moved == 0
    assert sqs.moves == [
        {
            "SourceArn": world.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        }
    ]


def test_ctl_cli_redrive_errors(aws: AwsWorld) -> None:
    world = aws
    world.sqs.create_queue(QueueName="orphan-dlq")
    code, _, err = cli(None, "redrive-dlq", "orphan-dlq")
    assert code == 1
    assert err.startswith("error: NO_SOURCE_QUEUE: 0 source queues")
    code, _, err = cli(None, "redrive-dlq", "no-such-queue")
    assert code == 1
    assert err.startswith("error: AWS.SimpleQueueService.NonExistentQueue")
    code, _, err = cli(None, "redrive-dlq", "orphan-dlq", "--max", "0")
    assert code == 2
