"""SMTP replies (RFC 5321 4.2) read from a stream, with every size bounded.

A reply is one or more lines ``CODE-text`` ending with ``CODE text``.  A hostile or
broken server can send a line without end, a reply without end, or something that is
not SMTP at all; each becomes a :class:`ReplyError` whose reason says so in the
protocol's words, never the words of a parser.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from exporters.smtp.transcript import Transcript

MAX_REPLY_BYTES = 64 * 1024
"""Longest reply accepted; the StreamReader's limit is set to this as well, so a line
without CRLF never buffers more than about twice this much."""

_LINE = re.compile(r"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]
    """Text of each line after the code and separator."""

    @property
    def text(self) -> str:
        return " / ".join(line for line in self.lines if line)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


class ReplyError(Exception):
    """The server's bytes are not a usable reply; ``reason`` finishes a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplyTooLong(ReplyError):
    pass


class MalformedReply(ReplyError):
    pass


class ClosedByServer(ReplyError):
    pass


def excerpt(data: bytes | str, limit: int = 40) -> str:
    """A short printable quote of what the server sent, safe for a reason or a log."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    shown = "".join(c if " " <= c <= "~" else "." for c in text[:limit])
    return repr(shown + ("…" if len(text) > limit else ""))


async def read_reply(reader: asyncio.StreamReader, transcript: Transcript) -> Reply:
    """Read one complete reply; raise :class:`ReplyError` for anything that is not one."""
    builder = ReplyBuilder(transcript)
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise ReplyTooLong(LINE_TOO_LONG) from None
        except asyncio.IncompleteReadError as exc:
            raise closed(exc.partial, transcript) from None
        reply = builder.add(raw)
        if reply is not None:
            return reply


LINE_TOO_LONG = f"a reply line longer than {MAX_REPLY_BYTES // 1024} KiB without a line end"


def closed(partial: bytes, transcript: Transcript) -> ClosedByServer:
    """The error for a connection the server closed before a reply was complete."""
    if partial:
        transcript.server(partial.decode("utf-8", "replace"))
        return ClosedByServer(
            f"the server closed the connection in the middle of a reply ({excerpt(partial)})"
        )
    return ClosedByServer("the server closed the connection")


class ReplyBuilder:
    """Takes a reply's lines one at a time (each with its line end), as read from the
    server, and checks each; :meth:`add` returns the reply once its last line came."""

    def __init__(self, transcript: Transcript) -> None:
        self._transcript = transcript
        self._lines: list[str] = []
        self._total = 0
        self._code: int | None = None

    def add(self, raw: bytes) -> Reply | None:
        self._total += len(raw)
        if self._total > MAX_REPLY_BYTES:
            raise ReplyTooLong(f"a reply longer than {MAX_REPLY_BYTES // 1024} KiB")
        text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        self._transcript.server(text)
        match = _LINE.fullmatch(text)
        if match is None:
            raise MalformedReply(f"not an SMTP reply: {excerpt(raw)}")
        line_code = int(match[1])
        if self._code is not None and line_code != self._code:
            raise MalformedReply(
                f"a multi-line reply changed its code from {self._code} to {line_code}"
            )
        self._code = line_code
        self._lines.append(match[3] or "")
        if match[2] != "-":
            return Reply(line_code, tuple(self._lines))
        return None
