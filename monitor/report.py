"""Renders a round of results for people (a table) and for programs (JSON).

The JSON shape is a documented contract (docs/run-json.md); change it only with a new
``version``.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from exporters.result import CheckResult, Kind, Status

JSON_VERSION = 1

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.ERROR: "magenta"}


def exit_code(results: Sequence[CheckResult]) -> int:
    """Nagios convention: 0 ok, 1 warning, 2 critical, 3 unknown (could not run)."""
    if not results:
        return 3
    return max(r.status.severity for r in results)


def summary(results: Sequence[CheckResult]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {s.value: counts[s] for s in Status}


def to_json(results: Sequence[CheckResult], started: datetime) -> str:
    document: dict[str, Any] = {
        "version": JSON_VERSION,
        "started": started.astimezone(UTC).isoformat(),
        "results": [
            {
                "kind": r.kind.value,
                "check": r.check,
                "target": r.target,
                "status": r.status.value,
                "reason": r.reason,
                "duration_seconds": round(r.duration_seconds, 6),
                "facts": dict(r.facts),
            }
            for r in results
        ],
        "summary": summary(results),
    }
    return json.dumps(document, indent=2)


UNLIMITED_WIDTH = 100_000
"""Columns of a console that is not a terminal: wide enough that no value is ever cut."""


def table_console(file: TextIO | None = None) -> Console:
    """Where the table goes: a terminal is as wide as it is, ``$COLUMNS`` when set, and
    anything else (a pipe, a file, Nagios) takes every value whole, one row a line.

    rich falls back to 80 columns when stdout is not a terminal: targets came out cut
    ("lab._domainkey.example...") and reasons folded over many lines.
    """
    stream = file if file is not None else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS", "").strip().isdigit():
        return Console(file=file, highlight=False)
    return Console(file=file, highlight=False, width=UNLIMITED_WIDTH)


def print_table(results: Sequence[CheckResult], console: Console) -> None:
    """One table per kind, in a fixed kind order, with the reason for every non-ok row."""
    for kind in Kind:
        rows = [r for r in results if r.kind is kind]
        if not rows:
            continue
        # The title on a line of its own: as a table title rich pads it to the table's
        # width, trailing blanks in every piped report.
        console.print(kind.value, style="italic")
        table = Table(expand=False)
        table.add_column("check")
        table.add_column("target")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("reason", overflow="fold")
        for r in sorted(rows, key=lambda r: (r.check, r.target)):
            style = _STYLE[r.status]
            table.add_row(
                Text(r.check),
                Text(r.target),
                f"[{style}]{r.status.value}[/{style}]",
                f"{r.duration_seconds:.2f}s",
                Text(r.reason),  # plain text: a reason may quote "[/var/spool/...]"
            )
        console.print(table)
    counts = summary(results)
    console.print(" ".join(f"{name}={count}" for name, count in counts.items()))
