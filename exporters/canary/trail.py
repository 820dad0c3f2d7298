"""Where a canary stopped, from the fleet's Postfix logs.

An observer of the log aggregator (``exporters.postfix_logs``): it keeps only the
queue IDs whose ``message-id=`` is a canary's (every instance logs the same Message-ID
for its own queue ID, so one message is followed across instances), and for each the
last delivery attempt: its instance, relay, status and the server's words, and how
many deferrals. Memory is bounded: at most ``max_messages`` canaries are kept, oldest
dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from re import Match

from exporters.canary.token import MARKER
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
        attempts = f" ({self.deferrals} attempts, last {ago:.0f} s ago)" if self.deferrals else ""
        return f"{self.status} at {self.service} -> {self.relay}: {self.response}{attempts}"


@dataclass(slots=True)
class _Trace:
    qids: set[str] = field(default_factory=set)
    last: Stop | None = None
    final: Stop | None = None
    """The last line that ended the message's way in the fleet (bounced, expired)."""
    deferrals: int = 0


class CanaryTrail:
    kinds = frozenset({Kind.MESSAGE_ID, Kind.DELIVERY, Kind.NOTIFICATION, Kind.EXPIRED})

    def __init__(self, max_messages: int = 10_000) -> None:
        self._by_msgid: OrderedDict[str, _Trace] = OrderedDict()
        self._by_qid: dict[str, _Trace] = {}
        self._max = max_messages

    def observe(self, kind: Kind, program: Program, match: Match[str], stamp: str | float) -> None:
        if kind is Kind.MESSAGE_ID:
            msgid = bare_message_id(match["message_id"])
            if not msgid.startswith(MARKER + "."):
                return
            trace = self._by_msgid.get(msgid)
            if trace is None:
                trace = self._by_msgid[msgid] = _Trace()
                if len(self._by_msgid) > self._max:
                    _old, dropped = self._by_msgid.popitem(last=False)
                    for qid in dropped.qids:
                        self._by_qid.pop(qid, None)
            trace.qids.add(match["qid"])
            self._by_qid[match["qid"]] = trace
            return
        trace = self._by_qid.get(match["qid"])
        if trace is None:
            return
        if kind is Kind.DELIVERY:
            status = match["status"]
            if status == "deferred":
                trace.deferrals += 1
            stop = Stop(
                program.service, match["relay"], status, match["response"], match["dsn"],
                time.time(), trace.deferrals,
            )  # fmt: skip
            trace.last = stop
            if status in ("bounced", "expired"):
                trace.final = stop
        elif kind is Kind.EXPIRED and trace.last is not None:
            trace.final = trace.last

    def where(self, message_id: str) -> Stop | None:
        """The last delivery attempt logged for the canary ``message_id``."""
        trace = self._by_msgid.get(bare_message_id(message_id))
        return None if trace is None else trace.last

    def bounced(self, message_id: str) -> Stop | None:
        trace = self._by_msgid.get(bare_message_id(message_id))
        return None if trace is None else trace.final

    def seen(self, message_id: str) -> bool:
        return bare_message_id(message_id) in self._by_msgid
