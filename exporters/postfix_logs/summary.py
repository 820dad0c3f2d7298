"""The one-shot report's tallies, in the spirit of pflogsumm.

Unlike the metrics this keeps free text (normalised reject, deferral and bounce
reasons, warning texts) and per-hour counts: it lives only for one report. It is an
:class:`~exporters.postfix_logs.aggregator.Observer` fed the parsed lines, and its
state is plain counters so that reports of parts of a file can be merged.
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

_ADDRESS = re.compile(r"<[^<>]*>")
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_HOST_SAID = re.compile(r"^host \S+ said: ")
_IN_REPLY = re.compile(r" \(in reply to [^)]*\)$")
_NUMBERS = re.compile(r"\b\d+(?:\.\d+){3}\b|\b[0-9A-Fa-f]{10,}\b")
REASON_WIDTH = 120


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
    text = _ADDRESS.sub("<>", text)
    text = _BRACKETED.sub("[]", text)
    text = _NUMBERS.sub("#", text)
    return text[:REASON_WIDTH]


EVENTS = ("received", "delivered", "deferred", "bounced", "rejected")
"""The per-hour columns."""


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
        self.recipient_domains: Counter[str] = Counter()
        self.sender_domains: Counter[str] = Counter()
        self._sizes: dict[str, int] = {}
        self._hours: dict[str | int, str] = {}
        self._deferred: set[str] = set()
        self._handlers: dict[Kind, Callable[[Program, Match[str], str | float], None]] = {
            Kind.CLIENT: self._received,
            Kind.PICKUP: self._received,
            Kind.QUEUED: self._queued,
            Kind.REMOVED: self._removed,
            Kind.DELIVERY: self._delivery,
            Kind.ACTION: self._action,
            Kind.PROXY: self._proxy,
            Kind.CLEANUP_CHECK: self._cleanup_check,
            Kind.PS_REJECT: self._ps_reject,
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
            "recipient_domains": self.recipient_domains,
            "sender_domains": self.sender_domains,
            "deferred": self._deferred,
        }

    def merge(self, part: dict[str, Any]) -> None:
        for name in (
            "totals",
            "sasl_methods",
            "sasl_clients",
            "recipient_domains",
            "sender_domains",
        ):
            getattr(self, name).update(part[name])
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
            hour = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:00")
            if len(self._hours) > 4096:
                self._hours.clear()
            self._hours[key] = hour
        return hour

    def _received(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        self._count("received", stamp)

    def _queued(self, prog: Program, m: Match[str], stamp: str | float) -> None:
        qid = m["qid"]
        if qid not in self._sizes:
            size = int(m["size"])
            self._sizes[qid] = size
            self.totals["bytes_received"] += size
            sender = m["sender"]
            self.sender_domains[sender.rpartition("@")[2].lower() if sender else "<>"] += 1

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
            self.totals["bytes_delivered"] += self._sizes.get(qid, 0)
            self.recipient_domains[m["to"].rpartition("@")[2].lower()] += 1
        elif status == "deferred":
            self.totals["deferrals"] += 1
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
