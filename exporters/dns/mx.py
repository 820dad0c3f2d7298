"""The MX check: records present, targets are host names that resolve, expected hosts listed."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.rdatatype
from dns.rdtypes.ANY.MX import MX

from exporters.dns.findings import Findings, name_text
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import Outcome, Phase


@dataclass(frozen=True, slots=True)
class MxSettings:
    domain: str
    hosts: tuple[str, ...] = ()
    """Hosts that must be among the MX targets (e.g. the MX and the SRS host)."""
    null_mx: bool = False
    """The domain accepts no mail and must publish a Null MX (RFC 7505)."""


async def check_mx(resolver: StubResolver, settings: MxSettings, phase: Phase) -> Outcome:
    domain = name_text(settings.domain)
    found = Findings()
    phase.enter(f"MX {domain}")
    try:
        answer = await resolver.query(domain, dns.rdatatype.MX)
    except DnsError as exc:
        return Outcome.fail(exc.reason)
    found.dnssec(answer)
    records = [r for r in answer.records if isinstance(r, MX)]
    found.facts["mx_records"] = len(records)
    if answer.nxdomain:
        return Outcome.fail(f"MX of {domain}: the domain does not exist (NXDOMAIN)", found.facts)
    if not records:
        if settings.null_mx:
            return Outcome.fail(f"no Null MX at {domain} (no MX records at all)", found.facts)
        return Outcome.fail(f"no MX record for {domain}", found.facts)
    targets = {name_text(r.exchange): r.preference for r in records}
    nulls = [r for r in records if r.exchange.to_text() == "."]
    if nulls:
        if len(records) > 1:
            found.fail(f"MX of {domain} mixes a Null MX with other MX records (RFC 7505 3)")
        elif nulls[0].preference != 0:
            found.fail(f"MX of {domain}: Null MX must have preference 0 (RFC 7505 3)")
        elif not settings.null_mx:
            found.fail(f"MX of {domain} is a Null MX: the domain accepts no mail")
        else:
            found.note(f"{domain} publishes a Null MX, as configured")
        return found.outcome()
    if settings.null_mx:
        found.fail(f"MX of {domain} lists hosts, but a Null MX is configured")
    found.note(f"MX of {domain}: {', '.join(f'{p} {t}' for t, p in sorted(targets.items()))}")
    for host in settings.hosts:
        if name_text(host) not in targets:
            listed = ", ".join(sorted(targets))
            found.fail(f"MX of {domain} does not list {name_text(host)} (has: {listed})")
    resolved = 0
    for target in sorted(targets):
        phase.enter(f"MX target {target}")
        if await _check_target(resolver, domain, target, found):
            resolved += 1
    found.facts["mx_targets_resolved"] = resolved
    return found.outcome()


async def _check_target(resolver: StubResolver, domain: str, target: str, found: Findings) -> bool:
    if _is_address(target):
        found.fail(f"MX of {domain} points to an address ({target}), not a host name")
        return False
    addresses: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = await resolver.query(target, rdtype)
        except DnsError as exc:
            found.fail(f"MX target {target} of {domain}: {exc.reason}")
            return False
        if answer.cnames:
            found.fail(
                f"MX target {target} of {domain} is a CNAME (to "
                f"{name_text(answer.canonical)}); RFC 2181 10.3 requires a host name"
            )
            return False
        addresses.extend(r.to_text() for r in answer.records)
    if not addresses:
        found.fail(f"MX target {target} of {domain} has no A or AAAA record")
        return False
    return True


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
