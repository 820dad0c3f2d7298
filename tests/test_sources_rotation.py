"""The file follower against a real writer process: rotations, kill -9, hostile lines.

Every line the writer writes carries a sequence number; a run passes only if the
follower handed out each number exactly once, in order.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing, suppress
from pathlib import Path

import pytest

from exporters.postfix_logs.sources import Batch, FileFollower, FileSettings
from monitor.state import STATE_FILE_NAME, LogPositions, StateStore

ROOT = Path(__file__).resolve().parent.parent


def sequence_numbers(lines: list[bytes]) -> list[int]:
    return [int(line.rsplit(b"seq=", 1)[1]) for line in lines if b"seq=" in line]


def start_writer(log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sources_writer_proc", str(log), *args], cwd=ROOT
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogPositions]:
    state = await StateStore.open(tmp_path / "state")
    yield LogPositions(state)
    await state.close()


async def follow_until(follower: FileFollower, last: int, timeout: float) -> list[bytes]:
    """Collect lines, committing each batch, until sequence number ``last`` is seen."""
    lines: list[bytes] = []

    async def run() -> None:
        batch: Batch[bytes]
        async for batch in follower.batches():
            lines.extend(batch.items)
            await follower.commit(batch)
            if sequence_numbers(batch.items[-1:]) == [last]:
                return

    await asyncio.wait_for(run(), timeout)
    return lines


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
async def test_100_rotations_under_steady_writing_lose_and_double_nothing(
    tmp_path: Path, store: LogPositions, mode: str
) -> None:
    log = tmp_path / "mail.log"
    total = 20_000
    settings = FileSettings(path=log, poll_interval=0.005, start="beginning", rotate_wait=0.02)
    follower = FileFollower(settings, store)
    reading = asyncio.create_task(follow_until(follower, total, timeout=30))
    await asyncio.sleep(0.05)  # the follower is waiting for the file to appear
    started = time.monotonic()
    # 200 lines every 25 ms: 100 rotations in 2.5 s
    writer = start_writer(
        log, "--lines", str(total), "--rotate-every", "200", "--mode", mode, "--rate", "8000"
    )
    try:
        lines = await reading
    finally:
        writer.kill()
        writer.wait()
    elapsed = time.monotonic() - started
    assert sequence_numbers(lines) == list(range(1, total + 1))
    assert len(lines) == total
    counted = follower.counters.rotations if mode == "rename" else follower.counters.truncations
    assert 1 <= counted <= 99  # seen directly; the rest were found as rotated files
    assert follower.counters.positions_lost == 0
    assert follower.counters.lines == total
    print(f"{mode}: {total} lines, 99 rotations, {elapsed:.2f} s, {counted} seen directly")


def run_follower(log: Path, state: Path, out: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sources_follower_proc", str(log), str(state), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc


def wait_for_first_position(state: Path) -> None:
    """Until the follower saved where it starts; a kill before would restart elsewhere."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with (
            suppress(sqlite3.OperationalError),
            closing(sqlite3.connect(state / STATE_FILE_NAME)) as db,
        ):
            if db.execute("SELECT count(*) FROM log_positions").fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the follower saved no position")


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
def test_kill_9_and_restart_of_the_follower_lose_and_double_nothing(
    tmp_path: Path, mode: str
) -> None:
    log, state, out = tmp_path / "mail.log", tmp_path / "state", tmp_path / "out"
    total = 12_000
    rng = random.Random(5)
    follower = run_follower(log, state, out)
    wait_for_first_position(state)
    # 3 s of writing, a rotation every 50 ms, while the follower is killed again and again
    writer = start_writer(
        log, "--lines", str(total), "--rotate-every", "200", "--mode", mode, "--rate", "4000"
    )
    try:
        for _ in range(6):
            time.sleep(rng.uniform(0.05, 0.4))
            follower.send_signal(signal.SIGKILL)
            follower.wait()
            follower = run_follower(log, state, out)
        writer.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if sequence_numbers(out.read_bytes().splitlines()[-2:]) == [total]:
                break
            time.sleep(0.05)
        follower.send_signal(signal.SIGTERM)
        stdout, _ = follower.communicate(timeout=10)
    finally:
        writer.kill()
        writer.wait()
        follower.kill()
        follower.wait()
    lines = [line for line in out.read_bytes().splitlines() if not line.startswith(b"#pos ")]
    assert sequence_numbers(lines) == list(range(1, total + 1))
    peak_kib = int(stdout)
    assert peak_kib < 40 * 1024, f"follower peak RSS {peak_kib} KiB"
    print(f"{mode}: 6 kills, follower peak RSS {peak_kib / 1024:.1f} MiB")


