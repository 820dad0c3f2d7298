"""Following the configured logs inside ``mailprobe serve``.

One task per configured source reads its batches, counts each batch in the shared
aggregator and only then saves the position right after it. A kill -9 between the two
leaves the old position saved: that batch is read again on restart, and since the
process that counted it died with its counters, nothing is counted twice in what
Prometheus can still see, and nothing is skipped.

Counting happens on the event loop, as does every scrape (``generate_latest`` runs in
aiohttp's handler), and a batch is counted in one synchronous call under the
aggregator's lock: a scrape sees whole batches, and per-source line counts that add up
to the aggregator's. A source that fails (journalctl missing or exiting, a read error)
is logged, counted and restarted after a backoff; the other sources and serve carry on.
One task per source, rather than ``sources.merge``, keeps a failure local to its source
and closes each source's reader (files, journalctl) deterministically on stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.envelope import split_envelope
from exporters.postfix_logs.sources import (
    Batch,
    FileFollower,
    JournalRecord,
    JournalSource,
    Source,
    StdinSource,
)
from monitor.config.logs import LogSource, LogsSection
from monitor.logs import log_settings
from monitor.logs.sources import AnySource, build_source
from monitor.metrics.log_sources import LogSourceCollector, SourceStats
from monitor.metrics.postfix import PostfixLogCollector
from monitor.state import LogPositions, StateStore

log = logging.getLogger(__name__)

T = TypeVar("T")

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 60.0
"""Seconds before a failed source is started again, doubling from the first to this."""
ERROR_CHECK_INTERVAL = 1.0
"""Seconds between looks at the file sources' open errors, to log when they change."""
STOP_TIMEOUT = 10.0
"""Seconds the sources get to close and save their last position on stop."""
TIME_LOOKBACK = 8
"""Lines looked at, from a batch's end, for the time of its newest line."""


class _Feed:
    """One configured source, the state of its task and what it read."""

    def __init__(self, config: LogSource) -> None:
        self.config = config
        self.key = config.state_key
        self.source: AnySource | None = None
        self.task: asyncio.Task[None] | None = None
        self.failures: Counter[str] = Counter()
        self.backoff = INITIAL_BACKOFF
        self.waiting = False
        """Failed and waiting out its backoff."""
        self.reported_error: str | None = None
        self.last_line_time: float | None = None

    def open_error(self) -> str | None:
        return self.source.last_error if isinstance(self.source, FileFollower) else None

    def stats(self) -> SourceStats:
        source = self.source
        running = self.task is not None and not self.task.done()
        up = running and not self.waiting and self.open_error() is None
        failures, last = dict(self.failures), self.last_line_time
        if isinstance(source, FileFollower):
            c = source.counters
            return SourceStats(
                self.key,
                up,
                c.lines,
                bytes=c.bytes,
                lines_truncated=c.lines_truncated,
                rotations=c.rotations,
                truncations=c.truncations,
                open_errors=c.open_errors,
                positions_lost=c.positions_lost,
                failures=failures,
                last_line_time=last,
            )
        if isinstance(source, JournalSource):
            j = source.counters
            return SourceStats(
                self.key,
                up,
                j.records,
                lines_truncated=j.messages_truncated,
                positions_lost=j.positions_lost,
                records_unreadable=j.records_unreadable,
                failures=failures,
                last_line_time=last,
            )
        if source is not None:
            s = source.counters
            return SourceStats(
                self.key,
                up,
                s.lines,
                bytes=s.bytes,
                lines_truncated=s.lines_truncated,
                failures=failures,
                last_line_time=last,
            )
        return SourceStats(self.key, False, 0)


def _carry_counters(previous: AnySource | None, source: AnySource) -> None:
    """A source started again (after a failed reload) counts on from where it stopped."""
    match previous, source:
        case FileFollower(), FileFollower():
            source.counters = previous.counters
        case JournalSource(), JournalSource():
            source.counters = previous.counters
        case StdinSource(), StdinSource():
            source.counters = previous.counters


