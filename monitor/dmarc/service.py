"""Ingesting reports inside ``mailprobe serve``: the watched folders and the mailbox,
through the same ingestor as ``mailprobe dmarc import``, counted by the DMARC collector.

The collector shows the state file's counts: loaded at start, after each complete look at
a source, and every ``poll_interval`` (for reports ``mailprobe dmarc import`` stores beside
``serve``). So ``/metrics`` after a restart shows what it showed before, and an item
counts once its report is committed (a kill between the two leaves the item unrecorded:
it is read again, and its report then counts once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path

from exporters.dmarc.files import items_from_paths
from exporters.dmarc.ingest import Ingestor
from monitor.checks.dmarc import classifier_of
from monitor.config import Config
from monitor.dmarc.ingestion import build_ingestor, limits_of
from monitor.dmarc.mailbox import MailboxReader
from monitor.metrics.dmarc import DmarcCollector
from monitor.state import StateStore
from monitor.state.dmarc_reports import DmarcReports

log = logging.getLogger(__name__)


class DmarcIngestion:
    """The ``dmarc`` service: watched folders and the report mailbox."""

    name = "dmarc"

    def __init__(self, config: Config) -> None:
        self._config = config
        section = config.dmarc
        self.collector = DmarcCollector(
            section.domains, classifier_of(section), section.top_reporters
        )
        self._store: StateStore | None = None
        self._reports: DmarcReports | None = None
        self._ingestor: Ingestor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._seen_files: dict[Path, tuple[int, int]] = {}

    async def start(self) -> None:
        config = self._config
        store = await StateStore.open(config.state_dir)
        self._store = store
        self._reports = DmarcReports(store)
        await self._reload()
        ingestor = build_ingestor(config.dmarc, store, config.state_dir)
        self._ingestor = ingestor
        self._tasks.append(asyncio.create_task(self._reload_every_interval()))
        if config.dmarc.paths:
            self._tasks.append(asyncio.create_task(self._watch_paths(ingestor)))
        if config.dmarc.mailbox is not None:
            reader = MailboxReader(
                config.dmarc,
                ingestor,
                looked=partial(self._looked, "mailbox"),
                failed=lambda phase: self.collector.failed("mailbox", phase),
            )
            self._tasks.append(asyncio.create_task(reader.run()))

    async def _reload(self) -> None:
        """The counts of the state file, grouped in SQL (bounded by distinct sources)."""
        assert self._reports is not None
        self.collector.load(await self._reports.history())

    async def _looked(self, source: str) -> None:
        """After a complete look at ``source``: its reports counted, then it is marked."""
        await self._reload()
        self.collector.polled(source)

    async def _reload_every_interval(self) -> None:
        """Reports that ``mailprobe dmarc import`` stores beside ``serve`` get counted too."""
        while True:
            await asyncio.sleep(self._config.dmarc.poll_interval)
            try:
                await self._reload()
            except Exception as exc:  # a locked or busy state file: the next round retries
                log.warning(
                    "reading the DMARC counts failed",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )

    async def _watch_paths(self, ingestor: Ingestor) -> None:
        section = self._config.dmarc
        while True:
            try:
                changed = [p for p in section.paths if p.exists()]
                files = self._changed_files(changed)
                if files:
                    await ingestor.ingest_all(items_from_paths(files, limits_of(section)))
                await self._looked("directory")
            except Exception as exc:  # one bad look must not end the watcher
                self.collector.failed("directory", "read")
                log.warning(
                    "reading the report folders failed",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
            await asyncio.sleep(section.poll_interval)

    def _changed_files(self, roots: list[Path]) -> list[Path]:
        """Files new or changed since the last look (by size and modification time)."""
        out: list[Path] = []
        for root in roots:
            candidates = [root] if root.is_file() else sorted(root.rglob("*"))
            for path in candidates:
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if not path.is_file():
                    continue
                signature = (stat.st_size, stat.st_mtime_ns)
                if self._seen_files.get(path) != signature:
                    self._seen_files[path] = signature
                    out.append(path)
        return out

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._ingestor is not None:
            await asyncio.to_thread(self._ingestor.close)
        if self._store is not None:
            await self._store.close()
