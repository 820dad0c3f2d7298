"""Typed reports as mailprobe keeps them: only the fields the checks, metrics and the
readiness report use, taken from parsedmarc's dictionaries in one place (``parse``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ReportKind(enum.StrEnum):
    AGGREGATE = "aggregate"
    TLS = "tls"
    FEEDBACK = "feedback"


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    """One row of an aggregate report (parsedmarc splits rows spanning several days)."""

    source_ip: str
    count: int
    disposition: str
    """What the receiver did: none, quarantine, reject (RFC 9990 adds pass)."""
    dkim_aligned: bool
    """policy_evaluated dkim = pass: DKIM passed with a domain aligned to header From."""
    spf_aligned: bool
    overrides: tuple[str, ...]
    """policy_override_reasons types (forwarded, trusted_forwarder, mailing_list, ...)."""
    override_comments: str
    """Their comments joined; some receivers say ``arc=pass`` here."""
    header_from: str
    envelope_from: str
    dkim_domains: str
    """``domain=result`` for each DKIM signature, comma separated."""
    spf_domain: str
    """``domain=result`` of the SPF check."""
    begin: int
    end: int

    @property
    def dmarc_pass(self) -> bool:
        return self.dkim_aligned or self.spf_aligned


@dataclass(frozen=True, slots=True)
class AggregateReport:
    org: str
    report_id: str
    begin: int
    end: int
    domain: str
    """policy_published domain, lower case."""
    policy: str
    records: tuple[AggregateRecord, ...]

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.records)


@dataclass(frozen=True, slots=True)
class TlsFailure:
    result_type: str
    sessions: int
    sending_ip: str
    receiving_mx: str


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    domain: str
    policy_type: str
    successful: int
    failed: int
    failures: tuple[TlsFailure, ...]


@dataclass(frozen=True, slots=True)
class TlsReport:
    org: str
    report_id: str
    begin: int
    end: int
    policies: tuple[TlsPolicy, ...]


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """An ARF report (RFC 5965): DMARC failure reports are feedback type auth-failure."""

    feedback_type: str
    reporter: str
    """The reporting organisation: the domain of the report mail's From."""
    reported_domain: str
    auth_failure: str
    """Comma-separated Auth-Failure values (dkim, spf, ...), empty for abuse reports."""
    source_ip: str
    arrival: int


Report = AggregateReport | TlsReport | FeedbackReport


def kind_of(report: Report) -> ReportKind:
    if isinstance(report, AggregateReport):
        return ReportKind.AGGREGATE
    if isinstance(report, TlsReport):
        return ReportKind.TLS
    return ReportKind.FEEDBACK
