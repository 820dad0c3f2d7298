"""What the DMARC source needs from persistence, as protocols ``monitor.state`` implements.

Writing is one call per item so that "processed" means "committed": an item (a file, a
mail) is recorded together with the report it carried, in one transaction, and only
then moved out of the mailbox.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from exporters.dmarc.errors import Reason
from exporters.dmarc.model import Report


class ItemOutcome(enum.StrEnum):
    NEW = "new"
    """A report not seen before: stored and counted."""
    DUPLICATE = "duplicate"
    """A new item (another mail or file) carrying a report already stored."""
    SEEN = "seen"
    """This very item (same bytes) was processed before: nothing changes."""
    INVALID = "invalid"
    OTHER_DOMAIN = "other_domain"
    """A valid report about a domain that is not configured: set aside."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One processed item and what it turned out to be."""

    item_sha256: str
    origin: str
    """Where it came from (a path, ``imap:INBOX/UID``): for people, never a label."""
    received_at: float
    report: Report | None = None
    report_sha256: str = ""
    """Hash of the report payload: the same report in another mail has the same hash."""
    reason: Reason | None = None
    detail: str = ""
    kept_path: str = ""
    """Where a feedback report's mail was kept (mode 0600)."""


class ReportStore(Protocol):
    async def seen(self, item_sha256: str) -> str | None:
        """None for an item never processed, else what it was: a report kind
        (aggregate, tls, feedback), ``invalid`` or ``other_domain``."""
        ...

    async def record(self, entry: Entry) -> ItemOutcome:
        """Store ``entry`` in one transaction; say whether it was new, a duplicate, ..."""
        ...


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One aggregate record with its report's domain, reporter and end."""

    domain: str
    reporter: str
    report_end: int
    source_ip: str
    count: int
    disposition: str
    dkim_aligned: bool
    spf_aligned: bool
    overrides: str
    """policy_override_reasons types, comma separated."""
    override_comments: str
    header_from: str
    envelope_from: str
    dkim_domains: str
    spf_domain: str

    @property
    def dmarc_pass(self) -> bool:
        return self.dkim_aligned or self.spf_aligned


@dataclass(frozen=True, slots=True)
class TlsRow:
    domain: str
    reporter: str
    report_end: int
    policy_type: str
    successful: int
    failed: int


@dataclass(frozen=True, slots=True)
class TlsFailureRow:
    domain: str
    reporter: str
    report_end: int
    result_type: str
    sessions: int
    receiving_mx: str


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    domain: str
    reporter: str
    feedback_type: str
    auth_failure: str
    source_ip: str
    arrival: int
    kept_path: str
    count: int = 1
    """Reports this row stands for (more than 1 only in the metrics' grouped read)."""


@dataclass(frozen=True, slots=True)
class LastReport:
    kind: str
    domain: str
    reporter: str
    end: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything stored about reports whose period ended at or after ``since``."""

    since: float
    records: tuple[RecordRow, ...]
    tls: tuple[TlsRow, ...]
    tls_failures: tuple[TlsFailureRow, ...]
    feedback: tuple[FeedbackRow, ...]
    reports: dict[str, int]
    """Reports by kind in the window."""
    last: tuple[LastReport, ...]
    """The newest report end per kind, domain and reporter, over all time."""


@dataclass(frozen=True, slots=True)
class History:
    """What the metrics count, from the state file."""

    snapshot: Snapshot
    """Every stored report, rows grouped by what the metrics count (since 0)."""
    items: dict[tuple[str, str], int]
    """Items by (outcome, reason)."""
    orgs: list[str]
    """Reporting organisations in order of their first report."""


class ReportReader(Protocol):
    async def snapshot(self, since: float) -> Snapshot: ...
