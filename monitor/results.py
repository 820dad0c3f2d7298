"""The results store: the last result of every check, read by metrics and reports.

It plays the domain object of a scrape-time collector: the scheduler writes, the
collector reads a consistent snapshot under a lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from exporters.result import Check, CheckResult, Status

CheckKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """What the store knows about one check: its last result and run counts by status."""

    kind: str
    check: str
    target: str
    last: CheckResult | None
    runs: dict[Status, int]
    interval_seconds: float = 0.0
    consecutive_failures: int = 0
    """Runs in a row, up to the last one, whose status was fail or error."""


class ResultsStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[CheckKey, float] = {}
        self._last: dict[CheckKey, CheckResult] = {}
        self._runs: dict[CheckKey, Counter[Status]] = {}
        self._failing: dict[CheckKey, int] = {}

    def register(self, checks: Iterable[Check]) -> None:
        """Declare the configured checks so their series exist before the first run.

        Checks no longer configured (after a reload) are forgotten.
        """
        keys = {c.key: c.interval_seconds for c in checks}
        with self._lock:
            self._known = keys
            self._last = {k: v for k, v in self._last.items() if k in keys}
            self._runs = {k: self._runs.get(k, Counter()) for k in keys}
            self._failing = {k: v for k, v in self._failing.items() if k in keys}

    def record(self, result: CheckResult) -> None:
        with self._lock:
            if result.key not in self._known:
                return  # a run that finished after its check was removed by a reload
            self._last[result.key] = result
            self._runs[result.key][result.status] += 1
            failed = result.status in (Status.FAIL, Status.ERROR)
            self._failing[result.key] = self._failing.get(result.key, 0) + 1 if failed else 0

    def snapshot(self) -> list[CheckRecord]:
        with self._lock:
            return [
                CheckRecord(
                    kind=key[0],
                    check=key[1],
                    target=key[2],
                    last=self._last.get(key),
                    runs={s: self._runs[key][s] for s in Status},
                    interval_seconds=interval,
                    consecutive_failures=self._failing.get(key, 0),
                )
                for key, interval in self._known.items()
            ]

    def all_ran_once(self) -> bool:
        with self._lock:
            return all(key in self._last for key in self._known)
