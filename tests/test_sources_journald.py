"""The journald source against real journal files written by systemd-journal-remote."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporters.postfix_logs.sources import (
    Batch,
    JournalError,
    JournalRecord,
    JournalSettings,
    JournalSource,
)
from monitor.state import LogPositions, StateStore

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")
BOOT_ID = b"0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.skipif(
    not JOURNAL_REMOTE.exists(), reason="needs systemd-journal-remote (deploy/apt-packages.txt)"
)

_clock = [int(time.time() * 1_000_000)]


def entry(message: bytes, identifier: bytes = b"postfix/smtpd", facility: int = 2) -> bytes:
    """One entry in journald's export format; MESSAGE in the binary form, which takes any byte."""
    _clock[0] += 1000
    fields = [
        b"__REALTIME_TIMESTAMP=%d" % _clock[0],
        b"__MONOTONIC_TIMESTAMP=%d" % (_clock[0] % 10**9),
        b"_BOOT_ID=" + BOOT_ID,
        b"_HOSTNAME=mx1.example.org",
        b"SYSLOG_IDENTIFIER=" + identifier,
        b"SYSLOG_PID=4242",
        b"SYSLOG_FACILITY=%d" % facility,
        b"PRIORITY=6",
    ]
    binary = b"MESSAGE\n" + struct.pack("<Q", len(message)) + message
    return b"\n".join([*fields, binary]) + b"\n\n"


def write_journal(path: Path, *entries: bytes) -> None:
    """Append entries to a journal file (created if missing) with systemd-journal-remote."""
    done = subprocess.run(
        [str(JOURNAL_REMOTE), f"--output={path}", "-"],
        input=b"".join(entries),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogPositions]:
    state = await StateStore.open(tmp_path / "state")
    yield LogPositions(state)
    await state.close()


async def read_all(source: JournalSource, commit: bool = True) -> list[JournalRecord]:
    records: list[JournalRecord] = []
    batch: Batch[JournalRecord]
    async with asyncio.timeout(10):
        async for batch in source.batches():
            records.extend(batch.items)
            if commit:
                await source.commit(batch)
    return records


async def test_reads_a_real_journal_file_with_its_fields(
    tmp_path: Path, store: LogPositions
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(
        journal / "remote.journal",
        entry(b"connect from client.example.net[192.0.2.1]"),
        entry(b"warning: non-SMTP command from x: \xff\xfe\x80 GET / HTTP/1.1"),
        entry(b"session opened for user root", identifier=b"CRON", facility=9),
        entry(b"4PbC4x469Jz3tBr: removed", identifier=b"postfix/qmgr"),
    )
    source = JournalSource(
        JournalSettings(directory=journal, follow=False, start="beginning"), store
    )
    records = await read_all(source)
    assert [r.message for r in records] == [
        b"connect from client.example.net[192.0.2.1]",
        b"warning: non-SMTP command from x: \xff\xfe\x80 GET / HTTP/1.1",
        b"4PbC4x469Jz3tBr: removed",
    ]  # CRON is not in the mail facility, the default match
    first = records[0]
    assert first.identifier == "postfix/smtpd"
    assert first.pid == 4242
    assert first.hostname == "mx1.example.org"
    assert first.facility == 2 and first.priority == 6
    assert records[1].realtime_usec > first.realtime_usec > 1_700_000_000_000_000
    assert records[2].identifier == "postfix/qmgr"
    assert source.counters.records == 3
    assert source.counters.records_unreadable == 0
    assert await store.get(source.key) == records[-1].cursor


async def test_restart_continues_after_the_committed_cursor(
    tmp_path: Path, store: LogPositions
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal / "remote.journal", entry(b"one"), entry(b"two"))
    settings = JournalSettings(directory=journal, follow=False, start="beginning")
    assert [r.message for r in await read_all(JournalSource(settings, store))] == [
        b"one",
        b"two",
    ]
    write_journal(journal / "remote.journal", entry(b"three"))
    assert [r.message for r in await read_all(JournalSource(settings, store))] == [b"three"]


async def test_follow_yields_records_as_they_are_written(
    tmp_path: Path, store: LogPositions
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal / "remote.journal", entry(b"before start"))
    source = JournalSource(JournalSettings(directory=journal, start="end"), store)
    got: list[bytes] = []

    async def follow() -> None:
        async for batch in source.batches():
            got.extend(r.message for r in batch.items)
            await source.commit(batch)

    task = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.5)  # journalctl is at the end of the journal
        write_journal(journal / "remote.journal", entry(b"while following"))
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.05)
        assert got == [b"while following"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_cursor_journalctl_refuses_is_counted_and_reading_starts_over(
    tmp_path: Path, store: LogPositions
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal / "remote.journal", entry(b"one"))
    await store.put("journald", "s=not-a-cursor")
    settings = JournalSettings(directory=journal, follow=False, start="beginning")
    source = JournalSource(settings, store)
    assert [r.message for r in await read_all(source)] == [b"one"]
    assert source.counters.positions_lost == 1


async def test_long_messages_are_cut_and_huge_records_skipped_and_counted(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(
        journal / "remote.journal",
        entry(b"m" * 100_000),
        entry(b"h" * 3_000_000),  # past what the source parses at all
        entry(b"short"),
    )
    settings = JournalSettings(
        directory=journal, follow=False, start="beginning", max_message_bytes=1000
    )
    source = JournalSource(settings)
    assert [r.message for r in await read_all(source)] == [b"m" * 1000, b"short"]
    assert source.counters.messages_truncated == 1
    assert source.counters.records_unreadable == 1


async def test_a_missing_journalctl_is_a_clear_error(tmp_path: Path) -> None:
    settings = JournalSettings(journalctl=str(tmp_path / "no-journalctl"), follow=False)
    with pytest.raises(JournalError, match="cannot run"):
        await read_all(JournalSource(settings))


async def test_journalctl_failing_is_an_error_with_its_reason(tmp_path: Path) -> None:
    settings = JournalSettings(matches=("not a match",), follow=False)
    with pytest.raises(JournalError, match="exited with status"):
        await read_all(JournalSource(settings))
