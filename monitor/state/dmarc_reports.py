"""DMARC reports on the state file: implements the DMARC source's ReportStore and
ReportReader.

An item and its report are written in one transaction, so an item counts as processed
only once its report is committed. ``DmarcReportFile`` reads a state file that another
process (``serve``) may be writing, for ``mailprobe run`` and ``mailprobe dmarc report``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from exporters.dmarc.errors import Reason
from exporters.dmarc.model import AggregateReport, FeedbackReport, Report, TlsReport, kind_of
from exporters.dmarc.store import (
    Entry,
    FeedbackRow,
    History,
    ItemOutcome,
    LastReport,
    RecordRow,
    Snapshot,
    TlsFailureRow,
    TlsRow,
)
from monitor.state.store import STATE_FILE_NAME, StateStore


class DmarcReports:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def seen(self, item_sha256: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT i.outcome, p.kind FROM dmarc_items i"
                " LEFT JOIN dmarc_reports p ON p.id = i.report WHERE i.sha256 = ?",
                (item_sha256,),
            ).fetchone()
            if row is None:
                return None
            return str(row[1]) if row[1] is not None else str(row[0])

        return await self._store.run(read)

    async def record(self, entry: Entry) -> ItemOutcome:
        return await self._store.run(lambda conn: record_entry(conn, entry))

    async def snapshot(self, since: float) -> Snapshot:
        return await self._store.run(lambda conn: read_snapshot(conn, since))

    async def history(self) -> History:
        """Everything the metrics are rebuilt from when ``serve`` starts."""
        return await self._store.run(read_history)


def read_history(conn: sqlite3.Connection) -> History:
    """What the metrics count, grouped in SQL by what becomes a label (plus the source
    address and overrides the class is computed from), so its size follows the number
    of distinct sources, not of stored records."""
    items = {
        (str(outcome), str(reason)): int(n)
        for outcome, reason, n in conn.execute(
            "SELECT outcome, reason, COUNT(*) FROM dmarc_items GROUP BY outcome, reason"
        )
    }
    orgs = [
        str(r[0])
        for r in conn.execute("SELECT org FROM dmarc_reports GROUP BY org ORDER BY MIN(id)")
    ]
    records = tuple(
        RecordRow(
            r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), r[8], r[9], "", "", "", ""
        )
        for r in conn.execute(
            'SELECT p.domain, p.org, MAX(p."end"), r.source_ip, SUM(r.count), r.disposition,'
            " r.dkim_aligned, r.spf_aligned, r.overrides, r.override_comments"
            " FROM dmarc_records r JOIN dmarc_reports p ON p.id = r.report"
            " GROUP BY p.domain, p.org, r.source_ip, r.disposition, r.dkim_aligned,"
            " r.spf_aligned, r.overrides, r.override_comments"
        )
    )
    tls = tuple(
        TlsRow(*r)
        for r in conn.execute(
            'SELECT t.domain, p.org, MAX(p."end"), t.policy_type, SUM(t.successful),'
            " SUM(t.failed) FROM dmarc_tls_policies t JOIN dmarc_reports p ON p.id = t.report"
            " GROUP BY t.domain, p.org, t.policy_type"
        )
    )
    tls_failures = tuple(
        TlsFailureRow(r[0], r[1], r[2], r[3], r[4], "")
        for r in conn.execute(
            'SELECT f.domain, p.org, MAX(p."end"), f.result_type, SUM(f.sessions)'
            " FROM dmarc_tls_failures f JOIN dmarc_reports p ON p.id = f.report"
            " GROUP BY f.domain, p.org, f.result_type"
        )
    )
    feedback = tuple(
        FeedbackRow(r[0], r[1], r[2], r[3], "", 0, "", r[4])
        for r in conn.execute(
            "SELECT f.reported_domain, f.reporter, f.feedback_type, f.auth_failure, COUNT(*)"
            " FROM dmarc_feedback f GROUP BY f.reported_domain, f.reporter, f.feedback_type,"
            " f.auth_failure"
        )
    )
    reports = {
        str(kind): int(n)
        for kind, n in conn.execute("SELECT kind, COUNT(*) FROM dmarc_reports GROUP BY kind")
    }
    snapshot = Snapshot(0, records, tls, tls_failures, feedback, reports, _last(conn))
    return History(snapshot, items, orgs)


class DmarcReportFile:
    """Read-only access to ``state_dir``'s file, opened per call; empty if there is none."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE_NAME

    async def snapshot(self, since: float) -> Snapshot:
        return await asyncio.to_thread(self._snapshot, since)

    def _snapshot(self, since: float) -> Snapshot:
        if not self.path.is_file():
            return empty_snapshot(since)
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "dmarc_reports" not in tables:
                return empty_snapshot(since)
            return read_snapshot(conn, since)
        finally:
            conn.close()


def _key(report: Report) -> str:
    if isinstance(report, AggregateReport):
        return json.dumps([report.org, report.report_id, report.begin, report.end])
    if isinstance(report, TlsReport):
        return json.dumps([report.org, report.report_id])
    return ""


def _summary(report: Report) -> tuple[str, str, int, int, str]:
    """org, report_id, begin, end, domain of a report, for its row."""
    if isinstance(report, AggregateReport):
        return report.org, report.report_id, report.begin, report.end, report.domain
    if isinstance(report, TlsReport):
        domain = report.policies[0].domain if report.policies else ""
        return report.org, report.report_id, report.begin, report.end, domain
    return report.reporter, "", report.arrival, report.arrival, report.reported_domain


