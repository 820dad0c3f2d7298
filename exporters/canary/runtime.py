"""The canary runtime: sends canaries, watches the mailboxes, judges every canary once.

One :class:`MailboxWatcher` per mailbox keeps one IMAP session open, however many routes
land there: IDLE on INBOX (NOOP polling where IDLE is missing), a look at ``\\Junk`` every
``junk_poll`` seconds while canaries are in flight, reconnection with backoff. New
messages are found with one ``UID SEARCH UID n:* TEXT mailprobe-canary`` and fetched
with a size cap. A message counts only if its token's HMAC verifies: a delivered
canary, or a DSN quoting one; anything else is left alone.

Every canary is in the ledger (``pending``) before it is handed to SMTP, and leaves
``pending`` exactly once. On start the runtime loads the pending canaries, lets each
watcher scan its folders from the start, and only then judges deadlines, so a canary
that arrived while mailprobe was down is found, not counted lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.header
import email.policy
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message

from exporters.canary.dsn import parse_bounce
from exporters.canary.ledger import Entry, LedgerStore, Outcome
from exporters.canary.message import build_message
from exporters.canary.send import SendResult, SmtpRoute, send_message
from exporters.canary.token import HEADER, Signer
from exporters.canary.trail import CanaryTrail
from exporters.canary.verify import Expectations, FetchTxt, Report, verify_delivery
from exporters.canary.watcher import MailboxSettings, MailboxWatcher
from exporters.imap import FetchedMessage
from exporters.postfix_logs.histogram import Histogram

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
HOP_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
MAX_HOPS = 8
JUDGE_INTERVAL = 0.25
KEEP_FINISHED = 2000
"""Finished entries kept in memory for waiters and reports."""


@dataclass(frozen=True, slots=True)
class RouteSettings:
    name: str
    smtp: SmtpRoute
    mail_from: str
    header_from: str
    rcpt_to: str
    mailbox: str
    expect: Expectations = field(default_factory=Expectations)
    deadline: float = 300.0
    grace: float = 900.0


@dataclass(slots=True)
class Stats:
    """What the metrics module exports; read at scrape time."""

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    send_failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    detection: Histogram = field(default_factory=lambda: Histogram(HOP_BUCKETS))
    hops: Histogram = field(default_factory=lambda: Histogram(HOP_BUCKETS))
    last_sent: dict[str, float] = field(default_factory=dict)
    last_delivered: dict[str, float] = field(default_factory=dict)
    verifications: dict[tuple[str, str], bool] = field(default_factory=dict)
    junk: dict[str, bool] = field(default_factory=dict)
    """Per route: was the last delivered canary in \\Junk?"""


class CanaryRuntime:
    def __init__(
        self,
        signer: Signer,
        ledger: LedgerStore,
        routes: Sequence[RouteSettings],
        mailboxes: Sequence[MailboxSettings],
        *,
        trail: CanaryTrail | None = None,
        fetch_txt: FetchTxt | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.ledger = ledger
        self.routes = {r.name: r for r in routes}
        self.trail = trail
        self._fetch_txt = fetch_txt
        self._clock = clock
        self.watchers = {m.name: MailboxWatcher(m, self) for m in mailboxes}
        self.stats = Stats()
        self._pending: dict[str, Entry] = {}
        self._finished: OrderedDict[str, Entry] = OrderedDict()
        self._changed = asyncio.Condition()
        self._judge_task: asyncio.Task[None] | None = None
        self._sending: set[str] = set()
        """Canaries still in the SMTP session: not judged until it ends."""

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        for entry in await self.ledger.pending():
            if entry.route in self.routes:
                self._pending[entry.id] = entry
        for route, (sent, delivered) in (await self.ledger.last_times()).items():
            if sent is not None:
                self.stats.last_sent[route] = sent
            if delivered is not None:
                self.stats.last_delivered[route] = delivered
        for watcher in self.watchers.values():
            watcher.start()
        self._judge_task = asyncio.create_task(self._judge_loop(), name="canary-judge")

    async def stop(self) -> None:
        if self._judge_task is not None:
            self._judge_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._judge_task
        for watcher in self.watchers.values():
            await watcher.stop()

    def in_flight(self, mailbox: str | None = None) -> int:
        return sum(
            1 for e in self._pending.values()
            if mailbox is None or self.routes[e.route].mailbox == mailbox
        )  # fmt: skip

    def in_flight_by_route(self) -> dict[str, int]:
        counts = dict.fromkeys(self.routes, 0)
        for entry in self._pending.values():
            counts[entry.route] += 1
        return counts

    def overdue_by_route(self) -> dict[str, int]:
        now = self._clock()
        counts = dict.fromkeys(self.routes, 0)
        for entry in self._pending.values():
            if now >= entry.deadline:
                counts[entry.route] += 1
        return counts

    # -- sending ----------------------------------------------------------------------

    async def send(self, route_name: str) -> Entry:
        route = self.routes[route_name]
        now = self._clock()
        token, token_text = self.signer.new_token(route.name, int(now * 1000))
        msgid, raw = build_message(token, token_text, route.header_from, route.rcpt_to)
        entry = Entry(
            token.id, route.name, msgid, token.sent_at, token.sent_at + route.deadline,
            token.sent_at + route.deadline + route.grace,
        )  # fmt: skip
        await self.ledger.add(entry)
        self._pending[entry.id] = entry
        self._sending.add(entry.id)
        self.stats.sent[route.name] += 1
        self.stats.last_sent[route.name] = entry.sent_at
        self.watchers[route.mailbox].wake()  # out of a long quiet IDLE: Junk needs looks too
        try:
            result = await send_message(route.smtp, route.mail_from, route.rcpt_to, raw)
        finally:
            self._sending.discard(entry.id)
        await self._after_send(entry, result)
        return entry

    async def _after_send(self, entry: Entry, result: SendResult) -> None:
        if result.state == "sent":
            entry.detail["queued"] = result.queue_reply
            await self.ledger.update_detail(entry)
            return
        if result.state == "uncertain":
            entry.detail["send_uncertain"] = result.reason
            self.stats.events[(entry.route, "send_uncertain")] += 1
            await self.ledger.update_detail(entry)
            return
        entry.detail.update(failure=result.failure, reason=result.reason, code=result.code)
        if await self._finish(entry, Outcome.SEND_FAILED):
            self.stats.send_failures[(entry.route, result.failure or "connect")] += 1

    # -- receiving --------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    async def on_message(
        self, mailbox: str, folder: str, fetched: FetchedMessage, detected: float
    ) -> bool:
        """Judge one fetched message (fetched at ``detected``); True if it is ours and may
        be removed."""
        msg = email.message_from_bytes(fetched.raw, policy=email.policy.compat32)
        header = msg.get(HEADER)
        token = self.signer.verify(_decoded(header)) if header is not None else None
        if token is not None:
            await self._delivered(token.id, mailbox, folder, fetched, msg, detected)
            return True
        bounce = parse_bounce(msg, fetched.raw, self.signer)
        if bounce is not None:
            entry = self._pending.get(bounce.token.id)
            if entry is not None:
                entry.detail.update(
                    status=bounce.status, diagnostic=bounce.diagnostic, remote=bounce.remote,
                    reason=f"bounced: {bounce.status} {bounce.diagnostic}".strip(),
                )  # fmt: skip
                await self._finish(entry, Outcome.BOUNCED)
            return True
        return False  # forged, foreign or not a canary at all: never touched

    async def _delivered(
        self, ident: str, mailbox: str, folder: str, fetched: FetchedMessage, msg: Message,
        detected: float,
    ) -> None:  # fmt: skip
        entry = self._pending.get(ident)
        if entry is None:
            known = self._finished.get(ident) or await self.ledger.get(ident)
            if known is not None and known.state in (Outcome.DELIVERED, Outcome.LATE):
                self.stats.events[(known.route, "duplicate")] += 1
                known.detail["duplicates"] = int(known.detail.get("duplicates", 0)) + 1
                await self.ledger.update_detail(known)
            elif known is not None:
                known.detail["arrived_after_outcome"] = detected
                await self.ledger.update_detail(known)
            return  # ours either way (an unknown one is a stale canary of ours): removed
        route = self.routes[entry.route]
        stored = fetched.internaldate.timestamp() if fetched.internaldate else detected
        latency = max(0.0, stored - entry.sent_at)
        report: Report = await verify_delivery(
            fetched.raw, msg, entry.sent_at, latency, route.expect, self._fetch_txt
        )
        junk = folder != "INBOX"
        entry.detail.update(
            folder="junk" if junk else "inbox",
            folder_name=folder,
            latency=round(latency, 3),
            detection=round(max(0.0, detected - stored), 3),
            detected_at=detected,
            verifications=[
                {"name": v.name, "ok": v.ok, "detail": v.detail} for v in report.verifications
            ],
            hops=[
                {"by": h.by, "protocol": h.protocol, "tls": h.tls, "seconds": h.seconds}
                for h in report.hops
            ],
            truncated=fetched.truncated,
        )
        outcome = Outcome.DELIVERED if stored <= entry.deadline else Outcome.LATE
        if await self._finish(entry, outcome):
            self.stats.latency.observe(entry.route, latency)
            self.stats.detection.observe(mailbox, max(0.0, detected - stored))
            for index, hop in enumerate(report.hops[:MAX_HOPS], start=1):
                if hop.seconds is not None:
                    self.stats.hops.observe((entry.route, str(index)), hop.seconds)
            self.stats.last_delivered[entry.route] = detected
            self.stats.junk[entry.route] = junk
            for v in report.verifications:
                self.stats.verifications[(entry.route, v.name)] = v.ok

    # -- judging ----------------------------------------------------------------------

    async def _judge_loop(self) -> None:
        while True:
            try:
                await self.judge()
            except Exception:
                log.error("canary judging failed", exc_info=True)
            await asyncio.sleep(JUDGE_INTERVAL)

    async def judge(self) -> None:
        now = self._clock()
        for entry in list(self._pending.values()):
            route = self.routes[entry.route]
            watcher = self.watchers[route.mailbox]
            if not watcher.scanned.is_set() or entry.id in self._sending:
                continue  # the first scan may find it; a send in progress may fail
            if self.trail is not None:
                bounced = self.trail.bounced(entry.message_id)
                if bounced is not None:
                    entry.detail.update(
                        reason=f"bounced: {bounced.describe(now)}", where=bounced.describe(now),
                        status=bounced.dsn,
                    )  # fmt: skip
                    await self._finish(entry, Outcome.BOUNCED)
                    continue
            if now < entry.deadline:
                continue
            if watcher.reachable is False:
                entry.detail["reason"] = f"receiver unreachable: {watcher.error}"
                self._where(entry, now)
                await self._finish(entry, Outcome.RECEIVER_UNREACHABLE)
                continue
            if not entry.detail.get("overdue"):
                entry.detail["overdue"] = True
                self._where(entry, now)
                await self.ledger.update_detail(entry)
                await self._notify()
            if now >= entry.lost_at:
                self._where(entry, now)
                entry.detail["reason"] = (
                    f"lost: not delivered {now - entry.sent_at:.0f} s after sending"
                )
                await self._finish(entry, Outcome.LOST)

    def _where(self, entry: Entry, now: float) -> None:
        if self.trail is None:
            return
        where = self.trail.where(entry.message_id)
        if where is not None:
            entry.detail["where"] = where
        elif "where" not in entry.detail:  # else keep what an earlier run saw in the logs
            entry.detail["where"] = "no line with its Message-ID in the followed logs"

    async def _finish(self, entry: Entry, outcome: Outcome) -> bool:
        entry.state = outcome.value
        entry.finished_at = self._clock()
        first = await self.ledger.finish(entry)
        self._pending.pop(entry.id, None)
        self._finished[entry.id] = entry
        while len(self._finished) > KEEP_FINISHED:
            self._finished.popitem(last=False)
        if first:
            self.stats.outcomes[(entry.route, outcome.value)] += 1
        await self._notify()
        return first

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- waiting ----------------------------------------------------------------------

    def entry(self, ident: str) -> Entry | None:
        return self._pending.get(ident) or self._finished.get(ident)

    async def wait(
        self, ident: str, until: float, progress: Callable[[Entry], None] | None = None
    ) -> Entry:
        """Wait until the canary ``ident`` has an outcome, or is overdue (its deadline was
        judged: ``where`` is known), or the clock passes ``until``."""
        while True:
            entry = self.entry(ident)
            if entry is None:
                raise KeyError(ident)
            if progress is not None:
                progress(entry)
            if not entry.pending or entry.detail.get("overdue") or self._clock() >= until:
                return entry
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.05, min(1.0, until - self._clock()))):
                        await self._changed.wait()

    def finished_since(self, route: str, since: float) -> list[Entry]:
        return [
            e for e in self._finished.values() if e.route == route and (e.finished_at or 0) >= since
        ]


def _decoded(value: object) -> str:
    """A header value with RFC 2047 words decoded (a relay may have re-encoded it)."""
    text = str(value)
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text
