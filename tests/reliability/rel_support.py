"""Helpers for the reliability tests: canaries, hostile-value strategies, output capture.

Every canary contains ``MARK``; a leak is any occurrence of ``MARK`` in an artifact (log line,
EMF blob, stdout/stderr, DLQ message attribute, error body). Ids the gateway logs on purpose
(a valid ``event_id`` is the correlation id) are generated without it.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from hypothesis import Phase
from hypothesis import strategies as st

from spcs_gateway.errors import ErrorCode

MARK = "CNRY"
# Fuzz tests skip shrinking under the default ``ci`` profile: a failure is reported at once
# (its assertion names the case kind and code) instead of after minutes of shrinking big
# batches; ``HYPOTHESIS_PROFILE=dev`` shrinks.
FUZZ_PHASES = (
    tuple(Phase)
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci"
    else (Phase.explicit, Phase.reuse, Phase.generate)
)
# Characters SQS accepts in a message body (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000+).
_SQS_ILLEGAL = {chr(c) for c in range(0x20) if c not in (0x9, 0xA, 0xD)} | {"\ufffe", "\uffff"}

SQL_FRAGMENTS = (
    "'; DROP TABLE PEDIATRIC_ML.RESULTS.INFERENCE_RESULTS; --",
    "' OR '1'='1",
    '" OR ""="',
    "$$; SELECT SYSTEM$WHITELIST(); $$",
    "\\'; --",
    "?",
    "%s",
)
PATH_FRAGMENTS = (
    "../../../../etc/passwd",
    "..\\..\\windows\\system32",
    "%2e%2e%2f%2e%2e%2f",
    "/proc/self/environ",
    "file:///etc/shadow",
)
METADATA_URLS = (
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.170.2/v2/credentials",
    "http://[fd00:ec2::254]/latest/api/token",
    "http://metadata.google.internal/computeMetadata/v1/",
    "https://attacker.example/--call--",
)
ODD_FRAGMENTS = (
    "\x00",
    "\u202e",  # right-to-left override
    "\ufeff",
    '\r\n{"level":"ERROR","message":"forged"}',
    "${jndi:ldap://169.254.169.254/a}",
    "{0.__class__}%n%x",
    "<script>alert(1)</script>",
    "\U0001f9e0\u0301\u0308",
    "null",
)
FRAGMENTS = SQL_FRAGMENTS + PATH_FRAGMENTS + METADATA_URLS + ODD_FRAGMENTS


@cache  # strategies are built once: building them costs more than drawing
def canary(field: str) -> st.SearchStrategy[str]:
    return st.integers(0, 9999).map(lambda n: f"{MARK}{field}{n:04d}")


@cache
def safe_text(field: str, *, max_parts: int = 4) -> st.SearchStrategy[str]:
    """A non-empty string holding a canary plus hostile fragments and arbitrary Unicode (never a
    lone surrogate: those make the whole body invalid JSON and are generated separately)."""
    part = st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=24),
    )
    return st.tuples(canary(field), st.lists(part, max_size=max_parts), st.randoms()).map(
        lambda t: _shuffled([t[0], *t[1]], t[2])
    )


def _shuffled(parts: list[str], rnd: Any) -> str:
    rnd.shuffle(parts)
    return " ".join(parts)


@cache
def valid_id(field: str) -> st.SearchStrategy[str]:
    """Matches the event id pattern (path metacharacters allowed there) and holds a canary."""
    suffix = st.sampled_from(("", "/../../etc/passwd", ":a@b+c=d", ".v1-2", "/" + "x" * 60))
    return st.tuples(canary(field), suffix).map("".join)


HOSTILE_IDS = (
    "' OR 1=1; --" + MARK,
    f"{MARK} with space",
    f"../{MARK}",
    f"{MARK};DROP TABLE X",
    f"{MARK}\x00",
    f"{MARK}" + "x" * 200,
    "",
    f"{MARK}\n",
)
# Valid event id prefixes (logged on purpose, so no canary); a unique counter is appended.
EVENT_ID_PREFIXES = ("evt-", "a/../../etc/passwd-", "x:y@z+=.", "DROP.TABLE-", "9", "e" * 100)


@cache
def json_value(field: str) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values whose strings and keys hold canaries."""
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        safe_text(field, max_parts=1),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(safe_text(field, max_parts=1), inner, max_size=3),
        ),
        max_leaves=8,
    )


