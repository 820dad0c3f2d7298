"""What a user sees: no library's warnings on any command, ``--help`` included."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import SUBCOMMANDS
from monitor.lab import Lab

REPO = Path(__file__).resolve().parents[1]


def mailprobe(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("args", [(), *((name,) for name in SUBCOMMANDS)], ids=str)
def test_help_prints_only_help(args: tuple[str, ...]) -> None:
    done = mailprobe(*args, "--help")
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout.startswith("usage: mailprobe")


def test_dns_dnssec_is_imported_in_one_place() -> None:
    """Importing dns.dnssec elsewhere first would bring cryptography's DSA warning back."""
    importers = []
    for path in sorted([*(REPO / "monitor").rglob("*.py"), *(REPO / "exporters").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [f"{node.module}.{a.name}" for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module
                else []
            )
            if any(n == "dns.dnssec" or n.startswith("dns.dnssecalgs") for n in names):
                importers.append(str(path.relative_to(REPO)))
    assert importers == ["monitor/lab/dnssec.py"]


def test_run_on_the_lab_prints_only_its_own_lines(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "lab.yml"
    written = mailprobe("lab", "config", "--dir", str(lab.dir))
    assert written.returncode == 0 and written.stderr == ""
    config.write_text(written.stdout)
    # every check of the lab, canary round trips included: a minute is not always enough
    # on a busy machine
    done = mailprobe("run", "--config", str(config), timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    ours = re.compile(r"^(mailprobe: |ts=\S+ level=\w+ logger=(monitor|exporters)\.)")
    assert all(ours.match(line) for line in done.stderr.splitlines()), done.stderr
    assert "Warning" not in done.stderr
    assert "level=info" not in done.stderr  # a one-shot run logs warnings and worse only


def test_run_against_the_system_trust_store_is_quiet(tmp_path: Path) -> None:
    """No ca_file: the system bundle is loaded (Debian 12's holds roots with serial 0)."""
    config = tmp_path / "c.yml"
    config.write_text(
        "defaults: {timeout: 1}\nsmtp: {targets: [{name: x, host: 127.0.0.1, port: 9}]}\n"
    )
    done = mailprobe("run", "--config", str(config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == ""
