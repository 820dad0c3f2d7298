"""Where the tests find the public data sets (outside logs, the RFC 7208 suite, ...).

They are not part of the repository: they sit in ``shared/data`` next to it
(``<repo>/../shared/data``), or wherever ``$MAILPROBE_SHARED_DATA`` names. A git
worktree looks next to its main checkout too, since the worktree itself may live
anywhere. When the folder is absent, every test that needs it is skipped with a reason
pytest's summary prints (``-ra``); when it is present, a file missing from it fails the
test, since then the data set itself is broken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ENV = "MAILPROBE_SHARED_DATA"
REPO = Path(__file__).resolve().parents[1]


def _main_checkout(repo: Path) -> Path | None:
    """The main checkout of the git worktree ``repo``, or None if ``repo`` is not one.

    A worktree's ``.git`` is a file ``gitdir: <main>/.git/worktrees/<name>`` whose
    ``commondir`` names the main ``.git`` folder (relative to it).
    """
    marker = repo / ".git"
    if not marker.is_file():
        return None
    text = marker.read_text().strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = (repo / text.removeprefix("gitdir:").strip()).resolve()
    common = gitdir / "commondir"
    if not common.is_file():
        return None
    return (gitdir / common.read_text().strip()).resolve().parent


def candidates(repo: Path = REPO) -> list[Path]:
    """The folders tried, in order, when ``$MAILPROBE_SHARED_DATA`` is not set."""
    tried = [repo.parent / "shared" / "data"]
    main = _main_checkout(repo)
    if main is not None and main != repo:
        tried.append(main.parent / "shared" / "data")
    return tried


def locate(repo: Path = REPO) -> Path | None:
    """The shared data folder, or None when it is absent."""
    named = os.environ.get(ENV)
    if named:
        return Path(named)  # checked by require(): a named folder must exist
    return next((p for p in candidates(repo) if p.is_dir()), None)


ROOT = locate()
REASON = (
    "public data sets not found (tried "
    + ", ".join(str(p) for p in candidates())
    + f"); put them at <repo>/../shared/data or set ${ENV}"
)


def require(*parts: str) -> Path:
    """``ROOT/parts``; skips the running test (with the reason) when there is no ROOT.

    tests/conftest.py reports such a skip at the test's own line, not at this one.
    """
    if ROOT is None:
        pytest.skip(REASON)
    if not ROOT.is_dir():
        pytest.fail(f"${ENV} names {ROOT}, which is not a folder", pytrace=False)
    path = ROOT.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing from the shared data", pytrace=False)
    return path


def params(folder: str, pattern: str) -> list[Any]:
    """The files in ``ROOT/folder`` matching ``pattern``, for ``pytest.mark.parametrize``.

    Never an empty list: without the data one parameter stands for them all, skipped
    with the reason; a present folder with no such files is an error at collection.
    """
    if ROOT is None:
        return [pytest.param(None, id="no-shared-data", marks=pytest.mark.skip(reason=REASON))]
    found = sorted((ROOT / folder).glob(pattern))
    if not found:
        raise RuntimeError(f"no {pattern} in {ROOT / folder}: the shared data is broken")
    return found
