"""The stdin source and the line splitter behind it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exporters.postfix_logs.sources import StdinSource
from exporters.postfix_logs.sources.lines import LineSplitter

ROOT = Path(__file__).resolve().parent.parent
DATA = (
    b"one\n"
    + b"two \xff\xfe\xc3\x28 not utf-8\n"
    + b"L" * 5000
    + b"\n"
    + b"\n"  # an empty line is a line
    + b"last, without newline"
)
EXPECTED = [b"one", b"two \xff\xfe\xc3\x28 not utf-8", b"L" * 1024, b"", b"last, without newline"]


@pytest.mark.parametrize("chunk", [1, 7, 1000, 100_000])
def test_splitter_gives_the_same_lines_whatever_the_chunking(chunk: int) -> None:
    splitter = LineSplitter(1024)
    lines: list[bytes] = []
    for i in range(0, len(DATA), chunk):
        lines += splitter.feed(DATA[i : i + chunk])
    lines += splitter.end()
    assert lines == EXPECTED
    assert splitter.cut == 1


def test_splitter_memory_stays_bounded_on_a_line_without_end() -> None:
    splitter = LineSplitter(100)
    for _ in range(1000):
        assert splitter.feed(b"z" * 10_000) == []
    assert len(splitter._partial) == 100
    assert splitter.feed(b"\nnext\n") == [b"z" * 100, b"next"]
    assert splitter.cut == 1


async def read(source: StdinSource) -> list[bytes]:
    lines: list[bytes] = []
    async with asyncio.timeout(10):
        async for batch in source.batches():
            assert batch.position is None
            lines += batch.items
    return lines


async def test_a_regular_file_on_stdin(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    try:
        source = StdinSource(fd, max_line_bytes=1024)
        assert await read(source) == EXPECTED
    finally:
        os.close(fd)
    assert source.counters.lines == 5
    assert source.counters.lines_truncated == 1
    assert source.counters.bytes == len(DATA)


_PAUSING_WRITER = textwrap.dedent(
    """
    import os, select, sys
    os.write(1, b"one\\n")
    select.select([0], [], [], 3.0)  # until the test says go, at most 3 s
    os.write(1, b"two\\n")
    """
)


async def test_waiting_for_a_pipe_does_not_block_the_event_loop() -> None:
    read_end, write_end = os.pipe()
    writer = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_WRITER], stdin=subprocess.PIPE, stdout=write_end
    )
    os.close(write_end)
    assert writer.stdin is not None
    source = StdinSource(read_end)
    lines: list[bytes] = []

    async def consume() -> None:
        async for batch in source.batches():
            lines.extend(batch.items)

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(10):
            while not lines:
                await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.sleep(0.05)  # the writer waits; the source must not hold the loop
        assert time.monotonic() - started < 1.5
        writer.stdin.write(b"go")
        writer.stdin.close()
        async with asyncio.timeout(10):
            await task
    finally:
        task.cancel()
        os.close(read_end)
        writer.wait()
    assert lines == [b"one", b"two"]


def test_reads_the_process_stdin_by_default(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """
        import asyncio
        from exporters.postfix_logs.sources import StdinSource

        async def main() -> None:
            async for batch in StdinSource().batches():
                for line in batch.items:
                    print(len(line))

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], input=DATA, capture_output=True, cwd=ROOT, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"3", b"18", b"5000", b"0", b"21"]
