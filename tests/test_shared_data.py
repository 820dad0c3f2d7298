"""Tests find the public data sets relative to the repository, or skip visibly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests import shared_data

REPO = Path(__file__).resolve().parents[1]


ABSOLUTE = re.compile(r"[\"']/work/")
"""A string literal starting with this machine's folder of repositories."""


def test_no_test_names_an_absolute_data_path() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "tests").rglob("*.py"))
        if ABSOLUTE.search(path.read_text())
    ]
    assert offenders == []


def test_a_worktree_looks_next_to_its_main_checkout(tmp_path: Path) -> None:
    main = tmp_path / "main"
    gitdir = main / ".git" / "worktrees" / "wt"
    gitdir.mkdir(parents=True)
    (gitdir / "commondir").write_text("../..\n")
    worktree = tmp_path / "elsewhere" / "wt"
    worktree.mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {gitdir}\n")
    assert shared_data.candidates(worktree) == [
        tmp_path / "elsewhere" / "shared" / "data",
        tmp_path / "shared" / "data",
    ]
    assert shared_data.candidates(main) == [tmp_path / "shared" / "data"]


def test_a_clone_without_the_data_skips_with_the_reason(tmp_path: Path) -> None:
    """A copy of the tests with no ../shared: the data tests skip, visibly, and pass."""
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "tests", clone / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", clone)
    env = {k: v for k, v in os.environ.items() if k != shared_data.ENV}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "tests/test_postfix_parsing.py", "tests/test_spf_suite.py",
         "tests/test_postfix_grok_shapes.py"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout[done.stdout.index("short test summary") :]
    assert "SKIPPED" in summary and "public data sets not found" in summary
    assert str(clone.parent / "shared" / "data") in summary
    assert "MAILPROBE_SHARED_DATA" in summary
    # each skip at its own test, so the summary lists them, not one line for all
    assert "tests/test_spf_suite.py:" in summary and "tests/shared_data.py" not in summary


def test_a_named_folder_that_is_missing_fails(tmp_path: Path) -> None:
    env = os.environ | {shared_data.ENV: str(tmp_path / "absent")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "suite",
         "tests/test_spf_suite.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:]
    assert "which is not a folder" in done.stdout


def test_the_fixture_gives_the_data_folder(shared_data: Path) -> None:
    assert (shared_data / "postfix").is_dir() and (shared_data / "spf").is_dir()
