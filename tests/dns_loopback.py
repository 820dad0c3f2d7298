"""Small real DNS servers on loopback for the DNS tests.

Each server listens on UDP and TCP of one 127.0.0.1 port and asks a handler what to do
with every query.  A handler returns a response message, raw bytes (sent as they are,
to misbehave on purpose), or None (stay silent).  ``Zone`` is the ordinary handler: an
authoritative answer from a small table of records, with CNAMEs followed the way a
recursive resolver would, and the AD flag set when the zone is marked secure.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from exporters.dns.resolver import StubResolver
from exporters.dns.transport import Server

Reply = dns.message.Message | bytes | None
Handler = Callable[[dns.message.Message, str], Reply]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, log: list[tuple[str, str, str]]) -> None:
        self.handler = handler
        self.log = log
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = dns.message.from_wire(data)
        q = query.question[0]
        self.log.append(("udp", q.name.to_text(), dns.rdatatype.to_text(q.rdtype)))
        reply = self.handler(query, "udp")
        if reply is None or self.transport is None:
            return
        wire = reply if isinstance(reply, bytes) else reply.to_wire(max_size=65535)
        self.transport.sendto(wire, addr)


@dataclass
class LoopbackDns:
    handler: Handler
    tcp: bool = True
    port: int = 0
    log: list[tuple[str, str, str]] = field(default_factory=list)
    _clients: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def server(self) -> Server:
        return Server("127.0.0.1", self.port)

    def resolver(self, timeout: float = 0.5, retries: int = 0) -> StubResolver:
        return StubResolver([self.server], timeout=timeout, retries=retries)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            query = dns.message.from_wire(await reader.readexactly(length))
            q = query.question[0]
            self.log.append(("tcp", q.name.to_text(), dns.rdatatype.to_text(q.rdtype)))
            reply = self.handler(query, "tcp")
            if reply is None:
                await asyncio.sleep(30)  # hold the connection open, say nothing
                return
            wire = reply if isinstance(reply, bytes) else reply.to_wire(max_size=65535)
            if isinstance(reply, bytes):
                writer.write(wire)  # raw: the handler decides framing too
            else:
                writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._clients.discard(task)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopbackDns]:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.handler, self.log), sock=sock
            )
            if not self.tcp:
                break
            try:
                tcp = await asyncio.start_server(self._tcp_client, "127.0.0.1", port)
                break
            except OSError:
                udp.close()
        else:
            raise RuntimeError("no free port pair")
        self.port = port
        try:
            yield self
        finally:
            udp.close()
            if self.tcp:
                tcp.close()
                for task in list(self._clients):
                    task.cancel()


def respond(
    query: dns.message.Message,
    rcode: int = dns.rcode.NOERROR,
    answer: Iterable[dns.rrset.RRset] = (),
    *,
    ad: bool = False,
) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    response.flags |= dns.flags.RA | (dns.flags.AD if ad else 0)
    response.answer.extend(answer)
    return response


@dataclass
class Zone:
    """Records by (owner, type); answers like a recursive resolver that follows CNAMEs."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    secure: bool = False
    ttl: int = 60
    rrsig_expiration: str | None = None
    """When set (``YYYYMMDDHHMMSS``), every answer carries an RRSIG expiring then."""

    def add(self, owner: str, rdtype: str, *values: str) -> Zone:
        self.records.setdefault((_norm(owner), rdtype.upper()), []).extend(values)
        return self

    def names(self) -> set[str]:
        return {owner for owner, _ in self.records}

    def __call__(self, query: dns.message.Message, via: str) -> Reply:
        q = query.question[0]
        qtype = dns.rdatatype.to_text(q.rdtype)
        name = q.name.to_text().lower()
        answer: list[dns.rrset.RRset] = []
        for _ in range(10):
            values = self.records.get((name, qtype))
            if values:
                answer.append(self._rrset(name, qtype, values))
                if self.rrsig_expiration is not None:
                    answer.append(self._rrset(name, "RRSIG", [self._rrsig(qtype, name)]))
                break
            target = self.records.get((name, "CNAME"))
            if not target:
                break
            answer.append(self._rrset(name, "CNAME", target))
            name = _norm(target[0])
        exists = any(owner == name or owner.endswith("." + name) for owner in self.names())
        rcode = dns.rcode.NOERROR if answer or exists else dns.rcode.NXDOMAIN
        return respond(query, rcode, answer, ad=self.secure)

    def _rrsig(self, covered: str, owner: str) -> str:
        labels = len(dns.name.from_text(owner)) - 1
        return (
            f"{covered} 13 {labels} {self.ttl} {self.rrsig_expiration} 20200101000000 "
            "12345 example.test. dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ=="
        )

    def _rrset(self, owner: str, rdtype: str, values: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(owner, self.ttl, "IN", rdtype, values)


def validating(zone: Zone) -> Handler:
    """A validating resolver in front of a zone whose signatures do not validate:
    SERVFAIL, unless the query sets CD (checking disabled)."""

    def handler(query: dns.message.Message, via: str) -> Reply:
        if not query.flags & dns.flags.CD:
            return respond(query, dns.rcode.SERVFAIL)
        return zone(query, via)

    return handler


def _norm(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()
