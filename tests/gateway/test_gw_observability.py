"""PHI-dropping log formatter, withheld exception messages, quiet third-party loggers."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

from aws_lambda_powertools import Logger

from spcs_gateway.observability import (
    QUIET_LOGGERS,
    PhiSafeFormatter,
    quiet_third_party_loggers,
    scrub,
)

PHI = "Jane Roe has leukemia"


def make_logger() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    logger = Logger(
        service=f"obs-test-{uuid.uuid4().hex[:8]}",
        stream=stream,
        logger_formatter=PhiSafeFormatter(serialize_stacktrace=False),
    )
    return logger, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_scrub_drops_phi_keys_at_any_depth_case_insensitively() -> None:
    record = {
        "event_id": "evt-1",
        "Text": PHI,
        "nested": {"counts": [1, 2], "outputs": [PHI], "deeper": [{"LABELS": [PHI], "ok": 3}]},
        "items": ({"body": PHI, "message_id": "m-1"},),
    }
    assert scrub(record) == {
        "event_id": "evt-1",
        "nested": {"counts": [1, 2], "deeper": [{"ok": 3}]},
        "items": [{"message_id": "m-1"}],
    }


def test_scrub_bounds_depth() -> None:
    deep: dict[str, Any] = {"leaf": PHI}
    for _ in range(30):
        deep = {"child": deep}
    assert PHI not in json.dumps(scrub(deep))


def test_formatter_drops_phi_from_extra_keys_and_dict_messages() -> None:
    logger, stream = make_logger()
    logger.append_keys(text=PHI)
    logger.info("batch processed", extra={"records": 3, "body": PHI, "meta": {"entities": [PHI]}})
    logger.info({"event_id": "evt-9", "candidate_labels": [PHI], "note": PHI})

    first, second = lines(stream)
    assert first["message"] == "batch processed"
    assert first["records"] == 3
    assert first["meta"] == {}
    assert second["message"] == {"event_id": "evt-9"}
    assert PHI not in stream.getvalue()


def test_exception_messages_are_withheld_but_type_and_frames_kept() -> None:
    logger, stream = make_logger()

    def fail() -> None:
        raise ValueError(f"cannot parse {PHI}")

    try:
        fail()
    except ValueError:
        logger.exception("unexpected error")

    [entry] = lines(stream)
    assert entry["exception_name"] == "ValueError"
    assert "ValueError (message withheld)" in entry["exception"]
    assert "in fail" in entry["exception"]  # the frames are still there for debugging
    assert PHI not in stream.getvalue()


def test_correlation_id_is_logged() -> None:
    logger, stream = make_logger()
    logger.set_correlation_id("evt-42")
    logger.warning("record sent to DLQ", extra={"error_code": "INVALID_EVENT"})
    [entry] = lines(stream)
    assert entry["correlation_id"] == "evt-42"
    assert entry["error_code"] == "INVALID_EVENT"


def test_third_party_loggers_held_at_warning() -> None:
    botocore = logging.getLogger("botocore")
    saved = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        botocore.setLevel(logging.DEBUG)
        quiet_third_party_loggers()
        assert all(logging.getLogger(n).level >= logging.WARNING for n in QUIET_LOGGERS)
        assert not botocore.isEnabledFor(logging.DEBUG)
        logging.getLogger("snowflake.connector").setLevel(logging.ERROR)
        quiet_third_party_loggers()
        assert logging.getLogger("snowflake.connector").level == logging.ERROR  # not lowered
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
