"""The file follower step by step: start, restart, each kind of rotation, several files."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporters.postfix_logs.sources import FileFollower, FileSettings, merge
from monitor.state import LogPositions, StateStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogPositions]:
    state = await StateStore.open(tmp_path / "state")
    yield LogPositions(state)
    await state.close()


class Following:
    """Runs a follower in a task that collects its lines and commits every batch."""

    def __init__(self, follower: FileFollower) -> None:
        self.follower = follower
        self.lines: list[bytes] = []
        self.committed = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.follower.batches():
            self.lines.extend(batch.items)
            await self.follower.commit(batch)
            self.committed = len(self.lines)

    async def wait(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """The lines once at least ``count`` arrived and were committed."""
        async with asyncio.timeout(timeout):
            while self.committed < count:
                if self.task.done():
                    self.task.result()
                await asyncio.sleep(0.005)
        return self.lines

    async def opened(self, timeout: float = 5.0) -> None:
        """Wait until the follower has the log open (and so knows where it starts)."""
        async with asyncio.timeout(timeout):
            while not self.follower.counters.files_opened:
                await asyncio.sleep(0.005)

    async def quiet(self, seconds: float = 0.1) -> list[bytes]:
        """Let it poll a while, for tests that check nothing more arrives."""
        await asyncio.sleep(seconds)
        return self.lines

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class Watched:
    """A position store that tells when the follower has looked up where to start."""

    def __init__(self, store: LogPositions) -> None:
        self.store = store
        self.started = asyncio.Event()

    async def get(self, source: str) -> str | None:
        value = await self.store.get(source)
        self.started.set()  # the follower starts before the test's task runs again
        return value

    async def put(self, source: str, position: str) -> None:
        await self.store.put(source, position)


def follower(path: Path, store: LogPositions | Watched | None, **options: object) -> FileFollower:
    settings: dict[str, object] = {
        "poll_interval": 0.01,
        "start": "beginning",
        "rotate_wait": 0.0,
        **options,
    }
    return FileFollower(FileSettings(path=path, **settings), store)  # type: ignore[arg-type]


def append(path: Path, *lines: str) -> None:
    with path.open("ab") as f:
        f.write(b"".join(line.encode() + b"\n" for line in lines))


async def test_restart_resumes_after_the_last_committed_line(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "one", "two", "three")
    run = Following(follower(log, store))
    assert await run.wait(3) == [b"one", b"two", b"three"]
    await run.stop()

    append(log, "four", "five")
    run = Following(follower(log, store))
    assert await run.wait(2) == [b"four", b"five"]
    assert await run.quiet() == [b"four", b"five"]
    assert run.follower.counters.positions_lost == 0
    await run.stop()


async def test_first_start_at_end_skips_history_and_a_partial_line_waits(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "old 1", "old 2")
    with log.open("ab") as f:
        f.write(b"half of a ")
    run = Following(follower(log, store, start="end"))
    await run.opened()
    assert await run.quiet() == []
    with log.open("ab") as f:
        f.write(b"line\nnew\n")
    assert await run.wait(2) == [b"half of a line", b"new"]
    await run.stop()


async def test_a_file_created_late_is_read_from_its_start(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    watched = Watched(store)
    run = Following(follower(log, watched, start="end"))
    await watched.started.wait()  # it found no file (else start=end would skip these)
    assert await run.quiet() == []
    append(log, "first", "second")
    assert await run.wait(2) == [b"first", b"second"]
    await run.stop()


async def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "a1", "a2")
    run = Following(follower(log, store))
    await run.wait(2)
    append(log, "a3")
    log.rename(tmp_path / "mail.log.1")
    append(log, "b1")
    assert await run.wait(4) == [b"a1", b"a2", b"a3", b"b1"]
    assert run.follower.counters.rotations == 1
    await run.stop()


async def test_late_writes_to_the_renamed_file_are_read_within_rotate_wait(
    tmp_path: Path, store: LogPositions
) -> None:
    """logrotate's create + HUP: syslog writes to the old file until it reopens."""
    log = tmp_path / "mail.log"
    old = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(old, b"a1\n")
    run = Following(follower(log, store, rotate_wait=1.0))
    await run.wait(1)
    log.rename(tmp_path / "mail.log.1")
    append(log, "b1")
    await run.wait(2)
    os.write(old, b"a2 written after the new file appeared\n")
    os.close(old)
    lines = await run.wait(3)
    assert lines == [b"a1", b"b1", b"a2 written after the new file appeared"]
    await run.stop()


async def test_copytruncate_takes_the_unread_rest_from_the_copy(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "a1", "a2")
    run = Following(follower(log, store))
    await run.wait(2)
    # written and rotated between two polls: a3 and a4 are only in the copy now
    append(log, "a3", "a4")
    shutil.copyfile(log, tmp_path / "mail.log.1")
    os.truncate(log, 0)
    append(log, "b1 is a longer first line than a1 was")
    lines = await run.wait(5)
    assert lines == [b"a1", b"a2", b"a3", b"a4", b"b1 is a longer first line than a1 was"]
    assert run.follower.counters.truncations == 1
    await run.stop()