def record_entry(conn: sqlite3.Connection, entry: Entry) -> ItemOutcome:
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcome, report_row = _classify(conn, entry)
        conn.execute(
            "INSERT INTO dmarc_items (sha256, origin, outcome, reason, detail, report, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                entry.item_sha256,
                entry.origin,
                outcome.value,
                entry.reason.value if entry.reason else "",
                entry.detail,
                report_row,
                entry.received_at,
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return outcome


def _classify(conn: sqlite3.Connection, entry: Entry) -> tuple[ItemOutcome, int | None]:
    if conn.execute("SELECT 1 FROM dmarc_items WHERE sha256 = ?", (entry.item_sha256,)).fetchone():
        return ItemOutcome.SEEN, None
    report = entry.report
    if report is None:
        if entry.reason is Reason.OTHER_DOMAIN:
            return ItemOutcome.OTHER_DOMAIN, None
        return ItemOutcome.INVALID, None
    kind = kind_of(report).value
    key = _key(report) or entry.report_sha256
    existing = conn.execute(
        "SELECT id FROM dmarc_reports WHERE kind = ? AND (key = ? OR sha256 = ?)",
        (kind, key, entry.report_sha256),
    ).fetchone()
    if existing is not None:
        return ItemOutcome.DUPLICATE, int(existing[0])
    org, report_id, begin, end, domain = _summary(report)
    cursor = conn.execute(
        'INSERT INTO dmarc_reports (kind, key, org, report_id, begin, "end", domain, sha256,'
        " kept_path, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            key,
            org,
            report_id,
            begin,
            end,
            domain,
            entry.report_sha256,
            entry.kept_path,
            entry.received_at,
        ),
    )
    row = int(cursor.lastrowid or 0)
    _insert_details(conn, row, report)
    return ItemOutcome.NEW, row


def _insert_details(conn: sqlite3.Connection, row: int, report: Report) -> None:
    if isinstance(report, AggregateReport):
        conn.executemany(
            "INSERT INTO dmarc_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    row,
                    r.source_ip,
                    r.count,
                    r.disposition,
                    int(r.dkim_aligned),
                    int(r.spf_aligned),
                    ",".join(r.overrides),
                    r.override_comments,
                    r.header_from,
                    r.envelope_from,
                    r.dkim_domains,
                    r.spf_domain,
                    r.begin,
                    r.end,
                )
                for r in report.records
            ],
        )
    elif isinstance(report, TlsReport):
        conn.executemany(
            "INSERT INTO dmarc_tls_policies VALUES (?, ?, ?, ?, ?)",
            [(row, p.domain, p.policy_type, p.successful, p.failed) for p in report.policies],
        )
        conn.executemany(
            "INSERT INTO dmarc_tls_failures VALUES (?, ?, ?, ?, ?, ?)",
            [
                (row, p.domain, f.result_type, f.sessions, f.sending_ip, f.receiving_mx)
                for p in report.policies
                for f in p.failures
            ],
        )
    elif isinstance(report, FeedbackReport):
        conn.execute(
            "INSERT INTO dmarc_feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row,
                report.feedback_type,
                report.reporter,
                report.reported_domain,
                report.auth_failure,
                report.source_ip,
                report.arrival,
            ),
        )


def empty_snapshot(since: float) -> Snapshot:
    return Snapshot(since, (), (), (), (), {}, ())


def read_snapshot(conn: sqlite3.Connection, since: float) -> Snapshot:
    records = tuple(
        RecordRow(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            bool(r[6]),
            bool(r[7]),
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            r[13],
        )
        for r in conn.execute(
            'SELECT p.domain, p.org, p."end", r.source_ip, r.count, r.disposition,'
            " r.dkim_aligned, r.spf_aligned, r.overrides, r.override_comments, r.header_from,"
            " r.envelope_from, r.dkim_domains, r.spf_domain"
            " FROM dmarc_records r JOIN dmarc_reports p ON p.id = r.report"
            ' WHERE p."end" >= ? ORDER BY p.id',
            (since,),
        )
    )
    tls = tuple(
        TlsRow(*r)
        for r in conn.execute(
            'SELECT t.domain, p.org, p."end", t.policy_type, t.successful, t.failed'
            " FROM dmarc_tls_policies t JOIN dmarc_reports p ON p.id = t.report"
            ' WHERE p."end" >= ? ORDER BY p.id',
            (since,),
        )
    )
    tls_failures = tuple(
        TlsFailureRow(*r)
        for r in conn.execute(
            'SELECT f.domain, p.org, p."end", f.result_type, f.sessions, f.receiving_mx'
            " FROM dmarc_tls_failures f JOIN dmarc_reports p ON p.id = f.report"
            ' WHERE p."end" >= ? ORDER BY p.id',
            (since,),
        )
    )
    feedback = tuple(
        FeedbackRow(*r)
        for r in conn.execute(
            "SELECT f.reported_domain, f.reporter, f.feedback_type, f.auth_failure,"
            " f.source_ip, f.arrival, p.kept_path"
            " FROM dmarc_feedback f JOIN dmarc_reports p ON p.id = f.report"
            ' WHERE p."end" >= ? ORDER BY p.id',
            (since,),
        )
    )
    reports = {
        str(kind): int(n)
        for kind, n in conn.execute(
            'SELECT kind, COUNT(*) FROM dmarc_reports WHERE "end" >= ? GROUP BY kind', (since,)
        )
    }
    return Snapshot(since, records, tls, tls_failures, feedback, reports, _last(conn))


def _last(conn: sqlite3.Connection) -> tuple[LastReport, ...]:
    return tuple(
        LastReport(*r)
        for r in conn.execute(
            'SELECT kind, domain, org, MAX("end") FROM dmarc_reports'
            " GROUP BY kind, domain, org ORDER BY kind, domain, org"
        )
    )
