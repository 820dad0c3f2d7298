"""The mypyc build of the log exporter's hot path (setup.py) counts what the source does.

A copy of the tree is compiled the way ``scripts/setup.sh`` compiles it; both trees
then report on the same inputs (every public log, a synthetic internet-facing MX log
with raw client bytes, the lab's own maillogs) one-shot, in two worker processes, as
a trace, and as a follower's metrics, and the answers must be equal.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.maillog import generate
from bench.trees import source_tree
from monitor.lab import Lab
from monitor.lab.layout import POSTFIX_INSTANCES
from tests.shared_data import require
from tests.test_postfix_tracker import MEMORY_SCRIPT

REPO = Path(__file__).resolve().parents[1]

PARALLEL_REPORT = """
import json, sys
from pathlib import Path
from exporters.postfix_logs.settings import LogSettings
from monitor.logs.engine import Options, analyse
from monitor.logs.reader import split
from monitor.logs.report import build

paths = [Path(p) for p in sys.argv[1:]]
parts = split(paths, 2, min_bytes=1)
options = Options(LogSettings(), reference=paths[0].stat().st_mtime)
print(len(parts), json.dumps(build(analyse(parts, None, options, 2)), sort_keys=True))
"""

FOLLOWER_METRICS = """
import sys
from pathlib import Path
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from exporters.postfix_logs.aggregator import LogAggregator
from monitor.metrics.postfix import PostfixLogCollector

aggregator = LogAggregator()
for path in sys.argv[1:]:
    with Path(path).open("rb") as stream:
        aggregator.feed_lines(stream)
registry = CollectorRegistry()
registry.register(PostfixLogCollector(aggregator, clock=lambda: 0.0))
sys.stdout.write(generate_latest(registry).decode())
"""


def _hot_modules() -> list[str]:
    """setup.py's HOT_MODULES, as module names."""
    tree = ast.parse((REPO / "setup.py").read_text())
    value = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "HOT_MODULES" for t in node.targets)
    )
    files = ast.literal_eval(value)
    assert isinstance(files, list) and files
    return [f.removesuffix(".py").replace("/", ".") for f in files]


@pytest.fixture(scope="module")
def compiled_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return source_tree(tmp_path_factory.mktemp("compiled") / "tree", compiled=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> list[Path]:
    folder = tmp_path_factory.mktemp("inputs")
    synthetic = folder / "synthetic.log"
    with synthetic.open("wb") as out:
        out.writelines(generate(60_000, fmt="rfc3339"))
    logs = sorted(require("postfix").glob("*.log"))
    lab_logs = [lab.maillog(instance) for instance in POSTFIX_INSTANCES]
    assert logs and all(p.is_file() for p in lab_logs)
    return [*logs, synthetic, *lab_logs]


def _run(tree: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _both(compiled: Path, *args: str) -> Iterator[str]:
    for tree in (REPO, compiled):
        yield _run(tree, *args)


def test_every_hot_module_is_compiled(compiled_tree: Path) -> None:
    modules = _hot_modules()
    code = f"import importlib; print(*(importlib.import_module(m).__file__ for m in {modules!r}))"
    files = _run(compiled_tree, "-c", code).split()
    assert len(files) == len(modules)
    assert all(f.endswith(".so") and f.startswith(str(compiled_tree)) for f in files), files
    # An editable install puts only the packages on sys.path: nothing may sit at the top.
    built = (p.relative_to(compiled_tree) for p in compiled_tree.rglob("*.so"))
    libraries = {p.parent for p in built if p.parts[0] != "build"}
    assert libraries == {Path("exporters/postfix_logs")}, libraries
    pure = _run(REPO, "-c", code).split()
    assert all(f.endswith(".py") for f in pure), "compiled modules shadow the source tree"


def test_report_is_the_same(compiled_tree: Path, inputs: list[Path]) -> None:
    files = [str(p) for p in inputs]
    pure, compiled = _both(
        compiled_tree, "-m", "monitor", "logs", "--jobs", "1", "--format", "json", *files
    )
    report = json.loads(pure)
    assert report["lines"]["total"] > 60_000
    assert report["messages"]["delivered"] > 0 and report["fleet_delay"]
    assert compiled == pure


def test_parallel_parts_are_merged_the_same(compiled_tree: Path, inputs: list[Path]) -> None:
    files = [str(p) for p in inputs if p.stat().st_size > 4096]
    pure, compiled = _both(compiled_tree, "-c", PARALLEL_REPORT, *files)
    assert int(pure.split(" ", 1)[0]) > len(files)  # the files were really cut in parts
    assert compiled == pure


def test_trace_is_the_same(compiled_tree: Path, inputs: list[Path]) -> None:
    synthetic = next(p for p in inputs if p.name == "synthetic.log")
    text = synthetic.read_text(errors="replace")
    queue_ids = sorted(set(re.findall(r"/smtpd\[\d+\]: ([0-9A-Za-z]{5,25}): client=", text)))
    assert len(queue_ids) > 10
    for qid in queue_ids[:: len(queue_ids) // 3][:3]:
        args = ("-m", "monitor", "logs", "--trace", qid, "--format", "json", str(synthetic))
        pure, compiled = _both(compiled_tree, *args)
        assert qid in pure
        assert compiled == pure


def test_follower_metrics_are_the_same(compiled_tree: Path, inputs: list[Path]) -> None:
    files = [str(p) for p in inputs]
    pure, compiled = _both(compiled_tree, "-c", FOLLOWER_METRICS, *files)
    assert "postfix_smtpd_connects_total" in pure
    assert compiled == pure


def test_follower_memory_bound_holds_compiled(compiled_tree: Path) -> None:
    rss = {tree: int(_run(tree, "-c", MEMORY_SCRIPT)) for tree in (REPO, compiled_tree)}
    assert all(0 < mb <= 60 for mb in rss.values()), rss


UNIT_SUITES = ("test_postfix_*.py", "test_sources_*.py")
"""The log exporter's own tests, run again against the compiled build (those that need
the lab already ran above, against the source and the lab started once)."""

LOADED_CHECK = """
import exporters.postfix_logs.aggregator


def test_the_compiled_build_is_the_one_under_test():
    assert exporters.postfix_logs.aggregator.__file__.endswith(".so")
"""


def test_log_exporter_tests_pass_compiled(compiled_tree: Path, tmp_path: Path) -> None:
    """mypyc checks annotations at run time where CPython does not: a value of the wrong
    type from a source would pass the tests above and fail here."""
    suites = sorted(
        str(p)
        for pattern in UNIT_SUITES
        for p in (REPO / "tests").glob(pattern)
        if "lab" not in p.name
    )
    check = tmp_path / "test_compiled_loaded.py"
    check.write_text(LOADED_CHECK)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--import-mode=append", "-o", f"pythonpath={compiled_tree}", str(check), *suites],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
