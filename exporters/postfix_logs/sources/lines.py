"""Split a byte stream into lines, cutting over-long ones, with bounded memory."""

from __future__ import annotations


class LineSplitter:
    """Feed chunks, get complete lines (without the newline).

    A line longer than ``max_line`` is cut to its first ``max_line`` bytes; the rest is
    dropped as it arrives, so a line without end never grows the buffer. ``cut`` counts
    the lines cut so far.
    """

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.cut = 0
        self._partial = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes]:
        lines = data.split(b"\n")
        rest = lines.pop()
        if lines:
            if self._partial or self._overflow:
                self._add(lines[0])
                lines[0] = self._take()
            if len(data) > self.max_line:
                for i, line in enumerate(lines):
                    if len(line) > self.max_line:
                        lines[i] = line[: self.max_line]
                        self.cut += 1
        self._add(rest)
        return lines

    def end(self) -> list[bytes]:
        """The last line of a stream that did not end with a newline, if any."""
        return [self._take()] if self._partial or self._overflow else []

    def _add(self, piece: bytes) -> None:
        if self._overflow:
            return
        room = self.max_line - len(self._partial)
        self._partial += piece[:room]
        self._overflow = len(piece) > room

    def _take(self) -> bytes:
        line = bytes(self._partial)
        if self._overflow:
            self.cut += 1
        self._partial.clear()
        self._overflow = False
        return line
