"""The canary ledger: what was sent and how each canary ended, kept across restarts.

The runtime writes through :class:`LedgerStore`, which ``monitor.state`` implements on
the state file. A state moves from ``pending`` to one final outcome exactly once (the
store's ``finish`` only changes a row still pending), so a restart, even after kill -9,
resumes every open canary and never counts one twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    LATE = "late"
    LOST = "lost"
    BOUNCED = "bounced"
    SEND_FAILED = "send_failed"
    RECEIVER_UNREACHABLE = "receiver_unreachable"


OUTCOMES = tuple(Outcome)
EVENTS = ("duplicate", "send_uncertain")
"""Counted, but not outcomes: a duplicate copy of a finished canary; a send that timed out
after DATA (that canary stays pending)."""


@dataclass(slots=True)
class Entry:
    id: str
    route: str
    message_id: str
    sent_at: float
    deadline: float
    lost_at: float
    state: str = "pending"
    """``pending`` or an :class:`Outcome` value."""
    finished_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    """What is known: folder, latency, verifications, reason, where, send_uncertain, ..."""

    @property
    def pending(self) -> bool:
        return self.state == "pending"


class LedgerStore(Protocol):
    async def add(self, entry: Entry) -> None: ...

    async def finish(self, entry: Entry) -> bool:
        """Store ``entry``'s final state if its row is still pending; True if it was."""
        ...

    async def update_detail(self, entry: Entry) -> None: ...

    async def pending(self) -> list[Entry]: ...

    async def get(self, ident: str) -> Entry | None: ...

    async def last_times(self) -> dict[str, tuple[float | None, float | None]]:
        """Per route: (last sent_at, last delivered finished_at)."""
        ...
