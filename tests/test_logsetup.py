"""The log's repeat limiter: a run of the same line is cut short and counted."""

from __future__ import annotations

import io
import logging
import time

from monitor.logsetup import LogfmtFormatter, RepeatLimiter, setup_logging


def logger_into(stream: io.StringIO, limiter: RepeatLimiter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    handler.addFilter(limiter)
    log = logging.getLogger(f"test.repeats.{id(stream)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_a_run_of_one_line_is_cut_and_the_next_window_says_how_many() -> None:
    stream = io.StringIO()
    log = logger_into(stream, RepeatLimiter(burst=3, window=0.3))
    for _ in range(50):
        log.error("cannot accept a connection", extra={"error": "Too many open files"})
    # Other lines, and the same message with other fields, are not held back.
    log.error("cannot accept a connection", extra={"error": "Cannot allocate memory"})
    log.warning("check status changed", extra={"target": "mx1"})
    log.warning("check status changed", extra={"target": "mx2"})
    time.sleep(0.35)
    log.error("cannot accept a connection", extra={"error": "Too many open files"})
    lines = stream.getvalue().splitlines()
    files = [line for line in lines if "Too many open files" in line]
    assert len(files) == 4
    assert "repeats_suppressed" not in "".join(files[:3])
    assert files[3].endswith("repeats_suppressed=47"), files[3]
    assert sum("Cannot allocate memory" in line for line in lines) == 1
    assert sum("check status changed" in line for line in lines) == 2


def test_the_limiter_forgets_the_oldest_lines_beyond_its_bound() -> None:
    limiter = RepeatLimiter(burst=1, window=60, max_lines=10)
    log = logger_into(io.StringIO(), limiter)
    for number in range(1000):
        log.info("line %d", number)
    assert limiter.remembered == 10


def test_libraries_speak_at_warning_unless_debugging() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    names = ("monitor.x", "exporters.y", "aioimaplib.aioimaplib", "monitor", "exporters")
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        setup_logging("info")
        assert logging.getLogger("monitor.x").isEnabledFor(logging.INFO)
        assert logging.getLogger("exporters.y").isEnabledFor(logging.INFO)
        library = logging.getLogger("aioimaplib.aioimaplib")
        assert not library.isEnabledFor(logging.INFO) and library.isEnabledFor(logging.WARNING)
        setup_logging("debug")
        assert library.isEnabledFor(logging.DEBUG)
        setup_logging("error")
        assert not logging.getLogger("monitor.x").isEnabledFor(logging.WARNING)
        assert not library.isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:], root.level = saved
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
