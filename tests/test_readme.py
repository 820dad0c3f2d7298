"""CI must run exactly the README's test command, so the README cannot lie about it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci_lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_lines == ["./scripts/setup.sh --dev && ./scripts/test.sh"]
    assert f"```sh\n{ci_lines[0]}\n```" in readme


def test_every_documented_doc_exists() -> None:
    readme = (REPO / "README.md").read_text()
    for name in (
        "docs/run.md",
        "docs/config.md",
        "deploy/apt-packages.txt",
        "examples/mailprobe.yml",
    ):
        assert name in readme
        assert (REPO / name).exists(), name
