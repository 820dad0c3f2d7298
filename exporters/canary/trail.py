"""Where a canary stopped, from the fleet's Postfix logs.

An observer of the log aggregator (``exporters.postfix_logs``): it keeps only the
queue IDs whose ``message-id=`` is a canary's (every instance logs the same Message-ID
for its own queue ID, so one message is followed across instances), and for each the
last delivery attempt: its instance, relay, status and the server's words, and how
many deferrals. Each instance's log is read on its own, so lines of two instances come
in no reliable order: "where" is decided by the hand-offs (``queued as``), not by which
line came last. Memory is bounded: at most ``max_messages`` canaries are kept, oldest
dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from re import Match

from exporters.canary.token import MARKER
from exporters.postfix_logs.fields import handed_to
from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.programs import Program
from exporters.postfix_logs.trace import bare_message_id


@dataclass(slots=True)
class Stop:
    service: str
    """The instance's service label (``mx``, ``srs``, ...)."""
    relay: str
    status: str
    """sent, deferred, bounced, expired, ... as Postfix logs it."""
    response: str
    dsn: str
    seen_at: float
    deferrals: int = 0

    def describe(self, now: float | None = None) -> str:
        ago = max(0.0, (now or time.time()) - self.seen_at)
        plural = "s" if self.deferrals > 1 else ""
        attempts = (
            f" ({self.deferrals} attempt{plural}, last {ago:.0f} s ago)" if self.deferrals else ""
        )
        towards = "" if self.relay in ("", "none") else f" -> {self.relay}"
        return f"{self.status} at {self.service}{towards}: {self.response}{attempts}"


@dataclass(slots=True)
class _Queue:
    """One queue ID of the canary, in one instance."""

    service: str
    seen_at: float
    last: Stop | None = None
    deferrals: int = 0
    child: str | None = None
    """The queue ID it was handed to (``queued as``/``forwarded as``)."""


@dataclass(slots=True)
class _Trace:
    queues: dict[str, _Queue] = field(default_factory=dict)
    final: Stop | None = None
    """The line that ended the message's way in the fleet (bounced, expired)."""

    def frontier(self) -> list[tuple[str, _Queue]]:
        """Queue IDs that did not hand the message to another queue ID we saw."""
        return [(q, e) for q, e in self.queues.items() if e.child not in self.queues]


class CanaryTrail:
    kinds = frozenset({Kind.MESSAGE_ID, Kind.DELIVERY, Kind.EXPIRED})

    def __init__(self, max_messages: int = 10_000) -> None:
        self._by_msgid: OrderedDict[str, _Trace] = OrderedDict()
        self._by_qid: dict[str, _Trace] = {}
        self._max = max_messages

    def observe(self, kind: Kind, program: Program, match: Match[str], stamp: str | float) -> None:
        qid = match["qid"]
        if kind is Kind.MESSAGE_ID:
            msgid = bare_message_id(match["message_id"])
            if not msgid.startswith(MARKER + "."):
                return
            trace = self._by_msgid.get(msgid)
            if trace is None:
                trace = self._by_msgid[msgid] = _Trace()
                if len(self._by_msgid) > self._max:
                    _old, dropped = self._by_msgid.popitem(last=False)
                    for old in dropped.queues:
                        self._by_qid.pop(old, None)
            trace.queues.setdefault(qid, _Queue(program.service, time.time()))
            self._by_qid[qid] = trace
            return
        trace = self._by_qid.get(qid)
        if trace is None:
            return
        queue = trace.queues[qid]
        if kind is Kind.DELIVERY:
            status = match["status"]
            if status == "deferred":
                queue.deferrals += 1
            if status == "sent":
                queue.child = handed_to(match["response"])
            stop = Stop(
                program.service, match["relay"], status, match["response"], match["dsn"],
                time.time(), queue.deferrals,
            )  # fmt: skip
            queue.last = stop
            if status in ("bounced", "expired"):
                trace.final = stop
        elif kind is Kind.EXPIRED and queue.last is not None:
            trace.final = queue.last

    def where(self, message_id: str) -> str | None:
        """Where the canary ``message_id`` is, by the logs: the last delivery attempt of
        the furthest queue ID, or the instance that queued it and has not tried yet."""
        trace = self._by_msgid.get(bare_message_id(message_id))
        if trace is None:
            return None
        frontier = trace.frontier()
        tried = [q.last for _, q in frontier if q.last is not None]
        waiting = [(qid, q) for qid, q in frontier if q.last is None]
        if waiting:  # a queue ID with no attempt yet is further than any attempt we saw
            qid, queue = max(waiting, key=lambda item: item[1].seen_at)
            return f"queued at {queue.service} ({qid}), no delivery attempt logged yet"
        if not tried:
            return None
        return max(tried, key=lambda stop: stop.seen_at).describe()

    def bounced(self, message_id: str) -> Stop | None:
        trace = self._by_msgid.get(bare_message_id(message_id))
        return None if trace is None else trace.final
