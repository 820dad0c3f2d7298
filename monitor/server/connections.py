"""Bounds on the HTTP server's client connections: how many, and how long each may wait.

Left to itself, aiohttp keeps a connection that sends nothing, or sends its headers a
byte at a time, open for its keep-alive timeout (an hour; on older versions forever),
and asyncio accepts connections until the process runs out of file descriptors: then
``accept()`` fails, asyncio logs that thousands of times a second, and no scrape gets in.
The guard owns the listening sockets and sits between each accepted socket and aiohttp's
protocol:

- At most ``max_connections`` are open.  A new connection beyond them closes the one
  that has waited longest without a request in progress (an idle keep-alive, a client
  that sends nothing or too slowly); when every connection has a request in progress,
  the new one is closed at once.  So descriptors stay bounded and a new scraper always
  gets in unless the server is busy answering the others.
- A new connection must complete its TLS handshake and send a request's headers within
  ``header_read_timeout`` of being accepted; between requests, a keep-alive connection
  may wait ``idle_timeout`` for the first byte of the next one, which then starts the
  header timeout again.  Once the headers are in, a request is bounded by its handler.
- Closing means abort: a client that does not read cannot keep a descriptor through an
  unsent write buffer.
- ``accept()`` failing for want of descriptors closes the longest idle connection, or
  waits a moment, instead of spinning.

Request boundaries come from :meth:`ConnectionGuard.middleware`, which must be the
outermost middleware of the app served (:class:`monitor.server.http.HttpServer` puts it
there), so every endpoint, present or future, is covered.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.config.web import WebConfig
from monitor.metrics import http as metrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ProtocolFactory = Callable[[], asyncio.Protocol]

BACKLOG = 128
ACCEPT_RETRY_SECONDS = 0.5
"""Pause after ``accept()`` failed, unless closing an idle connection freed a descriptor."""
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_CLIENT_GAVE_UP = {errno.ECONNABORTED, errno.EPROTO, errno.EAGAIN}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_read_timeout: float
    idle_timeout: float


def connection_limits(web_config: WebConfig) -> ConnectionLimits:
    return ConnectionLimits(
        web_config.max_connections, web_config.header_read_timeout, web_config.idle_timeout
    )


def fit_to_open_files(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise the soft open-file limit to the hard one; keep connections to half of it.

    The other half is for everything else serve opens: checks' sockets, log files, the
    state database.  A ``max_connections`` beyond that is lowered, with a warning.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or limits.max_connections <= soft // 2:
        return limits
    room = max(1, soft // 2)
    log.warning(
        "web.max_connections lowered to fit the open-file limit",
        extra={"max_connections": limits.max_connections, "used": room, "open_files": soft},
    )
    return ConnectionLimits(room, limits.header_read_timeout, limits.idle_timeout)


class _Connection:
    """One accepted client socket, from accept to close."""

    __slots__ = ("busy", "sock", "started", "task", "timer", "timer_reason", "transport")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_reason = ""
        self.busy = 0
        """Requests in progress on this connection (pipelining may make it more than 1)."""

    def abort(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        elif self.task is not None and self.started:
            self.task.cancel()  # in its TLS handshake: the transport closes the socket
        else:
            if self.task is not None:
                self.task.cancel()
            self.sock.close()


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard told of arriving bytes."""

    def __init__(self, guard: ConnectionGuard, conn: _Connection, inner: asyncio.Protocol):
        self._guard = guard
        self._conn = conn
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._guard._connected(self._conn, transport)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._guard._bytes_arrived(self._conn)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._forget(self._conn)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionGuard(Collector):
    """Listens, accepts and bounds client connections; exports what it did as metrics."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.dropped: Counter[str] = Counter()
        self._open: set[_Connection] = set()
        self._waiting: OrderedDict[_Connection, None] = OrderedDict()
        """Open connections without a request in progress, longest waiting first."""
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._listeners: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._request(request, handler)

        self._middleware: Middleware = middleware

    # -- listening -------------------------------------------------------------------

    async def start(
        self,
        host: str,
        port: int,
        protocol_factory: ProtocolFactory,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        """Listen on every address ``host`` resolves to and accept in the background."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _name, address in dict.fromkeys(infos):
                listener = socket.socket(family, kind, proto)
                self._listeners.append(listener)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                listener.bind(address)
                listener.listen(BACKLOG)
                listener.setblocking(False)
        except OSError:
            self._close_listeners()
            raise
        for listener in self._listeners:
            self._acceptors.append(
                loop.create_task(self._accept(listener, protocol_factory, ssl_context))
            )

    async def stop(self) -> None:
        """Stop accepting; close every connection without a request in progress.

        Those have nothing to finish, and one whose client does not read would hold
        the shutdown until its idle timeout.  Requests in progress are left to finish.
        """
        for task in self._acceptors:
            task.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors.clear()
        self._close_listeners()
        for conn in list(self._waiting):
            conn.abort()
            self._forget(conn)

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    async def _accept(
        self,
        listener: socket.socket,
        protocol_factory: ProtocolFactory,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _CLIENT_GAVE_UP:
                    continue
                # One line per failure; the log's repeat limiter keeps a run of them short.
                log.error("cannot accept a connection", extra={"error": exc.strerror or exc})
                if exc.errno in _OUT_OF_RESOURCES and self._evict():
                    await asyncio.sleep(0)  # the evicted socket closes on the next turn
                else:
                    await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            self._admit(sock, protocol_factory, ssl_context)

    # -- one connection's life -------------------------------------------------------

    def _admit(
        self,
        sock: socket.socket,
        protocol_factory: ProtocolFactory,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        if len(self._open) >= self.limits.max_connections and not self._evict():
            self.dropped["refused"] += 1
            sock.close()
            return
        conn = _Connection(sock)
        self._open.add(conn)
        self._waiting[conn] = None
        self._arm(conn, self.limits.header_read_timeout, "header_timeout")
        conn.task = asyncio.get_running_loop().create_task(
            self._wire(conn, protocol_factory, ssl_context)
        )

    async def _wire(
        self,
        conn: _Connection,
        protocol_factory: ProtocolFactory,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        """Hand the socket to aiohttp's protocol (after the TLS handshake, with TLS)."""
        conn.started = True
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: _GuardedProtocol(self, conn, protocol_factory()),
                conn.sock,
                ssl=ssl_context,
                ssl_handshake_timeout=self.limits.header_read_timeout if ssl_context else None,
            )
        except (TimeoutError, OSError) as exc:  # a failed TLS handshake
            log.debug("connection closed before its first request", extra={"error": str(exc)})
        finally:
            conn.task = None
            if conn.transport is None:
                self._forget(conn)

    def _connected(self, conn: _Connection, transport: asyncio.Transport) -> None:
        conn.transport = transport
        self._by_transport[transport] = conn

    def _bytes_arrived(self, conn: _Connection) -> None:
        """The first byte after a response starts the header timeout of the next request."""
        if conn.busy == 0 and conn.timer is not None and conn.timer_reason == "idle_timeout":
            self._arm(conn, self.limits.header_read_timeout, "header_timeout")

    def _arm(self, conn: _Connection, seconds: float, reason: str) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer_reason = reason
        conn.timer = asyncio.get_running_loop().call_later(seconds, self._drop, conn, reason)

    def _drop(self, conn: _Connection, reason: str) -> None:
        if conn not in self._open:
            return
        self.dropped[reason] += 1
        conn.abort()
        self._forget(conn)

    def _evict(self) -> bool:
        """Close the connection waiting longest without a request; False if none waits."""
        for conn in self._waiting:
            self._drop(conn, "evicted")
            return True
        return False

    def _forget(self, conn: _Connection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._open.discard(conn)
        self._waiting.pop(conn, None)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    # -- request boundaries, from the app --------------------------------------------

    @property
    def middleware(self) -> Middleware:
        """Marks a request in progress from complete headers until its handler returns."""
        return self._middleware

    async def _request(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        conn = self._by_transport.get(transport) if transport is not None else None
        if conn is None:
            return await handler(request)
        conn.busy += 1
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._waiting.pop(conn, None)
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            if conn.busy == 0 and conn in self._open:
                self._waiting[conn] = None
                self._arm(conn, self.limits.idle_timeout, "idle_timeout")

    # -- metrics ---------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            metrics.CONNECTIONS, metrics.CONNECTIONS_HELP, value=len(self._open)
        )
        yield GaugeMetricFamily(
            metrics.CONNECTIONS_MAX, metrics.CONNECTIONS_MAX_HELP, value=self.limits.max_connections
        )
        dropped = CounterMetricFamily(metrics.DROPPED, metrics.DROPPED_HELP, labels=["reason"])
        for reason in metrics.DROP_REASONS:
            dropped.add_metric([reason], self.dropped[reason])
        yield dropped
