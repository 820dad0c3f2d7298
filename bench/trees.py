"""Copies of the source tree: as pure Python, or with the log exporter's hot path
compiled by mypyc exactly as ``scripts/setup.sh`` compiles it (setup.py).

The benchmark runs both side by side, and tests/test_compiled_build.py checks that
both count the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("exporters", "monitor", "setup.py", "pyproject.toml", "README.md")


def source_tree(target: Path, compiled: bool) -> Path:
    """Copy the package sources to ``target`` (replaced), compiled if asked; run
    ``python -m monitor`` with ``cwd=target`` to use it."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.so")
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    if compiled:
        done = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=target,
            env={**os.environ, "MAILPROBE_MYPYC": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mypyc build failed:\n{done.stderr[-3000:]}")
    return target
