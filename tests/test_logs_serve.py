"""``mailprobe serve`` following Postfix logs: a real serve process, a real log writer that
rotates its file, kill -9 and restart, and the lab's own Postfix instances.

What a restart resets: every counter of the process (``postfix_*`` and
``postfix_log_source_*`` start again from 0, as Prometheus counters do after a
restart; ``rate()`` and ``increase()`` handle the reset). What it does not: the log
positions in the state file, so a restarted serve reads on from where the killed one
had counted and saved, and no line is counted twice across the two processes.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.envelope import split_envelope
from monitor.config.logs import LogsSection
from monitor.lab import Lab
from monitor.lab.layout import POSTFIX_INSTANCES
from monitor.logs import log_settings
from monitor.metrics.log_sources import render_reference
from monitor.state import STATE_FILE_NAME
from tests.lab_fixture import submit, swaks, unique
from tests.postfix_metrics import Scrape
from tests.servers import ServeProcess
from tests.shared_data import require

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_LOGS = (
    "youyo-postfix-log-parser_test-iso8601.log",
    "adyekjaer-postfix-exporter-py_mail_iso.log",
    "postfix_exporter-tests_lines.log",
)
READ = "postfix_log_source_lines_read_total"
Sample = tuple[str, tuple[tuple[str, str], ...]]


def public_lines() -> list[bytes]:
    return [
        line
        for name in PUBLIC_LOGS
        for line in require("postfix", name).read_bytes().splitlines()
        if line
    ]


def restamped(line: bytes) -> bytes:
    """``line`` as if logged now (RFC 3339, Debian 12's format); others as they are.

    Live lines carry the current time: the message tracker keeps queue IDs for days of
    log time, and lines years old would expire from it at every scrape.
    """
    envelope = split_envelope(line.decode())
    if envelope is None:
        return line
    now = datetime.now().astimezone().isoformat(timespec="microseconds")
    return now.encode() + line[len(envelope[0]) :]


class LogWriter:
    """Appends lines the way syslog does: through an open file that survives a rename
    until the writer reopens the name (``rotate``, then ``reopen`` a moment later)."""

    def __init__(self, path: Path, lines: list[bytes]) -> None:
        self.path = path
        self.written: list[bytes] = []
        self._lines = itertools.cycle(lines)
        self._file = path.open("ab", buffering=0)

    def write(self, count: int) -> None:
        chunk = [restamped(next(self._lines)) for _ in range(count)]
        self._file.write(b"".join(line + b"\n" for line in chunk))
        self.written.extend(chunk)

    def rotate(self) -> None:
        """``mail.log.N`` -> ``mail.log.N+1``, ``mail.log`` -> ``mail.log.1``, like logrotate."""
        rotated = sorted(
            (p for p in self.path.parent.glob(self.path.name + ".*") if p.suffix[1:].isdigit()),
            key=lambda p: -int(p.suffix[1:]),
        )
        for old in rotated:
            old.rename(self.path.with_name(f"{self.path.name}.{int(old.suffix[1:]) + 1}"))
        self.path.rename(self.path.with_name(self.path.name + ".1"))

    def reopen(self) -> None:
        self._file.close()
        self._file = self.path.open("ab", buffering=0)

    def close(self) -> None:
        self._file.close()


def scrape(serve: ServeProcess) -> str:
    return httpx.get(f"http://{serve.listen}/metrics", timeout=5).text


def samples(text: str) -> dict[Sample, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    found = [
        v
        for (n, lab), v in samples(text).items()
        if n == name and labels.items() <= dict(lab).items()
    ]
    assert found, f"no sample {name}{labels}"
    return sum(found)


def scrape_until(
    serve: ServeProcess, done: Callable[[str], bool], what: str, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(serve)
        if done(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{serve.log()}")
        time.sleep(0.05)


def counted(text: str) -> dict[Sample, float]:
    """The postfix_ counters and histograms that depend on the lines alone.

    Left out: the source health families (compared separately), the lag gauges and
    what the message tracker decides by the wall clock.
    """
    skip = ("postfix_log_source_", "postfix_log_lag_", "postfix_tracked_", "postfix_fleet_")
    return {
        key: v
        for key, v in samples(text).items()
        if key[0].startswith("postfix_") and not key[0].startswith(skip)
    }


def expected(lines: list[bytes], logs: dict[str, Any]) -> dict[Sample, float]:
    """What a fresh aggregator with the same settings makes of exactly ``lines``."""
    aggregator = LogAggregator(log_settings(LogsSection.model_validate(logs)))
    aggregator.feed_lines(lines)
    return counted(Scrape(aggregator).text)


def wait_for_log(serve: ServeProcess, text: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while text not in serve.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text} in the log:\n{serve.log()}")
        time.sleep(0.05)


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool (Debian package prometheus) is not installed"
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def kill9(serve: ServeProcess) -> None:
    serve.signal(signal.SIGKILL)
    assert serve.wait(timeout=5) == -signal.SIGKILL


def saved_position(state_dir: Path, key: str) -> dict[str, Any]:
    with sqlite3.connect(state_dir / STATE_FILE_NAME) as conn:
        row = conn.execute("SELECT position FROM log_positions WHERE source = ?", (key,)).fetchone()
    assert row is not None, f"no position saved for {key}"
    position: dict[str, Any] = json.loads(row[0])
    return position


@pytest.fixture
def log_setup(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, Any], LogWriter]]:
    log = tmp_path / "mail.log"
    logs = {
        "sources": [
            {
                "path": str(log),
                "name": "mail",
                "start": "beginning",
                "poll_interval": 0.05,
                "rotate_wait": 0.3,
            }
        ],
        "services": {"postfix": "mx"},
    }
    config = tmp_path / "mailprobe.yml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "logs": logs}))
    writer = LogWriter(log, public_lines())
    yield config, log, logs, writer
    writer.close()


def test_serve_counts_every_line_across_rotations_and_kill9(
    log_setup: tuple[Path, Path, dict[str, Any], LogWriter],
) -> None:
    config, log, logs, writer = log_setup
    state_dir = config.parent / "state"
    lines = public_lines()

    def read_all(serve: ServeProcess, want: int) -> str:
        return scrape_until(
            serve, lambda t: value(t, READ) >= want, f"{want} lines read", timeout=10
        )

    # 1. Appended lines, counted exactly as a fresh aggregator counts them.
    with ServeProcess(config) as serve:
        serve.wait_listening()
        for _ in range(4):
            writer.write(len(lines) // 4)
            time.sleep(0.02)
        text = read_all(serve, len(writer.written))
        assert value(text, READ) == len(writer.written)
        assert counted(text) == expected(writer.written, logs)
        assert value(text, "postfix_deliveries_total", status="sent") > 0
        # SIGHUP with the logs section unchanged leaves the follower alone.
        serve.signal(signal.SIGHUP)
        wait_for_log(serve, 'msg="config reloaded"')
        assert counted(scrape(serve)) == counted(text)
        assert "extension reloaded" not in serve.log()

        # 2. Three rename rotations under writing: the writer keeps writing to the
        #    renamed file until it reopens the name, then goes on in the new file.
        for _ in range(3):
            writer.write(37)
            writer.rotate()
            writer.write(11)  # into the renamed file
            time.sleep(0.1)
            writer.reopen()
            writer.write(53)
            # The follower has read the new file's lines, so it follows the new file
            # before the next rotation (a fixed 0.15 s was not always enough when busy).
            text = read_all(serve, len(writer.written))
        time.sleep(0.4)  # rotate_wait: the renamed files are given up
        text = scrape(serve)
        assert value(text, READ) == len(writer.written)
        assert counted(text) == expected(writer.written, logs)
        assert value(text, "postfix_log_source_rotations_total") == 3
        assert value(text, "postfix_log_source_up", source="mail") == 1
        assert value(text, "postfix_log_source_failures_total") == 0
        assert value(text, READ) == value(text, "postfix_log_lines_total")
        assert value(text, "postfix_log_source_bytes_read_total") == sum(
            len(line) + 1 for line in writer.written
        )
        promtool_check(text)
        # 3. kill -9 once everything was counted and saved.
        before = value(text, READ)
        kill9(serve)

    # While stopped: more lines, and a rotation nobody watched.
    writer.write(29)
    writer.rotate()
    writer.write(5)
    writer.reopen()
    writer.write(41)
    unread = writer.written[int(before) :]
    with ServeProcess(config) as serve:
        serve.wait_listening()
        text = read_all(serve, len(unread))
        time.sleep(0.2)  # nothing more comes: the counted lines were not read again
        text = scrape(serve)
        after = value(text, READ)
        assert before + after == len(writer.written)
        assert counted(text) == expected(unread, logs)

        # 4. kill -9 in the middle of writing: the restart reads exactly what follows
        #    the position saved last, nothing before it.
        total_before = len(writer.written)
        for _ in range(10):
            writer.write(17)
            time.sleep(0.01)
        kill9(serve)
    for _ in range(10):
        writer.write(17)
    position = saved_position(state_dir, "mail")
    (dev, ino, offset, _fp, _len) = position["files"][-1]
    current = os.stat(log)
    assert (dev, ino) == (current.st_dev, current.st_ino)
    content = log.read_bytes()
    assert 0 < offset < len(content) and content[offset - 1 : offset] == b"\n"
    rest = content[offset:].splitlines()
    assert len(rest) <= len(writer.written) - total_before
    with ServeProcess(config) as serve:
        serve.wait_listening()
        text = read_all(serve, len(rest))
        time.sleep(0.2)
        text = scrape(serve)
        assert value(text, READ) == len(rest)
        assert counted(text) == expected(rest, logs)
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=10) == 0
    assert "Traceback" not in serve.log()
    final = saved_position(state_dir, "mail")
    assert final["files"][-1][2] == len(log.read_bytes())


def test_sources_that_fail_are_logged_retried_and_never_stop_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory where a log file should be: open errors are counted and logged, and the
    file is read once it is a file. No journalctl: the journald source fails, is counted
    and restarted with backoff. Serve and the good source carry on throughout."""
    bad, good = tmp_path / "bad.log", tmp_path / "good.log"
    bad.mkdir()
    good.write_bytes(b"".join(line + b"\n" for line in public_lines()[:20]))
    sources: list[dict[str, Any]] = [
        {"path": str(p), "start": "beginning", "poll_interval": 0.05} for p in (bad, good)
    ]
    sources.append({"type": "journald"})
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # serve's PATH: no journalctl there
    config = tmp_path / "mailprobe.yml"
    config.write_text(
        yaml.safe_dump({"state_dir": str(tmp_path / "state"), "logs": {"sources": sources}})
    )
    with ServeProcess(config) as serve:
        serve.wait_listening()
        text = scrape_until(
            serve,
            lambda t: (
                value(t, "postfix_log_source_open_errors_total", source=f"file:{bad}") > 0
                and value(t, READ, source=f"file:{good}") == 20
                and value(t, "postfix_log_source_failures_total", source="journald", stage="read")
                >= 2
            ),
            "an open error, the good file read and journald restarted",
            timeout=10,
        )
        assert value(text, "postfix_log_source_up", source=f"file:{bad}") == 0
        assert value(text, "postfix_log_source_up", source=f"file:{good}") == 1
        assert value(text, "postfix_log_source_up", source="journald") == 0
        wait_for_log(serve, 'msg="cannot open log file"')
        bad.rmdir()
        bad.write_bytes(b"".join(line + b"\n" for line in public_lines()[:7]))
        text = scrape_until(
            serve, lambda t: value(t, READ, source=f"file:{bad}") == 7, "the file read", 10
        )
        assert value(text, "postfix_log_source_up", source=f"file:{bad}") == 1
        wait_for_log(serve, 'msg="log file readable again"')
        # A changed logs section restarts the follower: counters start from 0, the
        # positions stay, so nothing is read again.
        logs = {"sources": sources, "tracker": {"max_messages": 5000}}
        config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "logs": logs}))
        serve.signal(signal.SIGHUP)
        wait_for_log(serve, 'msg="extension reloaded" extension=logs')
        time.sleep(0.3)
        text = scrape(serve)
        assert value(text, READ, source=f"file:{good}") == 0
        assert value(text, READ, source=f"file:{bad}") == 0
        assert value(text, "postfix_log_source_up", source=f"file:{bad}") == 1
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=10) == 0
    log = serve.log()
    assert "Traceback" not in log
    error = next(line for line in log.splitlines() if 'msg="cannot open log file"' in line)
    assert f"source=file:{bad}" in error and "not a regular file" in error, error
    failed = [line for line in log.splitlines() if 'msg="log source failed: restarting it"' in line]
    assert len(failed) >= 2 and "source=journald" in failed[0], failed
    assert "cannot run journalctl" in failed[0] and "retry_in_seconds=1.0" in failed[0]
    assert "retry_in_seconds=2.0" in failed[1], failed


