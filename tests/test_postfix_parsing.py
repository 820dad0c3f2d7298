"""Envelope, program names and line shapes: bytes in, (kind, fields) out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.envelope import Clock, split_envelope
from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.programs import ProgramTable, ServiceMap
from exporters.postfix_logs.settings import LogSettings
from tests.shared_data import params

SHAPES = Path(__file__).parent / "data" / "postfix-shapes.log"


def _kinds(settings: LogSettings | None = None) -> tuple[LogAggregator, list[Kind | None]]:
    seen: list[Kind | None] = []

    class Recorder:
        kinds = frozenset(Kind)

        def observe(self, kind: Kind, program: object, match: object, stamp: object) -> None:
            seen.append(kind)

    aggregator = LogAggregator(
        settings, observers=[Recorder()], on_raw=lambda prog, text: seen.append(None)
    )
    return aggregator, seen


def _shape_lines() -> list[tuple[str, str]]:
    out = []
    for line in SHAPES.read_text().splitlines():
        if line and not line.startswith("#"):
            text, _, kind = line.rpartition(" ## ")
            out.append((text, kind))
    return out


@pytest.mark.parametrize(("line", "kind"), _shape_lines(), ids=lambda v: str(v)[:60])
def test_every_research_shape_is_understood(line: str, kind: str) -> None:
    aggregator, seen = _kinds()
    aggregator.feed_line(line.encode() + b"\n")
    assert seen == [Kind[kind]]


# ---- envelope ------------------------------------------------------------------


def test_rfc3339_variants_give_the_same_instant() -> None:
    clock = Clock()
    same = [
        "2023-03-14T00:00:31.500000+01:00",
        "2023-03-13T23:00:31.5Z",
        "2023-03-14T00:00:31.5+0100",
    ]
    assert {clock.epoch(s) for s in same} == {1678748431.5}
    assert clock.epoch("2023-03-14T00:00:31+01:00") == 1678748431.0
    assert clock.epoch("2023-02-30T00:00:31+01:00") is None


def test_rfc3164_year_is_inferred_and_rolls_over_new_year() -> None:
    reference = datetime(2025, 1, 1, 0, 0, 5).timestamp()
    clock = Clock(lambda: reference)
    assert clock.epoch("Dec 31 23:59:59") == datetime(2024, 12, 31, 23, 59, 59).timestamp()
    assert clock.epoch("Jan  1 00:00:01") == datetime(2025, 1, 1, 0, 0, 1).timestamp()
    # a clock a little behind its log still puts January in the new year
    behind = Clock(lambda: datetime(2024, 12, 31, 23, 59, 50).timestamp())
    assert behind.epoch("Jan 1 00:00:03.25") == datetime(2025, 1, 1, 0, 0, 3, 250000).timestamp()
    # an old file read months later stays in its year
    later = Clock(lambda: datetime(2025, 11, 25).timestamp())
    assert later.epoch("Mar 14 00:00:31") == datetime(2025, 3, 14, 0, 0, 31).timestamp()
    assert later.epoch("Dec 14 00:00:31") == datetime(2024, 12, 14, 0, 0, 31).timestamp()
    assert later.epoch("Feb 29 00:00:00") == datetime(2024, 2, 29).timestamp()


def test_postfix_maillog_file_lines_are_syslog_shaped() -> None:
    # written by Postfix 3.7 itself with maillog_file (postlogd), captured here
    line = "Nov 25 08:15:21 lp postfix-lp/postfix-script[9532]: starting the Postfix mail system"
    assert split_envelope(line) == (
        "Nov 25 08:15:21",
        "lp",
        "postfix-lp/postfix-script",
        "9532",
        "starting the Postfix mail system",
    )


@pytest.mark.parametrize(
    "line",
    [
        "Jan: 1 00:00:00 hostname postfix/postscreen[12345]: foo",
        "Jan 1 00:00:00 hostname postfix/postscreen[abcde]: foo",
        "Jan 1 00:00:00 hostname postfix/postscreen[12345: foo",
        "Jan 1 00:00:00 hostname postfix/postscreen",
        "Foo 1 00:00:00 hostname",
        "2025-01-01T00:00:00+00:00 hostname",
        "",
        "\x00\x01garbage",
    ],
)
def test_malformed_lines_are_counted_not_fatal(line: str) -> None:
    aggregator, seen = _kinds()
    aggregator.feed_line(line.encode())
    assert seen == [None]
    assert aggregator.snapshot().lines.malformed == 1


def test_invalid_utf8_is_replaced_and_parsed() -> None:
    raw = (
        b"2023-03-14T21:09:05.334751+01:00 helga postfix/postscreen[3163107]: BARE NEWLINE"
        b" from [192.241.221.18]:46702 after o\xfa\xc0\xbe\xff\n"
    )
    aggregator, seen = _kinds()
    aggregator.feed_line(raw)
    aggregator.feed_line(raw.replace(b"BARE NEWLINE", b"COMMAND PIPELINING"))
    assert seen == [Kind.PS_VIOLATION, Kind.PS_VIOLATION]
    counters = aggregator.snapshot().counters["postscreen"]
    assert sorted(action for _prog, action in counters) == ["bare_newline", "command_pipelining"]


def test_overlong_line_is_cut_counted_and_still_parsed() -> None:
    aggregator, seen = _kinds(LogSettings(max_line_bytes=4096))
    line = b"Mar 14 00:00:31 mx postfix/smtpd[1]: warning: " + b"x" * 1_000_000 + b"\n"
    started = time.monotonic()
    aggregator.feed_line(line)
    assert time.monotonic() - started < 0.5
    lines = aggregator.snapshot().lines
    assert (lines.truncated, lines.total) == (1, 1)
    assert seen == [Kind.LOG]


def test_journal_fields_are_used_without_rerendering() -> None:
    aggregator, seen = _kinds(LogSettings(services={"postfix/submission": "submission"}))
    aggregator.feed_journal(
        b"4PbCZy4PWKz3tBr: client=unknown[192.0.2.1], sasl_method=PLAIN",
        "postfix/submission/smtpd",
        "303987",
        "1678748431500000",
    )
    snapshot = aggregator.snapshot()
    assert seen == [Kind.CLIENT]
    assert snapshot.last_line_time == 1678748431.5
    ((prog, method),) = snapshot.counters["processed"]
    assert (prog.service, prog.daemon, method) == ("submission", "smtpd", "PLAIN")


def test_journal_record_batches_and_records_without_identifier() -> None:
    @dataclass(frozen=True)
    class Record:
        message: bytes
        identifier: str | None
        pid: int | None
        realtime_usec: int

    aggregator, seen = _kinds()
    aggregator.feed_journal_records(
        [
            Record(b"connect from a.example[192.0.2.1]", "postfix/smtpd", 7, 1_700_000_000_000_000),
            Record(b"kernel: something", None, None, 1_700_000_001_000_000),
            Record(b"4PbC4x469Jz3tBr: removed", "postfix-out/qmgr", 8, 1_700_000_002_250_000),
        ]
    )
    snapshot = aggregator.snapshot()
    assert seen == [Kind.CONNECT, Kind.FOREIGN, Kind.REMOVED]
    assert (snapshot.lines.total, snapshot.lines.postfix, snapshot.lines.foreign) == (3, 2, 1)
    assert snapshot.last_line_time == 1_700_000_002.25


# ---- program names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "service", "daemon", "instance"),
    [
        ("postfix/smtpd", "mx", "smtpd", "postfix"),
        ("postfix/submission/smtpd", "submission", "smtpd", "postfix"),
        ("postfix/10025/smtpd", "mx", "smtpd", "postfix"),
        ("postfix-srs/smtp", "srs", "smtp", "postfix-srs"),
        ("postfix-srs/relay/smtp", "srs", "smtp", "postfix-srs"),
        ("postfix-out/smtp", "postfix-out", "smtp", "postfix-out"),
        ("IP_ADDRESS/smtpd", "other", "smtpd", "IP_ADDRESS"),
        ("postfix/frobnicator", "mx", "other", "postfix"),
        ("postsrsd", "other", "postsrsd", ""),
        ("clamav-milter", "other", "clamav", ""),
        ("dovecot-lda", "other", "dovecot", ""),
        ("kernel", "other", "other", ""),
    ],
)
def test_program_names_map_to_bounded_labels(
    program: str, service: str, daemon: str, instance: str
) -> None:
    services = ServiceMap(
        {"postfix": "mx", "postfix/submission": "submission", "postfix-srs": "srs"},
        raw_allowed=frozenset({"postfix", "postfix-out"}),
    )
    found = ProgramTable(services).lookup(program)
    assert (found.service, found.daemon, found.instance) == (service, daemon, instance)


def test_program_objects_stay_few_for_many_names() -> None:
    table = ProgramTable(ServiceMap({}))
    found = {id(table.lookup(f"postfix-{i}/smtpd")) for i in range(10_000)}
    assert len(found) <= 33  # 32 instance values, then "other"


# ---- public logs -------------------------------------------------------------------

NEGATIVE_TESTS = ("foo", "Unsupported", "NOQUEUE: reject: Unsupported")
"""Messages the upstream test files use on purpose as unparseable input."""


def coverage(path: Path) -> tuple[int, int, int, int]:
    """(postfix lines, understood, deliberately broken, malformed) of one public log."""
    unsupported: list[str] = []
    aggregator = LogAggregator(
        on_raw=lambda prog, text: unsupported.append(text) if prog is not None else None
    )
    lines = path.read_bytes().split(b"\n")
    aggregator.feed_lines(line for line in lines if line and not line.startswith(b"#"))
    counts = aggregator.snapshot().lines
    deliberate = sum(
        1
        for text in unsupported
        if text.split(": ", 1)[1] in NEGATIVE_TESTS or ": user@example.com, relay=" in text
    )
    return counts.postfix, counts.postfix - counts.unsupported, deliberate, counts.malformed


@pytest.mark.parametrize("path", params("postfix", "*.log"), ids=lambda p: getattr(p, "name", ""))
def test_public_logs_are_understood_and_documented(path: Path) -> None:
    postfix, understood, deliberate, malformed = coverage(path)
    share = understood / (postfix - deliberate)
    assert share >= 0.99
    row = (
        f"| `{path.name}` | {postfix} | {understood} | {deliberate} | {malformed}"
        f" | {understood / postfix:.1%} | {share:.1%} |"
    )
    assert row in (Path(__file__).parents[1] / "docs" / "postfix-logs.md").read_text()
