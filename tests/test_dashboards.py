"""dashboards/: the committed JSON is what dashboards/generate.py produces, and holds
together (descriptions, datasource, instance filter, runbook links)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "dashboards"


def generator() -> ModuleType:
    pytest.importorskip(
        "grafana_foundation_sdk", reason="grafana-foundation-sdk is in the dev extra"
    )
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p.get("type") != "row"]


def queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every panel query of every dashboard."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in panels(json.loads(path.read_text())):
            for target in panel["targets"]:
                out.append((path.name, panel["title"], target["expr"]))
    return out


def test_committed_json_is_the_generators_output() -> None:
    gen = generator()
    assert sorted(p.stem for p in DASHBOARDS.glob("*.json")) == sorted(gen.DASHBOARDS)
    for name in gen.DASHBOARDS:
        assert (DASHBOARDS / f"{name}.json").read_text() == gen.render(name), (
            f"dashboards/{name}.json is stale: run .venv/bin/python dashboards/generate.py"
        )


def test_every_panel_is_described_and_filters_on_the_instance() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text().lower()
    boards = sorted(DASHBOARDS.glob("*.json"))
    assert len(boards) >= 5
    for path in boards:
        board = json.loads(path.read_text())
        assert {v["name"] for v in board["templating"]["list"]} >= {"datasource", "instance"}
        for panel in panels(board):
            assert panel["description"], (path.name, panel["title"])
            assert panel["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert 'instance=~"$instance"' in target["expr"], (path.name, target["expr"])
            for link in panel.get("links", []):
                anchor = link["url"].split("#", 1)[1]
                assert f"## {anchor}" in runbooks, link["url"]


def test_every_query_names_metrics_that_exist() -> None:
    documented = "\n".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    recorded = (REPO / "alerts" / "rules" / "recording.yml").read_text()
    for board, title, expr in queries():
        for name in re.findall(r"\b[a-z_]*:?(?:mailprobe|postfix)_[a-z0-9_:]*", expr):
            if ":" in name:
                assert f"record: {name}" in recorded, (board, title, name)
            else:
                base = re.sub(r"_bucket$", "", name)
                assert f"`{base}" in documented, (board, title, name)
