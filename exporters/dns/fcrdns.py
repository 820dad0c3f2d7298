"""The FCrDNS check: each address of a mail host has a PTR whose name resolves back to it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.rdatatype
import dns.reversename

from exporters.dns.findings import Findings, name_text
from exporters.dns.resolver import DnsBogus, DnsError, StubResolver
from exporters.result import Outcome, Phase


@dataclass(frozen=True, slots=True)
class FcrdnsSettings:
    host: str
    """The host's name; also the name it should announce in its SMTP banner."""
    addresses: tuple[str, ...]
    banner_name: str | None = None
    """Name the host gives in its banner and EHLO, when it differs from ``host``."""


async def check_fcrdns(resolver: StubResolver, settings: FcrdnsSettings, phase: Phase) -> Outcome:
    found = Findings()
    expected = name_text(settings.banner_name or settings.host)
    confirmed = 0
    for text in settings.addresses:
        address = ipaddress.ip_address(text)
        reverse = dns.reversename.from_address(str(address))
        owner = name_text(reverse)
        phase.enter(f"PTR {owner}")
        try:
            answer = await resolver.query(reverse, dns.rdatatype.PTR)
        except DnsError as exc:
            _bogus_state(found, exc)
            found.fail(f"reverse DNS of {address} ({settings.host}): {exc.reason}")
            continue
        found.dnssec(answer)
        names = [name_text(r.target) for r in answer.records]  # type: ignore[attr-defined]
        if not names:
            found.fail(f"no PTR record for {address} ({settings.host}) at {owner}")
            continue
        family = dns.rdatatype.A if address.version == 4 else dns.rdatatype.AAAA
        matching = []
        # Only of names whose forward lookup answered can we say they do not resolve
        # back: a failed lookup (reported as such) confirms nothing either way.
        answered = []
        for name in names:
            phase.enter(f"{dns.rdatatype.to_text(family)} {name}")
            try:
                forward = await resolver.query(name, family)
            except DnsError as exc:
                _bogus_state(found, exc)
                found.fail(f"PTR {owner} -> {name}, and then {exc.reason}")
                continue
            found.dnssec(forward)
            answered.append(name)
            if any(ipaddress.ip_address(r.to_text()) == address for r in forward.records):
                matching.append(name)
        if not matching:
            if answered:
                found.fail(
                    f"PTR {owner} -> {', '.join(answered)}, which does not resolve back to"
                    f" {address} ({settings.host}): not forward-confirmed"
                )
            continue
        confirmed += 1
        if expected not in matching:
            found.warn(
                f"PTR {owner} -> {', '.join(matching)}, not {expected} as the host calls itself"
            )
        else:
            found.note(f"{address}: PTR {expected}, forward-confirmed")
    found.facts["fcrdns_confirmed_addresses"] = confirmed
    return found.outcome()


def _bogus_state(found: Findings, exc: DnsError) -> None:
    """A bogus answer makes the check's DNSSEC state bogus, though it yields no records."""
    if isinstance(exc, DnsBogus):
        found.dnssec(exc.answer)
