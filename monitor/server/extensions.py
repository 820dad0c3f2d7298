"""The seam for long-running sources that are not scheduled checks.

A source such as the Postfix log follower contributes an :class:`Extension`: background
services (started after the HTTP server is up, stopped on shutdown) and collectors
(registered on the ``/metrics`` registry).  It plugs in by adding one
:class:`ExtensionSpec` to :data:`EXTENSIONS`::

    ExtensionSpec("logs", settings=lambda config: config.logs, build=build_log_extension)

``settings`` picks the part of the config the extension depends on.  On a reload an
extension whose settings are unchanged keeps running untouched (a log follower keeps its
position and counters); a changed one is built again from the new config, the old one
stopped and its collectors unregistered, and the new one started.

A reload is all or nothing: if a changed extension cannot be built or started, the new
ones started so far are stopped, the old ones are started again (a service must accept
``start`` after ``stop``), and :class:`ReloadError` says why; the old configuration's
extensions run on as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.registry import Collector, CollectorRegistry

from monitor.canary.service import service_for
from monitor.config import Config
from monitor.dmarc.service import DmarcIngestion
from monitor.metrics.canary import CanaryCollector
from monitor.server.log_following import LogFollowing

log = logging.getLogger(__name__)


class Service(Protocol):
    """Background work with a lifetime: ``start`` returns once it runs, ``stop`` once it ended.

    ``start`` may be called again after ``stop``: a failed reload restarts the old service.
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Extension:
    services: Sequence[Service] = ()
    collectors: Sequence[Collector] = ()


@dataclass(frozen=True, slots=True)
class ExtensionSpec:
    name: str
    settings: Callable[[Config], object]
    build: Callable[[Config], Extension]


def _log_extension(config: Config) -> Extension:
    """Follow ``logs.sources`` (nothing at all when there are none)."""
    if not config.logs.sources:
        return Extension()
    following = LogFollowing(config.logs, config.state_dir)
    return Extension(services=[following], collectors=following.collectors)


def _dmarc_extension(config: Config) -> Extension:
    """Count the stored reports and read ``dmarc.paths`` and ``dmarc.mailbox`` (nothing
    without ``dmarc.domains``: no report would be ours)."""
    if not config.dmarc.domains:
        return Extension()
    ingestion = DmarcIngestion(config)
    return Extension(services=[ingestion], collectors=[ingestion.collector])


def _canary_extension(config: Config) -> Extension:
    """The canary watchers and ledger (shared with the canary checks), and their metrics."""
    if not config.canary.routes:
        return Extension()
    service = service_for(config)
    return Extension(services=[service], collectors=[CanaryCollector(service)])


EXTENSIONS: tuple[ExtensionSpec, ...] = (
    ExtensionSpec(
        "logs", settings=lambda config: (config.logs, config.state_dir), build=_log_extension
    ),
    ExtensionSpec(
        "dmarc", settings=lambda config: (config.dmarc, config.state_dir), build=_dmarc_extension
    ),
    ExtensionSpec(
        "canary",
        settings=lambda config: (config.canary, config.logs, config.state_dir, config.dns),
        build=_canary_extension,
    ),
)


class ReloadError(Exception):
    """A changed extension could not be built or started; the old ones run on."""

    def __init__(self, extension: str, what: str, cause: Exception) -> None:
        super().__init__(f"extension {extension} {what}: {type(cause).__name__}: {cause}")
        self.extension = extension


@dataclass(slots=True)
class _Running:
    settings: object
    extension: Extension
    started: list[Service] = field(default_factory=list)
    registered: list[Collector] = field(default_factory=list)


class ExtensionHost:
    """Builds, starts, reloads and stops the extensions of one serve process."""

    def __init__(
        self, registry: CollectorRegistry, specs: Sequence[ExtensionSpec] = EXTENSIONS
    ) -> None:
        self._registry = registry
        self._specs = tuple(specs)
        self._running: dict[str, _Running] = {}

    async def start(self, config: Config) -> None:
        for spec in self._specs:
            running = _Running(spec.settings(config), spec.build(config))
            self._running[spec.name] = running
            await self._start(running)

    async def reload(self, config: Config) -> None:
        """Apply ``config`` to the extensions whose settings changed, or to none of them.

        Raises :class:`ReloadError` when one cannot be built or started; the extensions
        of the running config then run on.
        """
        fresh: list[tuple[str, _Running]] = []
        for spec in self._specs:
            running = self._running.get(spec.name)
            if running is not None and running.settings == spec.settings(config):
                continue
            try:
                fresh.append((spec.name, _Running(spec.settings(config), spec.build(config))))
            except Exception as exc:
                raise ReloadError(spec.name, "cannot be built", exc) from exc
        old: dict[str, _Running] = {}
        for name, _new in fresh:
            previous = self._running.pop(name, None)
            if previous is not None:
                await self._stop(previous)
                old[name] = previous
        started: list[tuple[str, _Running]] = []
        for name, new in fresh:
            try:
                await self._start(new)
            except Exception as exc:
                await self._stop(new)
                for _done_name, done in reversed(started):
                    await self._stop(done)
                await self._restore(old)
                raise ReloadError(name, "cannot start", exc) from exc
            started.append((name, new))
        for name, new in started:
            self._running[name] = new
            log.info("extension reloaded", extra={"extension": name})

    async def stop(self) -> None:
        for name in reversed(list(self._running)):
            await self._stop(self._running.pop(name))

    async def _restore(self, old: dict[str, _Running]) -> None:
        """Start the extensions of the running config again, after a failed reload."""
        for name, previous in old.items():
            try:
                await self._start(previous)
            except Exception as exc:
                await self._stop(previous)
                log.error(
                    "extension of the running config cannot start again: it is stopped",
                    extra={"extension": name, "error": f"{type(exc).__name__}: {exc}"},
                )
                continue
            self._running[name] = previous

    async def _start(self, running: _Running) -> None:
        for collector in running.extension.collectors:
            self._registry.register(collector)
            running.registered.append(collector)
        for service in running.extension.services:
            await service.start()
            running.started.append(service)

    async def _stop(self, running: _Running) -> None:
        """Stop what ``running`` started and unregister its collectors; it can start again."""
        for service in reversed(running.started):
            try:
                await service.stop()
            except Exception as exc:  # one faulty service must not block shutdown
                log.warning(
                    "service failed to stop",
                    extra={"service": service.name, "error": f"{type(exc).__name__}: {exc}"},
                )
        running.started.clear()
        for collector in running.registered:
            self._registry.unregister(collector)
        running.registered.clear()
