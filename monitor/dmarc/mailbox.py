"""The report mailbox under ``serve``: new messages are ingested, then moved to
``Archive/<kind>`` or ``Invalid`` (never deleted), over the shared IMAP interface.

A message is moved only after its report is committed: if the process dies in between,
the message is read again next time, recognised as seen (same bytes) and filed where
its first reading would have put it. Every IMAP step has the interface's hard timeout;
a failure closes the session, is counted by phase, and the loop reconnects after a
backoff that doubles up to ``MAX_BACKOFF``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from exporters.dmarc.errors import Reason
from exporters.dmarc.ingest import Ingestor, Item
from exporters.imap import FetchedMessage, ImapEndpoint, ImapError, ImapSession
from monitor.config.base import reveal_secret
from monitor.config.dmarc import DmarcSection

log = logging.getLogger(__name__)

BATCH = 10
"""Messages fetched, ingested and moved per round (bounded memory per round)."""
INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 300.0
IMAP_TIMEOUT = 30.0
"""Seconds for connecting and for each IMAP command."""
KIND_FOLDERS = {
    "aggregate": "Aggregate",
    "tls": "TLS",
    "feedback": "Feedback",
}


def endpoint_of(section: DmarcSection) -> ImapEndpoint:
    mailbox = section.mailbox
    assert mailbox is not None
    return ImapEndpoint(
        host=mailbox.host,
        port=mailbox.port,
        tls="starttls" if mailbox.port == 143 else "implicit",
        username=mailbox.username,
        password=reveal_secret(mailbox.password_file, mailbox.password_env) or "",
        ca_file=mailbox.ca_file,
        timeout=IMAP_TIMEOUT,
        max_message_bytes=section.limits.max_message_bytes,
    )


class MailboxReader:
    def __init__(
        self,
        section: DmarcSection,
        ingestor: Ingestor,
        looked: Callable[[], Awaitable[None]],
        failed: Callable[[str], None],
    ) -> None:
        self._section = section
        self._ingestor = ingestor
        self._looked = looked
        self._failed = failed

    async def run(self) -> None:
        backoff = INITIAL_BACKOFF
        while True:
            session: ImapSession | None = None
            try:
                session = await ImapSession.open(endpoint_of(self._section))
                folders = await self._prepare(session)
                backoff = INITIAL_BACKOFF
                while True:
                    await self._drain(session, folders)
                    await self._looked()
                    await session.wait_for_change(
                        timeout=max(self._section.poll_interval, 1.0) * 10,
                        poll_interval=self._section.poll_interval,
                    )
            except ImapError as exc:
                self._failed(exc.phase)
                log.warning(
                    "report mailbox failed",
                    extra={"phase": exc.phase, "reason": exc.reason, "retry_in": backoff},
                )
            finally:
                if session is not None:
                    await session.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _prepare(self, session: ImapSession) -> dict[str, str]:
        """Create the archive folders; return outcome -> folder."""
        names = self._section.folders
        sep = await session.delimiter()
        folders = {kind: f"{names.archive}{sep}{sub}" for kind, sub in KIND_FOLDERS.items()}
        folders["other_domain"] = f"{names.archive}{sep}Other"
        folders["invalid"] = names.invalid
        for folder in {names.archive, *folders.values()}:
            await session.create(folder)
        return folders

    async def _drain(self, session: ImapSession, folders: dict[str, str]) -> None:
        inbox = self._section.folders.inbox
        await session.select(inbox)
        uids = await session.uid_search("ALL")
        for start in range(0, len(uids), BATCH):
            fetched = await session.fetch(uids[start : start + BATCH])
            items = [_item(inbox, m) for m in fetched]
            uid_of = {item.origin: m.uid for item, m in zip(items, fetched, strict=True)}
            results = await self._ingestor.ingest_all(items)
            moves: dict[str, list[int]] = defaultdict(list)
            for result in results:
                folder = folders.get(result.kind, folders["other_domain"])
                moves[folder].append(uid_of[result.origin])
            for folder, moved in sorted(moves.items()):
                await session.move(sorted(moved), folder)


def _item(inbox: str, message: FetchedMessage) -> Item:
    origin = f"imap:{inbox}/{message.uid}"
    if message.truncated:
        identity = hashlib.sha256(message.raw).digest() + str(message.size).encode()
        return Item(
            origin,
            b"truncated:" + identity,
            True,
            (Reason.TOO_LARGE, f"mail is {message.size} bytes (cap {len(message.raw)})"),
        )
    return Item(origin, message.raw, True)
