"""The SRV check: mail client service records (RFC 6186, RFC 8314) lead to a host."""

from __future__ import annotations

from dataclasses import dataclass

import dns.rdatatype
from dns.rdtypes.IN.SRV import SRV

from exporters.dns.findings import Findings, name_text
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import Outcome, Phase


@dataclass(frozen=True, slots=True)
class SrvSettings:
    domain: str
    service: str = "submission"
    """``submission``, ``submissions``, ``imap``, ``imaps`` ...: the ``_service._tcp`` label."""
    port: int | None = None
    """The port the record must name, when the fleet fixes one."""


async def check_srv(resolver: StubResolver, settings: SrvSettings, phase: Phase) -> Outcome:
    owner = f"_{settings.service}._tcp.{name_text(settings.domain)}"
    found = Findings()
    phase.enter(f"SRV {owner}")
    try:
        answer = await resolver.query(owner, dns.rdatatype.SRV)
    except DnsError as exc:
        return Outcome.fail(exc.reason)
    found.dnssec(answer)
    records = [r for r in answer.records if isinstance(r, SRV)]
    if not records:
        why = "the name does not exist" if answer.nxdomain else "no SRV records"
        return Outcome.fail(f"no SRV record at {owner} ({why})", found.facts)
    if len(records) == 1 and records[0].target.to_text() == ".":
        return Outcome.fail(
            f"SRV {owner} has target '.': the service is declared unavailable (RFC 2782)",
            found.facts,
        )
    resolved = 0
    for record in sorted(records, key=lambda r: (r.priority, -r.weight)):
        target = name_text(record.target)
        if settings.port is not None and record.port != settings.port:
            found.fail(f"SRV {owner} -> {target} port {record.port}, expected {settings.port}")
        phase.enter(f"SRV target {target}")
        addresses = 0
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                addresses += len((await resolver.query(target, rdtype)).records)
            except DnsError as exc:
                found.fail(f"SRV {owner} -> {target}: {exc.reason}")
        if addresses:
            resolved += 1
            found.note(f"SRV {owner}: {record.priority} {record.weight} {record.port} {target}")
        elif not found.fails:
            found.fail(f"SRV {owner} -> {target}, which has no A or AAAA record")
    found.facts["srv_targets_resolved"] = resolved
    found.facts["srv_port"] = records[0].port
    return found.outcome()
