"""How DNS messages travel between the stub resolver and a server.

:class:`Transport` is the seam: the resolver only calls ``udp`` and ``tcp``.  The
default :class:`SocketTransport` speaks plain DNS over asyncio sockets; tests hand in
the same class pointed at small misbehaving servers on loopback, and a future
DNS-over-TLS transport would slot in here.  Every exchange has a timeout; every way a
server can misbehave becomes a typed :class:`TransportError` with a reason.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.message


@dataclass(frozen=True, slots=True)
class Server:
    address: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


class TransportError(Exception):
    """The server gave no usable answer; ``reason`` says how, naming the server."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExchangeTimeout(TransportError):
    pass


class OversizedAnswer(TransportError):
    """A UDP answer bigger than the EDNS buffer the query advertised (RFC 6891 6.2.5).

    Such datagrams are fragmented on real paths and commonly lost, so the resolver
    treats them like a truncated answer and asks again over TCP.
    """


class Transport(Protocol):
    async def udp(
        self, query: dns.message.Message, server: Server, timeout: float
    ) -> dns.message.Message: ...

    async def tcp(
        self, query: dns.message.Message, server: Server, timeout: float
    ) -> dns.message.Message: ...


UDP_PAYLOAD = 1232
"""EDNS buffer size we advertise: the DNS Flag Day 2020 value that avoids fragmentation."""


class _UdpReply(asyncio.DatagramProtocol):
    def __init__(self, query: dns.message.Message, server: Server) -> None:
        self.query = query
        self.server = server
        self.done: asyncio.Future[tuple[dns.message.Message, int]] = (
            asyncio.get_running_loop().create_future()
        )

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.done.done():
            return
        try:
            reply = dns.message.from_wire(data)
        except (dns.exception.DNSException, ValueError) as exc:
            if data[:2] == self.query.id.to_bytes(2, "big"):
                self.done.set_exception(
                    TransportError(f"{self.server} sent a malformed answer ({exc})")
                )
            # Otherwise a stray or spoofed datagram: a real answer may still follow.
            return
        if self.query.is_response(reply):
            self.done.set_result((reply, len(data)))

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(
                TransportError(f"{self.server} refused the UDP query ({exc.strerror or exc})")
                if isinstance(exc, OSError)
                else exc
            )


class SocketTransport:
    """Plain DNS over UDP and TCP (RFC 1035 4.2, RFC 7766)."""

    async def udp(
        self, query: dns.message.Message, server: Server, timeout: float
    ) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _UdpReply(query, server),
                    remote_addr=(server.address, server.port),
                    family=family,
                )
                try:
                    transport.sendto(query.to_wire())
                    reply, size = await protocol.done
                finally:
                    transport.close()
        except TimeoutError:
            raise ExchangeTimeout(f"no answer from {server} within {timeout:g} s") from None
        except OSError as exc:
            raise TransportError(f"cannot send to {server}: {exc.strerror or exc}") from None
        advertised = max(query.payload, 512) if query.edns >= 0 else 512
        if size > advertised:
            raise OversizedAnswer(
                f"{server} sent a {size}-byte UDP answer, larger than the "
                f"{advertised}-byte buffer the query advertised"
            )
        return reply

    async def tcp(
        self, query: dns.message.Message, server: Server, timeout: float
    ) -> dns.message.Message:
        wire = query.to_wire()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(server.address, server.port)
                try:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    await writer.drain()
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                finally:
                    writer.close()
        except TimeoutError:
            raise ExchangeTimeout(
                f"no answer from {server} over TCP within {timeout:g} s"
            ) from None
        except asyncio.IncompleteReadError as exc:
            raise TransportError(
                f"{server} closed the TCP connection after {len(exc.partial)} bytes of the answer"
            ) from None
        except OSError as exc:
            raise TransportError(
                f"TCP connection to {server} failed: {exc.strerror or exc}"
            ) from None
        try:
            reply = dns.message.from_wire(data)
        except (dns.exception.DNSException, ValueError) as exc:
            raise TransportError(f"{server} sent a malformed answer over TCP ({exc})") from None
        if not query.is_response(reply):
            raise TransportError(f"{server} answered a different question over TCP")
        return reply
