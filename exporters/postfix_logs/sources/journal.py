"""Records from the systemd journal, read through ``journalctl -o json``.

journalctl is the journal's stable reader interface (the file format and the C
library are not ours to track), and a subprocess keeps a stuck journal from stalling
the event loop. Records keep journald's own fields: the parser uses them as they are
instead of re-rendering a syslog line. Where the last run stopped is the journal
cursor of the last committed record; a cursor journalctl refuses (a journal from
another machine, vacuumed away) is counted and reading starts over per ``start``.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from exporters.postfix_logs.sources.batch import Batch
from exporters.postfix_logs.sources.lines import LineSplitter
from exporters.postfix_logs.sources.positions import LogPositionStore

READ_CHUNK = 64 * 1024
MAX_RECORD_BYTES = 1 << 20
"""Longest JSON record parsed (then cut to max_message_bytes); longer ones are counted
as unreadable. JSON may spell a byte in up to 6 characters, so the limit grows with
max_message_bytes when that is larger."""
STOP_TIMEOUT = 2.0
"""Seconds journalctl gets to exit on SIGTERM before it is killed."""


class JournalError(Exception):
    """journalctl could not be started or stopped with an error."""


@dataclass(frozen=True, slots=True)
class JournalSettings:
    key: str = "journald"
    """Name in the position store."""
    matches: tuple[str, ...] = ("SYSLOG_FACILITY=2",)
    """journalctl matches (``FIELD=value``); the default is the mail facility."""
    units: tuple[str, ...] = ()
    """Units (``-u``), combined with ``matches`` as journalctl combines them."""
    directory: Path | None = None
    """Read the journal files in this directory instead of the system journal."""
    follow: bool = True
    """Wait for new records; without, stop at the end of the journal."""
    start: Literal["end", "beginning"] = "end"
    """Where to start without a saved cursor."""
    max_message_bytes: int = 64 * 1024
    journalctl: str = "journalctl"


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal entry, with the fields a mail log parser needs."""

    message: bytes
    """MESSAGE as bytes: journald stores bytes, and not every program writes UTF-8."""
    identifier: str | None
    """SYSLOG_IDENTIFIER, e.g. ``postfix/submission/smtpd``."""
    pid: int | None
    """SYSLOG_PID, else _PID."""
    hostname: str | None
    realtime_usec: int
    """__REALTIME_TIMESTAMP: when journald received it, microseconds since the epoch."""
    priority: int | None
    facility: int | None
    cursor: str


@dataclass(slots=True)
class JournalCounters:
    records: int = 0
    messages_truncated: int = 0
    records_unreadable: int = 0
    """Output lines of journalctl that were not a JSON record (or were cut)."""
    positions_lost: int = 0
    """Saved cursors journalctl refused."""


def _value(raw: Any) -> bytes | None:
    """A journal field from journalctl's JSON: a string, a byte array, or a list of those."""
    if isinstance(raw, list) and raw and not isinstance(raw[0], int):
        raw = raw[0]  # a field set more than once: the first value
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    if isinstance(raw, list):
        return bytes(raw)
    return None


def _text(raw: Any) -> str | None:
    value = _value(raw)
    return None if value is None else value.decode("utf-8", "replace")


def _number(raw: Any) -> int | None:
    value = _value(raw)
    return int(value) if value is not None and value.isdigit() else None


class JournalSource:
    def __init__(self, settings: JournalSettings, store: LogPositionStore | None = None) -> None:
        self.settings = settings
        self.key = settings.key
        self.counters = JournalCounters()
        self._store = store
        self._committed: str | None = None
        self._refused = False

    def command(self, cursor: str | None) -> list[str]:
        s = self.settings
        args = [s.journalctl, "--output=json", "--all", "--no-pager", "--quiet"]
        if s.directory is not None:
            args.append(f"--directory={s.directory}")
        if s.follow:
            args.append("--follow")
        if cursor is not None:
            args += ["--after-cursor", cursor, "--no-tail"]
        elif s.start == "end":
            args.append("--lines=0")
        else:
            args.append("--no-tail")
        for unit in s.units:
            args += ["--unit", unit]
        return args + list(s.matches)

    async def batches(self) -> AsyncIterator[Batch[JournalRecord]]:
        cursor = None if self._store is None else await self._store.get(self.key)
        self._committed = cursor
        while True:
            read_any = False
            async for batch in self._run(cursor):
                read_any = True
                yield batch
            if cursor is None or read_any or not self._refused:
                return
            self.counters.positions_lost += 1
            cursor = None

    async def commit(self, batch: Batch[JournalRecord]) -> None:
        """Persist the cursor of the batch's last record, once the batch is processed."""
        if self._store is None or batch.position is None or batch.position == self._committed:
            return
        await self._store.put(self.key, batch.position)
        self._committed = batch.position

    async def _run(self, cursor: str | None) -> AsyncIterator[Batch[JournalRecord]]:
        """One journalctl process; sets ``_refused`` if it failed before any output."""
        self._refused = False
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(cursor),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise JournalError(f"cannot run {self.settings.journalctl}: {exc}") from exc
        assert proc.stdout is not None and proc.stderr is not None
        errors: collections.deque[bytes] = collections.deque(maxlen=5)
        stderr_task = asyncio.create_task(self._drain(proc.stderr, errors))
        splitter = LineSplitter(
            max(self.settings.max_message_bytes * 6, MAX_RECORD_BYTES) + READ_CHUNK
        )
        output = False
        try:
            while chunk := await proc.stdout.read(READ_CHUNK):
                output = True
                records = self._parse(splitter.feed(chunk))
                if records:
                    yield Batch(records, records[-1].cursor)
            records = self._parse(splitter.end())
            if records:
                yield Batch(records, records[-1].cursor)
            returncode = await proc.wait()
            await stderr_task
            if returncode != 0:
                reason = b" ".join(errors).decode("utf-8", "replace").strip()
                if cursor is not None and not output:
                    self._refused = True
                    return
                raise JournalError(f"journalctl exited with status {returncode}: {reason}")
            if self.settings.follow:
                raise JournalError("journalctl stopped following the journal")
        finally:
            stderr_task.cancel()
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

    @staticmethod
    async def _drain(stream: asyncio.StreamReader, keep: collections.deque[bytes]) -> None:
        while line := await stream.readline():
            keep.append(line[:500])

    def _parse(self, lines: list[bytes]) -> list[JournalRecord]:
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                fields = json.loads(line)
                records.append(self._record(fields))
            except (ValueError, TypeError, KeyError, AttributeError):
                self.counters.records_unreadable += 1
        self.counters.records += len(records)
        return records

    def _record(self, fields: dict[str, Any]) -> JournalRecord:
        message = _value(fields.get("MESSAGE")) or b""
        limit = self.settings.max_message_bytes
        if len(message) > limit:
            message = message[:limit]
            self.counters.messages_truncated += 1
        realtime = _number(fields["__REALTIME_TIMESTAMP"])
        cursor = fields["__CURSOR"]
        if realtime is None or not isinstance(cursor, str):
            raise ValueError("record without timestamp or cursor")
        return JournalRecord(
            message=message,
            identifier=_text(fields.get("SYSLOG_IDENTIFIER")),
            pid=_number(fields.get("SYSLOG_PID")) or _number(fields.get("_PID")),
            hostname=_text(fields.get("_HOSTNAME")),
            realtime_usec=realtime,
            priority=_number(fields.get("PRIORITY")),
            facility=_number(fields.get("SYSLOG_FACILITY")),
            cursor=cursor,
        )
