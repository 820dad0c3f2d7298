"""The config reference in docs/ is generated from the model and must match it."""

from __future__ import annotations

from pathlib import Path

from monitor.config.keys import render_reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"


def test_config_reference_matches_model() -> None:
    assert DOC.read_text() == render_reference(), (
        "docs/config.md is stale: run `python -m monitor.config.keys > docs/config.md`"
    )
