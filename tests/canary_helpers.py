"""Helpers for the canary tests: a lab config with short deadlines, `mailprobe run` on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from monitor.lab import Lab
from monitor.lab.mailconfig import config_data

REPO = Path(__file__).resolve().parent.parent


def canary_config(
    lab: Lab,
    directory: Path,
    key_file: Path,
    *,
    deadline: float = 15,
    grace: float = 5,
    routes: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """The lab's own config (canary, logs, dns sections) with short deadlines."""
    data = config_data(lab)
    config: dict[str, Any] = {
        "state_dir": str(directory / "state"),
        "logs": data["logs"],
        "dns": {"resolvers": data["dns"]["resolvers"]},
        "canary": data["canary"],
    }
    config["canary"]["key_file"] = str(key_file)
    for route in config["canary"]["routes"]:
        route["deadline"] = deadline
        route["grace"] = grace
        route.update((routes or {}).get(route["name"], {}))
    path = directory / "mailprobe.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_canary(
    config: Path, target: str | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """`mailprobe run --only canary --format json`; the results by route."""
    argv = [sys.executable, "-m", "monitor", "run", "--config", str(config), "--only", "canary"]
    argv += ["--format", "json"]
    if target is not None:
        argv += ["--target", target]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )
    results: dict[str, dict[str, Any]] = {}
    if done.stdout.strip().startswith("{"):
        results = {r["target"]: r for r in json.loads(done.stdout)["results"]}
    return done, results