class LogFollowing:
    """The ``logs`` extension's service: the aggregator, its sources and their tasks."""

    name = "logs"

    def __init__(self, section: LogsSection, state_dir: Path) -> None:
        settings = log_settings(section)
        # The sources cut over-long lines at their own limit; the aggregator's backstop
        # must not cut them shorter.
        longest = max((s.max_line_bytes for s in section.sources), default=0)
        settings = replace(settings, max_line_bytes=max(settings.max_line_bytes, longest))
        self.aggregator = LogAggregator(settings)
        self._state_dir = state_dir
        self._feeds = [_Feed(config) for config in section.sources]
        self._store: StateStore | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.collectors = (
            PostfixLogCollector(self.aggregator),
            LogSourceCollector(self.stats),
        )

    def stats(self) -> Sequence[SourceStats]:
        return [feed.stats() for feed in self._feeds]

    async def start(self) -> None:
        self._store = await StateStore.open(self._state_dir)
        positions = LogPositions(self._store)
        for feed in self._feeds:  # again after a stop, when a failed reload restarts it
            source = build_source(feed.config, positions)
            _carry_counters(feed.source, source)
            feed.source = source
            feed.waiting = False
            if isinstance(source, JournalSource):
                feed.task = asyncio.create_task(
                    self._follow(feed, source, self._count_records), name=f"logs:{feed.key}"
                )
            else:
                feed.task = asyncio.create_task(
                    self._follow(feed, source, self._count_lines), name=f"logs:{feed.key}"
                )
        self._watcher = asyncio.create_task(self._watch_open_errors(), name="logs:errors")
        log.info(
            "following logs",
            extra={"sources": ",".join(f.key for f in self._feeds), "state": self._store.path},
        )

    async def stop(self) -> None:
        tasks = [f.task for f in self._feeds if f.task is not None]
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            if pending:
                log.warning(
                    "log sources did not stop in time",
                    extra={"sources": ",".join(t.get_name() for t in pending)},
                )
        if self._store is not None:
            await self._store.close()
            self._store = None

    # -- counting ----------------------------------------------------------------------

    def _count_lines(self, feed: _Feed, lines: list[bytes]) -> None:
        self.aggregator.feed_lines(lines)
        clock = self.aggregator.clock
        for raw in reversed(lines[-TIME_LOOKBACK:]):
            envelope = split_envelope(raw.decode("utf-8", "replace"))
            when = None if envelope is None else clock.epoch(envelope[0])
            if when is not None:
                feed.last_line_time = when
                return

    def _count_records(self, feed: _Feed, records: list[JournalRecord]) -> None:
        self.aggregator.feed_journal_records(records)
        if records:
            feed.last_line_time = records[-1].realtime_usec / 1e6

    # -- the tasks ---------------------------------------------------------------------

    async def _follow(
        self, feed: _Feed, source: Source[T], count: Callable[[_Feed, list[T]], None]
    ) -> None:
        """Read ``source`` until it ends; restart it with backoff whenever it fails."""
        while True:
            try:
                await self._read(feed, source, count)
            except Exception as exc:
                feed.failures["read"] += 1
                feed.waiting = True
                log.warning(
                    "log source failed: restarting it",
                    extra={
                        "source": feed.key,
                        "error": f"{type(exc).__name__}: {exc}",
                        "retry_in_seconds": feed.backoff,
                    },
                )
                await asyncio.sleep(feed.backoff)
                feed.backoff = min(feed.backoff * 2, MAX_BACKOFF)
                feed.waiting = False
                continue
            log.info("log source ended", extra={"source": feed.key})
            return

    async def _read(
        self, feed: _Feed, source: Source[T], count: Callable[[_Feed, list[T]], None]
    ) -> None:
        batches = source.batches()
        pending: Batch[T] | None = None
        try:
            async for batch in batches:
                pending = batch
                try:
                    count(feed, batch.items)
                except Exception as exc:  # a parser bug: skip the batch, keep following
                    feed.failures["process"] += 1
                    log.error(
                        "cannot count log lines",
                        extra={"source": feed.key, "error": f"{type(exc).__name__}: {exc}"},
                        exc_info=True,
                    )
                feed.backoff = INITIAL_BACKOFF
                await self._commit(feed, source, batch)
                pending = None
        finally:
            if isinstance(batches, AsyncGenerator):
                await batches.aclose()  # closes the files, stops journalctl
            if pending is not None:  # cancelled while saving: save what was counted
                await self._commit(feed, source, pending)

    async def _commit(self, feed: _Feed, source: Source[T], batch: Batch[T]) -> None:
        try:
            await source.commit(batch)
        except Exception as exc:  # the next batch's commit saves a later position
            feed.failures["commit"] += 1
            log.warning(
                "cannot save log position",
                extra={"source": feed.key, "error": f"{type(exc).__name__}: {exc}"},
            )

    async def _watch_open_errors(self) -> None:
        """Log when a file source starts or stops failing to open its file."""
        while True:
            for feed in self._feeds:
                error = feed.open_error()
                if error == feed.reported_error:
                    continue
                if error is not None:
                    log.warning("cannot open log file", extra={"source": feed.key, "error": error})
                else:
                    log.info("log file readable again", extra={"source": feed.key})
                feed.reported_error = error
            await asyncio.sleep(ERROR_CHECK_INTERVAL)
