"""Log positions on the state file: implements the log exporter's LogPositionStore."""

from __future__ import annotations

import sqlite3
import time

from monitor.state.store import StateStore


class LogPositions:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def get(self, source: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT position FROM log_positions WHERE source = ?", (source,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._store.run(read)

    async def put(self, source: str, position: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO log_positions (source, position, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET "
                "position = excluded.position, updated_at = excluded.updated_at",
                (source, position, time.time()),
            )

        await self._store.run(write)
