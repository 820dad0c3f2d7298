"""Bounded per-key tallies for the report's top tables (senders, recipients, domains).

A busy MX sees millions of distinct addresses; the report only prints the top ones. A
:class:`Tally` holds at most ``2 * capacity`` keys: when full it keeps the ``capacity``
keys that rank highest (half by messages, half by bytes) and forgets the rest, and
says so (``pruned``). Below that many distinct keys every figure is exact; above it the
keys that stay on top are those with many messages or bytes, which are the ones the
report prints, but a key forgotten early and seen again restarts from zero, so its
figures can be low. Nothing here is ever a metric label.
"""

from __future__ import annotations

import heapq
from typing import Any

CAPACITY = 5000
"""Keys kept after a prune; a table holds at most twice this many."""

MESSAGES = 0
BYTES = 1
DEFERRALS = 2
DELAY_SUM = 3
DELAY_MAX = 4
FIELDS = 5
"""A row: messages, bytes, deferrals, sum and maximum of Postfix's ``delay=``."""


class Tally:
    __slots__ = ("capacity", "pruned", "rows")

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.rows: dict[str, list[float]] = {}
        self.pruned = False

    def row(self, key: str) -> list[float]:
        """The row of ``key``, added (all zero) if it is new."""
        row = self.rows.get(key)
        if row is None:
            if len(self.rows) >= 2 * self.capacity:
                self._prune()
            row = self.rows[key] = [0.0] * FIELDS
        return row

    def _prune(self) -> None:
        keep = self.capacity // 2
        items = list(self.rows.items())
        kept = dict(heapq.nlargest(keep, items, key=_by_messages))
        kept.update(heapq.nlargest(keep, items, key=_by_bytes))
        self.rows = kept
        self.pruned = True

    def top(self, n: int, field: int) -> list[tuple[str, list[float]]]:
        """The ``n`` keys with the highest ``field``, ties in key order."""
        return sorted(self.rows.items(), key=lambda kv: (-kv[1][field], kv[0]))[:n]

    def export(self) -> dict[str, Any]:
        return {"rows": self.rows, "pruned": self.pruned}

    def merge(self, part: dict[str, Any]) -> None:
        rows: dict[str, list[float]] = part["rows"]
        for key, other in rows.items():
            row = self.row(key)
            for i in range(DELAY_MAX):
                row[i] += other[i]
            row[DELAY_MAX] = max(row[DELAY_MAX], other[DELAY_MAX])
        self.pruned = self.pruned or bool(part["pruned"])


def _by_messages(item: tuple[str, list[float]]) -> float:
    return item[1][MESSAGES]


def _by_bytes(item: tuple[str, list[float]]) -> float:
    return item[1][BYTES]
