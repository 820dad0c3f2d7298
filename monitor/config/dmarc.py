"""The ``dmarc`` section: where aggregate, failure and TLS-RPT reports come from."""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import ConfigPath, Schedule, Strict
from monitor.config.canary import ImapMailbox


class DmarcSection(Strict):
    domains: list[str] = Field(default_factory=list)
    mailbox: ImapMailbox | None = None
    paths: list[ConfigPath] = Field(default_factory=list)
    schedule: Schedule = Schedule()
