"""Reloads of a real ``mailprobe serve`` that cannot apply everything they restart."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.servers import ServeProcess
from tests.test_serve import metric, scrape_until, write_config

CONNECT = (
    "2026-12-06T14:00:00.000000+00:00 mx postfix/smtpd[123]: connect from unknown[192.0.2.1]\n"
)
READ = "postfix_log_source_lines_read_total"


def append(path: Path, count: int) -> None:
    with path.open("a", encoding="utf-8") as log:
        log.write(CONNECT * count)


def connects(text: str) -> float:
    return metric(text, "postfix_smtpd_connects_total") or 0.0


def test_a_reload_whose_log_follower_cannot_start_keeps_the_old_one(tmp_path: Path) -> None:
    maillog = tmp_path / "mail.log"
    append(maillog, 3)
    logs: dict[str, Any] = {
        "sources": [{"path": str(maillog), "start": "beginning", "poll_interval": 0.05}]
    }
    good = {"state_dir": str(tmp_path / "state"), "logs": logs}
    config = write_config(tmp_path / "mailprobe.yml", good)
    source = f"file:{maillog}"
    with ServeProcess(config) as serve:
        serve.wait_listening()
        scrape_until(serve, lambda t: connects(t) == 3, 5, "the first lines counted")

        # A state_dir below a regular file cannot be created.
        (tmp_path / "not-a-dir").write_text("", encoding="utf-8")
        write_config(config, {**good, "state_dir": str(tmp_path / "not-a-dir" / "state")})
        serve.signal(signal.SIGHUP)
        text = scrape_until(
            serve,
            lambda t: metric(t, "mailprobe_config_reload_failures_total") == 1,
            10,
            "the reload failure to be counted",
        )
        assert metric(text, "mailprobe_config_last_reload_successful") == 0
        assert 'msg="config reload failed: keeping the running config"' in serve.log()
        assert "not-a-dir" in serve.log()
        # The old follower runs on, with its counts.
        append(maillog, 2)
        text = scrape_until(serve, lambda t: connects(t) == 5, 5, "the new lines counted")
        assert metric(text, "postfix_log_source_up", source=source) == 1
        assert metric(text, READ, source=source) == 5
        assert 'msg="config reloaded"' not in serve.log()

        # The same bad config again is tried again, and fails again.
        serve.signal(signal.SIGHUP)
        text = scrape_until(
            serve,
            lambda t: metric(t, "mailprobe_config_reload_failures_total") == 2,
            10,
            "the second failure to be counted",
        )

        # A config that works is applied: a new follower with a new, empty state, which
        # reads the file from its beginning.
        write_config(config, {**good, "state_dir": str(tmp_path / "state2")})
        serve.signal(signal.SIGHUP)
        text = scrape_until(
            serve,
            lambda t: metric(t, "mailprobe_config_last_reload_successful") == 1,
            10,
            "the good reload",
        )
        assert metric(text, "mailprobe_config_reload_failures_total") == 2
        append(maillog, 1)
        text = scrape_until(serve, lambda t: connects(t) == 6, 5, "the whole file counted")
        assert metric(text, "postfix_log_source_up", source=source) == 1
        assert (tmp_path / "state2").is_dir()
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=15) == 0
    assert "Traceback" not in serve.log()