async def test_rename_rotations_while_stopped_are_caught_up_in_order(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "a1")
    run = Following(follower(log, store))
    await run.wait(1)
    await run.stop()

    append(log, "a2")
    log.rename(tmp_path / "mail.log.1")
    append(log, "b1", "b2")
    (tmp_path / "mail.log.1").rename(tmp_path / "mail.log.2")
    log.rename(tmp_path / "mail.log.1")
    append(log, "c1")
    (tmp_path / "mail.log.3.gz").write_bytes(b"\x1f\x8b compressed, never read\n")

    run = Following(follower(log, store))
    assert await run.wait(4) == [b"a2", b"b1", b"b2", b"c1"]
    assert await run.quiet() == [b"a2", b"b1", b"b2", b"c1"]
    assert run.follower.counters.positions_lost == 0
    await run.stop()


async def test_copytruncate_while_stopped_is_caught_up_from_the_copy(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "a1", "a2")
    run = Following(follower(log, store))
    await run.wait(2)
    await run.stop()

    append(log, "a3")
    shutil.copyfile(log, tmp_path / "mail.log.1")
    os.truncate(log, 0)
    append(log, "b1 and more than the old offset", "b2")

    run = Following(follower(log, store))
    assert await run.wait(3) == [b"a3", b"b1 and more than the old offset", b"b2"]
    assert await run.quiet() == [b"a3", b"b1 and more than the old offset", b"b2"]
    await run.stop()


async def test_a_rotated_file_deleted_while_stopped_is_counted_lost(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "a1")
    run = Following(follower(log, store))
    await run.wait(1)
    await run.stop()

    append(log, "a2 is lost with its file")
    log.unlink()
    append(log, "b1")
    run = Following(follower(log, store))
    assert await run.wait(1) == [b"b1"]
    assert run.follower.counters.positions_lost == 1
    await run.stop()


async def test_a_corrupt_saved_position_falls_back_to_the_start_setting(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    append(log, "history")
    await store.put(f"file:{log}", "not json")
    run = Following(follower(log, store, start="end"))
    await run.opened()
    append(log, "new")
    assert await run.wait(1) == [b"new"]
    assert run.follower.counters.positions_lost == 1
    await run.stop()


async def test_a_directory_in_place_of_the_log_is_an_error_not_a_crash(
    tmp_path: Path,
) -> None:
    log = tmp_path / "mail.log"
    log.mkdir()
    run = Following(follower(log, None))
    await run.quiet()
    assert run.follower.last_error is not None and "regular file" in run.follower.last_error
    assert not run.task.done()
    log.rmdir()
    append(log, "now a file")
    assert await run.wait(1) == [b"now a file"]
    assert run.follower.last_error is None
    await run.stop()


async def test_several_files_at_once_each_with_its_own_position(
    tmp_path: Path, store: LogPositions
) -> None:
    logs = [tmp_path / "mx.log", tmp_path / "srs.log"]
    for log in logs:
        append(log, f"{log.stem} 1")
    followers = [follower(log, store) for log in logs]
    got: dict[str, list[bytes]] = {f.key: [] for f in followers}

    async def read(total: int) -> None:
        async for source, batch in merge(followers):
            got[source.key].extend(batch.items)
            await source.commit(batch)
            if sum(map(len, got.values())) == total:
                return

    async with asyncio.timeout(5):
        await read(2)
        for n in range(2, 202):
            for log in logs:
                append(log, f"{log.stem} {n}")
        await read(402)
    for log in logs:
        assert got[f"file:{log}"] == [f"{log.stem} {n}".encode() for n in range(1, 202)]
    saved = [await store.get(f.key) for f in followers]
    assert all(saved) and saved[0] != saved[1]


async def test_lines_are_cut_at_max_line_bytes_and_counted(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    with log.open("wb") as f:
        f.write(b"short\n" + b"y" * 3000 + b"\n" + b"z" * 700 + b"\nend\n")
    run = Following(follower(log, store, max_line_bytes=512))
    assert await run.wait(4) == [b"short", b"y" * 512, b"z" * 512, b"end"]
    assert run.follower.counters.lines_truncated == 2
    assert run.follower.counters.bytes == log.stat().st_size
    await run.stop()


async def test_an_empty_log_rotated_away_is_left_for_the_new_one(
    tmp_path: Path, store: LogPositions
) -> None:
    """A quiet night: logrotate renames an empty (or half-written) log."""
    log = tmp_path / "mail.log"
    log.write_bytes(b"half a line, never fini")
    run = Following(follower(log, store))
    await run.opened()
    log.rename(tmp_path / "mail.log.1")
    append(log, "new file")
    assert await run.wait(2) == [b"half a line, never fini", b"new file"]
    assert run.follower.counters.rotations == 1
    await run.stop()


async def test_the_first_start_is_saved_before_any_line(
    tmp_path: Path, store: LogPositions
) -> None:
    """Stopped before its first commit, a follower started at the end resumes there."""
    log = tmp_path / "mail.log"
    append(log, "history")
    run = Following(follower(log, store, start="end"))
    async with asyncio.timeout(5):
        while await store.get(run.follower.key) is None:
            await asyncio.sleep(0.005)
    await run.stop()
    append(log, "written while stopped")
    run = Following(follower(log, store, start="end"))
    assert await run.wait(1) == [b"written while stopped"]
    await run.stop()