def test_docs_list_the_source_health_metrics() -> None:
    doc = (ROOT / "docs" / "postfix-logs.md").read_text()
    assert render_reference() in doc, (
        "docs/postfix-logs.md is stale: paste `python -m monitor.metrics.log_sources` into it"
    )


# ---- the lab ------------------------------------------------------------------------


def lab_config(lab: Lab) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "config", "--dir", str(lab.dir)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_serve_follows_the_lab_maillogs(lab: Lab, tmp_path: Path) -> None:
    generated = lab_config(lab)
    assert Path(generated["state_dir"]).parent == lab.dir
    logs = generated["logs"]
    assert {s["path"] for s in logs["sources"]} == {str(lab.maillog(i)) for i in POSTFIX_INSTANCES}
    assert set(logs["services"].values()) == {"mx", "srs", "submission", "world"}
    # The logs section as generated; a state_dir of this test's own, so positions other
    # tests saved in the lab's state_dir do not matter here.
    config = tmp_path / "mailprobe.yml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "logs": logs}))
    names = {s["name"]: Path(s["path"]) for s in logs["sources"]}

    def caught_up(text: str) -> bool:
        return all(
            value(text, READ, source=name) >= path.read_bytes().count(b"\n")
            for name, path in names.items()
        )

    def deliveries(text: str, service: str) -> float:
        return sum(
            v
            for (n, labels), v in samples(text).items()
            if n == "postfix_deliveries_total"
            and dict(labels).get("service") == service
            and dict(labels).get("status") == "sent"
        )

    services = ("mx", "srs", "world", "submission")
    with ServeProcess(config) as serve:
        serve.wait_listening()
        base = scrape_until(serve, caught_up, "the lab's maillogs read", timeout=10)
        subject = unique("logwire")
        sent = swaks(
            "-s", lab.hosts["mx"].address, "--local-interface", lab.hosts["client"].address,
            "-f", f"dave@{lab.world}", "-t", f"forward@{lab.domain}",
            "--h-From", f"alice@{lab.domain}", "--h-Subject", subject,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        submit(lab, 587, unique("logwire-submit"))
        text = scrape_until(
            serve,
            lambda t: all(deliveries(t, s) > deliveries(base, s) for s in services),
            "deliveries logged by mx, srs, world and submission",
            timeout=20,
        )
        assert value(text, "postfix_log_lines_total", outcome="postfix_unsupported") == 0
        for name in names:
            assert value(text, "postfix_log_source_up", source=name) == 1
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=10) == 0
    assert "Traceback" not in serve.log()
