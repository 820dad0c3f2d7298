"""Metrics of the DMARC source: what the stored reports say, counted per report stored.

Counters count at ingestion time (a report describes the day before it arrives); the
``mailprobe_dmarc_report_end_timestamp_seconds`` gauge says which period they cover.
They are the state file's counts (:meth:`DmarcCollector.load`, at start and after each
look at the sources), so a restart neither loses nor doubles a count, and reports that
``mailprobe dmarc import`` adds beside a running ``serve`` show up too.

Labels stay bounded whatever a report says: ``domain`` is one of ``dmarc.domains`` (other
domains are set aside before counting); ``reporter`` is one of the first
``dmarc.top_reporters`` reporting organisations in order of their first report, else
``other``; free-text values from reports (result types, feedback types, dispositions)
are mapped onto the words their RFCs define, else ``other``. No address, report id or
subject is ever a label.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporters.dmarc.classify import Classifier
from exporters.dmarc.errors import Reason
from exporters.dmarc.model import ReportKind
from exporters.dmarc.store import (
    FeedbackRow,
    History,
    ItemOutcome,
    LastReport,
    RecordRow,
    TlsFailureRow,
    TlsRow,
)
from monitor.metrics.facts import FactMetric

KIND = "dmarc"
OTHER = "other"
DISPOSITIONS = frozenset({"none", "quarantine", "reject", "pass"})
TLS_RESULT_TYPES = frozenset(
    {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)
"""RFC 8460 section 4.3 result types."""
FEEDBACK_TYPES = frozenset({"abuse", "fraud", "virus", "other", "not-spam", "auth-failure"})
"""RFC 5965 and RFC 6591 feedback types."""
AUTH_FAILURES = frozenset({"adsp", "bodyhash", "revoked", "signature", "spf", "dmarc", "dkim"})
"""RFC 6591 Auth-Failure values (and dkim, which some reporters send)."""
_REPORTER_CHARS = re.compile(r"[^a-z0-9._ -]+")

METRICS = {
    "mailprobe_dmarc_messages_total": "Messages in stored aggregate reports.",
    "mailprobe_dmarc_reports_total": "Reports stored, by kind (aggregate, tls, feedback).",
    "mailprobe_dmarc_invalid_reports_total": "Items (mails, files) refused, by reason.",
    "mailprobe_dmarc_duplicate_reports_total": "Items carrying a report already stored.",
    "mailprobe_dmarc_other_domain_reports_total": "Valid reports about unconfigured domains.",
    "mailprobe_dmarc_report_end_timestamp_seconds": "End of the newest report's period.",
    "mailprobe_dmarc_tls_sessions_total": "TLS sessions in stored TLS-RPT reports.",
    "mailprobe_dmarc_tls_failures_total": "Failed TLS sessions by RFC 8460 result type.",
    "mailprobe_dmarc_failure_reports_total": "DMARC failure reports by auth failure.",
    "mailprobe_dmarc_feedback_reports_total": "Feedback (ARF) reports by type and reporter.",
    "mailprobe_dmarc_source_errors_total": "Failed looks at a report source, by phase.",
    "mailprobe_dmarc_source_last_success_timestamp_seconds": "Last complete look at a source.",
}


def _word(value: str, allowed: frozenset[str]) -> str:
    value = value.strip().lower()
    return value if value in allowed else OTHER


class DmarcCollector(Collector):
    """Counts stored reports; ``collect`` renders them at scrape time under a lock."""

    def __init__(self, domains: Iterable[str], classifier: Classifier, top_reporters: int):
        self._domains = frozenset(domains)
        self._classifier = classifier
        self._top = top_reporters
        self._reporters: dict[str, str] = {}
        self._lock = threading.Lock()
        self._messages: Counter[tuple[str, ...]] = Counter()
        self._reports: Counter[str] = Counter({k.value: 0 for k in ReportKind})
        self._invalid: Counter[str] = Counter(
            {r.value: 0 for r in Reason if r is not Reason.OTHER_DOMAIN}
        )
        self._duplicates = 0
        self._other_domain = 0
        self._last: dict[tuple[str, str, str], int] = {}
        self._tls_sessions: Counter[tuple[str, str, str]] = Counter()
        self._tls_failures: Counter[tuple[str, str, str]] = Counter()
        self._failure_reports: Counter[tuple[str, str]] = Counter()
        self._feedback: Counter[tuple[str, str]] = Counter()
        self._source_errors: Counter[tuple[str, str]] = Counter()
        self._source_success: dict[str, float] = {}

    def reporter(self, org: str) -> str:
        """The label of ``org``: its own name for the first ``top_reporters``, else other."""
        name = _REPORTER_CHARS.sub("", org.strip().lower())[:64] or "unknown"
        label = self._reporters.get(name)
        if label is None:
            label = name if len(self._reporters) < self._top else OTHER
            self._reporters[name] = label
        return label

    def load(self, history: History) -> None:
        """Replace every count with those of the state file (``history``): called when
        ``serve`` starts and after each look at the sources, so a restart, or a report
        imported by ``mailprobe dmarc import`` meanwhile, shows the same counts."""
        with self._lock:
            self._reset()
            for org in history.orgs:
                self.reporter(org)
            for (outcome, reason), n in history.items.items():
                self._count_item(outcome, reason, n)
            snapshot = history.snapshot
            for kind, n in snapshot.reports.items():
                self._reports[kind] += n
            self._add_rows(snapshot.records, snapshot.tls, snapshot.tls_failures, snapshot.feedback)
            for last in snapshot.last:
                self._note_last(last)

    def _reset(self) -> None:
        self._reporters = {}
        self._messages = Counter()
        self._reports = Counter({k.value: 0 for k in ReportKind})
        self._invalid = Counter({r.value: 0 for r in Reason if r is not Reason.OTHER_DOMAIN})
        self._duplicates = 0
        self._other_domain = 0
        self._last = {}
        self._tls_sessions = Counter()
        self._tls_failures = Counter()
        self._failure_reports = Counter()
        self._feedback = Counter()

    def polled(self, source: str) -> None:
        """``source`` (directory, mailbox) was read through without an error."""
        with self._lock:
            self._source_success[source] = time.time()

    def failed(self, source: str, phase: str) -> None:
        with self._lock:
            self._source_errors[(source, phase)] += 1

    def _count_item(self, outcome: str, reason: str, n: int) -> None:
        if outcome == ItemOutcome.INVALID:
            self._invalid[reason] += n
        elif outcome == ItemOutcome.DUPLICATE:
            self._duplicates += n
        elif outcome == ItemOutcome.OTHER_DOMAIN:
            self._other_domain += n

    def _note_last(self, last: LastReport) -> None:
        if last.domain not in self._domains:
            return
        key = (last.kind, last.domain, self.reporter(last.reporter))
        self._last[key] = max(self._last.get(key, 0), last.end)

    def _add_rows(
        self,
        records: Iterable[RecordRow],
        tls: Iterable[TlsRow],
        failures: Iterable[TlsFailureRow],
        feedback: Iterable[FeedbackRow],
    ) -> None:
        for r in records:
            key = (
                r.domain,
                self.reporter(r.reporter),
                _word(r.disposition, DISPOSITIONS),
                str(r.dkim_aligned).lower(),
                str(r.spf_aligned).lower(),
                "pass" if r.dmarc_pass else "fail",
                self._classifier.classify(r).value,
            )
            self._messages[key] += r.count
        for t in tls:
            reporter = self.reporter(t.reporter)
            self._tls_sessions[(t.domain, reporter, "successful")] += t.successful
            self._tls_sessions[(t.domain, reporter, "failed")] += t.failed
        for f in failures:
            key3 = (f.domain, self.reporter(f.reporter), _word(f.result_type, TLS_RESULT_TYPES))
            self._tls_failures[key3] += f.sessions
        for b in feedback:
            feedback_type = _word(b.feedback_type, FEEDBACK_TYPES)
            self._feedback[(feedback_type, self.reporter(b.reporter))] += b.count
            if feedback_type == "auth-failure":
                for failure in [f for f in b.auth_failure.split(",") if f] or [OTHER]:
                    self._failure_reports[(b.domain, _word(failure, AUTH_FAILURES))] += b.count

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._families()

    def _families(self) -> Iterator[Metric]:
        def counter(name: str, labels: list[str], values: Any) -> CounterMetricFamily:
            family = CounterMetricFamily(name.removesuffix("_total"), METRICS[name], labels=labels)
            for key, value in sorted(values.items()):
                family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
            return family

        yield counter(
            "mailprobe_dmarc_messages_total",
            [
                "domain",
                "reporter",
                "disposition",
                "dkim_aligned",
                "spf_aligned",
                "dmarc",
                "source_class",
            ],
            self._messages,
        )
        yield counter("mailprobe_dmarc_reports_total", ["kind"], self._reports)
        yield counter("mailprobe_dmarc_invalid_reports_total", ["reason"], self._invalid)
        yield counter("mailprobe_dmarc_duplicate_reports_total", [], {(): self._duplicates})
        yield counter("mailprobe_dmarc_other_domain_reports_total", [], {(): self._other_domain})
        last = GaugeMetricFamily(
            "mailprobe_dmarc_report_end_timestamp_seconds",
            METRICS["mailprobe_dmarc_report_end_timestamp_seconds"],
            labels=["kind", "domain", "reporter"],
        )
        for key, end in sorted(self._last.items()):
            last.add_metric(list(key), end)
        yield last
        yield counter(
            "mailprobe_dmarc_tls_sessions_total",
            ["domain", "reporter", "result"],
            self._tls_sessions,
        )
        yield counter(
            "mailprobe_dmarc_tls_failures_total",
            ["domain", "reporter", "result_type"],
            self._tls_failures,
        )
        yield counter(
            "mailprobe_dmarc_failure_reports_total",
            ["domain", "auth_failure"],
            self._failure_reports,
        )
        yield counter(
            "mailprobe_dmarc_feedback_reports_total",
            ["feedback_type", "reporter"],
            self._feedback,
        )
        yield counter(
            "mailprobe_dmarc_source_errors_total", ["source", "phase"], self._source_errors
        )
        polled = GaugeMetricFamily(
            "mailprobe_dmarc_source_last_success_timestamp_seconds",
            METRICS["mailprobe_dmarc_source_last_success_timestamp_seconds"],
            labels=["source"],
        )
        for source, at in sorted(self._source_success.items()):
            polled.add_metric([source], at)
        yield polled


FACT_METRICS: tuple[FactMetric, ...] = (
    FactMetric(
        KIND,
        "own_dmarc_fail",
        "mailprobe_dmarc_own_failing_messages",
        "Messages from our own sources failing DMARC in the check window (own-sources).",
    ),
    FactMetric(
        KIND,
        "foreign_dmarc_fail",
        "mailprobe_dmarc_foreign_failing_messages",
        "Messages from foreign sources failing DMARC in the check window (spoofing).",
    ),
    FactMetric(
        KIND,
        "foreign_dmarc_fail_share",
        "mailprobe_dmarc_foreign_failing_ratio",
        "Foreign DMARC failures as a share of all messages in the window (spoofing).",
    ),
    FactMetric(
        KIND,
        "legitimate_dmarc_fail",
        "mailprobe_dmarc_legitimate_failing_messages",
        "Legitimate (ours + forwarded) messages a stricter policy would hit (readiness).",
    ),
    FactMetric(
        KIND,
        "verdict",
        "mailprobe_dmarc_readiness",
        "1 for the domain's readiness verdict, 0 for the others (readiness).",
        states=(
            "ready for reject",
            "ready for quarantine",
            "not ready",
            "no mail from our sources",
            "no data",
        ),
        state_label="verdict",
    ),
)
