"""The canary ledger on the state file: implements exporters.canary.ledger.LedgerStore."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from exporters.canary.ledger import Entry, Outcome
from monitor.state.store import StateStore

_COLUMNS = "id, route, message_id, sent_at, deadline, lost_at, state, finished_at, detail"


def _entry(row: tuple[Any, ...]) -> Entry:
    ident, route, msgid, sent, deadline, lost, state, finished, detail = row
    finished_at = None if finished is None else float(finished)
    return Entry(
        str(ident), str(route), str(msgid), float(sent), float(deadline), float(lost),
        str(state), finished_at, json.loads(str(detail)),
    )  # fmt: skip


class CanaryLedger:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def add(self, entry: Entry) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO canary_ledger ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.id, entry.route, entry.message_id, entry.sent_at, entry.deadline,
                 entry.lost_at, entry.state, entry.finished_at, json.dumps(entry.detail)),
            )  # fmt: skip

        await self._store.run(write)

    async def finish(self, entry: Entry) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE canary_ledger SET state = ?, finished_at = ?, detail = ? "
                "WHERE id = ? AND state = 'pending'",
                (entry.state, entry.finished_at, json.dumps(entry.detail), entry.id),
            )
            return cursor.rowcount == 1

        return await self._store.run(write)

    async def update_detail(self, entry: Entry) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE canary_ledger SET detail = ? WHERE id = ?",
                (json.dumps(entry.detail), entry.id),
            )

        await self._store.run(write)

    async def pending(self) -> list[Entry]:
        def read(conn: sqlite3.Connection) -> list[Entry]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM canary_ledger WHERE state = 'pending' ORDER BY sent_at"
            ).fetchall()
            return [_entry(r) for r in rows]

        return await self._store.run(read)

    async def get(self, ident: str) -> Entry | None:
        def read(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM canary_ledger WHERE id = ?", (ident,)
            ).fetchone()
            return None if row is None else _entry(row)

        return await self._store.run(read)

    async def last_times(self) -> dict[str, tuple[float | None, float | None]]:
        def read(conn: sqlite3.Connection) -> dict[str, tuple[float | None, float | None]]:
            sent = dict(
                conn.execute("SELECT route, MAX(sent_at) FROM canary_ledger GROUP BY route")
            )
            delivered = dict(
                conn.execute(
                    "SELECT route, MAX(finished_at) FROM canary_ledger WHERE state IN (?, ?) "
                    "GROUP BY route",
                    (Outcome.DELIVERED.value, Outcome.LATE.value),
                )
            )
            return {r: (sent.get(r), delivered.get(r)) for r in sent}

        return await self._store.run(read)
