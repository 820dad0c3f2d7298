"""The persistence a log source asks for: one opaque position per source key.

Defined here, on the exporter side, so the log exporter never imports the application;
``monitor.state`` implements it on its SQLite state file. A source owns the format of
its position (a JSON text for files, a journald cursor); the store only keeps it.
"""

from __future__ import annotations

from typing import Protocol


class LogPositionStore(Protocol):
    async def get(self, source: str) -> str | None:
        """The last position saved for ``source``, or None if there is none."""
        ...

    async def put(self, source: str, position: str) -> None:
        """Save ``position`` for ``source``; durable once the call returns."""
        ...
