"""One IMAP session per mailbox, watching for canaries (see the class docstring).

The watcher finds canary-like messages and hands each to its :class:`Judge` (the
runtime), which says whether it is ours; it removes ours and never touches the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from exporters.canary.token import MARKER
from exporters.imap import FETCH_BATCH, FetchedMessage, ImapEndpoint, ImapError, ImapSession

log = logging.getLogger(__name__)

IDLE_QUIET = 60.0
"""IDLE cycle while no canary of a mailbox is in flight."""
BUSY_RESCAN = 1.0
"""Seconds between scans while canaries of the mailbox are in flight, IDLE or not."""
MAX_BACKOFF = 60.0
"""Reconnection backoff: 1 s, doubling up to this."""


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    name: str
    endpoint: ImapEndpoint
    archive_folder: str | None = None
    junk_poll: float = 2.0


class Judge(Protocol):
    def in_flight(self, mailbox: str | None = None) -> int: ...

    def now(self) -> float: ...

    async def on_message(
        self, mailbox: str, folder: str, fetched: FetchedMessage, detected: float
    ) -> bool: ...


class MailboxWatcher:
    """One IMAP session on one mailbox. INBOX is watched as a pipeline: a scan fetches the
    new messages and hands them to judge tasks, and the session goes straight back to IDLE;
    when the judging of a scan is done the IDLE is woken and the messages judged ours are
    removed. So a burst of canaries is fetched as it arrives, not after the verification
    of the ones before it. The \\Junk folder, looked at now and then, is judged in line."""

    def __init__(self, settings: MailboxSettings, runtime: Judge) -> None:
        self.settings = settings
        self._runtime = runtime
        self.reachable: bool | None = None
        self.error = ""
        self.scanned = asyncio.Event()
        """Set once every folder was scanned after (re)connecting, or the mailbox failed."""
        self._task: asyncio.Task[None] | None = None
        self._judging: set[asyncio.Task[None]] = set()
        self._ours: set[int] = set()
        """INBOX UIDs judged ours and not removed yet (never judged twice meanwhile)."""
        self._fetched: set[int] = set()
        """INBOX UIDs handed to a judge task that has not finished."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._drained = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"canary-mailbox:{self.settings.name}")

    def wake(self) -> None:
        """End the current IDLE: a canary is on its way, so watch at the busy pace."""
        self._wake.set()

    async def stop(self) -> None:
        """Let the session finish judging and removing what it fetched, then end it."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            if not self.reachable:  # no session to finish anything with
                raise TimeoutError
            async with asyncio.timeout(self.settings.endpoint.timeout):
                await self._drained.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._judging):
            task.cancel()

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            session: ImapSession | None = None
            try:
                session = await ImapSession.open(self.settings.endpoint)
                self.reachable, self.error = True, ""
                backoff = 1.0
                await self._watch(session)
            except ImapError as exc:
                self.reachable = False
                self.error = f"IMAP {exc.phase} on {self.settings.endpoint.host}: {exc.reason}"
                log.warning(
                    "canary mailbox unreachable",
                    extra={"mailbox": self.settings.name, "error": self.error},
                )
                self.scanned.set()
            except Exception as exc:  # a bug must not end the watcher: log and reconnect
                self.reachable = False
                self.error = f"canary watcher failed: {type(exc).__name__}: {exc}"
                log.error(
                    "canary watcher failed", exc_info=True, extra={"mailbox": self.settings.name}
                )
                self.scanned.set()
            finally:
                if session is not None:
                    await session.close()
            if self._stopping:
                self._drained.set()  # nothing more can be removed without a session
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _watch(self, session: ImapSession) -> None:
        junk = await session.special_use("\\Junk")
        seen: dict[str, int] = {}
        await session.select("INBOX")
        await self._remove(session)  # judged before a reconnect
        await self._scan_inbox(session, seen)
        junk_next: int | None = None
        if junk is not None:
            junk_next = await session.uidnext(junk)
            await self._scan_other(session, junk, seen)
        self.scanned.set()
        last_junk_look = time.monotonic()
        while True:
            if not self._judging:
                self._wake.clear()  # before looking at the work: a wake after this counts
            await self._remove(session)
            if self._stopping and not self._judging:
                await self._remove(session)  # judged while the removal above ran
                self._drained.set()
                await asyncio.Event().wait()  # until stop() cancels this task
            busy = self._runtime.in_flight(self.settings.name) > 0
            # While canaries are in flight, scan before every IDLE too: an EXISTS the
            # server sent with another command's response (the MOVE just now, a SEARCH)
            # is not repeated in the next IDLE, and aioimaplib drops some untagged ones.
            if busy:
                while await self._scan_inbox(session, seen):
                    pass  # mail came in bursts: look again until a scan finds nothing
            wait = min(BUSY_RESCAN, self.settings.junk_poll) if busy else IDLE_QUIET
            if await session.wait_for_change(wait, wake=self._wake):
                while await self._scan_inbox(session, seen):
                    pass
            junk_due = time.monotonic() - last_junk_look >= (
                self.settings.junk_poll if busy else IDLE_QUIET
            )
            if junk is not None and junk_due:
                last_junk_look = time.monotonic()
                uidnext = await session.uidnext(junk)
                if uidnext != junk_next:
                    junk_next = uidnext
                    await self._scan_other(session, junk, seen)

    async def _fetch_new(
        self, session: ImapSession, folder: str, seen: dict[str, int]
    ) -> list[tuple[FetchedMessage, float]]:
        """The canary-like messages after the last UID seen, each with when it was fetched."""
        last = seen.get(folder, 0)
        found = await session.uid_search("UID", f"{last + 1}:*", "TEXT", f'"{MARKER}"')
        uids = [u for u in found if u > last]
        if not uids:
            return []
        seen[folder] = max(uids)
        fetched: list[tuple[FetchedMessage, float]] = []
        for start in range(0, len(uids), FETCH_BATCH):
            batch = await session.fetch(uids[start : start + FETCH_BATCH])
            detected = self._runtime.now()
            fetched.extend((f, detected) for f in batch)
        return fetched

    async def _scan_inbox(self, session: ImapSession, seen: dict[str, int]) -> bool:
        fetched = await self._fetch_new(session, "INBOX", seen)
        fresh = [(f, at) for f, at in fetched if f.uid not in self._ours | self._fetched]
        if fresh:
            self._fetched.update(f.uid for f, _ in fresh)
            task = asyncio.create_task(self._judge(fresh))
            self._judging.add(task)
            task.add_done_callback(self._judged)
        return bool(fetched)

    async def _judge(self, fetched: list[tuple[FetchedMessage, float]]) -> None:
        name = self.settings.name
        try:
            for message, at in fetched:
                try:
                    if await self._runtime.on_message(name, "INBOX", message, at):
                        self._ours.add(message.uid)
                except Exception:  # one bad message must not stop the others
                    log.error("cannot judge a message", exc_info=True, extra={"mailbox": name})
        finally:
            self._fetched.difference_update(f.uid for f, _ in fetched)

    def _judged(self, task: asyncio.Task[None]) -> None:
        self._judging.discard(task)
        if not self._judging:
            self._wake.set()  # out of IDLE: remove what was judged ours

    async def _remove(self, session: ImapSession) -> None:
        """Delete (or archive) the INBOX messages judged ours; INBOX is selected."""
        uids = sorted(self._ours)
        if not uids:
            return
        if self.settings.archive_folder:
            await session.move(uids, self.settings.archive_folder)
        else:
            await session.delete(uids)
        self._ours.difference_update(uids)

    async def _scan_other(self, session: ImapSession, folder: str, seen: dict[str, int]) -> None:
        """Judge a folder other than INBOX in line and remove ours, then back to INBOX."""
        await session.select(folder)
        fetched = await self._fetch_new(session, folder, seen)
        judged = await asyncio.gather(
            *(self._runtime.on_message(self.settings.name, folder, f, at) for f, at in fetched)
        )
        remove = [f.uid for (f, _at), ours in zip(fetched, judged, strict=True) if ours]
        if remove:
            if self.settings.archive_folder:
                await session.move(remove, self.settings.archive_folder)
            else:
                await session.delete(remove)
        await session.select("INBOX")