_HOSTILE_WRITER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, b"seq=1 plain\\n")
os.write(fd, b"seq=2 invalid \\xff\\xfe\\xc3\\x28 utf-8 \\xed\\xa0\\x80\\n")
time.sleep(0.05)
# a 1 MiB line, written in pieces as a slow writer would
for _ in range(16):
    os.write(fd, b"x" * 65536)
    time.sleep(0.005)
os.write(fd, b" seq=3\\n")
os.write(fd, b"seq=4 after the long line\\n")
time.sleep(float(sys.argv[2]))
os.write(fd, b"seq=5 later\\n")
"""


async def test_invalid_utf8_and_a_1mib_line_do_not_stall_the_follower(
    tmp_path: Path, store: LogPositions
) -> None:
    log = tmp_path / "mail.log"
    settings = FileSettings(path=log, poll_interval=0.02, start="beginning", max_line_bytes=4096)
    follower = FileFollower(settings, store)
    writer = subprocess.Popen([sys.executable, "-c", _HOSTILE_WRITER, str(log), "0.5"])
    seen: dict[int, float] = {}
    lines: list[bytes] = []
    try:

        async def run() -> None:
            async for batch in follower.batches():
                for line in batch.items:
                    lines.append(line)
                    seen[len(lines)] = time.monotonic()
                if len(lines) == 5:
                    return

        await asyncio.wait_for(run(), 10)
    finally:
        writer.kill()
        writer.wait()
    assert lines[0] == b"seq=1 plain"
    assert lines[1] == b"seq=2 invalid \xff\xfe\xc3\x28 utf-8 \xed\xa0\x80"  # bytes untouched
    assert lines[2] == b"x" * 4096  # cut at max_line_bytes
    assert lines[3:] == [b"seq=4 after the long line", b"seq=5 later"]
    assert follower.counters.lines_truncated == 1
    assert follower.counters.bytes == os.path.getsize(log)
    # the last line was written 0.5 s after the long one; it arrives within a poll or two
    assert seen[5] - seen[4] < 0.5 + 0.25


def test_follower_memory_stays_flat_over_a_large_log(tmp_path: Path) -> None:
    """30 MB of log and a 1 MiB line pass through; the peak RSS stays near the baseline."""
    log, state, out = tmp_path / "mail.log", tmp_path / "state", tmp_path / "out"
    total = 400_000
    with log.open("wb") as f:
        f.write(b"x" * (1 << 20) + b"\n")
        for start in range(1, total + 1, 10_000):
            f.write(
                b"".join(
                    b"2026-01-01T00:00:00.000000+00:00 mx postfix/smtpd[1]: seq=%09d\n" % n
                    for n in range(start, start + 10_000)
                )
            )
    follower = run_follower(log, state, out)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and out.stat().st_size > log.stat().st_size - (1 << 20):
                tail = out.read_bytes()[-200:].splitlines()
                if sequence_numbers(tail[-2:]) == [total]:
                    break
            time.sleep(0.1)
        follower.send_signal(signal.SIGTERM)
        stdout, _ = follower.communicate(timeout=10)
    finally:
        follower.kill()
        follower.wait()
    peak_kib = int(stdout)
    assert peak_kib < 40 * 1024, f"follower peak RSS {peak_kib} KiB"
    print(f"{log.stat().st_size >> 20} MiB log: follower peak RSS {peak_kib / 1024:.1f} MiB")
