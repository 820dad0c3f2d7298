"""The ``dmarc`` section: where aggregate, failure and TLS-RPT reports come from, which
sending sources are ours, and when the DMARC checks warn or fail (docs/dmarc.md)."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from monitor.config.base import ConfigPath, PositiveSeconds, Schedule, Strict
from monitor.config.canary import ImapMailbox

MIB = 1 << 20


class SendingSource(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """Names the source in reasons and the readiness report (mx, srs, submission, a provider)."""
    networks: list[str] = Field(min_length=1)
    """Addresses or CIDR networks this source sends from."""

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not an address or CIDR network") from None
        return value


class DmarcLimits(Strict):
    max_message_bytes: int = Field(default=10 * MIB, ge=1024)
    """A mail or report file above this is refused unread."""
    max_report_bytes: int = Field(default=10 * MIB, ge=1024)
    """A report after decompression; zip and gzip bombs stop here."""
    max_records: int = Field(default=5_000, ge=1)
    """Records in one aggregate report (parsedmarc holds a report in memory, about 7 KB a
    record: a parser worker peaks near 95 MB at 5,000 records; docs/dmarc.md)."""


class Spoofing(Strict):
    warn_messages: int = Field(default=1, ge=1)
    """`spoofing` warns from this many foreign messages failing DMARC in the window."""
    fail_share: float = Field(default=0.1, gt=0, le=1)
    """`spoofing` fails when foreign DMARC failures are this share of all messages or more."""


class DmarcFolders(Strict):
    inbox: str = "INBOX"
    """Folder the reports arrive in."""
    archive: str = "Archive"
    """Processed reports go to its subfolders Aggregate, TLS, Feedback and Other (valid
    reports about other domains); nothing is ever deleted."""
    invalid: str = "Invalid"
    """Refused items go here."""


class DmarcSection(Strict):
    domains: list[str] = Field(default_factory=list)
    """Our domains; reports about any other domain are counted and set aside."""
    mailbox: ImapMailbox | None = None
    """IMAP mailbox the reports arrive in (the `rua`/`ruf` address); `serve` reads it."""
    folders: DmarcFolders = DmarcFolders()
    """Folders of `mailbox`."""
    paths: list[ConfigPath] = Field(default_factory=list)
    """Folders `serve` watches for report files (xml, xml.gz, zip, json, eml, mbox)."""
    schedule: Schedule = Schedule()
    """Interval and timeout of the DMARC checks."""
    poll_interval: PositiveSeconds = 60.0
    """Seconds between two looks at `paths` (and at the mailbox when it cannot IDLE)."""
    sources: list[SendingSource] = Field(default_factory=list)
    """Our own sending sources (MX, SRS, MTA, submission, authorised providers): class `ours`."""
    window_days: int = Field(default=7, ge=1, le=366)
    """The checks and the readiness report look at reports that ended this many days back."""
    fresh_days: float = Field(default=2.0, gt=0)
    """`reports-fresh` warns when no aggregate report ended within this many days."""
    spoofing: Spoofing = Spoofing()
    top_reporters: int = Field(default=20, ge=1, le=200)
    """Reporters named in metric labels, in order of first report; later ones are `other`."""
    limits: DmarcLimits = DmarcLimits()
    workers: int = Field(default=1, ge=1, le=32)
    """Parser processes beside the main one (each holds parsedmarc, about 60 MB, plus up to
    one report; docs/performance.md)."""
    in_flight: int = Field(default=8, ge=1, le=256)
    """Items read and not yet stored at once (bounds memory with the size limits)."""

    @field_validator("domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [d.strip().lower().rstrip(".") for d in value]
