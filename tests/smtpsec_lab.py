"""Helpers for the SMTP security tests: a lab config narrowed to some checks, run through
``mailprobe run`` and ``mailprobe serve`` as real subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.lab import Lab
from monitor.lab.mailconfig import config_data
from tests.servers import ServeProcess

REPO = Path(__file__).resolve().parent.parent


def lab_smtp_config(lab: Lab, path: Path, **smtp: Any) -> Path:
    """The lab's config with only the DNS resolvers, and ``smtp`` as given."""
    data = config_data(lab)
    config = {
        "state_dir": str(path.parent / "state"),
        "defaults": {"timeout": 20},
        "dns": {"resolvers": data["dns"]["resolvers"]},
        "smtp": {"ca_file": data["smtp"]["ca_file"], **smtp},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_json(config: Path, *extra: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--config",
            str(config),
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode in (0, 1, 2), done.stdout + done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)["results"]
    return results


def one_result(results: list[dict[str, Any]], check: str) -> dict[str, Any]:
    found = [r for r in results if r["check"] == check]
    assert len(found) == 1, results
    return found[0]


def scrape_once(config: Path, ready_timeout: float = 60.0) -> str:
    """Start ``serve`` on the config, wait until every check has run once, scrape."""
    with ServeProcess(config) as serve:
        serve.wait_listening()
        base = f"http://{serve.listen}"
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(timeout=5) as client:
            while client.get(f"{base}/-/ready").status_code != 200:
                assert time.monotonic() < deadline, serve.log()
                time.sleep(0.2)
            return client.get(f"{base}/metrics").text


def promtool_problems(text: str, *prefixes: str) -> list[str]:
    """What ``promtool check metrics`` says about families starting with ``prefixes``
    (other sources' families are theirs to lint)."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    return [line for line in (lint.stdout + lint.stderr).splitlines() if line.startswith(prefixes)]


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                return float(s.value)
    return None
