"""Reading log files for the one-shot report: plain or gzip, whole or a byte range.

Following live logs (rotation, positions, journald) is the sources' job
(``exporters.postfix_logs.sources``); this only reads what is there now, in large
chunks decoded at once, and hands lists of lines to the aggregator.
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20

Progress = Callable[[int], None]
"""Called with the number of input bytes just consumed."""


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of input one worker reads: a whole file, or a byte range of a plain one."""

    path: Path | None
    """None for stdin."""
    start: int = 0
    end: int | None = None

    @property
    def compressed(self) -> bool:
        return self.path is not None and self.path.suffix == ".gz"


def _chunks(stream: BinaryIO, limit: int | None, progress: Progress | None) -> Iterator[bytes]:
    remaining = limit
    while remaining is None or remaining > 0:
        data = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not data:
            return
        if remaining is not None:
            remaining -= len(data)
        if progress is not None:
            progress(len(data))
        yield data


def batches(
    stream: BinaryIO, limit: int | None = None, progress: Progress | None = None
) -> Iterator[list[str]]:
    """Lists of lines (without newline) of ``stream``, up to ``limit`` bytes.

    Each chunk is decoded at once with ``errors="replace"`` by an incremental decoder
    (a multi-byte character split between chunks survives) and split on ``\\n`` only:
    ``str.splitlines`` would also split on form feeds and U+2028 in client text.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    for data in _chunks(stream, limit, progress):
        lines = (tail + decoder.decode(data)).split("\n")
        tail = lines.pop()
        if lines:
            yield lines
    tail += decoder.decode(b"", final=True)
    if tail:
        yield [tail]


def read_part(
    part: Part, stdin: BinaryIO | None, progress: Progress | None = None
) -> Iterator[list[str]]:
    if part.path is None:
        if stdin is None:
            raise ValueError("stdin is not available here")
        yield from batches(stdin, None, progress)
        return
    if part.compressed:
        with gzip.open(part.path, "rb") as stream:
            yield from batches(stream, None, None)  # type: ignore[arg-type]
        if progress is not None:
            progress(part.path.stat().st_size)
        return
    with part.path.open("rb") as stream:
        stream.seek(part.start)
        limit = None if part.end is None else part.end - part.start
        yield from batches(stream, limit, progress)


def split(paths: list[Path], jobs: int, min_bytes: int = 32 << 20) -> list[Part]:
    """Parts for ``jobs`` workers: gzip files whole, big plain files cut at line ends."""
    parts: list[Part] = []
    for path in paths:
        size = path.stat().st_size
        if path.suffix == ".gz" or jobs < 2 or size < min_bytes:
            parts.append(Part(path))
            continue
        with path.open("rb") as stream:
            cuts = [0]
            for k in range(1, jobs):
                stream.seek(size * k // jobs)
                stream.readline()
                cuts.append(max(stream.tell(), cuts[-1]))
            cuts.append(size)
        parts.extend(Part(path, a, b) for a, b in itertools.pairwise(cuts) if b > a)
    return parts


def total_bytes(paths: list[Path]) -> int:
    return sum(os.stat(p).st_size for p in paths)
