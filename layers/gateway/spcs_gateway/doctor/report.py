"""What the doctor reports: one row per check, and the table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from spcs_gateway.errors import GatewayError


class Result(StrEnum):
    PASS = "PASS"  # noqa: S105 (a check result, not a secret)
    WARN = "WARN"  # works, but something is worth knowing; does not fail the run
    FAIL = "FAIL"
    SKIP = "SKIP"  # could not be checked (an earlier check failed, or the service sleeps)


@dataclass(frozen=True)
class Check:
    check: str
    target: str
    result: Result
    detail: str = ""
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def _norm(name: Any) -> str:
    return str(name or "").replace('"', "").strip().upper()


def _fail_text(err: GatewayError) -> str:
    return str(err)  # code + fixed detail: PHI-free by construction


def format_table(rows: Sequence[Check]) -> str:
    """One line per check (CHECK, TARGET, RESULT, DETAIL), the fix indented under a failure."""
    headers = ("CHECK", "TARGET", "RESULT")
    cells = [(r.check, r.target, r.result.value) for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]
    indent = " " * (sum(widths) + 6)

    def line(values: Sequence[str], detail: str) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + "  " + detail

    lines = [line(headers, "DETAIL")]
    for row, values in zip(rows, cells, strict=True):
        lines.append(line(values, row.detail))
        if row.fix and row.result in (Result.FAIL, Result.SKIP):
            lines.append(f"{indent}fix: {row.fix}")
    not_passed = sum(1 for r in rows if r.result in (Result.FAIL, Result.SKIP))
    lines.append("")
    lines.append("all checks passed" if not not_passed else f"{not_passed} check(s) did not pass")
    return "\n".join(lines)


def passed(rows: Sequence[Check]) -> bool:
    return all(r.result in (Result.PASS, Result.WARN) for r in rows)
