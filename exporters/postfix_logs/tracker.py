"""Follows messages across queue IDs and instances to measure in-fleet delay.

A message enters the fleet when a first hop logs ``client=`` (or pickup ``uid=``).
Each ``status=sent (... queued as Y)`` or ``(forwarded as Y)`` hands it to queue ID
``Y``, which inherits the origin time and the path of services so far. A delivery that
hands the message to no queue ID we track ends the path: its time minus the origin is
the in-fleet delay, observed per path (``mx>srs``).

The receiving side logs ``Y: client=`` before the sender logs ``queued as Y``, and a
fast hop may even deliver ``Y`` before that. So a final delivery is only observed
after ``grace`` seconds of log time, by which the link has arrived and updated the
entry in place. Memory is bounded: entries expire after ``ttl`` seconds, the map
holds at most ``max_messages``, and queue IDs leave it on ``removed``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

PATH_DEPTH = 6
"""Longer paths keep their first hops and end in ``...``: a mail loop stays one label."""


class _Entry:
    __slots__ = ("born", "origin", "path", "queued")

    def __init__(self, born: float, origin: float, path: tuple[str, ...]) -> None:
        self.born = born
        self.origin = origin
        self.path = path
        self.queued = False


Observe = Callable[[str, float], None]
"""Called with ``(path_label, seconds)`` for each final delivery."""


class MessageTracker:
    def __init__(
        self,
        observe: Observe,
        *,
        max_messages: int = 100_000,
        ttl: float = 5 * 86400.0,
        grace: float = 5.0,
    ) -> None:
        self._observe = observe
        self._max = max_messages
        self._ttl = ttl
        self._grace = grace
        self._entries: dict[str, _Entry] = {}
        """In first-seen order, so expiry and eviction start at the oldest end."""
        self._pending: dict[str, tuple[_Entry, float]] = {}
        """``queued as Y`` seen before ``Y``'s own first line: Y -> (parent, when)."""
        self._finals: deque[tuple[_Entry, float, str | None]] = deque()
        self._gone: dict[str, float] = {}
        """Queue IDs removed lately, so a hand-off to them still counts as internal."""
        self._paths: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._labels: dict[tuple[str, ...], str] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def received(self, qid: str, service: str, when: float) -> None:
        """``qid`` entered an instance of ``service`` (smtpd client=, pickup)."""
        if qid in self._entries:
            return
        parent = self._pending.pop(qid, None)
        if parent is not None:
            entry = _Entry(when, parent[0].origin, self._extend(parent[0].path, service))
        else:
            entry = _Entry(when, when, self._intern((service,)))
        self._add(qid, entry)

    def first_queued(self, qid: str) -> bool:
        """True the first time qmgr queues ``qid`` (it logs again after each deferral)."""
        entry = self._entries.get(qid)
        if entry is None:
            return True
        if entry.queued:
            return False
        entry.queued = True
        return True

    def handed_over(self, qid: str, child: str, when: float) -> None:
        """``qid`` passed the message on as ``child`` (queued as / forwarded as / bounce)."""
        parent = self._entries.get(qid)
        if parent is None:
            return
        entry = self._entries.get(child)
        if entry is not None:
            entry.origin = parent.origin
            entry.path = self._extend(parent.path, entry.path[-1])
        else:
            self._pending[child] = (parent, when)

    def delivered(self, qid: str, when: float, child: str | None) -> None:
        """A recipient of ``qid`` was delivered; ``child`` is the next queue ID if any."""
        entry = self._entries.get(qid)
        if entry is not None:
            self._finals.append((entry, when, child))
        self.flush(when)

    def removed(self, qid: str, when: float) -> None:
        if self._entries.pop(qid, None) is not None:
            self._gone[qid] = when

    def flush(self, now: float) -> None:
        """Observe final deliveries older than ``grace``; expire old state."""
        finals = self._finals
        horizon = now - self._grace
        while finals and finals[0][1] <= horizon:
            entry, when, child = finals.popleft()
            if child is not None and (child in self._entries or child in self._gone):
                continue  # handed to another tracked queue: not the end of the path
            self._observe(self._label(entry.path), when - entry.origin)
        gone = self._gone
        while gone:  # oldest first: drop from the front, never rebuild per line
            qid, removed = next(iter(gone.items()))
            if removed >= horizon and len(gone) <= 4096:
                break
            del gone[qid]
        pending = self._pending
        stale = now - 60 * self._grace
        while pending:
            qid, (_parent, seen) = next(iter(pending.items()))
            if seen >= stale:
                break
            del pending[qid]
        self._expire(now)

    def drain(self) -> None:
        """Observe every waiting final delivery (end of a one-shot input)."""
        self.flush(float("inf"))

    def _add(self, qid: str, entry: _Entry) -> None:
        entries = self._entries
        entries[qid] = entry
        if len(entries) > self._max:
            del entries[next(iter(entries))]
            self.evicted += 1

    def _expire(self, now: float) -> None:
        entries = self._entries
        limit = now - self._ttl
        while entries:
            qid, entry = next(iter(entries.items()))
            if entry.born >= limit:
                break
            del entries[qid]
            self.evicted += 1

    def _extend(self, path: tuple[str, ...], service: str) -> tuple[str, ...]:
        if path[-1] == service:
            return path
        if len(path) >= PATH_DEPTH:
            return self._intern((*path[: PATH_DEPTH - 1], "..."))
        return self._intern((*path, service))

    def _intern(self, path: tuple[str, ...]) -> tuple[str, ...]:
        return self._paths.setdefault(path, path)

    def _label(self, path: tuple[str, ...]) -> str:
        label = self._labels.get(path)
        if label is None:
            label = self._labels[path] = ">".join(path)
        return label
