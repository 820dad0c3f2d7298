"""The SQLite state store: migrations, reopening, durability and concurrent access."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monitor.state import STATE_FILE_NAME, LogPositions, StateError, StateStore
from monitor.state.migrations import MIGRATIONS
from monitor.state.store import migrate


async def test_new_state_dir_gets_every_migration_in_wal_mode(tmp_path: Path) -> None:
    state_dir = tmp_path / "a" / "b"
    store = await StateStore.open(state_dir)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        mode = await store.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
        tables = await store.run(
            lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
        )
        assert "log_positions" in tables
    finally:
        await store.close()
    assert (state_dir / STATE_FILE_NAME).is_file()
    assert state_dir.stat().st_mode & 0o777 == 0o700


def test_migrations_apply_only_the_steps_a_file_has_not_seen(tmp_path: Path) -> None:
    steps = (
        ("CREATE TABLE a (x INTEGER)",),
        ("CREATE TABLE b (y INTEGER)", "INSERT INTO a VALUES (1)"),
    )
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    assert migrate(conn, steps[:1]) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert migrate(conn, steps) == 1
    assert migrate(conn, steps) == 2  # nothing left to do: no error, no second insert
    assert conn.execute("SELECT count(*) FROM a").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_failing_migration_leaves_the_file_at_its_old_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    migrate(conn, (("CREATE TABLE a (x INTEGER)",),))
    broken = (("CREATE TABLE a (x INTEGER)",), ("CREATE TABLE b (y)", "SELEC nonsense"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"a"}


async def test_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / STATE_FILE_NAME)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer than this mailprobe"):
        await StateStore.open(tmp_path)


async def test_unusable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match="cannot create state_dir"):
        await StateStore.open(tmp_path / "file")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / STATE_FILE_NAME).write_bytes(b"not a database, " * 100)
    with pytest.raises(StateError, match="cannot open state file"):
        await StateStore.open(tmp_path / "d")


async def test_positions_survive_close_and_reopen(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path)
    positions = LogPositions(store)
    assert await positions.get("file:/var/log/mail.log") is None
    await positions.put("file:/var/log/mail.log", "one")
    await positions.put("file:/var/log/mail.log", "two")
    await positions.put("journald", "s=abc;i=1")
    await store.close()

    store = await StateStore.open(tmp_path)
    positions = LogPositions(store)
    try:
        assert await positions.get("file:/var/log/mail.log") == "two"
        assert await positions.get("journald") == "s=abc;i=1"
        assert await store.schema_version() == len(MIGRATIONS)
    finally:
        await store.close()


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from monitor.state import LogPositions, StateStore

    async def main() -> None:
        store = await StateStore.open(Path(sys.argv[1]))
        positions = LogPositions(store)
        n = 0
        while True:
            n += 1
            await positions.put("counter", str(n))
            if n == 50:
                print("running", flush=True)

    asyncio.run(main())
    """
)


async def test_readers_run_while_another_process_writes(tmp_path: Path) -> None:
    """WAL: readers in this process never fail or block while another process commits."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "running\n"
        readers = [await StateStore.open(tmp_path) for _ in range(3)]
        try:
            seen: list[int] = []
            for _ in range(40):
                values = await asyncio.gather(
                    *(LogPositions(r).get("counter") for r in readers for _ in range(5))
                )
                seen.extend(int(v) for v in values if v is not None)
            assert len(seen) == 40 * 15
            assert seen[-1] > seen[0] >= 50  # the writer kept committing meanwhile
        finally:
            for r in readers:
                await r.close()
    finally:
        writer.kill()
        writer.wait()


async def test_committed_position_survives_kill_9(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    assert writer.stdout.readline() == "running\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    store = await StateStore.open(tmp_path)
    try:
        value = await LogPositions(store).get("counter")
        assert value is not None and int(value) >= 50
    finally:
        await store.close()


_OPENER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from monitor.state import StateStore

    async def main() -> None:
        store = await StateStore.open(Path(sys.argv[1]))
        print(await store.schema_version())
        await store.close()

    asyncio.run(main())
    """
)


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert [o[0].strip() for o in outputs] == [str(len(MIGRATIONS))] * 4


async def test_open_waits_out_a_write_lock_on_a_file_not_yet_in_wal_mode(tmp_path: Path) -> None:
    """What a process sees while another creates the file: SQLite refuses
    `journal_mode=WAL` at once, without its busy handler, while another connection holds
    a write lock on a file still in rollback mode. Opening waits until the lock is gone."""
    holder = sqlite3.connect(tmp_path / STATE_FILE_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    released = asyncio.get_running_loop().call_later(0.3, holder.execute, "COMMIT")
    started = time.monotonic()
    try:
        store = await StateStore.open(tmp_path)
    finally:
        released.cancel()
        holder.close()
    try:
        assert time.monotonic() - started >= 0.3
        assert await store.schema_version() == len(MIGRATIONS)
    finally:
        await store.close()
