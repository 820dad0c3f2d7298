"""The TLSA check: DANE records for a host and port exist, are DNSSEC-secure and usable.

Whether they match the certificate the host serves is the SMTP prober's question; both
read records through :mod:`exporters.tlsa`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.rdatatype
from dns.rdtypes.ANY.TLSA import TLSA

from exporters.dns.findings import Findings, name_text
from exporters.dns.resolver import DnsError, DnssecState, StubResolver
from exporters.result import Outcome, Phase
from exporters.tlsa import TlsaFormatError, Usage, make_record


@dataclass(frozen=True, slots=True)
class TlsaSettings:
    host: str
    port: int = 25


async def check_tlsa(resolver: StubResolver, settings: TlsaSettings, phase: Phase) -> Outcome:
    owner = f"_{settings.port}._tcp.{name_text(settings.host)}"
    found = Findings()
    phase.enter(f"TLSA {owner}")
    try:
        answer = await resolver.query(owner, dns.rdatatype.TLSA)
    except DnsError as exc:
        return Outcome.fail(exc.reason)
    found.dnssec(answer)
    rdatas = [r for r in answer.records if isinstance(r, TLSA)]
    found.facts["tlsa_records"] = len(rdatas)
    if not rdatas:
        why = "the name does not exist" if answer.nxdomain else "no TLSA records"
        return Outcome.fail(f"no TLSA record at {owner} ({why}): DANE is off", found.facts)
    if answer.dnssec is not DnssecState.SECURE:
        found.fail(
            f"TLSA {owner} is not DNSSEC-secure ({answer.dnssec.value}): "
            "DANE clients ignore unsigned TLSA records (RFC 7672 2.2)"
        )
    usable = 0
    for rdata in rdatas:
        try:
            record = make_record(rdata.usage, rdata.selector, rdata.mtype, rdata.cert)
        except TlsaFormatError as exc:
            found.fail(f"TLSA {owner} '{rdata.to_text()[:40]}…' is unusable: {exc}")
            continue
        if settings.port == 25 and record.usage in (Usage.PKIX_TA, Usage.PKIX_EE):
            found.warn(
                f"TLSA {owner} {record.short} uses PKIX usage {int(record.usage)}, "
                "which SMTP DANE treats as unusable (RFC 7672 3.1.3)"
            )
            continue
        usable += 1
        found.note(f"TLSA {owner}: {record.short}")
    if usable == 0 and not found.fails:
        found.fail(f"TLSA {owner} has no usable record")
    found.facts["tlsa_usable_records"] = usable
    return found.outcome()
