"""The DMARC checks: judging what the reports say, per configured domain.

They read the stored reports (through :class:`ReportReader`), never the network, so
``mailprobe run --only dmarc`` answers from what ``serve`` or ``dmarc import`` stored.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from exporters.dmarc.classify import Classifier, SourceClass
from exporters.dmarc.readiness import NO_DATA, NO_OWN_MAIL, NOT_READY, READY_REJECT, assess
from exporters.dmarc.store import ReportReader, Snapshot
from exporters.result import FactValue, Outcome, Phase

DAY = 86400.0
NAMED_SOURCES = 3
"""Sources (or failure types) named in a reason; the rest are summed up."""


@dataclass(frozen=True, slots=True)
class DmarcCheckSettings:
    domain: str
    classifier: Classifier
    window_days: int = 7
    fresh_days: float = 2.0
    spoofing_warn_messages: int = 1
    spoofing_fail_share: float = 0.1


async def _snapshot(reader: ReportReader, settings: DmarcCheckSettings, phase: Phase) -> Snapshot:
    phase.enter("read stored reports")
    return await reader.snapshot(time.time() - settings.window_days * DAY)


def _window(settings: DmarcCheckSettings) -> str:
    return f"in the last {settings.window_days} day(s) of reports"


async def check_own_sources(
    reader: ReportReader, settings: DmarcCheckSettings, phase: Phase
) -> Outcome:
    snapshot = await _snapshot(reader, settings, phase)
    readiness = assess(settings.domain, snapshot.records, settings.classifier)
    ours = readiness.classes[SourceClass.OURS]
    facts = {"own_messages": ours.messages, "own_dmarc_fail": ours.dmarc_fail}
    failing = [b for b in readiness.blockers if b.source_class is SourceClass.OURS]
    if failing:
        named = "; ".join(b.describe() for b in failing[:NAMED_SOURCES])
        more = f" and {len(failing) - NAMED_SOURCES} more" if len(failing) > NAMED_SOURCES else ""
        return Outcome.fail(
            f"our own sources fail DMARC for {settings.domain} {_window(settings)}: "
            f"{named}{more}: check their DKIM signing and SPF record",
            facts,
        )
    return Outcome.ok(facts)


async def check_spoofing(
    reader: ReportReader, settings: DmarcCheckSettings, phase: Phase
) -> Outcome:
    snapshot = await _snapshot(reader, settings, phase)
    readiness = assess(settings.domain, snapshot.records, settings.classifier)
    foreign = [
        s for s in readiness.sources if s.source_class is SourceClass.FOREIGN and s.tally.dmarc_fail
    ]
    failing = sum(s.tally.dmarc_fail for s in foreign)
    share = failing / readiness.messages if readiness.messages else 0.0
    facts = {"foreign_dmarc_fail": failing, "foreign_dmarc_fail_share": round(share, 4)}
    if failing < settings.spoofing_warn_messages and share < settings.spoofing_fail_share:
        return Outcome.ok(facts)
    foreign.sort(key=lambda s: (-s.tally.dmarc_fail, s.address))
    named = ", ".join(
        f"{s.address} ({s.tally.dmarc_fail} message(s), reported by "
        f"{', '.join(sorted(s.reporters))})"
        for s in foreign[:NAMED_SOURCES]
    )
    reason = (
        f"{failing} message(s) from {len(foreign)} foreign source(s) fail DMARC for "
        f"{settings.domain} ({share:.1%} of {readiness.messages}) {_window(settings)}: "
        f"{named}"
    )
    if share >= settings.spoofing_fail_share:
        return Outcome.fail(reason, facts)
    return Outcome.warn(reason, facts)


async def check_reports_fresh(
    reader: ReportReader, settings: DmarcCheckSettings, phase: Phase
) -> Outcome:
    snapshot = await _snapshot(reader, settings, phase)
    ends = [
        last.end
        for last in snapshot.last
        if last.kind == "aggregate" and last.domain == settings.domain
    ]
    if not ends:
        return Outcome.warn(
            f"no aggregate report for {settings.domain} was ever stored: check the DMARC "
            "record's rua= address and that mailprobe reads that mailbox"
        )
    newest = max(ends)
    age_days = (time.time() - newest) / DAY
    facts = {"last_report_end_timestamp": newest}
    if age_days > settings.fresh_days:
        return Outcome.warn(
            f"the newest aggregate report for {settings.domain} ended {age_days:.1f} days ago "
            f"(limit {settings.fresh_days:g}): the rua= address or the report pipeline is broken",
            facts,
        )
    return Outcome.ok(facts)


async def check_tls_rpt(
    reader: ReportReader, settings: DmarcCheckSettings, phase: Phase
) -> Outcome:
    snapshot = await _snapshot(reader, settings, phase)
    tls = [t for t in snapshot.tls if t.domain == settings.domain]
    successful = sum(t.successful for t in tls)
    failed = sum(t.failed for t in tls)
    facts = {"tls_sessions_successful": successful, "tls_sessions_failed": failed}
    if not failed:
        return Outcome.ok(facts, detail=f"{len(tls)} TLS-RPT policy result(s) {_window(settings)}")
    types: Counter[tuple[str, str]] = Counter()
    for f in snapshot.tls_failures:
        if f.domain == settings.domain:
            types[(f.result_type or "unspecified", f.reporter)] += f.sessions
    named = ", ".join(
        f"{result_type} x{n} reported by {reporter}"
        for (result_type, reporter), n in types.most_common(NAMED_SOURCES)
    )
    return Outcome.fail(
        f"TLS-RPT: {failed} of {failed + successful} TLS session(s) to {settings.domain} failed "
        f"{_window(settings)}: {named or 'no failure details given'}",
        facts,
    )


async def check_readiness(
    reader: ReportReader, settings: DmarcCheckSettings, phase: Phase
) -> Outcome:
    snapshot = await _snapshot(reader, settings, phase)
    readiness = assess(settings.domain, snapshot.records, settings.classifier)
    facts: dict[str, FactValue] = {
        "messages": readiness.messages,
        "legitimate_dmarc_fail": readiness.legitimate_failing,
        "verdict": readiness.verdict,
    }
    if readiness.verdict == READY_REJECT:
        return Outcome.ok(facts, detail=f"{settings.domain}: {READY_REJECT}")
    if readiness.verdict == NO_DATA:
        return Outcome.warn(
            f"no aggregate report for {settings.domain} {_window(settings)}: "
            "no evidence for a stricter policy yet",
            facts,
        )
    if readiness.verdict == NO_OWN_MAIL:
        return Outcome.warn(
            f"no report for {settings.domain} {_window(settings)} lists one of our own sources"
            f" ({readiness.messages} message(s), all from other sources): check dmarc.sources",
            facts,
        )
    blockers = "; ".join(b.describe() for b in readiness.blockers[:NAMED_SOURCES])
    verdict = (
        "not ready for quarantine or reject"
        if readiness.verdict == NOT_READY
        else "ready for quarantine, not for reject"
    )
    return Outcome.warn(
        f"{settings.domain} is {verdict}: {readiness.legitimate_failing} legitimate message(s) "
        f"would be hit {_window(settings)}; blockers: {blockers} "
        "(`mailprobe dmarc report` lists them all)",
        facts,
    )
