"""alerts/: the rule files, their promtool unit tests, and the Prometheus and Alertmanager
configs, checked with the real promtool and amtool (Debian's prometheus and
prometheus-alertmanager packages, deploy/apt-packages.txt)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ALERTS = REPO / "alerts"
RULES = sorted((ALERTS / "rules").glob("*.yml"))
UNIT_TESTS = sorted((ALERTS / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
METRIC_NAME = re.compile(r"\b[a-z_]*:?(?:mailprobe|postfix)_[a-z0-9_:]*")

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)


def _alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [r for r in group["rules"] if "alert" in r]
    return rules


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@needs_promtool
def test_promtool_check_rules() -> None:
    assert RULES, "no rule files in alerts/rules"
    output = _run(str(PROMTOOL), "check", "rules", *map(str, RULES))
    assert "FAILED" not in output


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool unit tests in alerts/tests"
    output = _run(str(PROMTOOL), "test", "rules", *map(str, UNIT_TESTS))
    assert output.count("SUCCESS") == len(UNIT_TESTS), output


@needs_promtool
def test_promtool_check_config(tmp_path: Path) -> None:
    # The config's file_sd paths are relative to it; give it target files as the
    # compose stack and the end-to-end test do, so the check sees no missing file.
    (tmp_path / "prometheus.yml").symlink_to(ALERTS / "prometheus.yml")
    (tmp_path / "rules").symlink_to(ALERTS / "rules")
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "mailprobe.yml").write_text('- targets: ["127.0.0.1:9974"]\n')
    (targets / "alertmanager.yml").write_text('- targets: ["127.0.0.1:9093"]\n')
    output = _run(str(PROMTOOL), "check", "config", str(tmp_path / "prometheus.yml"))
    assert "SUCCESS" in output and "WARNING" not in output, output


@pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)"
)
def test_amtool_check_config() -> None:
    output = _run(str(AMTOOL), "check-config", str(ALERTS / "alertmanager.yml"))
    assert "SUCCESS" in output


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    alerts = _alert_rules()
    assert len(alerts) >= 20
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["labels"]["layer"], name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbooks.md has no section '## {name}'"
    names = {r["alert"].lower() for r in alerts}
    assert anchors - names == set(), "runbook sections without an alert"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test["alert_rule_test"]:
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    names = {r["alert"] for r in _alert_rules()}
    assert names - firing == set(), "alerts without a test where they fire"
    assert names - silent == set(), "alerts without a test where they stay silent"


def test_check_alerts_carry_the_reason_in_their_description() -> None:
    for rule in _alert_rules():
        if "mailprobe_check:failing" in rule["expr"]:
            description = rule["annotations"]["description"]
            assert "mailprobe_check_reason_info" in description, rule["alert"]


def test_rules_only_use_metrics_that_exist() -> None:
    """Every mailprobe_/postfix_ name in an expression is documented in docs/ or recorded."""
    documented = "\n".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    recorded = {
        r["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for r in group["rules"]
        if "record" in r
    }
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in set(METRIC_NAME.findall(rule["expr"])):
                    if ":" in name:
                        assert name in recorded, f"{path.name}: {name} is not recorded"
                    else:
                        assert f"`{name}" in documented, f"{path.name}: {name} is not documented"
