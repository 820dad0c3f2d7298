"""``mailprobe logs --trace``: find every queue ID of one message and its lines.

Two passes over the input. :class:`TraceLinks` (pass one) records which queue IDs
belong together: one message-id, ``queued as`` / ``forwarded as`` hand-overs across
instances, and the bounce a message caused. :class:`TraceCollector` (pass two) keeps
the lines of the queue IDs in the traced message's component.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from re import Match

from exporters.postfix_logs.fields import handed_to
from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.programs import Program


def bare_message_id(text: str) -> str:
    return text.strip().removeprefix("<").removesuffix(">")


class TraceLinks:
    """Pass one: an undirected graph of queue IDs and message-ids."""

    kinds = frozenset({Kind.MESSAGE_ID, Kind.DELIVERY, Kind.NOTIFICATION})

    def __init__(self) -> None:
        self._edges: defaultdict[str, set[str]] = defaultdict(set)

    def _link(self, a: str, b: str) -> None:
        self._edges[a].add(b)
        self._edges[b].add(a)

    def observe(self, kind: Kind, program: Program, match: Match[str], stamp: str | float) -> None:
        if kind is Kind.MESSAGE_ID:
            message_id = bare_message_id(match["message_id"])
            if message_id:
                self._link(match["qid"], "<" + message_id + ">")
        elif kind is Kind.DELIVERY and match["status"] == "sent":
            child = handed_to(match["response"])
            if child is not None:
                self._link(match["qid"], child)
        elif kind is Kind.NOTIFICATION:
            self._link(match["qid"], match["new_qid"])

    def component(self, wanted: str) -> set[str]:
        """Queue IDs of the message named by a queue ID or a message-id (with or without <>)."""
        seeds = [wanted, "<" + bare_message_id(wanted) + ">"]
        seen = {s for s in seeds if s in self._edges}
        if not seen:
            return {wanted}
        todo = deque(seen)
        while todo:
            for other in self._edges[todo.popleft()]:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return {node for node in seen if not node.startswith("<")}


@dataclass(frozen=True, slots=True)
class TraceLine:
    stamp: str | float
    service: str
    daemon: str
    qid: str
    kind: Kind
    message: str


class TraceCollector:
    """Pass two: the lines that mention one of the queue IDs, in log order."""

    kinds = frozenset(Kind)

    def __init__(self, qids: Iterable[str]) -> None:
        self.qids = frozenset(qids)
        self.lines: list[TraceLine] = []

    def observe(self, kind: Kind, program: Program, match: Match[str], stamp: str | float) -> None:
        groups = match.re.groupindex
        qid = match["qid"] if "qid" in groups else None
        if qid in self.qids or ("new_qid" in groups and match["new_qid"] in self.qids):
            line = TraceLine(stamp, program.service, program.daemon, qid or "", kind, match.string)
            self.lines.append(line)
