"""mailprobe's state: one SQLite file in ``state_dir``.

One connection per process, used from one worker thread, so asyncio callers never
block the event loop on disk and never share a connection across threads. WAL mode lets
other processes (``mailprobe dmarc report`` beside a running ``serve``) read while this
one writes. With ``synchronous=NORMAL`` a committed transaction survives a crash of the
process (kill -9); only a power loss may drop the last few commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from monitor.state.migrations import MIGRATIONS

STATE_FILE_NAME = "mailprobe.sqlite3"
BUSY_TIMEOUT_MS = 5000

T = TypeVar("T")


class StateError(Exception):
    """The state file cannot be opened or has a schema this version does not know."""


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open state file {path}: {exc}") from exc
    try:
        mode = _switch_to_wal(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise StateError(f"cannot open state file {path}: {exc}") from exc
    if mode != "wal":
        conn.close()
        raise StateError(f"state file {path}: cannot switch to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """``PRAGMA journal_mode=WAL``; return the mode the file is in afterwards.

    SQLite answers this pragma SQLITE_BUSY at once, without calling the busy handler,
    while another process creates the file, switches it to WAL or removes the WAL on its
    last close (https://www.sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode).
    Those locks last milliseconds: wait them out here, up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the schema up to ``len(migrations)``; return the version found before.

    The version is read inside the write transaction, so two processes opening a new
    file at once apply each step exactly once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > len(migrations):
            raise StateError(
                f"state schema version {found} is newer than this mailprobe knows "
                f"({len(migrations)}); upgrade mailprobe or use another state_dir"
            )
        for number, steps in enumerate(migrations[found:], start=found + 1):
            for statement in steps:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


class StateStore:
    """The open state file. Use ``await StateStore.open(dir)``, then ``await close()``."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection):
        self.path = path
        self._executor = executor
        self._conn = conn

    @classmethod
    async def open(cls, state_dir: Path) -> StateStore:
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state_dir {state_dir}: {exc}") from exc
        path = state_dir / STATE_FILE_NAME
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailprobe-state")

        def setup() -> sqlite3.Connection:
            conn = _connect(path)
            try:
                migrate(conn)
            except sqlite3.Error as exc:
                conn.close()
                raise StateError(f"cannot migrate state file {path}: {exc}") from exc
            except StateError:
                conn.close()
                raise
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, setup)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, conn)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the store's thread; keep ``work`` short."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._conn)

    async def close(self) -> None:
        await self.run(lambda conn: conn.close())
        self._executor.shutdown(wait=True)

    async def schema_version(self) -> int:
        return await self.run(lambda conn: int(conn.execute("PRAGMA user_version").fetchone()[0]))
