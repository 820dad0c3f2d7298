"""Follow a log file by name across rotations, resuming where the last run stopped.

The follower polls: at most ``poll_interval`` passes between a line being written and
being read, and no inotify limits or lost events get in the way. Positions are
``(device, inode, offset, fingerprint)`` where the fingerprint is a digest of the
file's first line (up to 1 KiB): it tells a file rewritten from the start (copytruncate,
a reused inode) from the one we read, and finds the copy a copytruncate left behind.

Rotations handled, while running and between runs:

* rename (``mail.log`` -> ``mail.log.1``, a new ``mail.log``): the old file is read to
  its end, and read on for ``rotate_wait`` seconds in case its writer is slow to reopen;
  files rotated in between that we never opened (``mail.log.2`` newer than ours) are
  read first, oldest first, then the new file from its start;
* copytruncate (the file shrinks or its first line changes): the rest of what we had
  not read is taken from the copy (a rotated file with our fingerprint), then the file
  is read again from offset 0;
* a file that does not exist yet is read from its start once it appears.

Rotated files are looked for beside the log as ``<name>.*`` and ``<name>-*``
(compressed ones are skipped); compressed or deleted files cannot be resumed and are
counted in ``positions_lost``.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import hashlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exporters.postfix_logs.sources.batch import Batch
from exporters.postfix_logs.sources.positions import LogPositionStore

FINGERPRINT_MAX = 1024
READ_CHUNK = 64 * 1024
CHUNKS_PER_CYCLE = 16
"""Reads per file before the follower lets other tasks of the event loop run."""
MAX_DRAINING = 16
"""Rotated files read at once; past this, the oldest is closed at its end."""
CLOCK_SLACK_NS = 20_000_000
"""File times come from a coarse clock and may run up to a tick behind time.time()."""
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip")

Identity = tuple[int, int]
Age = tuple[int, int]
"""Orders rotated files: (modification time in ns, minus the ``.N`` suffix)."""
Landmark = tuple[Identity, int]
"""A file we know, to find the ones rotated after it: its identity and mtime in ns."""


@dataclass(frozen=True, slots=True)
class FileSettings:
    path: Path
    key: str = ""
    """Name in the position store; ``file:<path>`` when empty."""
    poll_interval: float = 0.25
    max_line_bytes: int = 64 * 1024
    """Longer lines are cut to this many bytes and counted in ``lines_truncated``."""
    start: Literal["end", "beginning"] = "end"
    """Where to start in a file that exists when no position was saved yet."""
    rotate_wait: float = 2.0
    """How long a rotated file is read on after it stops growing."""


@dataclass(slots=True)
class FileCounters:
    lines: int = 0
    bytes: int = 0
    lines_truncated: int = 0
    rotations: int = 0
    truncations: int = 0
    positions_lost: int = 0
    """Saved or rotated positions whose file could not be found again."""
    files_opened: int = 0
    open_errors: int = 0


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class _OpenFile:
    """One open file and how far its complete lines have been handed out."""

    __slots__ = (
        "cut",
        "cut_lines",
        "dev",
        "fd",
        "fingerprint",
        "fingerprint_len",
        "idle_since",
        "ino",
        "offset",
        "scan_from",
    )

    def __init__(self, fd: int, offset: int, fingerprint: bytes, fingerprint_len: int) -> None:
        st = os.fstat(fd)
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.offset = offset
        self.fingerprint = fingerprint
        self.fingerprint_len = fingerprint_len
        self.idle_since: float | None = None
        self.cut: bytes | None = None
        """The kept start of an over-long line whose end is still being looked for."""
        self.scan_from = 0
        self.cut_lines = 0
        """Lines the last ``read`` cut."""

    @classmethod
    def open(
        cls, path: str, offset: int = 0, fingerprint: bytes = b"", length: int = 0
    ) -> _OpenFile:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            opened = cls(fd, offset, fingerprint, length)
            if not length:
                opened.take_fingerprint(os.pread(fd, FINGERPRINT_MAX, 0))
            return opened
        except BaseException:
            os.close(fd)
            raise

    @property
    def identity(self) -> Identity:
        return (self.dev, self.ino)

    def close(self) -> None:
        os.close(self.fd)

    def take_fingerprint(self, head: bytes) -> None:
        """Fingerprint the first line from ``head``, the file's first bytes, once it is whole."""
        newline = head.find(b"\n")
        if newline < 0 and len(head) < FINGERPRINT_MAX:
            return
        length = FINGERPRINT_MAX if newline < 0 else min(FINGERPRINT_MAX, newline + 1)
        self.fingerprint = _digest(head[:length])
        self.fingerprint_len = length

    def reset(self) -> None:
        """Start over at offset 0: the file was truncated under us."""
        self.offset = 0
        self.fingerprint = b""
        self.fingerprint_len = 0
        self.cut = None
        self.take_fingerprint(os.pread(self.fd, FINGERPRINT_MAX, 0))

    def has_fingerprint(self, fingerprint: bytes, length: int) -> bool:
        return _digest(os.pread(self.fd, length, 0)) == fingerprint

    def same_generation(self) -> bool:
        """False once the file was truncated or rewritten from its start (copytruncate)."""
        if os.fstat(self.fd).st_size < self.offset:
            return False
        return not self.fingerprint_len or self.has_fingerprint(
            self.fingerprint, self.fingerprint_len
        )

    def landmark(self) -> Landmark:
        return (self.identity, os.fstat(self.fd).st_mtime_ns)

    def position(self) -> list[int | str]:
        return [self.dev, self.ino, self.offset, self.fingerprint.hex(), self.fingerprint_len]

    def read(self, max_line: int) -> list[bytes] | None:
        """The next complete lines, without their newline; None when nothing more is there.

        An empty list means progress without a finished line (inside an over-long one).
        """
        self.cut_lines = 0
        if self.cut is not None:
            return self._finish_long_line()
        data = os.pread(self.fd, max(READ_CHUNK, max_line + 1), self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) <= max_line:
                return None  # nothing, or a line still being written
            self.cut = data[:max_line]
            self.scan_from = self.offset + len(data)
            return self._finish_long_line()
        if self.offset == 0 and not self.fingerprint_len:
            self.take_fingerprint(data)
        lines = data.split(b"\n")
        lines.pop()  # what follows the last newline: read again next time
        self.offset += end + 1
        if end > max_line:
            for i, line in enumerate(lines):
                if len(line) > max_line:
                    lines[i] = line[:max_line]
                    self.cut_lines += 1
        return lines

    def _finish_long_line(self) -> list[bytes] | None:
        assert self.cut is not None
        for _ in range(CHUNKS_PER_CYCLE):
            data = os.pread(self.fd, READ_CHUNK, self.scan_from)
            if not data:
                return None
            newline = data.find(b"\n")
            if newline >= 0:
                line = self.cut
                if self.offset == 0 and not self.fingerprint_len:
                    self.take_fingerprint(line)
                self.offset = self.scan_from + newline + 1
                self.cut = None
                self.cut_lines = 1
                return [line]
            self.scan_from += len(data)
        return []

    def read_rest(self, max_line: int) -> list[bytes]:
        """A last line without newline, when the file is given up at its end."""
        size = os.fstat(self.fd).st_size
        if self.cut is not None:
            line = self.cut
        elif size > self.offset:
            line = os.pread(self.fd, min(size - self.offset, max_line + 1), self.offset)
        else:
            return []
        self.cut_lines = int(len(line) > max_line or self.cut is not None)
        self.cut = None
        self.offset = max(size, self.offset)
        return [line[:max_line]]


