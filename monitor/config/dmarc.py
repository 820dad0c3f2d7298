"""The ``dmarc`` section: where aggregate, failure and TLS-RPT reports come from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from monitor.config.base import Schedule, Strict
from monitor.config.canary import ImapMailbox


class DmarcSection(Strict):
    domains: list[str] = Field(default_factory=list)
    mailbox: ImapMailbox | None = None
    paths: list[Path] = Field(default_factory=list)
    schedule: Schedule = Schedule()
