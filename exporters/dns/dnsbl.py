"""The blocklist check: is a sending address listed on the configured DNSBL zones?

A DNSBL answers A queries for the reversed address (RFC 5782 2.1): NXDOMAIN means not
listed, a 127.0.0.0/8 address is a return code and the TXT record at the same name says
why.  Some return codes are not listings at all: large lists answer
127.255.255.252/254/255 (and some 127.0.0.1) when they refuse a query, e.g. one sent
through a public or open resolver.  Those must never read as "listed".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.rdatatype
import dns.reversename

from exporters.dns.findings import Findings, name_text, txt_values
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import Outcome, Phase

REFUSAL_CODES: dict[str, str] = {
    "127.0.0.1": "the list refused the query",
    "127.255.255.252": "the list says its name was mistyped in the query",
    "127.255.255.254": "the list refuses queries through public or open resolvers",
    "127.255.255.255": "the list refuses: too many queries (rate limit)",
}


@dataclass(frozen=True, slots=True)
class DnsblZone:
    zone: str
    refusal_codes: tuple[str, ...] = tuple(REFUSAL_CODES)
    """Return codes that mean "query refused", not "listed"."""
    listed_codes: tuple[str, ...] = ()
    """When set, only these codes mean listed; other 127/8 codes are reported as unknown."""


@dataclass(frozen=True, slots=True)
class DnsblSettings:
    name: str
    """The sending host, for reasons."""
    addresses: tuple[str, ...]
    zones: tuple[DnsblZone, ...]


async def check_dnsbl(resolver: StubResolver, settings: DnsblSettings, phase: Phase) -> Outcome:
    found = Findings()
    listings = 0
    for text in settings.addresses:
        address = ipaddress.ip_address(text)
        for bl in settings.zones:
            listed = await _look_up(resolver, address, settings.name, bl, found, phase)
            listings += listed
    found.facts["dnsbl_listings"] = listings
    found.facts["dnsbl_zones"] = len(settings.zones)
    return found.outcome()


async def _look_up(
    resolver: StubResolver,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    host: str,
    bl: DnsblZone,
    found: Findings,
    phase: Phase,
) -> int:
    """Ask one list about one address; note what it says; 1 if listed."""
    who = f"{address} ({host})"
    zone = name_text(bl.zone)
    query = _query_name(address, zone)
    phase.enter(f"A {query}")
    try:
        answer = await resolver.query(query, dns.rdatatype.A)
    except DnsError as exc:
        found.warn(f"{zone} could not be asked about {who}: {exc.reason}; listing unknown")
        return 0
    codes = [r.to_text() for r in answer.records]
    if not codes:
        found.note(f"{who} is not listed on {zone}")
        return 0
    refused = [c for c in codes if c in bl.refusal_codes]
    if refused:
        meaning = REFUSAL_CODES.get(refused[0], "the list refused the query")
        found.warn(f"{zone} answered {refused[0]} for {who}: {meaning}; listing unknown")
        return 0
    odd = [c for c in codes if ipaddress.ip_address(c) not in _LOOPBACK_NET]
    if odd:
        found.warn(
            f"{zone} answered {', '.join(odd)} for {who}, not a 127.0.0.0/8 return code "
            "(a resolver rewriting NXDOMAIN?); listing unknown"
        )
        return 0
    if bl.listed_codes and not set(codes) & set(bl.listed_codes):
        found.warn(f"{zone} answered {', '.join(codes)} for {who}: unknown return code")
        return 0
    phase.enter(f"TXT {query}")
    found.fail(f"{who} is listed on {zone} ({', '.join(codes)}): {await _why(resolver, query)}")
    return 1


_LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")


def _query_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str) -> str:
    reverse = dns.reversename.from_address(str(address))
    suffix = "in-addr.arpa." if address.version == 4 else "ip6.arpa."
    return reverse.to_text().removesuffix(suffix) + zone


async def _why(resolver: StubResolver, name: str) -> str:
    try:
        answer = await resolver.query(name, dns.rdatatype.TXT)
    except DnsError as exc:
        return f"no reason available ({exc.reason})"
    reasons = txt_values(answer)
    return " / ".join(reasons) if reasons else "the list gives no TXT reason"
