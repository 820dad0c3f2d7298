"""Per-message tracking across queue IDs and instances: in-fleet delay per path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporters.postfix_logs.settings import LogSettings
from exporters.postfix_logs.tracker import MessageTracker
from tests.postfix_metrics import scrape

SETTINGS = LogSettings(services={"postfix": "mx", "postfix-srs": "srs"})


def at(seconds: float) -> str:
    return f"2024-05-02T10:00:{seconds:09.6f}+00:00 host "


def chain(srs_delivers_first: bool) -> list[str]:
    """MX receives A, amavis re-injects it as B, the MX hands B to the SRS instance as C,
    which sends it out. Optionally the SRS hop logs its delivery before the MX logs
    'queued as C' (both write the same log; the order is not guaranteed)."""
    handoff = at(3.2) + (
        "postfix/smtp[5]: B0000000002: to=<x@remote.example>, relay=srs.example[127.0.0.3]:25,"
        " delay=1.2, delays=0/0/0.1/1.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as"
        " C0000000003)"
    )
    final = at(3.15 if srs_delivers_first else 4.0) + (
        "postfix-srs/smtp[6]: C0000000003: to=<x@remote.example>, relay=mx.remote.example"
        "[192.0.2.7]:25, delay=0.9, delays=0/0/0.4/0.5, dsn=2.0.0, status=sent (250 accepted)"
    )
    lines = [
        at(0) + "postfix/smtpd[1]: A0000000001: client=ext.example[192.0.2.1]",
        at(1) + "postfix/qmgr[2]: A0000000001: from=<s@ext.example>, size=900, nrcpt=1 (queue"
        " active)",
        at(2) + "postfix/10025/smtpd[3]: B0000000002: client=localhost[127.0.0.1]",
        at(2.1) + "postfix/amavis/smtp[4]: A0000000001: to=<x@remote.example>, relay=127.0.0.1"
        "[127.0.0.1]:10024, delay=2.1, delays=1/0/0/1.1, dsn=2.0.0, status=sent (250 2.0.0 from"
        " MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as B0000000002)",
        at(2.2) + "postfix/qmgr[2]: A0000000001: removed",
        at(3.0) + "postfix-srs/smtpd[7]: C0000000003: client=mx.example[127.0.0.2]",
    ]
    lines += [final, handoff] if srs_delivers_first else [handoff, final]
    lines += [
        at(4.5) + "postfix/qmgr[2]: B0000000002: removed",
        at(4.6) + "postfix-srs/qmgr[8]: C0000000003: removed",
    ]
    return lines


def test_path_and_delay_across_content_filter_and_instances() -> None:
    s = scrape(chain(srs_delivers_first=False), SETTINGS)
    name = "postfix_fleet_delivery_delay_seconds"
    assert s.label_values(name + "_count", "path") == {"mx>srs"}
    assert s.value(name + "_count", path="mx>srs") == 1
    assert s.value(name + "_sum", path="mx>srs") == 4.0


def test_a_hop_that_logs_before_its_hand_over_still_gets_the_whole_path() -> None:
    s = scrape(chain(srs_delivers_first=True), SETTINGS)
    name = "postfix_fleet_delivery_delay_seconds"
    assert s.value(name + "_count") == 1
    assert s.value(name + "_sum", path="mx>srs") == pytest.approx(3.15)


def test_hand_over_to_an_unknown_queue_is_the_end_of_the_path() -> None:
    lines = [
        at(0) + "postfix/submission/smtpd[1]: D0000000004: client=u[192.0.2.5], sasl_method=PLAIN",
        at(7) + "postfix/smtp[2]: D0000000004: to=<a@far.example>, relay=mx.far.example"
        "[192.0.2.9]:25, delay=7, delays=0.1/0/3/3.9, dsn=2.0.0, status=sent (250 2.0.0 Ok:"
        " queued as 4XyZ1)",
    ]
    s = scrape(lines, LogSettings(services={"postfix/submission": "submission"}))
    assert s.value("postfix_fleet_delivery_delay_seconds_sum", path="submission") == 7.0


def _tracker(max_messages: int = 100, ttl: float = 60.0) -> tuple[MessageTracker, list]:
    seen: list[tuple[str, float]] = []
    tracker = MessageTracker(
        lambda path, seconds: seen.append((path, seconds)), max_messages=max_messages, ttl=ttl
    )
    return tracker, seen


def test_the_map_is_capped_and_entries_expire() -> None:
    tracker, _ = _tracker(max_messages=100, ttl=60.0)
    for i in range(1000):
        tracker.received(f"Q{i:06d}", "mx", float(i) / 100)
    assert len(tracker) == 100
    assert tracker.evicted == 900
    tracker.flush(10.0 + 61.0)
    assert len(tracker) == 0


def test_removed_drops_the_entry_and_nothing_else_is_observed() -> None:
    tracker, seen = _tracker()
    tracker.received("Q1", "mx", 0.0)
    tracker.removed("Q1", 1.0)
    tracker.delivered("Q1", 2.0, None)
    tracker.drain()
    assert (len(tracker), seen) == (0, [])


def test_a_deferred_message_is_observed_once_at_its_final_delivery() -> None:
    tracker, seen = _tracker()
    tracker.received("Q1", "mx", 0.0)
    assert tracker.first_queued("Q1") is True
    assert tracker.first_queued("Q1") is False  # back in the active queue after a deferral
    tracker.delivered("Q1", 600.0, None)
    tracker.drain()
    assert seen == [("mx", 600.0)]


MEMORY_SCRIPT = textwrap.dedent(
    """
    from exporters.postfix_logs.aggregator import LogAggregator
    import monitor.metrics.postfix
    a = LogAggregator()
    def lines():
        for i in range(100_000):
            yield (f"2024-05-02T10:{(i // 60) % 60:02d}:{i % 60:02d}.000000+00:00 mx "
                   f"postfix/smtpd[1]: {i:012X}: client=x.example[192.0.2.1]").encode()
    a.feed_lines(lines())
    assert len(a.tracker) == 100_000, len(a.tracker)
    rss = next(l for l in open("/proc/self/status") if l.startswith("VmRSS"))
    print(int(rss.split()[1]) // 1024)
    """
)
"""Prints the RSS in MB of a process whose aggregator tracks 100k messages."""


def test_steady_memory_with_100k_tracked_messages() -> None:
    """The follower's acceptance bound: RSS <= 60 MB with 100k messages in the tracker."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=True,
    )
    assert int(result.stdout) <= 60