class FileFollower:
    """Yields batches of raw lines (bytes, no newline) of one log file, followed by name."""

    def __init__(self, settings: FileSettings, store: LogPositionStore | None = None) -> None:
        self.settings = settings
        self.key = settings.key or f"file:{settings.path}"
        self.counters = FileCounters()
        self.last_error: str | None = None
        """Why the file could not be read the last time it failed, for the check's reason."""
        self._name = os.fspath(settings.path)
        self._store = store
        self._committed: str | None = None
        self._draining: list[_OpenFile] = []
        self._current: _OpenFile | None = None
        self._newest_copy: Landmark | None = None
        """The newest copytruncate copy queued, to notice copies made while we looked away."""
        self._absent_since: int | None = None
        """When we found the file missing with nothing to resume (ns since the epoch)."""

    @property
    def opened(self) -> bool:
        """True once the file is open (with ``start: end``, positioned at its end)."""
        return self._current is not None

    async def batches(self) -> AsyncIterator[Batch[bytes]]:
        try:
            await self._restore()
            while True:
                progressed = False
                for lines in self._cycle():
                    progressed = True
                    if lines:
                        yield Batch(lines, self._position())
                await asyncio.sleep(0 if progressed else self.settings.poll_interval)
        finally:
            self.close()

    async def commit(self, batch: Batch[bytes]) -> None:
        """Persist the position right after ``batch``; call it once the batch is processed."""
        if self._store is None or batch.position is None or batch.position == self._committed:
            return
        await self._store.put(self.key, batch.position)
        self._committed = batch.position

    def close(self) -> None:
        for opened in self._tracked():
            opened.close()
        self._draining.clear()
        self._current = None

    def _tracked(self) -> list[_OpenFile]:
        return self._draining + ([self._current] if self._current else [])

    def _position(self) -> str:
        """The files we read and, under copytruncate, the newest copy we know of.

        ``{"files": [[dev, ino, offset, fingerprint, its length], ...], "copy": [dev, ino,
        mtime] or null}``, rotated files first, the current file last.
        """
        copy = self._newest_copy
        return json.dumps(
            {
                "files": [f.position() for f in self._tracked()],
                "copy": None if copy is None else [*copy[0], copy[1]],
            },
            separators=(",", ":"),
        )

    def _failed(self, exc: OSError) -> None:
        self.counters.open_errors += 1
        self.last_error = f"{self._name}: {exc.strerror or exc}"

    # -- reading -------------------------------------------------------------------------

    def _cycle(self) -> Iterator[list[bytes]]:
        """One pass over every tracked file; yields batches, or [] for progress without one."""
        now = time.monotonic()
        for opened in list(self._draining):
            at_end = yield from self._read(opened, verify=False)
            if not at_end:
                opened.idle_since = None
                continue
            if opened.idle_since is None:
                opened.idle_since = now
            if (
                now - opened.idle_since >= self.settings.rotate_wait
                or len(self._draining) > MAX_DRAINING
            ):
                start = opened.offset
                rest = opened.read_rest(self.settings.max_line_bytes)
                yield self._accept(opened, start, rest)
                self._draining.remove(opened)
                opened.close()
        if self._current is None:
            self._current = self._open(self._name)
            if self._current is None:
                return
            if self._absent_since is not None:
                # Created while we watched: what it held before a first quick rotation too.
                self._queue_newer(((-1, -1), self._absent_since), copies_of=self._current)
                self._absent_since = None
            yield []
            return
        current = self._current
        if not current.fingerprint_len and current.offset == 0:
            if self._missed_copies(current):
                yield []
                return
            if not current.fingerprint_len:  # no whole first line yet: nothing to read
                if self._rotated(current):
                    yield []
                return

        if not current.same_generation():
            self._truncated(current)
            yield []
            return  # the copy's rest goes first, in the next cycle
        at_end = yield from self._read(current, verify=True)
        if at_end and self._rotated(current):
            yield []

    def _read(self, opened: _OpenFile, *, verify: bool) -> Generator[list[bytes], None, bool]:
        """Read up to CHUNKS_PER_CYCLE chunks; return True when at the file's end.

        With ``verify``, what was read is kept only if the file still starts with our
        first line afterwards, so a copytruncate racing the read cannot slip lines of
        the new content in at the old offset.
        """
        for _ in range(CHUNKS_PER_CYCLE):
            start = opened.offset
            lines = opened.read(self.settings.max_line_bytes)
            if lines is None:
                return True
            if verify and not opened.same_generation():
                opened.offset = start
                opened.cut = None
                self._truncated(opened)
                yield []
                return False
            yield self._accept(opened, start, lines)
        return False

    def _accept(self, opened: _OpenFile, start: int, lines: list[bytes]) -> list[bytes]:
        self.counters.lines += len(lines)
        self.counters.bytes += opened.offset - start
        self.counters.lines_truncated += opened.cut_lines
        return lines

    # -- rotation ------------------------------------------------------------------------

    def _open(self, path: str, offset: int = 0) -> _OpenFile | None:
        try:
            opened = _OpenFile.open(path, offset)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._failed(exc)
            return None
        self.last_error = None
        self.counters.files_opened += 1
        return opened

    def _rotated(self, current: _OpenFile) -> bool:
        """At the current file's end: switch to a new file under the name, if there is one."""
        try:
            st = os.stat(self._name)
        except FileNotFoundError:
            return False  # renamed, not yet recreated: keep reading the old one
        except OSError as exc:
            self._failed(exc)
            return False
        if (st.st_dev, st.st_ino) == current.identity:
            return False
        new = self._open(self._name)
        if new is None:
            return False
        if new.identity == current.identity:
            new.close()
            return False
        self.counters.rotations += 1
        current.idle_since = None
        self._draining.append(current)
        self._current = new
        self._queue_newer(current.landmark(), copies_of=None)
        return True

    def _truncated(self, current: _OpenFile) -> None:
        """The current file was truncated: finish what we had not read from its copy.

        Then come the copies made after ours, when the file was truncated several times
        before we looked.
        """
        self.counters.truncations += 1
        queued = any(
            f.fingerprint_len == current.fingerprint_len and f.fingerprint == current.fingerprint
            for f in self._draining
        )
        copy = None
        if not queued and current.fingerprint_len:
            tracked = {f.identity for f in self._tracked()}
            copy = self._find(
                None, current.offset, current.fingerprint, current.fingerprint_len, tracked
            )
            if copy is None:
                self.counters.positions_lost += 1
        current.reset()
        if copy is not None:
            self._draining.append(copy)
            self._newest_copy = copy.landmark()
        if self._newest_copy is not None:
            self._newest_copy = self._queue_newer(self._newest_copy, copies_of=current)

    def _missed_copies(self, current: _OpenFile) -> bool:
        """Queue copies of contents truncated away before we saw their first line.

        A file found empty after a copytruncate may fill, be copied and truncated again
        before the next poll; nothing in the file shows it then, but a copy newer than
        the newest we know does. Checked once the new content's first line is there;
        returns whether anything was queued.
        """
        current.take_fingerprint(os.pread(current.fd, FINGERPRINT_MAX, 0))
        if self._newest_copy is None or not current.fingerprint_len:
            return False
        newest = self._queue_newer(self._newest_copy, copies_of=current)
        queued = newest != self._newest_copy
        self._newest_copy = newest
        return queued

    def _rotated_paths(self) -> list[str]:
        pattern = glob.escape(self._name)
        paths = glob.glob(pattern + ".*") + glob.glob(pattern + "-*")
        return [p for p in paths if not p.endswith(COMPRESSED_SUFFIXES)]

    def _rotated_files(self) -> list[tuple[Age, str, Identity]]:
        """The regular rotated files beside the log, oldest first.

        By modification time; file timestamps come from a coarse kernel clock, so
        files rotated within a few milliseconds tie, and ``<name>.N`` numbering (larger
        is older) breaks the tie. A rotation renaming files while we list them would
        mix two numberings, so the list is taken until two in a row agree.
        """
        listed = self._list_rotated()
        for _ in range(3):
            again = self._list_rotated()
            if again == listed:
                break
            listed = again
        return listed

    def _list_rotated(self) -> list[tuple[Age, str, Identity]]:
        files: dict[Identity, tuple[Age, str, Identity]] = {}
        for path in self._rotated_paths():
            try:
                st = os.stat(path)
            except OSError:
                continue
            identity = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and identity not in files:
                suffix = path[len(self._name) + 1 :]
                age = (st.st_mtime_ns, -int(suffix) if suffix.isdigit() else 0)
                files[identity] = (age, path, identity)
        return sorted(files.values())

    def _queue_newer(self, than: Landmark, copies_of: _OpenFile | None) -> Landmark:
        """Queue the rotated files written after ``than`` and before the current file.

        Files are opened, then checked to be the ones listed; if a rotation renamed them
        in between, the listing is taken again. With ``copies_of`` (the current file, when
        it is rotated by copytruncate) a copy is taken only once the file no longer
        starts with the copy's first line: a copy of what the file still holds may be
        half made, and those lines will be read from the file itself. Returns the
        landmark of the newest file queued (``than`` if none).
        """
        tracked = {f.identity for f in self._tracked()}
        for attempt in range(5):
            files = self._rotated_files()
            ages = {identity: age for age, _, identity in files}
            reference = ages.get(than[0], (than[1], 0))
            until = ages.get(self._current.identity) if self._current else None
            picked: list[_OpenFile] = []
            complete = True
            for age, path, identity in files:
                if age <= reference or identity in tracked or (until and age >= until):
                    continue
                opened = self._open(path)
                if opened is not None and opened.identity == identity:
                    picked.append(opened)
                    continue
                complete = False
                if opened is not None:
                    opened.close()
            if complete or attempt == 4:
                break
            for opened in picked:
                opened.close()
        newest = than
        for opened in picked:
            if copies_of is not None and (
                not opened.fingerprint_len
                or copies_of.has_fingerprint(opened.fingerprint, opened.fingerprint_len)
            ):
                opened.close()
                continue
            self._draining.append(opened)
            newest = opened.landmark()
        return newest

    def _find(
        self,
        identity: Identity | None,
        offset: int,
        fingerprint: bytes,
        length: int,
        exclude: set[Identity],
    ) -> _OpenFile | None:
        """Open the file (by name or among rotated files) that holds a saved position.

        With ``identity`` the file must be that inode (rename); without, any file with
        the fingerprint (a copy). Either way it must be at least ``offset`` long. The
        rotated files are listed twice: a rotation renaming them while we look can move
        ours past the end of the first list.
        """
        for _ in range(2):
            found = self._find_once(identity, offset, fingerprint, length, exclude)
            if found is not None:
                return found
        return None

    def _find_once(
        self,
        identity: Identity | None,
        offset: int,
        fingerprint: bytes,
        length: int,
        exclude: set[Identity],
    ) -> _OpenFile | None:
        for path in [self._name, *self._rotated_paths()]:
            try:
                st = os.stat(path)
            except OSError:
                continue
            here = (st.st_dev, st.st_ino)
            if not stat.S_ISREG(st.st_mode) or st.st_size < offset or here in exclude:
                continue
            if identity is not None and here != identity:
                continue
            opened = self._open(path, offset)
            if opened is None:
                continue
            opened.fingerprint, opened.fingerprint_len = fingerprint, length
            if opened.identity not in exclude and (
                not length or opened.has_fingerprint(fingerprint, length)
            ):
                return opened
            opened.close()
        return None

    # -- restart ---------------------------------------------------------------------------

    async def _restore(self) -> None:
        saved = None if self._store is None else await self._store.get(self.key)
        self._committed = saved
        entries = self._parse(saved) if saved is not None else None
        if entries is None:
            self._start_fresh()
            if self._store is not None:
                # Saved at once, so a restart before the first commit starts from here too
                # (with start=end it would skip what was written in between).
                self._committed = self._position()
                await self._store.put(self.key, self._committed)
            return
        located: list[_OpenFile] = []
        copied = False  # the last file was found as a copy: rotation by copytruncate
        for dev, ino, offset, fingerprint, length in entries:
            taken = {f.identity for f in located}
            found = self._find((dev, ino), offset, fingerprint, length, taken)
            by_copy = False
            if found is None and length:
                found = self._find(None, offset, fingerprint, length, taken)
                by_copy = found is not None
            if found is None:
                self.counters.positions_lost += 1
                continue
            located.append(found)
            copied = by_copy
        try:
            st = os.stat(self._name)
            name_identity: Identity | None = (st.st_dev, st.st_ino)
        except OSError:
            name_identity = None
        if located and located[-1].identity == name_identity:
            self._current = located.pop()
            self._draining = located
            return
        # Rotated while we were stopped: the files rotated after ours, then all of the new.
        self._draining = located
        self._current = self._open(self._name)
        if not located:
            if self._current is None:
                self._absent_since = time.time_ns() - CLOCK_SLACK_NS
            return
        if copied:
            self._newest_copy = self._queue_newer(located[-1].landmark(), self._current)
        else:
            self._queue_newer(located[-1].landmark(), copies_of=None)

    def _parse(self, saved: str) -> list[tuple[int, int, int, bytes, int]] | None:
        """The saved files; also takes back the newest copy known. None if unreadable."""
        try:
            raw = json.loads(saved)
            entries = [
                (int(dev), int(ino), int(offset), bytes.fromhex(fp), int(length))
                for dev, ino, offset, fp, length in raw["files"]
            ]
            for _, _, offset, _, length in entries:
                if offset < 0 or not 0 <= length <= FINGERPRINT_MAX:
                    raise ValueError("offset or fingerprint length out of range")
            if raw["copy"] is not None:
                dev, ino, mtime = raw["copy"]
                self._newest_copy = ((int(dev), int(ino)), int(mtime))
            return entries
        except (ValueError, TypeError, KeyError):
            self.counters.positions_lost += 1
            return None

    def _start_fresh(self) -> None:
        opened = self._open(self._name)
        if opened is None:
            self._absent_since = time.time_ns() - CLOCK_SLACK_NS
        if opened is None or self.settings.start == "beginning":
            self._current = opened
            return
        size = os.fstat(opened.fd).st_size
        span = min(size, self.settings.max_line_bytes + 1)
        tail = os.pread(opened.fd, span, size - span)
        newline = tail.rfind(b"\n")
        opened.offset = size if newline < 0 else size - len(tail) + newline + 1
        self._current = opened
