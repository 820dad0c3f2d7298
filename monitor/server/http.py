"""The HTTP face of serve: ``/metrics``, ``/-/healthy``, ``/-/ready`` and ``/``.

As in Prometheus' exporter-toolkit, basic auth (when configured) guards every path.
"""

from __future__ import annotations

import gzip
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from monitor.results import ResultsStore
from monitor.server.connections import ConnectionGuard, ConnectionLimits
from monitor.server.page import render_status_page
from monitor.server.webauth import BasicAuth, TooManyAttempts

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REALM = "mailprobe"
SERVER_NAME = "mailprobe"
"""The ``Server`` header of every response: no program or library versions for a scanner."""

# aiohttp puts its own and Python's version in the Server header of every response,
# including the 400s its parser answers before any handler or middleware runs; it has no
# setting for that, so its default is replaced here, once, for the whole process.
web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]  # not re-exported


def build_app(
    registry: CollectorRegistry,
    store: ResultsStore,
    auth: BasicAuth,
    is_ready: Callable[[], bool],
    probe: Handler | None = None,
) -> web.Application:
    """``probe`` serves ``/probe`` (monitor/server/probe.py) behind the same auth."""

    @web.middleware
    async def require_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not auth.enabled:
            return await handler(request)
        try:
            verified = await auth.verify(request.headers.get("Authorization"), request.remote)
        except TooManyAttempts:
            return web.Response(
                status=429,
                text="Too many password checks in flight from this address\n",
                headers={"Retry-After": "1"},
            )
        if not verified:
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )
        return await handler(request)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        if _accepts_gzip(request):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="mailprobe is healthy.\n")

    async def ready(request: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="mailprobe is ready.\n")
        return web.Response(status=503, text="mailprobe is not ready: checks still starting.\n")

    async def index(request: web.Request) -> web.Response:
        page = render_status_page(store.snapshot(), is_ready())
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    app = web.Application(middlewares=[require_auth])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/", index)
    if probe is not None:
        app.router.add_get("/probe", probe)
    return app


def _accepts_gzip(request: web.Request) -> bool:
    """True if Accept-Encoding lists gzip with a non-zero quality."""
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class _ClientErrors(logging.Filter):
    """aiohttp logs a request its parser refuses (a scanner, TLS on the plain port,
    garbage) at error level with a traceback of its parser, quoting the bytes it got.
    That is the client's fault, not serve's: say so in one info line naming the kind of
    error, and let the repeat limiter count such lines by kind, whatever the bytes or
    the client's address.  Errors of serve's own handlers keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            kind = type(error).__name__
            args = record.args if isinstance(record.args, tuple) else ()
            record.client = args[0] if args else "unknown"  # "Error handling request from %s"
            record.msg, record.args = "refused a malformed HTTP request", ()
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
            record.error = kind
            record._repeat_key = (record.name, "malformed request", kind)
        return True


_aiohttp_log = logging.getLogger(__name__ + ".aiohttp")
_aiohttp_log.addFilter(_ClientErrors())


class HttpServer:
    """Owns the aiohttp runner and the connection guard that listens and accepts for it.

    The guard's middleware is put first in ``app``: every endpoint gets its bounds.
    """

    def __init__(self, app: web.Application, limits: ConnectionLimits) -> None:
        self.guard = ConnectionGuard(limits)
        app.middlewares.insert(0, self.guard.middleware)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, logger=_aiohttp_log
        )

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        try:
            await self.guard.start(host, port, server, ssl_context)
        except OSError:
            await self._runner.cleanup()
            raise

    async def stop(self) -> None:
        await self.guard.stop()
        await self._runner.cleanup()
