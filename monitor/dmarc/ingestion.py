"""An :class:`Ingestor` built from the ``dmarc`` section and an open state store."""

from __future__ import annotations

from pathlib import Path

from exporters.dmarc.ingest import Ingestor
from exporters.dmarc.limits import Limits
from exporters.dmarc.pool import ParsePool
from monitor.config.dmarc import DmarcSection
from monitor.state import StateStore
from monitor.state.dmarc_reports import DmarcReports

FEEDBACK_DIR = "dmarc-feedback"
"""Under ``state_dir``: feedback (ARF) mails as received, mode 0600."""


def limits_of(section: DmarcSection) -> Limits:
    return Limits(
        max_message_bytes=section.limits.max_message_bytes,
        max_report_bytes=section.limits.max_report_bytes,
        max_records=section.limits.max_records,
    )


def build_ingestor(section: DmarcSection, store: StateStore, state_dir: Path) -> Ingestor:
    pool = ParsePool(section.workers, section.in_flight, limits_of(section))
    return Ingestor(DmarcReports(store), pool, frozenset(section.domains), state_dir / FEEDBACK_DIR)
