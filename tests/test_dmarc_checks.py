"""The DMARC checks and the readiness report, on reports imported into a real state file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from exporters.result import Check, Kind, Phase, Status
from monitor.checks import build_checks
from monitor.config import Config
from monitor.dmarc.importing import import_paths
from tests.dmarc_helpers import aggregate_xml, dmarc_config, record, tls_json

DOMAIN = "example.test"
SOURCES = """  sources:
    - name: srs
      networks: [127.0.0.12]
    - name: submission
      networks: [127.0.0.13/32]
"""
NOW = int(time.time())


def _config(tmp_path: Path) -> Config:
    return dmarc_config(tmp_path / "state", [DOMAIN], SOURCES)


def _import(tmp_path: Path, files: dict[str, bytes]) -> Config:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    config = _config(tmp_path)
    asyncio.run(import_paths(config, [folder]))
    return config


def _run(config: Config) -> dict[str, Check]:
    return {c.name: c for c in build_checks(config, only=[Kind.DMARC])}


def _outcome(config: Config, name: str) -> tuple[Status, str]:
    outcome = asyncio.run(_run(config)[name].run(Phase()))
    return outcome.status, outcome.reason


def _day(records: list[str], report_id: str = "d1", days_ago: int = 0) -> bytes:
    end = NOW - days_ago * 86400
    return aggregate_xml(DOMAIN, report_id, end - 86400, end, records)


def test_every_domain_gets_the_five_checks(tmp_path: Path) -> None:
    checks = build_checks(_config(tmp_path), only=[Kind.DMARC])
    assert sorted((c.name, c.target) for c in checks) == sorted(
        (n, DOMAIN) for n in ("own-sources", "spoofing", "reports-fresh", "tls-rpt", "readiness")
    )


def test_a_healthy_fleet_with_a_spoofer(tmp_path: Path) -> None:
    config = _import(
        tmp_path,
        {
            "r.xml": _day(
                [
                    record("127.0.0.12", 12, "pass", "pass", DOMAIN),
                    record("127.0.0.13", 5, "pass", "pass", DOMAIN),
                    record("192.0.2.66", 3, "fail", "fail", DOMAIN),
                ]
            )
        },
    )
    assert _outcome(config, "own-sources") == (Status.OK, "")
    status, reason = _outcome(config, "spoofing")
    assert status is Status.FAIL  # 3 of 20 = 15 % >= the 10 % default
    assert "192.0.2.66 (3 message(s), reported by rep.test)" in reason
    assert _outcome(config, "readiness")[0] is Status.OK
    assert _outcome(config, "reports-fresh")[0] is Status.OK


def test_own_source_failing_is_named_and_blocks_readiness(tmp_path: Path) -> None:
    config = _import(
        tmp_path,
        {
            "r.xml": _day(
                [
                    record("127.0.0.12", 10, "pass", "pass", DOMAIN),
                    record("127.0.0.12", 2, "fail", "fail", DOMAIN),
                    record("127.0.0.13", 5, "pass", "pass", DOMAIN),
                ]
            )
        },
    )
    status, reason = _outcome(config, "own-sources")
    assert status is Status.FAIL
    assert "srs (127.0.0.12): 2 of 12 message(s) fail DMARC" in reason
    status, reason = _outcome(config, "readiness")
    assert status is Status.WARN
    assert "not ready" in reason and "srs (127.0.0.12)" in reason


def test_forwarded_failures_allow_quarantine_only(tmp_path: Path) -> None:
    config = _import(
        tmp_path,
        {
            "r.xml": _day(
                [
                    record("127.0.0.12", 10, "pass", "pass", DOMAIN),
                    record("198.51.100.7", 4, "fail", "fail", DOMAIN, reason="forwarded"),
                ]
            )
        },
    )
    status, reason = _outcome(config, "readiness")
    assert status is Status.WARN
    assert "ready for quarantine, not for reject" in reason and "198.51.100.7" in reason
    assert _outcome(config, "spoofing")[0] is Status.OK  # forwarded is not spoofing


def test_reports_fresh_warns_without_reports_and_on_old_ones(tmp_path: Path) -> None:
    status, reason = _outcome(_config(tmp_path), "reports-fresh")
    assert status is Status.WARN and "rua=" in reason
    config = _import(
        tmp_path, {"old.xml": _day([record("127.0.0.12", 1, "pass", "pass", DOMAIN)], days_ago=5)}
    )
    status, reason = _outcome(config, "reports-fresh")
    assert status is Status.WARN and "ended 5.0 days ago" in reason


def test_tls_rpt_failures_name_the_type_and_reporter(tmp_path: Path) -> None:
    today = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = _import(
        tmp_path,
        {
            "ok.json": tls_json(DOMAIN, "t1", today, today, 40, 0),
            "bad.json": tls_json(DOMAIN, "t2", today, today, 10, 3, org="google.test"),
        },
    )
    status, reason = _outcome(config, "tls-rpt")
    assert status is Status.FAIL
    assert "3 of 53 TLS session(s)" in reason
    assert "certificate-expired x3 reported by google.test" in reason


def test_readiness_report_json_and_text(tmp_path: Path) -> None:
    _import(
        tmp_path,
        {
            "r.xml": _day(
                [
                    record("127.0.0.12", 12, "pass", "pass", DOMAIN),
                    record("127.0.0.13", 1, "fail", "pass", DOMAIN),
                    record("192.0.2.66", 3, "fail", "fail", DOMAIN),
                ]
            )
        },
    )
    config_file = tmp_path / "c.yml"
    config_file.write_text(
        f"state_dir: {tmp_path / 'state'}\ndmarc:\n  domains: [{DOMAIN}]\n{SOURCES}"
    )
    base = [sys.executable, "-m", "monitor", "dmarc", "report", "-c", str(config_file)]
    run = subprocess.run([*base, "--format", "json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["reports"], report["messages"]) == (1, 16)
    [domain] = report["domains"]
    # submission fails DKIM but its SPF is aligned: DMARC passes, the report is ready.
    assert domain["verdict"] == "ready for reject"
    assert domain["classes"]["ours"] == {
        "messages": 13,
        "dmarc_pass": 13,
        "dmarc_fail": 0,
        "dkim_aligned": 12,
        "spf_aligned": 13,
    }
    assert domain["classes"]["foreign"]["dmarc_fail"] == 3
    assert domain["p_reject"] == {"legitimate_messages_rejected": 0}
    spoofer = next(s for s in domain["sources"] if s["address"] == "192.0.2.66")
    assert (spoofer["class"], spoofer["messages"], spoofer["reporters"]) == (
        "foreign",
        3,
        ["rep.test"],
    )
    text = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert "example.test: ready for reject (16 message(s))" in text.stdout
    assert "127.0.0.12 srs" in text.stdout


def test_arc_pass_in_an_override_comment_is_forwarded(tmp_path: Path) -> None:
    xml = _day([record("127.0.0.12", 3, "pass", "pass", DOMAIN)]).replace(
        b"</feedback>",
        record("198.51.100.9", 2, "fail", "fail", DOMAIN, reason="local_policy")
        .replace("</type></reason>", "</type><comment>arc=pass as.example</comment></reason>")
        .encode()
        + b"</feedback>",
    )
    config = _import(tmp_path, {"r.xml": xml})
    status, reason = _outcome(config, "readiness")
    assert status is Status.WARN and "ready for quarantine" in reason and "198.51.100.9" in reason


def test_reports_without_our_sources_are_no_evidence(tmp_path: Path) -> None:
    config = _import(tmp_path, {"r.xml": _day([record("192.0.2.66", 3, "fail", "fail", DOMAIN)])})
    status, reason = _outcome(config, "readiness")
    assert status is Status.WARN and "lists one of our own sources" in reason