def nested(depth: int, leaf: Any) -> dict[str, Any]:
    value: Any = leaf
    for _ in range(depth):
        value = {"k": value}
    return dict(value)


def sqs_legal(text: str) -> bool:
    return not any(ch in _SQS_ILLEGAL or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


# -- generated records -------------------------------------------------------------------------

EVENT_ID = object()  # placeholder, replaced by a unique valid id per record


@dataclass(frozen=True)
class Case:
    """One generated SQS record body and what must become of it.

    ``expect`` is ``None`` when the record must produce a result row, else the reason codes the
    DLQ message may carry. ``raw`` bodies are sent as they are; ``doc`` bodies are serialised
    with the record's ``event_id`` in place of the ``EVENT_ID`` placeholder.
    """

    name: str
    expect: frozenset[ErrorCode] | None
    doc: Any = None
    raw: str | None = None
    ascii_only: bool = True
    id_prefix: str = "evt-"

    def body(self, event_id: str) -> str:
        if self.raw is not None:
            return self.raw
        doc = self.doc
        if isinstance(doc, dict):
            doc = {k: (event_id if v is EVENT_ID else v) for k, v in doc.items()}
        text = json.dumps(doc, ensure_ascii=False)
        if self.ascii_only or not sqs_legal(text):
            text = json.dumps(doc, ensure_ascii=True)
        return text


def ok(name: str, doc: Any, **kw: Any) -> Case:
    return Case(name, None, doc, **kw)


def bad(name: str, codes: ErrorCode | Sequence[ErrorCode], doc: Any = None, **kw: Any) -> Case:
    wanted = frozenset([codes] if isinstance(codes, ErrorCode) else codes)
    return Case(name, wanted, doc, **kw)


# -- delivery ----------------------------------------------------------------------------------


def deliver(env: Any, queue: str, bodies: Sequence[str]) -> dict[str, Any]:
    """Send ``bodies`` to ``queue`` (moto), receive them back in Lambda's SQS event shape and
    delete them, so a record handed back for retry never reappears in a later batch of the test
    (Lambda itself deletes only the successes)."""
    sqs, url = env.sqs, env.queue_urls[queue]
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
    messages: list[dict[str, Any]] = []
    while len(messages) < len(bodies):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", [])
        assert got, "messages sent were not received"
        messages.extend(got)
    delete(env, url, messages)
    return {"Records": [env._record(queue, m) for m in messages]}


def delete(env: Any, url: str, messages: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
        assert not env.sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")


# -- capture -----------------------------------------------------------------------------------


class Capture:
    """Everything the handlers wrote: the Powertools logger's stream, every other logger's
    records (as a root handler would render them, tracebacks included) and stdout/stderr
    (EMF metric blobs go to stdout)."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]):
        self.stream = io.StringIO()
        self._caplog = caplog
        self._capsys = capsys
        self.own_logger = ""

    def drain(self) -> str:
        """All output since the last drain, as one string (then forgotten)."""
        render = logging.Formatter("%(name)s %(levelname)s %(message)s")
        root = "\n".join(
            render.format(r) for r in self._caplog.records if r.name != self.own_logger
        )
        self._caplog.clear()
        out = self._capsys.readouterr()
        logs = self.stream.getvalue()
        self.stream.seek(0)
        self.stream.truncate()
        return "\n".join((logs, root, out.out, out.err))


@contextmanager
def capture_app_output(
    apps: Sequence[Any],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Capture]:
    cap = Capture(caplog, capsys)
    restore = []
    for app in apps:
        handler = app.logger.registered_handler
        # Assigned, not setStream(): that flushes the old stream, which an earlier test's
        # output capture may already have closed.
        restore.append((handler, handler.stream))
        handler.stream = cap.stream
        cap.own_logger = app.logger.name
    caplog.set_level(logging.DEBUG)  # everything any library logs through the root logger
    try:
        yield cap
    finally:
        for handler, old in restore:
            handler.stream = old


def assert_no_canary(text: str, where: str, marks: Sequence[str] = (MARK,)) -> None:
    for mark in marks:
        at = text.find(mark)
        if at >= 0:
            context = text[max(0, at - 200) : at + 100]
            raise AssertionError(f"canary {mark!r} leaked into {where}: ...{context}...")
