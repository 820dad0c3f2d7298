"""The one-shot report's tallies, in the spirit of pflogsumm.

Unlike the metrics this keeps free text (normalised reject, deferral and bounce
reasons, warning texts), per-hour counts and the top senders, recipients and domains
(bounded, :mod:`exporters.postfix_logs.tally`): it lives only for one report. It is an
:class:`~exporters.postfix_logs.aggregator.Observer` fed the parsed lines, and its
state is plain counters so that reports of parts of a file can be merged.

Where pflogsumm counts the same thing, this counts it the same way (docs/postfix-logs.md,
"Compared with pflogsumm"): received is a ``client=`` or pickup line, bytes received
and senders come from qmgr's ``from=, size=`` of a message received in this log, a
delivery is a ``status=sent`` that is not ``forwarded as``, its delay is Postfix's own
``delay=``, and every ``reject:`` line, postscreen's refused connections included,
counts as one reject.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from re import Match
from typing import Any

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.programs import Program
from exporters.postfix_logs.tally import BYTES, DEFERRALS, DELAY_MAX, DELAY_SUM, MESSAGES, Tally

_ADDRESS = re.compile(r"<[^<>]+>")
_BRACKETED = re.compile(r"\[[^\[\]]+\]")
"""Folded to ``<address>`` and ``[address]`` so that equal reasons group; ``<>`` (the
null sender) and ``[]`` stay as they are."""
_HOST_SAID = re.compile(r"^host \S+ said: ")
_IN_REPLY = re.compile(r" \(in reply to [^)]*\)$")
_NUMBERS = re.compile(r"\b\d+(?:\.\d+){3}\b|\b[0-9A-Fa-f]{10,}\b")
REASON_WIDTH = 120
RECEIVED_KEPT = 100_000
"""Received messages remembered until qmgr queues them (their client, for the sender's
domain when the sender is null); the oldest are dropped beyond this."""


_NORMALISED: dict[str, str] = {}
"""Texts seen -> their normal form: the same reject or deferral repeats many times."""


def normalise(text: str) -> str:
    """Fold what differs between occurrences of the same reason (addresses, IPs, ids)."""
    found = _NORMALISED.get(text)
    if found is None:
        if len(_NORMALISED) >= 4096:
            _NORMALISED.clear()
        found = _NORMALISED[text] = _normalise(text)
    return found


def _normalise(text: str) -> str:
    text = _HOST_SAID.sub("", text)
    text = _IN_REPLY.sub("", text)
    text = _ADDRESS.sub("<address>", text)
    text = _BRACKETED.sub("[address]", text)
    text = _NUMBERS.sub("#", text)
    return text[:REASON_WIDTH]


EVENTS = ("received", "delivered", "deferred", "bounced", "rejected")
"""The per-hour columns."""
TALLIES = ("senders", "recipients", "sender_domains", "recipient_domains", "rejected_clients")


class Summary:
    """Counts for the report; :meth:`observe` is called for every understood line."""

    def __init__(self, epoch: Callable[[str | float], float | None]) -> None:
        self._epoch = epoch
        self.totals: Counter[str] = Counter()
        self.hourly: dict[str, Counter[str]] = {}
        self.reasons: dict[str, Counter[str]] = {
            name: Counter()
            for name in ("reject", "defer", "bounce", "warning", "fatal", "panic", "master")
        }
        self.sasl_methods: Counter[str] = Counter()
        self.sasl_clients: Counter[str] = Counter()
        self.senders = Tally()
        self.recipients = Tally()
        self.sender_domains = Tally()
        self.recipient_domains = Tally()
        self.rejected_clients = Tally()
        """Rejects per client address (smtpd and postscreen), as pflogsumm lists them."""
        self.delays: list[float] = [0.0, 0.0, 0.0]
        """Postfix's ``delay=`` of each delivery: count, sum, maximum."""
        self.earliest: float | None = None
        self.latest: float | None = None
        """The earliest and latest time of the lines counted (the first line of each
        hour seen: a log need not be in time order)."""
        self._sizes: dict[str, int] = {}
        self._received: dict[str, str] = {}
        """Queue IDs received in this log and not yet queued -> the client's name."""
        self._hours: dict[str | int, str] = {}
        self._deferred: set[str] = set()
        self._handlers: dict[Kind, Callable[[Program, Match[str], str | float], None]] = {
            Kind.CLIENT: self._client,
            Kind.PICKUP: self._pickup,
            Kind.QUEUED: self._queued,
            Kind.REMOVED: self._removed,
            Kind.DELIVERY: self._delivery,
            Kind.ACTION: self._action,
            Kind.PROXY: self._proxy,
            Kind.CLEANUP_CHECK: self._cleanup_check,
            Kind.PS_REJECT: self._ps_reject,
            Kind.PS_BUSY: self._ps_busy,
            Kind.EXPIRED: self._expired,
            Kind.SASL_FAILURE: self._sasl_failure,
            Kind.LOG: self._log,
            Kind.LIFECYCLE: self._lifecycle,
            Kind.NOTIFICATION: self._notification,
        }
        self.kinds = frozenset(self._handlers)

    def observe(self, kind: Kind, program: Program, match: Match[str], stamp: str | float) -> None:
        self._handlers[kind](program, match, stamp)

    # ---- merging parts ------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        return {
            "totals": self.totals,
            "hourly": self.hourly,
            "reasons": self.reasons,
            "sasl_methods": self.sasl_methods,
            "sasl_clients": self.sasl_clients,
            "tallies": {name: getattr(self, name).export() for name in TALLIES},
            "delays": self.delays,
            "period": (self.earliest, self.latest),
            "deferred": self._deferred,
        }

    def merge(self, part: dict[str, Any]) -> None:
        for name in ("totals", "sasl_methods", "sasl_clients"):
            getattr(self, name).update(part[name])
        for name, tally in part["tallies"].items():
            getattr(self, name).merge(tally)
        count, total, longest = part["delays"]
        self.delays[0] += count
        self.delays[1] += total
        self.delays[2] = max(self.delays[2], longest)
        for when in part["period"]:
            if when is not None:
                self._seen(when)
        for hour, counts in part["hourly"].items():
            self.hourly.setdefault(hour, Counter()).update(counts)
        for name, counts in part["reasons"].items():
            self.reasons[name].update(counts)
        self._deferred |= part["deferred"]
        self.totals["deferred"] = len(self._deferred)

    # ---- handlers -----------------------------------------------------------------

    def _count(self, event: str, stamp: str | float, n: int = 1) -> None:
        self.totals[event] += n
        hour = self._hour(stamp)
        if hour is not None:
            counts = self.hourly.get(hour)
            if counts is None:
                counts = self.hourly[hour] = Counter()
            counts[event] += n

    def _hour(self, stamp: str | float) -> str | None:
        """``2023-03-14 00:00`` in this machine's time zone, cached per hour of the log."""
        if isinstance(stamp, float):
            key: str | int = int(stamp // 3600)
        elif stamp[4:5] == "-":
            key = stamp[:13] + stamp[-6:]  # 2023-03-14T00 and the offset
        else:
            key = stamp[: stamp.find(":")]  # Mar 14 00
        hour = self._hours.get(key)
        if hour is None:
            when = self._epoch(stamp)
            if when is None:
                return None
            self._seen(when)
            hour = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:00")
            if len(self._hours) > 4096:
                self._hours.clear()
            self._hours[key] = hour
        return hour

    def _seen(self, when: float) -> None:
        if self.earliest is None or when < self.earliest:
            self.earliest = when
        if self.latest is None or when > self.latest:
            self.latest = when

    def _client(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        host = m["client_host"]
        self._receive(m["qid"], m["client_ip"] if host in ("unknown", "") else host.lower())
        self._count("received", stamp)

    def _pickup(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._receive(m["qid"], "pickup")
        self._count("received", stamp)

    def _receive(self, qid: str, client: str) -> None:
        received = self._received
        if len(received) >= RECEIVED_KEPT:
            del received[next(iter(received))]
        received[qid] = client

    def _queued(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        qid = m["qid"]
        if qid in self._sizes:
            return  # qmgr logs from= again after each deferral
        size = int(m["size"])
        self._sizes[qid] = size
        client = self._received.pop(qid, None)
        if client is None:
            return  # not received in this log (a bounce, or received before it began)
        self.totals["bytes_received"] += size
        sender = m["sender"]
        at = sender.rfind("@")
        if at > 0:
            domain = sender[at + 1 :].lower()
            address = sender[: at + 1] + domain
        else:
            domain = client
            address = sender or "from=<>"
        for tally, key in ((self.senders, address), (self.sender_domains, domain)):
            row = tally.row(key)
            row[MESSAGES] += 1
            row[BYTES] += size

    def _removed(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._sizes.pop(m["qid"], None)

    def _delivery(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        status = m["status"]
        qid = m["qid"]
        if status == "sent":
            if m["response"].startswith("forwarded as "):
                self.totals["forwarded"] += 1
                return
            self._count("delivered", stamp)
            size = self._sizes.get(qid, 0)
            self.totals["bytes_delivered"] += size
            delay = float(m["delay"])
            delays = self.delays
            delays[0] += 1
            delays[1] += delay
            delays[2] = max(delays[2], delay)
            to = m["to"]
            at = to.rfind("@")
            domain = to[at + 1 :].lower()
            row = self.recipients.row(to[: at + 1] + domain if at > 0 else to)
            row[MESSAGES] += 1
            row[BYTES] += size
            row = self.recipient_domains.row(domain)
            row[MESSAGES] += 1
            row[BYTES] += size
            row[DELAY_SUM] += delay
            row[DELAY_MAX] = max(row[DELAY_MAX], delay)
        elif status == "deferred":
            self.totals["deferrals"] += 1
            row = self.recipient_domains.row(m["to"].rpartition("@")[2].lower())
            row[DEFERRALS] += 1
            row[DELAY_MAX] = max(row[DELAY_MAX], float(m["delay"]))
            if qid not in self._deferred:
                self._deferred.add(qid)
                self._count("deferred", stamp)
            self.reasons["defer"][f"{prog.daemon}: {normalise(m['response'])}"] += 1
        elif status == "bounced":
            self._count("bounced", stamp)
            self.reasons["bounce"][f"{prog.daemon}: {normalise(m['response'])}"] += 1

    def _action(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        action = m["action"]
        text = f"{m['stage']}: {normalise(m['text'])}"
        if action in ("reject", "milter-reject"):
            self._count("rejected", stamp)
            self.reasons["reject"][f"{prog.daemon} {text}"] += 1
            self.rejected_clients.row(m["client_ip"])[MESSAGES] += 1
            if m["stage"] == "CONNECT":
                self.totals["rejected_connections"] += 1
        elif action == "reject_warning":
            self.totals["reject_warnings"] += 1
        elif action in ("hold", "milter-hold"):
            self.totals["held"] += 1
        elif action in ("discard", "milter-discard"):
            self.totals["discarded"] += 1

    def _proxy(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        if m["action"] == "reject":
            self._count("rejected", stamp)
            self.reasons["reject"][f"{prog.daemon} proxy: {normalise(m['text'])}"] += 1

    def _cleanup_check(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        action = m["action"]
        if action == "reject":
            self._count("rejected", stamp)
            detail = m["detail"] or m["text"]
            self.reasons["reject"][f"cleanup {m['check']}: {normalise(detail)}"] += 1
        elif action == "hold":
            self.totals["held"] += 1
        elif action == "discard":
            self.totals["discarded"] += 1

    def _ps_reject(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._count("rejected", stamp)
        self.reasons["reject"][f"postscreen {m['stage']}: {normalise(m['text'])}"] += 1
        self.rejected_clients.row(m["client_ip"])[MESSAGES] += 1
        if m["stage"] == "CONNECT":
            self.totals["rejected_connections"] += 1

    def _ps_busy(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        """``NOQUEUE: reject: CONNECT from [ip]:port: too many connections`` and the
        like: postscreen refusing a connection is a reject, as pflogsumm counts it."""
        self._count("rejected", stamp)
        self.totals["rejected_connections"] += 1
        self.reasons["reject"][f"postscreen CONNECT: {normalise(m['text'])}"] += 1
        self.rejected_clients.row(m["client_ip"])[MESSAGES] += 1

    def _expired(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.totals["expired"] += 1

    def _sasl_failure(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.totals["sasl_failures"] += 1
        self.sasl_methods[m["method"]] += 1
        self.sasl_clients[m["client_ip"]] += 1

    def _log(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        level = m["level"]
        bucket = "warning" if level in ("warning", "error") else level
        self.totals[level] += 1
        self.reasons[bucket][f"{prog.daemon}: {normalise(m['text'])}"] += 1

    def _lifecycle(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.reasons["master"][f"{prog.daemon}: {normalise(m.string)}"] += 1

    def _notification(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self.totals[f"{m['notification']} notifications"] += 1
