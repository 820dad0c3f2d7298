"""One serve process: start everything, react to signals, reload, drain and stop.

SIGTERM / SIGINT: no new check run starts, runs in flight get ``grace`` seconds, then
extensions and the HTTP server stop and the process exits 0; a second signal ends the
grace period at once.  SIGHUP: the config file is read again; if it is invalid, or an
extension it changes cannot start, the running config (and its extensions) stays, the
reason is logged and the reload failure counter goes up; otherwise the checks, basic-auth
users, connection limits and changed extensions are replaced, and only then is the
reload counted successful.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from monitor.checks import build_checks
from monitor.config import Config, ConfigError, load_config, parse_listen
from monitor.results import ResultsStore
from monitor.server.connections import connection_limits, fit_to_open_files
from monitor.server.extensions import ExtensionHost, ReloadError
from monitor.server.http import HttpServer, build_app
from monitor.server.probe import ProbeEndpoint
from monitor.server.registry import build_registry
from monitor.server.reload import ReloadStatus
from monitor.server.scheduler import CheckScheduler
from monitor.server.tls import TlsSetupError, server_context
from monitor.server.webauth import BasicAuth

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CANNOT_RUN = 3
DEFAULT_GRACE_SECONDS = 10.0


class Daemon:
    def __init__(
        self,
        config_file: Path,
        config: Config,
        listen_override: str | None = None,
        grace: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.config_file = config_file
        self.config = config
        self.listen = listen_override or config.listen
        self._listen_override = listen_override
        self._tls = config.web.tls_server_config
        self.grace = grace
        self.store = ResultsStore()
        self.reloads = ReloadStatus()
        self.registry = build_registry(self.store, self.reloads, smtp_ports=self._smtp_ports)
        self.auth = BasicAuth(config.web.basic_auth_users)
        self.scheduler = CheckScheduler(self.store)
        self.extensions = ExtensionHost(self.registry)
        probe = ProbeEndpoint(lambda: self.config, config.smtp.probe_concurrency)
        self.http = HttpServer(
            build_app(self.registry, self.store, self.auth, self.is_ready, probe),
            fit_to_open_files(connection_limits(config.web)),
        )
        self.registry.register(self.http.guard)
        self._stop = asyncio.Event()
        self._stop_signal = ""
        self._stopping = False
        self._ready = False
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()

    def _smtp_ports(self) -> dict[str, int]:
        return {t.name: t.port for t in self.config.smtp.targets}

    def is_ready(self) -> bool:
        """Ready once every check finished a first run; stays ready across reloads."""
        if self._stopping:
            return False
        if not self._ready and self.store.all_ran_once():
            self._ready = True
        return self._ready

    async def run(self) -> int:
        host, port = parse_listen(self.listen)
        tls = self._tls
        try:
            ssl_context = server_context(tls) if tls is not None else None
        except TlsSetupError as exc:
            log.error("cannot set up TLS", extra={"error": str(exc)})
            return EXIT_CANNOT_RUN
        checks = build_checks(self.config)
        self.store.register(checks)
        try:
            await self.http.start(host, port, ssl_context)
        except OSError as exc:
            log.error(
                "cannot listen", extra={"listen": self.listen, "error": exc.strerror or str(exc)}
            )
            return EXIT_CANNOT_RUN
        self.scheduler.start(checks)
        try:
            await self.extensions.start(self.config)
        except Exception as exc:
            log.error("cannot start extensions", extra={"error": f"{type(exc).__name__}: {exc}"})
            await self.scheduler.stop(0)
            await self.extensions.stop()
            await self.http.stop()
            return EXIT_CANNOT_RUN
        self._install_signal_handlers()
        log.info(
            "serving",
            extra={
                "listen": self.listen,
                "tls": ssl_context is not None,
                "basic_auth": self.auth.enabled,
                "checks": len(checks),
                "config": str(self.config_file),
            },
        )
        await self._stop.wait()
        await self._shutdown()
        return EXIT_OK

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, name: str) -> None:
        if self._stop.is_set():
            log.warning("second stop signal: cancelling checks in flight", extra={"signal": name})
            self.scheduler.cut_grace()
            return
        self._stop_signal = name
        self._stop.set()

    def _on_reload_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _shutdown(self) -> None:
        self._stopping = True
        log.info(
            "shutting down",
            extra={
                "signal": self._stop_signal,
                "in_flight": self.scheduler.in_flight,
                "grace_seconds": self.grace,
            },
        )
        await asyncio.gather(*self._reloads, return_exceptions=True)
        cancelled = await self.scheduler.stop(self.grace)
        if cancelled:
            log.warning("grace period over: cancelled checks", extra={"cancelled": cancelled})
        await self.extensions.stop()
        await self.http.stop()
        log.info("stopped")

    async def reload(self) -> bool:
        """Apply the config file again; keep the running config if the new one is bad."""
        async with self._reload_lock:
            if self._stopping:
                return False
            try:
                config = load_config(self.config_file)
            except ConfigError as error:
                self._reload_failed(error.source, "; ".join(str(issue) for issue in error.issues))
                return False
            try:
                checks = build_checks(config)
            except Exception as exc:
                self._reload_failed(str(self.config_file), f"{type(exc).__name__}: {exc}")
                return False
            try:
                await self.extensions.reload(config)
            except ReloadError as error:
                self._reload_failed(str(self.config_file), str(error))
                return False
            self._warn_restart_needed(config)
            self.auth.replace_users(config.web.basic_auth_users)
            self.http.guard.limits = fit_to_open_files(connection_limits(config.web))
            self.store.register(checks)
            self.scheduler.replace(checks)
            self.config = config
            self.reloads.succeeded()
            log.info(
                "config reloaded", extra={"config": str(self.config_file), "checks": len(checks)}
            )
            return True

    def _reload_failed(self, source: str, problems: str) -> None:
        self.reloads.failed()
        log.error(
            "config reload failed: keeping the running config",
            extra={"config": source, "problems": problems},
        )

    def _warn_restart_needed(self, new: Config) -> None:
        """The listening socket and its TLS settings are fixed for the process's life."""
        if self._listen_override is None and new.listen != self.listen:
            log.warning(
                "listen changed: takes effect after a restart",
                extra={"listen": self.listen, "new": new.listen},
            )
        if new.web.tls_server_config != self._tls:
            log.warning("web.tls_server_config changed: takes effect after a restart")
