"""The seam for long-running sources that are not scheduled checks.

A source such as the Postfix log follower contributes an :class:`Extension`: background
services (started after the HTTP server is up, stopped on shutdown) and collectors
(registered on the ``/metrics`` registry).  It plugs in by adding one
:class:`ExtensionSpec` to :data:`EXTENSIONS`::

    ExtensionSpec("logs", settings=lambda config: config.logs, build=build_log_extension)

``settings`` picks the part of the config the extension depends on.  On a reload an
extension whose settings are unchanged keeps running untouched (a log follower keeps its
position and counters); a changed one is stopped, its collectors unregistered, and it is
built again from the new config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.registry import Collector, CollectorRegistry

from monitor.config import Config
from monitor.dmarc.service import DmarcIngestion
from monitor.server.log_following import LogFollowing

log = logging.getLogger(__name__)


class Service(Protocol):
    """Background work with a lifetime: ``start`` returns once it runs, ``stop`` once it ended."""

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


EXTENSIONS: tuple[ExtensionSpec, ...] = (
    ExtensionSpec(
        "logs", settings=lambda config: (config.logs, config.state_dir), build=_log_extension
    ),
    ExtensionSpec(
        "dmarc", settings=lambda config: (config.dmarc, config.state_dir), build=_dmarc_extension
    ),
)


@dataclass(slots=True)
class _Running:
    settings: object
    extension: Extension
    started: list[Service] = field(default_factory=list)


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
            await self._start_one(spec, config)

    async def reload(self, config: Config) -> None:
        for spec in self._specs:
            running = self._running.get(spec.name)
            if running is not None and running.settings == spec.settings(config):
                continue
            await self._stop_one(spec.name)
            await self._start_one(spec, config)
            log.info("extension reloaded", extra={"extension": spec.name})

    async def stop(self) -> None:
        for name in reversed(list(self._running)):
            await self._stop_one(name)

    async def _start_one(self, spec: ExtensionSpec, config: Config) -> None:
        extension = spec.build(config)
        running = _Running(spec.settings(config), extension)
        self._running[spec.name] = running
        for collector in extension.collectors:
            self._registry.register(collector)
        for service in extension.services:
            await service.start()
            running.started.append(service)

    async def _stop_one(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        for service in reversed(running.started):
            try:
                await service.stop()
            except Exception as exc:  # one faulty service must not block shutdown
                log.warning(
                    "service failed to stop",
                    extra={"service": service.name, "error": f"{type(exc).__name__}: {exc}"},
                )
        for collector in running.extension.collectors:
            self._registry.unregister(collector)
