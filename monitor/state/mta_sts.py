"""MTA-STS policies on the state file: implements the prober's StsPolicyMemory.

Checks are built from the config alone and run from ``run`` and ``serve`` alike, so the
memory opens the state file for each use (a few milliseconds, once per check run)
instead of holding a connection that someone would have to close.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from exporters.smtp.mta_sts import PolicyMemoryError, RememberedPolicy
from monitor.state.store import StateError, StateStore

T = TypeVar("T")


class StsPolicies:
    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir

    async def recall(self, domain: str) -> RememberedPolicy | None:
        def read(conn: sqlite3.Connection) -> RememberedPolicy | None:
            row = conn.execute(
                "SELECT policy_id, sha256, changed_under_id FROM mta_sts_policies WHERE domain = ?",
                (domain,),
            ).fetchone()
            return None if row is None else RememberedPolicy(str(row[0]), str(row[1]), row[2])

        return await self._with_store(read)

    async def remember(self, domain: str, policy: RememberedPolicy) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO mta_sts_policies "
                "(domain, policy_id, sha256, changed_under_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (domain) DO UPDATE SET "
                "policy_id = excluded.policy_id, sha256 = excluded.sha256, "
                "changed_under_id = excluded.changed_under_id, updated_at = excluded.updated_at",
                (domain, policy.policy_id, policy.sha256, policy.changed_under_id, time.time()),
            )

        await self._with_store(write)

    async def _with_store(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            store = await StateStore.open(self._state_dir)
        except StateError as exc:
            raise PolicyMemoryError(str(exc)) from None
        try:
            return await store.run(work)
        except sqlite3.Error as exc:
            raise PolicyMemoryError(f"state file {store.path}: {exc}") from None
        finally:
            await store.close()
