"""scripts/setup.sh: quiet for its user, and patient with another package manager."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def test_setup_prints_no_warning_from_the_build(tmp_path: Path) -> None:
    """The README's set-up, in a copy of the tree: none of setuptools' warnings show."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30
    ).stdout
    copy = tmp_path / "mailprobe"
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    done = subprocess.run(
        ["./scripts/setup.sh", "--dev"],
        cwd=copy, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Warning" not in output and "deprecated" not in output.lower(), output[-3000:]
    assert done.stdout.rstrip().endswith("setup: done; mailprobe is .venv/bin/mailprobe")


def test_every_apt_get_waits_for_the_dpkg_lock() -> None:
    setup = (SCRIPTS / "setup.sh").read_text()
    calls = [line for line in setup.splitlines() if re.search(r"\bapt-get\b", line)]
    assert calls == [], 'call apt-get as "${APT[@]}" (scripts/apt-lock.sh)'
    assert setup.count('"${APT[@]}"') == 2  # update and install
    lock = (SCRIPTS / "apt-lock.sh").read_text()
    assert 'APT=(apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_WAIT")' in lock


@contextmanager
def held(lock: Path, seconds: float) -> Iterator[None]:
    """Holds an fcntl lock on ``lock`` (as apt does) for ``seconds`` in a child process."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o640)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    child = subprocess.Popen(["python3", "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        yield
    finally:
        child.wait(timeout=seconds + 10)


@pytest.mark.skipif(os.geteuid() != 0, reason="apt-get update runs as root only")
def test_apt_get_update_waits_while_its_lists_are_locked(tmp_path: Path) -> None:
    """A real apt-get update, on package lists of its own (no sources, nothing fetched,
    the system's lists and cache untouched), while another process holds their lock."""
    lists, cache, parts = tmp_path / "lists", tmp_path / "cache", tmp_path / "parts"
    for folder in (lists / "partial", cache / "archives" / "partial", parts):
        folder.mkdir(parents=True)
    (tmp_path / "sources.list").write_text("")
    options = (
        f"-o Dir::State::Lists={lists} -o Dir::Cache={cache}"
        f" -o Dir::Etc::sourcelist={tmp_path / 'sources.list'} -o Dir::Etc::sourceparts={parts}"
    )
    script = f'source scripts/apt-lock.sh; retry_while_locked "${{APT[@]}}" {options} update -q'
    with held(lists / "lock", seconds=3):
        done = subprocess.run(
            ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    assert "another package manager holds its lock; waiting" in done.stderr
    assert "Could not get lock" not in done.stderr


def test_other_apt_failures_are_not_retried(tmp_path: Path) -> None:
    script = "source scripts/apt-lock.sh; retry_while_locked sh -c 'echo E: broken >&2; exit 100'"
    done = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr == "E: broken\n"
