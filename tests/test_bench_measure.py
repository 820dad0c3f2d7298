"""bench/logs.py measures each tool's own peak memory, whatever the bench holds itself."""

from __future__ import annotations

import shutil
import sys

import pytest

from bench.logs import TIME, run_command

pytestmark = pytest.mark.skipif(
    shutil.which(TIME) is None, reason=f"{TIME} (Debian package time) is not installed"
)


def test_peak_rss_is_the_tools_not_the_benchs() -> None:
    held = b"x" * (200 << 20)  # the bench process has grown by 200 MB
    small = run_command(["true"])
    assert small.rss_mb < 20, small
    big = run_command([sys.executable, "-c", "b = b'x' * (100 << 20)"])
    assert 100 < big.rss_mb < 200, big
    assert len(held) == 200 << 20


def test_a_failing_tool_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="false exited with status 1"):
        run_command(["false"])
