"""The DNSSEC check: a zone validates, and how long until its signatures expire.

The validating resolver does the cryptography; this check reads its verdict per answer
(see :mod:`exporters.dns.resolver`) for the zone's SOA and DNSKEY sets, and the RRSIG
expiry that came with them.  A zone whose signatures expired is bogus and is named
bogus, with the expiry time read from the CD=1 answer, never reported as "missing".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dns.rdatatype

from exporters.dns.findings import Findings, name_text
from exporters.dns.resolver import Answer, DnsBogus, DnsError, DnssecState, StubResolver
from exporters.result import Outcome, Phase


@dataclass(frozen=True, slots=True)
class DnssecSettings:
    zone: str
    warn_days: float = 7.0
    """Warn this many days before the earliest RRSIG expires (the signer should re-sign)."""
    clock: Callable[[], float] = field(default=time.time, compare=False)


async def check_dnssec(resolver: StubResolver, settings: DnssecSettings, phase: Phase) -> Outcome:
    zone = name_text(settings.zone)
    found = Findings()
    now = settings.clock()
    expiries: list[int] = []
    bogus: list[DnsBogus] = []
    for rdtype in (dns.rdatatype.SOA, dns.rdatatype.DNSKEY):
        question = f"{dns.rdatatype.to_text(rdtype)} {zone}"
        phase.enter(question)
        try:
            answer = await resolver.query(zone, rdtype)
        except DnsBogus as exc:
            found.dnssec(exc.answer)
            bogus.append(exc)
            if exc.answer.rrsig_expiry is not None:
                expiries.append(exc.answer.rrsig_expiry)
            continue
        except DnsError as exc:
            found.fail(f"zone {zone}: {exc.reason}")
            continue
        found.dnssec(answer)
        _judge_answer(zone, question, answer, found)
        if answer.rrsig_expiry is not None:
            expiries.append(answer.rrsig_expiry)
    if bogus:
        # One message for the zone: the first bogus answer's reason, and when the
        # signatures ran out if that is why.
        expired = [e for e in expiries if e <= now]
        when = f"; its signatures expired {_when(min(expired))}" if expired else ""
        found.fails.insert(0, f"zone {zone} is DNSSEC-bogus: {bogus[0].reason}{when}")
    if expiries:
        earliest = min(expiries)
        found.facts["rrsig_expiry_timestamp"] = earliest
        left_days = (earliest - now) / 86400
        if not found.fails and left_days < settings.warn_days:
            found.warn(
                f"zone {zone}: RRSIG expires {_when(earliest)}, in {left_days:.1f} days "
                f"(warning at {settings.warn_days:g}); is the signer re-signing?"
            )
    return found.outcome()


def _judge_answer(zone: str, question: str, answer: Answer, found: Findings) -> None:
    if answer.nxdomain or not answer.records:
        found.fail(f"zone {zone}: {question} has no records")
    elif answer.dnssec is DnssecState.INSECURE:
        found.fail(
            f"zone {zone} is not DNSSEC-signed, or resolver {answer.server} does not "
            f"validate ({question} insecure: no AD flag)"
        )
    elif answer.rrsig_expiry is None:
        found.warn(f"zone {zone}: {question} is secure but came without RRSIGs")


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
