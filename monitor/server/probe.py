"""``/probe?target=HOST:PORT&module=NAME[&debug=true]``: blackbox_exporter's multi-target
convention for the SMTP prober, on the same server (and the same auth) as ``/metrics``.

As in blackbox_exporter: the module names probe settings in the config
(``smtp.modules``); the answer is the probe's metrics for that one target, with
``probe_success`` and ``probe_duration_seconds`` beside mailprobe's own families, so
relabelling configs and alerts written for blackbox work unchanged; the probe's
timeout is the module's, lowered to the scrape's ``X-Prometheus-Scrape-Timeout-Seconds``
less half a second; ``debug=true`` answers the session transcript, every verdict, the
metrics and the module as text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from exporters.dns.cache import CachingResolver
from exporters.dns.resolver import StubResolver
from exporters.dns.transport import Server
from exporters.result import Check, CheckResult, Kind, Status
from exporters.smtp.probe import probe_host
from monitor.checks.smtp import PHASE_SHARE, probe_settings
from monitor.config import Config
from monitor.config.smtp import address_family
from monitor.metrics.smtp import SessionRow, session_families
from monitor.metrics.text import render
from monitor.runner import run_check

TIMEOUT_OFFSET = 0.5
"""Seconds kept back from the scrape timeout, as blackbox_exporter's default offset."""
DNS_CACHE_SECONDS = 5.0
"""Longest a DNS answer (TLSA, A/AAAA) is reused between probes; its TTL when shorter."""


def parse_target(text: str) -> tuple[str, int] | None:
    """``host:25``, ``192.0.2.1:25``, ``[2001:db8::1]:25`` -> (host, port); None if bad."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("["):
        if not host.endswith("]"):
            return None
        host = host[1:-1]
    elif ":" in host:
        return None
    return (host, int(port)) if host else None


class ProbeEndpoint:
    """Handles ``/probe`` with the config of the moment (it follows reloads)."""

    def __init__(self, config: Callable[[], Config], concurrency: int = 16) -> None:
        self._config = config
        self._slots = asyncio.Semaphore(concurrency)
        self._resolver: tuple[Config, StubResolver | None] | None = None

    def _resolver_for(self, config: Config) -> StubResolver | None:
        """One caching resolver per config (a reload brings a fresh one)."""
        if self._resolver is None or self._resolver[0] is not config:
            section = config.dns
            resolver = (
                CachingResolver(
                    [Server(r.address, r.port) for r in section.resolvers],
                    max_seconds=DNS_CACHE_SECONDS,
                    timeout=section.timeout,
                    retries=section.retries,
                )
                if section.resolvers
                else None
            )
            self._resolver = (config, resolver)
        return self._resolver[1]

    async def __call__(self, request: web.Request) -> web.Response:
        config = self._config()
        target = request.query.get("target", "")
        module_name = request.query.get("module", "")
        debug = request.query.get("debug", "").lower() == "true"
        if not target:
            return web.Response(status=400, text="target parameter is missing\n")
        module = config.smtp.modules.get(module_name)
        if module is None:
            known = ", ".join(sorted(config.smtp.modules)) or "none configured"
            return web.Response(
                status=400, text=f"unknown module {module_name!r} (smtp.modules: {known})\n"
            )
        parsed = parse_target(target)
        if parsed is None:
            return web.Response(status=400, text=f"target {target!r} is not HOST:PORT\n")
        host, port = parsed
        timeout = module.timeout
        scrape = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
        if scrape is not None:
            try:
                timeout = max(0.5, min(timeout, float(scrape) - TIMEOUT_OFFSET))
            except ValueError:
                return web.Response(status=400, text=f"bad scrape timeout {scrape!r}\n")
        literal = address_family(host)
        families = [literal] if literal is not None else list(module.families)
        resolver = self._resolver_for(config)
        checks = []
        for family in families:
            # A phase gets at most the module's phase timeout, and always less than the
            # probe's own timeout so a hang is reported with its phase.
            settings = probe_settings(module, config, port, family, timeout)
            settings = replace(
                settings, phase_timeout=min(settings.phase_timeout, timeout * PHASE_SHARE)
            )
            checks.append(
                Check(
                    Kind.SMTP,
                    f"session_{family}",
                    target,
                    partial(probe_host, host, settings, resolver),
                    interval_seconds=0.0,
                    timeout_seconds=timeout,
                )
            )
        started = time.monotonic()
        if self._slots.locked():
            try:
                async with asyncio.timeout(timeout / 2):
                    await self._slots.acquire()
            except TimeoutError:
                return web.Response(
                    status=503, text="too many probes at once (smtp.probe_concurrency)\n"
                )
        else:
            await self._slots.acquire()  # a free slot: taken at once, no timer needed
        try:
            if len(checks) == 1:
                results = [await run_check(checks[0])]
            else:
                results = list(await asyncio.gather(*(run_check(c) for c in checks)))
        finally:
            self._slots.release()
        duration = time.monotonic() - started
        body = _exposition(results, port, duration)
        if not debug:
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        text = _debug_text(results, body, module_name, module.model_dump(mode="json"))
        return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _exposition(results: list[CheckResult], port: int, duration: float) -> bytes:
    rows = [
        SessionRow(
            (str(port), r.check.removeprefix("session_")),
            r.status in (Status.OK, Status.WARN),
            r.facts,
        )
        for r in results
    ]
    success = GaugeMetricFamily(
        "probe_success", "1 if every probed address family passed (blackbox_exporter's name)."
    )
    success.add_metric([], 1.0 if all(row.up for row in rows) else 0.0)
    took = GaugeMetricFamily(
        "probe_duration_seconds", "How long the probe took (blackbox_exporter's name)."
    )
    took.add_metric([], duration)
    return render([success, took, *session_families(rows, ("port", "family"))])


def _debug_text(
    results: list[CheckResult], body: bytes, module: str, settings: dict[str, object]
) -> str:
    parts = ["Logs for the probe:"]
    for result in results:
        parts.append(
            f"-- {result.check}: {result.status.value}"
            + (f": {result.reason}" if result.reason else "")
        )
        if result.detail:
            parts.append(result.detail)
    parts += ["", "Metrics that would have been returned:", body.decode("utf-8")]
    parts += ["Module configuration:", yaml.safe_dump({module: settings}, sort_keys=False)]
    return "\n".join(parts)
