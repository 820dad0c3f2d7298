"""Optional native build of the log exporter's hot path.

With ``MAILPROBE_MYPYC=1`` the modules below are compiled by mypyc (already a dev
dependency: it is mypy's compiler) into C extensions that import in place of the
``.py`` files; without it the package is pure Python. The code is the same either way:
mypyc compiles the type-annotated modules as they are, and
``tests/test_compiled_build.py`` checks that both builds report the same counts.
Everything else (configuration, metadata, dependencies) is in pyproject.toml.
"""

from __future__ import annotations

import os

from setuptools import setup

HOT_MODULES = [
    "exporters/postfix_logs/aggregator.py",
    "exporters/postfix_logs/envelope.py",
    "exporters/postfix_logs/histogram.py",
    "exporters/postfix_logs/labels.py",
    "exporters/postfix_logs/programs.py",
    "exporters/postfix_logs/reasons.py",
    "exporters/postfix_logs/summary.py",
    "exporters/postfix_logs/tally.py",
    "exporters/postfix_logs/tracker.py",
]
"""What ``py-spy`` finds on the per-line path of ``mailprobe logs`` and the follower."""

ext_modules = []
if os.environ.get("MAILPROBE_MYPYC") == "1":
    from mypyc.build import mypycify

    # The shared runtime library goes inside the package (by default it is a top-level
    # module, which an editable install does not put on sys.path).
    ext_modules = mypycify(HOT_MODULES, opt_level="3", group_name="exporters.postfix_logs.hot")

setup(ext_modules=ext_modules)
