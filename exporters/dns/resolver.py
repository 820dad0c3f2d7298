"""A DNSSEC-aware stub resolver that asks only the configured resolvers.

Built on dnspython's message layer rather than ``dns.asyncresolver.Resolver`` because
a check must tell apart what that resolver folds into one ``NoNameservers`` error: a
validation failure (bogus) from a plain SERVFAIL, a refusal, a silent server and a
broken one.  Per answer it records the DNSSEC state the validating resolver vouches
for:

- ``secure``: the answer came with the AD flag;
- ``insecure``: it came without (unsigned zone, or a resolver that does not validate);
- ``bogus``: the query SERVFAILs, but the same query with CD=1 (checking disabled)
  answers.  That answer is kept in :class:`DnsBogus` so a check can still read it,
  e.g. the expired RRSIG that made it bogus.

Time is bounded: each try waits at most ``timeout`` seconds, each server is tried
``1 + retries`` times, so one query costs at most about
``(1 + retries) * len(servers) * timeout`` (twice that if every answer is truncated).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.RRSIG import RRSIG

from exporters.dns.transport import (
    UDP_PAYLOAD,
    ExchangeTimeout,
    OversizedAnswer,
    Server,
    SocketTransport,
    Transport,
    TransportError,
)

MAX_CNAME_HOPS = 8


class DnssecState(enum.StrEnum):
    SECURE = "secure"
    INSECURE = "insecure"
    BOGUS = "bogus"


@dataclass(frozen=True, slots=True)
class Answer:
    """A usable answer: records (possibly none), or a name that does not exist."""

    qname: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    rcode: dns.rcode.Rcode
    rrset: dns.rrset.RRset | None
    server: Server
    dnssec: DnssecState
    cnames: tuple[dns.name.Name, ...] = ()
    """Names the query was redirected to, in order (empty without CNAMEs)."""
    rrsig_expiry: int | None = None
    """Earliest expiration (epoch seconds) of the RRSIGs that came with the answer."""
    ede: tuple[str, ...] = field(default=())

    @property
    def records(self) -> list[dns.rdata.Rdata]:
        return list(self.rrset) if self.rrset is not None else []

    @property
    def nxdomain(self) -> bool:
        return self.rcode == dns.rcode.NXDOMAIN

    @property
    def canonical(self) -> dns.name.Name:
        return self.cnames[-1] if self.cnames else self.qname

    def describe(self) -> str:
        return describe(self.qname, self.rdtype)


def describe(qname: dns.name.Name | str, rdtype: dns.rdatatype.RdataType | str) -> str:
    """``TXT _dmarc.example.test``: how reasons name a DNS question."""
    name = qname.to_text(omit_final_dot=True) if isinstance(qname, dns.name.Name) else qname
    kind = dns.rdatatype.to_text(rdtype) if isinstance(rdtype, int) else rdtype
    return f"{kind} {name}"


class DnsError(Exception):
    """A DNS question got no usable answer; the reason names the question."""

    def __init__(self, question: str, detail: str) -> None:
        self.question = question
        self.detail = detail
        self.reason = f"{question}: {detail}"
        super().__init__(self.reason)


class DnsTimeout(DnsError):
    pass


class DnsServerFailure(DnsError):
    """SERVFAIL that is not a DNSSEC validation failure."""


class DnsRefused(DnsError):
    pass


class DnsBadAnswer(DnsError):
    """Malformed, truncated or oversized answers, or a transport that broke off."""


class DnsCnameLoop(DnsError):
    pass


class DnsBogus(DnsError):
    """DNSSEC validation failed; ``answer`` is what the resolver gives with CD=1."""

    def __init__(self, question: str, detail: str, answer: Answer) -> None:
        super().__init__(question, detail)
        self.answer = answer


class StubResolver:
    def __init__(
        self,
        servers: Sequence[Server],
        *,
        timeout: float = 2.0,
        retries: int = 1,
        transport: Transport | None = None,
    ) -> None:
        if not servers:
            raise ValueError("at least one resolver is needed")
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be positive and retries not negative")
        self.servers = tuple(servers)
        self.timeout = timeout
        self.retries = retries
        self.transport: Transport = transport or SocketTransport()

    @property
    def worst_case_seconds(self) -> float:
        """Upper bound of one :meth:`query` without CNAME hops (UDP then TCP per try)."""
        return 2 * (1 + self.retries) * len(self.servers) * self.timeout

    async def query(
        self, name: str | dns.name.Name, rdtype: str | dns.rdatatype.RdataType
    ) -> Answer:
        """Resolve ``name``/``rdtype``; raise a :class:`DnsError` subclass on failure.

        NXDOMAIN and NODATA are answers (``Answer.rrset`` is None), not errors.
        """
        qname = name if isinstance(name, dns.name.Name) else _to_name(name, rdtype)
        qtype = dns.rdatatype.RdataType.make(rdtype)
        seen: list[dns.name.Name] = [qname]
        target = qname
        cnames: list[dns.name.Name] = []
        for _ in range(MAX_CNAME_HOPS):
            answer = await self._query_one(target, qtype, qname)
            hops, final = _follow_chain(answer.response, target, qtype)
            for hop in hops:
                if hop in seen:
                    loop = " -> ".join(n.to_text(True) for n in [*seen, hop])
                    raise DnsCnameLoop(describe(qname, qtype), f"CNAME loop {loop}")
                seen.append(hop)
            cnames.extend(hops)
            if final is not None or not hops or answer.response.rcode() != dns.rcode.NOERROR:
                return _make_answer(qname, qtype, answer, final, tuple(cnames))
            # The chain stops at a name the server did not follow: ask for it ourselves.
            target = hops[-1]
        raise DnsCnameLoop(describe(qname, qtype), f"CNAME chain longer than {MAX_CNAME_HOPS} hops")

    async def _query_one(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType, asked: dns.name.Name
    ) -> _Raw:
        question = describe(asked, qtype)
        failures: list[str] = []
        servfail: tuple[Server, dns.message.Message] | None = None
        refused: list[str] = []
        timeouts = 0
        for _attempt in range(1 + self.retries):
            for server in self.servers:
                if (servfail is not None and servfail[0] == server) or str(server) in refused:
                    continue  # an answer, not a lost packet: asking again changes nothing
                try:
                    response = await self._exchange(_make_query(qname, qtype), server)
                except ExchangeTimeout as exc:
                    timeouts += 1
                    failures.append(exc.reason)
                    continue
                except TransportError as exc:
                    failures.append(exc.reason)
                    continue
                rcode = response.rcode()
                if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return _Raw(response, server, _state(response))
                if rcode == dns.rcode.SERVFAIL:
                    servfail = servfail or (server, response)
                elif rcode == dns.rcode.REFUSED:
                    refused.append(str(server))
                else:
                    failures.append(f"{server} answered {dns.rcode.to_text(rcode)}")
        if servfail is not None:
            server, response = servfail
            return await self._classify_servfail(qname, qtype, question, server, response)
        if refused:
            raise DnsRefused(question, f"refused by {', '.join(refused)}")
        tries = 1 + self.retries
        if timeouts and timeouts == len(failures):
            raise DnsTimeout(
                question,
                f"no answer from {', '.join(str(s) for s in self.servers)} "
                f"within {self.timeout:g} s ({tries} tr{'y' if tries == 1 else 'ies'} each)",
            )
        raise DnsBadAnswer(question, "; ".join(dict.fromkeys(failures)))

    async def _classify_servfail(
        self,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        question: str,
        server: Server,
        response: dns.message.Message,
    ) -> _Raw:
        ede = _ede(response)
        note = f" ({'; '.join(ede)})" if ede else ""
        try:
            checked = await self._exchange(_make_query(qname, qtype, cd=True), server)
        except TransportError:
            raise DnsServerFailure(question, f"SERVFAIL from {server}{note}") from None
        if checked.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsServerFailure(question, f"SERVFAIL from {server}{note}")
        hops, final = _follow_chain(checked, qname, qtype)
        answer = _make_answer(
            qname, qtype, _Raw(checked, server, DnssecState.BOGUS, ede), final, tuple(hops)
        )
        raise DnsBogus(
            question,
            f"DNSSEC validation failed (bogus) at {server}{note}; "
            "the data exists but its signatures do not validate",
            answer,
        )

    async def _exchange(self, query: dns.message.Message, server: Server) -> dns.message.Message:
        try:
            response = await self.transport.udp(query, server, self.timeout)
        except OversizedAnswer as exc:
            return await self._tcp_after(query, server, exc.reason)
        if response.flags & dns.flags.TC:
            return await self._tcp_after(query, server, f"{server} truncated the UDP answer")
        return response

    async def _tcp_after(
        self, query: dns.message.Message, server: Server, why: str
    ) -> dns.message.Message:
        try:
            return await self.transport.tcp(query, server, self.timeout)
        except TransportError as exc:
            raise type(exc)(f"{why}; retry over TCP: {exc.reason}") from None


@dataclass(frozen=True, slots=True)
class _Raw:
    response: dns.message.Message
    server: Server
    state: DnssecState
    ede: tuple[str, ...] = ()


def _to_name(name: str, rdtype: str | dns.rdatatype.RdataType) -> dns.name.Name:
    try:
        return dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise DnsBadAnswer(describe(name, rdtype), f"not a valid DNS name ({exc})") from None


def _make_query(
    qname: dns.name.Name, qtype: dns.rdatatype.RdataType, *, cd: bool = False
) -> dns.message.Message:
    # DO asks for RRSIGs (their expiry is a fact); AD in the query asks the resolver
    # to report the validation result (RFC 6840 5.7).
    flags = dns.flags.RD | dns.flags.AD | (dns.flags.CD if cd else 0)
    return dns.message.make_query(
        qname, qtype, use_edns=0, want_dnssec=True, payload=UDP_PAYLOAD, flags=flags
    )


def _state(response: dns.message.Message) -> DnssecState:
    return DnssecState.SECURE if response.flags & dns.flags.AD else DnssecState.INSECURE


def _ede(response: dns.message.Message) -> tuple[str, ...]:
    out = []
    for option in response.options:
        if isinstance(option, dns.edns.EDEOption):
            code = dns.edns.EDECode.to_text(option.code).replace("_", " ").lower()
            out.append(
                f"EDE {int(option.code)} {code}" + (f": {option.text}" if option.text else "")
            )
    return tuple(out)


def _follow_chain(
    response: dns.message.Message, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
) -> tuple[list[dns.name.Name], dns.rrset.RRset | None]:
    """CNAME targets from ``qname`` and the final RRset of ``qtype``, if present.

    Stops at the first repeated name so a looping answer cannot spin; the caller
    reports the loop.
    """
    hops: list[dns.name.Name] = []
    name = qname
    while True:
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, qtype)
        if rrset is not None:
            return hops, rrset
        if qtype == dns.rdatatype.CNAME:
            return hops, None
        cname = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None or len(cname) == 0:
            return hops, None
        name = next(iter(cname)).target
        hops.append(name)
        if name == qname or name in hops[:-1]:
            return hops, None


def _make_answer(
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    raw: _Raw,
    final: dns.rrset.RRset | None,
    cnames: tuple[dns.name.Name, ...],
) -> Answer:
    return Answer(
        qname=qname,
        rdtype=qtype,
        rcode=raw.response.rcode(),
        rrset=final,
        server=raw.server,
        dnssec=raw.state,
        cnames=cnames,
        rrsig_expiry=_rrsig_expiry(raw.response),
        ede=raw.ede or _ede(raw.response),
    )


def _rrsig_expiry(response: dns.message.Message) -> int | None:
    expiries = [
        rdata.expiration
        for section in (response.answer, response.authority)
        for rrset in section
        if rrset.rdtype == dns.rdatatype.RRSIG
        for rdata in rrset
        if isinstance(rdata, RRSIG)
    ]
    return min(expiries) if expiries else None
