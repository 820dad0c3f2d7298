"""Runs the aggregator over one-shot input, on one core or several.

Big plain files are cut at line ends into parts that worker processes read in
parallel; each worker hands back its counts (``LogAggregator.export_state``) and its
report tallies, and the parent merges them. A message whose lines straddle a cut is
seen by two workers: its in-fleet delay is not observed and, if it was deferred, its
size may be counted twice. For a report over hundreds of thousands of lines that is
noise; ``--jobs 1`` avoids it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.envelope import Clock
from exporters.postfix_logs.programs import Program
from exporters.postfix_logs.settings import LogSettings
from exporters.postfix_logs.summary import Summary
from exporters.postfix_logs.trace import TraceCollector, TraceLine, TraceLinks
from monitor.logs.reader import Part, Progress, read_part

UNSUPPORTED_KEPT = 10_000
"""--show-unsupported prints at most this many lines (the count is always complete)."""


@dataclass(frozen=True, slots=True)
class Options:
    settings: LogSettings
    reference: float
    """Reference time for year-less timestamps (newest file's modification time)."""
    window: tuple[float | None, float | None] | None = None
    keep_unsupported: bool = False


@dataclass
class Analysis:
    aggregator: LogAggregator
    summary: Summary
    unsupported: list[str] = field(default_factory=list)


def _new(options: Options, kept: list[str]) -> tuple[LogAggregator, Summary]:
    """An aggregator with the report's tallies; unsupported lines go to ``kept``."""
    clock = Clock(lambda: options.reference)
    summary = Summary(clock.epoch)
    aggregator = LogAggregator(
        options.settings,
        clock=clock,
        window=options.window,
        observers=[summary],
        on_raw=_unsupported_sink(kept) if options.keep_unsupported else None,
    )
    return aggregator, summary


def _unsupported_sink(kept: list[str]) -> Callable[[Program | None, str], None]:
    def keep(prog: Program | None, text: str) -> None:
        if prog is not None and len(kept) < UNSUPPORTED_KEPT:
            kept.append(text)

    return keep


def analyse(
    parts: Sequence[Part],
    stdin: BinaryIO | None,
    options: Options,
    jobs: int,
    progress: Progress | None = None,
) -> Analysis:
    if jobs > 1 and len(parts) > 1 and all(p.path is not None for p in parts):
        return _parallel(parts, options, jobs, progress)
    kept: list[str] = []
    aggregator, summary = _new(options, kept)
    for part in parts:
        for lines in read_part(part, stdin, progress):
            aggregator.feed_texts(lines)
    aggregator.finish()
    return Analysis(aggregator, summary, kept)


# ---- parallel ----------------------------------------------------------------------

_shared_progress: Any = None


def _init_worker(counter: Any) -> None:
    global _shared_progress
    _shared_progress = counter


def _advance(nbytes: int) -> None:
    with _shared_progress.get_lock():
        _shared_progress.value += nbytes


def _work(part: Part, options: Options) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    kept: list[str] = []
    aggregator, summary = _new(options, kept)
    for lines in read_part(part, None, _advance):
        aggregator.feed_texts(lines)
    return aggregator.export_state(), summary.export(), kept


def _parallel(
    parts: Sequence[Part], options: Options, jobs: int, progress: Progress | None
) -> Analysis:
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    aggregator, summary = _new(options, [])
    analysis = Analysis(aggregator, summary)
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(counter,)
    ) as pool:
        futures = [pool.submit(_work, part, options) for part in parts]
        reported = 0
        pending = set(futures)
        while pending:
            _done, pending = wait(pending, timeout=0.1)
            if progress is not None:
                current = counter.value
                progress(current - reported)
                reported = current
        for future in futures:  # in input order, so kept lines stay in order
            state, tallies, kept = future.result()
            aggregator.merge_state(state)
            summary.merge(tallies)
            analysis.unsupported.extend(kept[: UNSUPPORTED_KEPT - len(analysis.unsupported)])
    return analysis


# ---- tracing -----------------------------------------------------------------------


def trace(
    parts: Sequence[Part], stdin: BinaryIO | None, options: Options, wanted: str
) -> list[TraceLine]:
    """Two passes: find the queue IDs of ``wanted``, then collect their lines."""
    links = TraceLinks()
    first = LogAggregator(
        options.settings, clock=Clock(lambda: options.reference), observers=[links]
    )
    for part in parts:
        for lines in read_part(part, stdin, None):
            first.feed_texts(lines)
    collector = TraceCollector(links.component(wanted))
    second = LogAggregator(
        options.settings, clock=first.clock, window=options.window, observers=[collector]
    )
    for part in parts:
        for lines in read_part(part, stdin, None):
            second.feed_texts(lines)
    return collector.lines
