"""Lines from standard input (or any other open descriptor): ``mailprobe logs -``."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass

from exporters.postfix_logs.sources.batch import Batch
from exporters.postfix_logs.sources.lines import LineSplitter

READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class StreamCounters:
    lines: int = 0
    bytes: int = 0
    lines_truncated: int = 0


class StdinSource:
    """Yields batches of raw lines until end of input; nothing to resume, so no positions.

    A regular file (``< mail.log``) is read directly; a pipe or terminal through the
    event loop, so waiting for input never blocks other tasks.
    """

    def __init__(self, fd: int = 0, max_line_bytes: int = 64 * 1024, key: str = "stdin") -> None:
        self.key = key
        self.counters = StreamCounters()
        self._fd = fd
        self._splitter = LineSplitter(max_line_bytes)

    async def batches(self) -> AsyncIterator[Batch[bytes]]:
        if stat.S_ISREG(os.fstat(self._fd).st_mode):
            while chunk := os.read(self._fd, READ_CHUNK):
                if lines := self._split(chunk):
                    yield Batch(lines, None)
                await asyncio.sleep(0)
        else:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=READ_CHUNK, loop=loop)
            # A duplicate, so closing the transport leaves our caller's descriptor open.
            pipe = os.fdopen(os.dup(self._fd), "rb", buffering=0)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
            )
            try:
                while chunk := await reader.read(READ_CHUNK):
                    if lines := self._split(chunk):
                        yield Batch(lines, None)
            finally:
                transport.close()
        if last := self._splitter.end():
            self._count(last)
            yield Batch(last, None)

    async def commit(self, batch: Batch[bytes]) -> None:
        """Nothing to persist: input from a pipe cannot be read again."""

    def _split(self, chunk: bytes) -> list[bytes]:
        self.counters.bytes += len(chunk)
        lines = self._splitter.feed(chunk)
        self._count(lines)
        return lines

    def _count(self, lines: list[bytes]) -> None:
        self.counters.lines += len(lines)
        self.counters.lines_truncated = self._splitter.cut
