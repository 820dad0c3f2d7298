"""A labelled histogram kept as plain lists: cheap to observe, copied at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Sequence
from typing import NamedTuple


class HistogramData(NamedTuple):
    """One label set's buckets: ``counts[i]`` observations fell in ``(bounds[i-1], bounds[i]]``;
    the last count is above every bound (+Inf). A tuple: parts of a big input are counted
    in worker processes and sent back pickled, which a compiled frozen dataclass refuses."""

    counts: tuple[int, ...]
    total: float

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out


class Histogram:
    __slots__ = ("_counts", "_sums", "bounds")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts: dict[Hashable, list[int]] = {}
        self._sums: dict[Hashable, float] = {}

    def observe(self, key: Hashable, value: float) -> None:
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0] * (len(self.bounds) + 1)
            self._sums[key] = 0.0
        counts[bisect_left(self.bounds, value)] += 1
        self._sums[key] += value

    def add(self, key: Hashable, data: HistogramData) -> None:
        """Add another histogram's counts for ``key`` (same bounds)."""
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0] * (len(self.bounds) + 1)
            self._sums[key] = 0.0
        for i, count in enumerate(data.counts):
            counts[i] += count
        self._sums[key] += data.total

    def snapshot(self) -> dict[Hashable, HistogramData]:
        return {k: HistogramData(tuple(c), self._sums[k]) for k, c in self._counts.items()}
