"""From an item (a file's bytes, a mail) to a stored report: parse in the pool, keep only
the configured domains, keep feedback mails on disk (0600), record in one transaction."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from exporters.dmarc.errors import Reason
from exporters.dmarc.model import AggregateReport, FeedbackReport, Report, TlsReport, kind_of
from exporters.dmarc.pool import ParsePool
from exporters.dmarc.store import Entry, ItemOutcome, ReportStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Item:
    """One unit of input: the bytes of a report file or of one mail."""

    origin: str
    data: bytes
    is_message: bool
    refusal: tuple[Reason, str] | None = None
    """Set when the item was refused before it was read (e.g. a file above the cap);
    ``data`` then holds only what identifies it."""


@dataclass(frozen=True, slots=True)
class Ingested:
    origin: str
    outcome: ItemOutcome
    report: Report | None = None
    reason: Reason | None = None
    detail: str = ""
    kind: str = ""
    """What the item was: a report kind (aggregate, tls, feedback), ``invalid`` or
    ``other_domain``; also for an item seen before (where a mailbox files it)."""


class Ingestor:
    def __init__(
        self,
        store: ReportStore,
        pool: ParsePool,
        domains: frozenset[str],
        feedback_dir: Path,
    ) -> None:
        self._store = store
        self._pool = pool
        self._domains = domains
        self._feedback_dir = feedback_dir

    async def ingest(self, item: Item) -> Ingested:
        sha = hashlib.sha256(item.data).hexdigest()
        earlier = await self._store.seen(sha)
        if earlier is not None:
            return Ingested(item.origin, ItemOutcome.SEEN, kind=earlier)
        entry = Entry(sha, item.origin, time.time())
        if item.refusal is not None:
            entry = replace(entry, reason=item.refusal[0], detail=item.refusal[1])
        else:
            analysis = await self._pool.analyse(item.data, item.is_message)
            if analysis.report is None:
                entry = replace(entry, reason=analysis.reason, detail=analysis.detail)
            else:
                entry = self._judge(entry, analysis.report, analysis.report_sha256, item)
        outcome = await self._store.record(entry)
        kind = kind_of(entry.report).value if entry.report is not None else outcome.value
        result = Ingested(item.origin, outcome, entry.report, entry.reason, entry.detail, kind)
        if outcome is ItemOutcome.INVALID:
            log.warning(
                "report refused",
                extra={"origin": item.origin, "reason": entry.reason, "detail": entry.detail},
            )
        return result

    def _judge(self, entry: Entry, report: Report, report_sha: str, item: Item) -> Entry:
        ours = self._ours(report)
        if ours is None:
            return replace(
                entry,
                reason=Reason.OTHER_DOMAIN,
                detail=f"report about {_about(report)}, not a configured domain",
            )
        kept = self._keep(item.data, entry.item_sha256) if isinstance(ours, FeedbackReport) else ""
        return replace(entry, report=ours, report_sha256=report_sha, kept_path=kept)

    def _ours(self, report: Report) -> Report | None:
        """The report narrowed to the configured domains, or None if nothing is ours."""
        if isinstance(report, AggregateReport):
            return report if report.domain in self._domains else None
        if isinstance(report, TlsReport):
            policies = tuple(p for p in report.policies if p.domain in self._domains)
            return replace(report, policies=policies) if policies else None
        return report if report.reported_domain in self._domains else None

    def _keep(self, data: bytes, sha: str) -> str:
        """Feedback mails carry other people's mail: kept readable by mailprobe only."""
        self._feedback_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._feedback_dir / f"{sha}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return str(path)

    def close(self) -> None:
        self._pool.close()

    async def ingest_all(self, items: Iterable[Item]) -> list[Ingested]:
        """Every item; at most ``pool.in_flight`` are read and not yet stored at once."""
        results: list[Ingested] = []
        pending: set[asyncio.Task[Ingested]] = set()
        for item in items:
            pending.add(asyncio.create_task(self.ingest(item)))
            if len(pending) >= self._pool.in_flight:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                results.extend(t.result() for t in done)
        if pending:
            done, _ = await asyncio.wait(pending)
            results.extend(t.result() for t in done)
        return results


def _about(report: Report) -> str:
    if isinstance(report, AggregateReport):
        return report.domain or "no domain"
    if isinstance(report, TlsReport):
        return ", ".join(sorted({p.domain for p in report.policies})) or "no domain"
    return report.reported_domain or "no domain"
