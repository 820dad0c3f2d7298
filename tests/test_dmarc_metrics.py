"""The DMARC metrics: counted live while importing, rebuilt identically from the state
file, bounded labels, and ``mailprobe serve`` watching a folder (kill -9 and restart)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.dmarc.store import History
from monitor.checks.dmarc import classifier_of
from monitor.config import Config
from monitor.dmarc.importing import import_paths
from monitor.metrics.dmarc import DmarcCollector
from monitor.state import StateStore
from monitor.state.dmarc_reports import DmarcReports
from tests.dmarc_helpers import (
    aggregate_xml,
    arf_mail,
    dmarc_config,
    record,
    report_mail,
    tls_json,
)
from tests.servers import ServeProcess

DOMAIN = "example.test"
SOURCES = "  sources:\n    - name: srs\n      networks: [127.0.0.12]\n"
NOW = int(time.time())
TODAY = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    day = aggregate_xml(
        DOMAIN,
        "a1",
        NOW - 86400,
        NOW,
        [
            record("127.0.0.12", 12, "pass", "pass", DOMAIN),
            record("192.0.2.66", 3, "fail", "fail", DOMAIN),
        ],
    )
    (folder / "a1.xml").write_bytes(day)
    (folder / "a1-again.eml").write_bytes(report_mail(day, "<again@rep.test>"))
    (folder / "a2.eml").write_bytes(
        report_mail(
            aggregate_xml(
                DOMAIN,
                "a2",
                NOW - 2 * 86400,
                NOW - 86400,
                [record("198.51.100.7", 4, "fail", "pass", DOMAIN, reason="forwarded")],
                org="otherrep.test",
            ),
            "<a2@rep.test>",
        )
    )
    (folder / "t1.json").write_bytes(tls_json(DOMAIN, "t1", TODAY, TODAY, 40, 2))
    (folder / "f1.eml").write_bytes(arf_mail(DOMAIN, "192.0.2.66"))
    (folder / "bad.xml").write_bytes(b"<!DOCTYPE x [<!ENTITY a 'b'>]><feedback/>")
    (folder / "elsewhere.xml").write_bytes(
        aggregate_xml(
            "elsewhere.test", "e1", 0, 86399, [record("192.0.2.1", 1, "pass", "pass", "x")]
        )
    )


def _collector(config: Config) -> DmarcCollector:
    section = config.dmarc
    return DmarcCollector(section.domains, classifier_of(section), section.top_reporters)


def _exposition(collector: DmarcCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


async def _counted(config: Config) -> DmarcCollector:
    """A collector loaded from the state file, as ``serve`` loads it."""
    store = await StateStore.open(config.state_dir)
    try:
        history = await DmarcReports(store).history()
    finally:
        await store.close()
    collector = _collector(config)
    collector.load(history)
    return collector


def _history(config: Config) -> History:
    async def read() -> History:
        store = await StateStore.open(config.state_dir)
        try:
            return await DmarcReports(store).history()
        finally:
            await store.close()

    return asyncio.run(read())


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no {name}{labels}")


def test_metrics_count_the_state_file_once(tmp_path: Path) -> None:
    _files(tmp_path / "in")
    config = dmarc_config(tmp_path / "state", [DOMAIN], SOURCES)
    asyncio.run(import_paths(config, [tmp_path / "in"]))
    collector = asyncio.run(_counted(config))
    live = _exposition(collector)
    # Loading again (serve does after every look) and importing again change nothing.
    collector.load(_history(config))
    assert _exposition(collector) == live
    asyncio.run(import_paths(config, [tmp_path / "in"]))
    assert _exposition(asyncio.run(_counted(config))) == live
    messages = dict(
        domain=DOMAIN,
        reporter="rep.test",
        disposition="none",
        dkim_aligned="true",
        spf_aligned="true",
        dmarc="pass",
        source_class="ours",
    )
    assert _value(live, "mailprobe_dmarc_messages_total", **messages) == 12
    assert _value(live, "mailprobe_dmarc_messages_total", dmarc="fail", source_class="foreign") == 3
    assert (
        _value(
            live,
            "mailprobe_dmarc_messages_total",
            reporter="otherrep.test",
            source_class="forwarded",
        )
        == 4
    )
    assert _value(live, "mailprobe_dmarc_reports_total", kind="aggregate") == 2
    assert _value(live, "mailprobe_dmarc_reports_total", kind="tls") == 1
    assert _value(live, "mailprobe_dmarc_reports_total", kind="feedback") == 1
    assert _value(live, "mailprobe_dmarc_duplicate_reports_total") == 1
    assert _value(live, "mailprobe_dmarc_invalid_reports_total", reason="dtd") == 1
    assert _value(live, "mailprobe_dmarc_other_domain_reports_total") == 1
    assert _value(live, "mailprobe_dmarc_tls_sessions_total", result="failed") == 2
    assert (
        _value(live, "mailprobe_dmarc_tls_failures_total", result_type="certificate-expired") == 2
    )
    assert _value(live, "mailprobe_dmarc_failure_reports_total", auth_failure="dmarc") == 1
    assert (
        _value(
            live,
            "mailprobe_dmarc_feedback_reports_total",
            feedback_type="auth-failure",
            reporter="arf.rep.test",
        )
        == 1
    )
    assert (
        _value(
            live,
            "mailprobe_dmarc_report_end_timestamp_seconds",
            kind="aggregate",
            reporter="rep.test",
        )
        == NOW
    )
    assert "192.0.2.66" not in live


def test_labels_carry_no_addresses_and_only_the_first_reporters(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(4):
        (folder / f"r{n}.xml").write_bytes(
            aggregate_xml(
                DOMAIN,
                f"id-{n}",
                NOW - 86400 + n,
                NOW + n,
                [record("192.0.2.66", 1, "fail", "fail", DOMAIN)],
                org=f"org{n}.test",
            )
        )
    config = dmarc_config(tmp_path / "state", [DOMAIN], "  top_reporters: 2\n")
    asyncio.run(import_paths(config, [folder]))
    text = _exposition(asyncio.run(_counted(config)))
    reporters = {
        s.labels["reporter"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if "reporter" in s.labels
    }
    # Files are imported in name order, two at a time: the first two orgs stored keep names.
    assert len(reporters - {"other"}) == 2 and "other" in reporters
    assert "192.0.2.66" not in text and "id-0" not in text


def test_serve_ingests_a_watched_folder_and_a_restart_shows_the_same(tmp_path: Path) -> None:
    inbox = tmp_path / "reports"
    inbox.mkdir()
    config = tmp_path / "serve.yml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\ndmarc:\n  domains: [{DOMAIN}]\n  paths: [{inbox}]\n"
        f"  poll_interval: 0.2\n  workers: 1\n{SOURCES}"
    )
    _files(tmp_path / "staged")
    serve = ServeProcess(config).start()
    try:
        serve.wait_listening()
        for path in sorted((tmp_path / "staged").iterdir()):
            shutil.copy(path, inbox / path.name)
        before = _scrape_until(
            serve, lambda t: _maybe(t, "mailprobe_dmarc_reports_total", kind="feedback") == 1
        )
        serve.signal(signal.SIGKILL)
        assert serve.wait(timeout=10) == -signal.SIGKILL
    finally:
        serve.stop()
    again = ServeProcess(config).start()
    try:
        again.wait_listening()
        after = _scrape_until(
            again,
            lambda t: (
                _maybe(
                    t, "mailprobe_dmarc_source_last_success_timestamp_seconds", source="directory"
                )
                > 0
            ),
        )
        # A report imported by the command beside the running serve is counted too.
        extra = tmp_path / "extra.xml"
        extra.write_bytes(
            aggregate_xml(
                DOMAIN, "extra", NOW - 60, NOW, [record("192.0.2.99", 7, "fail", "fail", DOMAIN)]
            )
        )
        imported = subprocess.run(
            [sys.executable, "-m", "monitor", "dmarc", "import", "-c", str(config), str(extra)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert imported.returncode == 0, imported.stderr
        _scrape_until(
            again,
            lambda t: _maybe(t, "mailprobe_dmarc_reports_total", kind="aggregate") == 3,
        )
    finally:
        again.stop()
    assert _dmarc_counters(after) == _dmarc_counters(before)
    assert (
        _value(after, "mailprobe_dmarc_messages_total", source_class="foreign", dmarc="fail") == 3
    )
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run(
            [promtool, "check", "metrics"], input=after, text=True, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stdout + check.stderr


def _maybe(text: str, name: str, **labels: str) -> float:
    try:
        return _value(text, name, **labels)
    except AssertionError:
        return -1


def _scrape_until(serve: ServeProcess, done: object, timeout: float = 60) -> str:
    assert callable(done)
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(f"http://{serve.listen}/metrics", timeout=5).text
        if done(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last scrape:\n{text}\n{serve.log()}")
        time.sleep(0.2)


def _dmarc_counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        # Counted from the state file: not the check facts (they follow the checks'
        # schedule) nor the sources' health (per process).
        if s.name.startswith("mailprobe_dmarc_")
        and "source" not in s.labels
        and "check" not in s.labels
    }


def test_a_broken_mailbox_is_counted_by_phase_and_serve_keeps_serving(tmp_path: Path) -> None:
    from tests.servers import ClosingServer

    password = tmp_path / "pw"
    password.write_text("secret\n")
    with ClosingServer() as server:
        config = tmp_path / "serve.yml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\ndmarc:\n  domains: [{DOMAIN}]\n"
            f"  mailbox: {{host: 127.0.0.1, port: {server.port}, username: dmarc,"
            f" password_file: {password}}}\n"
        )
        serve = ServeProcess(config).start()
        try:
            serve.wait_listening()
            # Reconnects after 1 s, then 2 s: a second failure within about 3 s.
            text = _scrape_until(
                serve,
                lambda t: _maybe(t, "mailprobe_dmarc_source_errors_total", source="mailbox") >= 2,
                timeout=30,
            )
            assert server.connections >= 2
            assert "secret" not in serve.log()
            assert httpx.get(f"http://{serve.listen}/-/healthy", timeout=5).status_code == 200
        finally:
            serve.stop()
    phases = {
        s.labels["phase"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "mailprobe_dmarc_source_errors_total"
    }
    assert phases <= {"connect", "tls"} and phases, phases
    assert "report mailbox failed" in serve.log()
