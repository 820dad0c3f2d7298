"""``mailprobe dmarc report``: the readiness report, as a JSON-able dict and as text."""

from __future__ import annotations

import time
from typing import Any

from exporters.dmarc.classify import SourceClass
from exporters.dmarc.ptr import ptr_names
from exporters.dmarc.readiness import Readiness, assess
from exporters.dmarc.store import Snapshot
from monitor.checks.dmarc import classifier_of
from monitor.checks.dns import make_resolver
from monitor.config import Config
from monitor.state.dmarc_reports import DmarcReportFile

DAY = 86400


async def build_report(config: Config, days: int, lookup_ptr: bool = True) -> dict[str, Any]:
    section = config.dmarc
    since = time.time() - days * DAY
    snapshot = await DmarcReportFile(config.state_dir).snapshot(since)
    classifier = classifier_of(section)
    domains = [assess(d, snapshot.records, classifier) for d in section.domains]
    names: dict[str, str] = {}
    if lookup_ptr and config.dns.resolvers:
        addresses = sorted({s.address for r in domains for s in r.sources})
        names = await ptr_names(make_resolver(config.dns), addresses)
    return {
        "days": days,
        "since": int(since),
        "reports": sum(snapshot.reports.values()),
        "reports_by_kind": dict(sorted(snapshot.reports.items())),
        "messages": sum(r.messages for r in domains),
        "domains": [_domain(r, snapshot, names) for r in domains],
    }


def _domain(readiness: Readiness, snapshot: Snapshot, names: dict[str, str]) -> dict[str, Any]:
    domain = readiness.domain
    legit = readiness.legitimate_failing
    feedback = [f for f in snapshot.feedback if f.domain == domain]
    tls = [t for t in snapshot.tls if t.domain == domain]
    return {
        "domain": domain,
        "verdict": readiness.verdict,
        "blockers": [
            {
                "address": b.address,
                "class": b.source_class.value,
                "name": b.name,
                "failing": b.failing,
                "messages": b.messages,
            }
            for b in readiness.blockers
        ],
        "messages": readiness.messages,
        "classes": {c.value: t.as_dict() for c, t in readiness.classes.items()},
        "p_quarantine": {"legitimate_messages_quarantined": legit},
        "p_reject": {"legitimate_messages_rejected": legit},
        "sources": [
            {
                "address": s.address,
                "class": s.source_class.value,
                "name": s.own_name,
                "ptr": names.get(s.address, ""),
                "reporters": sorted(s.reporters),
                **s.tally.as_dict(),
            }
            for s in readiness.sources
        ],
        "tls_rpt": {
            "reports": len({(t.reporter, t.report_end) for t in tls}),
            "successful_sessions": sum(t.successful for t in tls),
            "failed_sessions": sum(t.failed for t in tls),
        },
        "feedback": {
            "reports": len(feedback),
            "by_type": _count(f.feedback_type for f in feedback),
            "by_reporter": _count(f.reporter for f in feedback),
        },
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"DMARC readiness, reports that ended in the last {report['days']} day(s): "
        f"{report['reports']} report(s), {report['messages']} message(s)",
    ]
    for d in report["domains"]:
        lines += ["", f"{d['domain']}: {d['verdict']} ({d['messages']} message(s))"]
        for b in d["blockers"]:
            who = f"{b['name']} ({b['address']})" if b["name"] else b["address"]
            lines.append(
                f"  blocker: {who} [{b['class']}]: {b['failing']} of {b['messages']} fail DMARC"
            )
        lines.append(
            f"  p=quarantine would quarantine, p=reject would reject "
            f"{d['p_reject']['legitimate_messages_rejected']} legitimate message(s)"
        )
        lines.append(
            f"  {'class':<10} {'messages':>9} {'pass':>7} {'fail':>7} {'dkim':>7} {'spf':>7}"
        )
        for name in (c.value for c in SourceClass):
            t = d["classes"][name]
            lines.append(
                f"  {name:<10} {t['messages']:>9} {t['dmarc_pass']:>7} {t['dmarc_fail']:>7}"
                f" {t['dkim_aligned']:>7} {t['spf_aligned']:>7}"
            )
        if d["sources"]:
            lines.append(
                f"  {'source':<40} {'class':<10} {'messages':>9} {'pass':>7} {'fail':>7}"
                f" {'dkim':>7} {'spf':>7}  reporters"
            )
        for s in d["sources"]:
            label = s["address"] + (f" {s['name']}" if s["name"] else "")
            label += f" ({s['ptr']})" if s["ptr"] else ""
            lines.append(
                f"  {label:<40} {s['class']:<10} {s['messages']:>9} {s['dmarc_pass']:>7}"
                f" {s['dmarc_fail']:>7} {s['dkim_aligned']:>7} {s['spf_aligned']:>7}"
                f"  {', '.join(s['reporters'])}"
            )
        tls = d["tls_rpt"]
        lines.append(
            f"  TLS-RPT: {tls['reports']} report(s), {tls['successful_sessions']} successful and "
            f"{tls['failed_sessions']} failed session(s)"
        )
        fb = d["feedback"]
        if fb["reports"]:
            kinds = ", ".join(f"{k} {n}" for k, n in fb["by_type"].items())
            lines.append(f"  feedback reports: {fb['reports']} ({kinds})")
    return "\n".join(lines) + "\n"
