"""One canary runtime per process and config, shared by the canary checks and ``serve``.

The checks (``mailprobe run --only canary``, the serve scheduler) and the serve
extension (watchers and metrics) must use the same watchers, ledger and log trail, so
:func:`service_for` hands out one :class:`CanaryService` per canary config; users
``acquire`` it (the first starts it) and ``release`` it (the last stops it).

It follows ``logs.sources`` itself, from their end, into an aggregator whose only
observer is the canary trail: ``run`` sees the lines of the canaries it sends, and the
log exporter's positions in the state file are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from exporters.canary.runtime import CanaryRuntime
from exporters.canary.token import Signer, load_or_create_key
from exporters.canary.trail import CanaryTrail
from exporters.dns.resolver import DnsError, StubResolver
from exporters.dns.transport import Server
from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.sources import FileFollower, JournalSource
from monitor.canary.settings import mailbox_settings, route_settings
from monitor.config import Config
from monitor.logs import log_settings
from monitor.logs.sources import build_source
from monitor.state import StateStore
from monitor.state.canary_ledger import CanaryLedger

log = logging.getLogger(__name__)

KEY_CACHE_SECONDS = 30.0
FOLLOW_READY_SECONDS = 2.0
"""How long ``start`` waits for the log files to be open before sending anyway."""


def key_path(config: Config) -> Path:
    return config.canary.key_file or config.state_dir / "canary.key"


class CanaryService:
    name = "canary"

    def __init__(self, config: Config) -> None:
        self._config = config
        self._users = 0
        self._lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        """A service (its lock, its tasks) belongs to the event loop it was made in."""
        self._store: StateStore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.runtime: CanaryRuntime | None = None
        self.trail = CanaryTrail() if config.logs.sources else None

    async def acquire(self) -> CanaryRuntime:
        async with self._lock:
            if self.runtime is None:
                await self._start()
            self._users += 1
            assert self.runtime is not None
            return self.runtime

    async def release(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._users = 0
                await self._stop()

    # the extension's Service protocol
    async def start(self) -> None:
        await self.acquire()

    async def stop(self) -> None:
        await self.release()

    async def _start(self) -> None:
        config = self._config
        signer = Signer(load_or_create_key(key_path(config)))
        self._store = await StateStore.open(config.state_dir)
        fetch_txt = _txt_lookup(config)
        self.runtime = CanaryRuntime(
            signer,
            CanaryLedger(self._store),
            [route_settings(r) for r in config.canary.routes],
            [mailbox_settings(m) for m in config.canary.mailboxes],
            trail=self.trail,
            fetch_txt=fetch_txt,
        )
        await self._follow_logs()
        await self.runtime.start()
        log.info("canary runtime started", extra={"routes": len(config.canary.routes)})

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def _follow_logs(self) -> None:
        if self.trail is None:
            return
        aggregator = LogAggregator(log_settings(self._config.logs), observers=[self.trail])
        files: list[FileFollower] = []
        for source_config in self._config.logs.sources:
            if source_config.type == "stdin":
                continue
            source = build_source(source_config.model_copy(update={"start": "end"}), None)
            if isinstance(source, FileFollower):
                files.append(source)
                self._tasks.append(asyncio.create_task(_feed_files(source, aggregator)))
            elif isinstance(source, JournalSource):
                self._tasks.append(asyncio.create_task(_feed_journal(source, aggregator)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FOLLOW_READY_SECONDS
        while loop.time() < deadline and not all(f.opened or f.last_error for f in files):
            await asyncio.sleep(0.02)


async def _feed_files(source: FileFollower, aggregator: LogAggregator) -> None:
    while True:
        try:
            async for batch in source.batches():
                aggregator.feed_lines(batch.items)
            return
        except Exception:
            log.warning("canary log follower failed; restarting", exc_info=True)
            await asyncio.sleep(1)


async def _feed_journal(source: JournalSource, aggregator: LogAggregator) -> None:
    while True:
        try:
            async for batch in source.batches():
                aggregator.feed_journal_records(batch.items)
            return
        except Exception:
            log.warning("canary journal follower failed; restarting", exc_info=True)
            await asyncio.sleep(1)


def _txt_lookup(config: Config) -> Any:
    """TXT lookups through mailprobe's own resolver (``dns.resolvers``), if configured."""
    if not config.dns.resolvers:
        return None
    resolver = StubResolver(
        [Server(r.address, r.port) for r in config.dns.resolvers],
        timeout=config.dns.timeout,
        retries=config.dns.retries,
    )

    cache: dict[str, tuple[float, bytes | None]] = {}

    async def fetch_txt(name: str) -> bytes | None:
        """The key record, asked again after KEY_CACHE_SECONDS: a burst of canaries costs
        one lookup, and a key changed in DNS is noticed within that time."""
        now = time.monotonic()
        cached = cache.get(name)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        try:
            answer = await resolver.query(name, "TXT")
        except DnsError:
            return None  # not cached: the next canary asks again
        records = answer.records
        value = b"".join(b"".join(r.strings) for r in records) if records else None  # type: ignore[attr-defined]
        cache[name] = (now, value)
        return value

    return fetch_txt


_SERVICES: dict[str, CanaryService] = {}


def service_for(config: Config) -> CanaryService:
    """The service for this canary config in the running event loop (call it from one)."""
    key = config.model_dump_json(include={"canary", "logs", "state_dir", "dns"})
    service = _SERVICES.get(key)
    if service is None or service.loop is not asyncio.get_running_loop():
        service = _SERVICES[key] = CanaryService(config)
    return service
