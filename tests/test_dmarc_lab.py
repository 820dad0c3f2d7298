"""End to end in the lab: reports mailed through the world's Postfix into the lab's report
mailbox, ingested by ``mailprobe serve`` over IMAP, shown on ``/metrics``, judged by
``mailprobe run --only dmarc`` and the readiness report, and filed in Archive folders."""

from __future__ import annotations

import gzip
import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.lab import Lab
from monitor.lab.dmarcreport import SPOOFER
from monitor.lab.mailconfig import config_data
from tests.dmarc_helpers import aggregate_xml, record, tls_json
from tests.lab_fixture import imap_login, unique
from tests.servers import ServeProcess

ROOT = Path(__file__).resolve().parents[1]


def _mail(lab: Lab, sender: str, subject: str, attachment: bytes, subtype: str) -> None:
    """From the world's client through the world's Postfix to our MX, as a receiver would."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"dmarc@{lab.domain}"
    message["Subject"] = subject
    message.set_content("report\n")
    message.add_attachment(
        gzip.compress(attachment, mtime=0),
        maintype="application",
        subtype=subtype,
        filename="report.gz",
    )
    h = lab.hosts
    with smtplib.SMTP(
        h["world"].address, 25, timeout=10, source_address=(h["client"].address, 0)
    ) as smtp:
        smtp.ehlo(h["client"].name)
        smtp.sendmail(sender, [f"dmarc@{lab.domain}"], message.as_bytes())


def _config(lab: Lab, tmp_path: Path) -> Path:
    data = config_data(lab)
    dmarc = data["dmarc"]
    dmarc["poll_interval"] = 0.5
    dmarc["workers"] = 1
    # Only the resolvers of the dns section: the readiness report looks up PTR names.
    dns = {"resolvers": data["dns"]["resolvers"]}
    path = tmp_path / "dmarc.yml"
    path.write_text(
        yaml.safe_dump({"state_dir": str(tmp_path / "state"), "dmarc": dmarc, "dns": dns})
    )
    return path


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _filed(serve: ServeProcess, counted: Callable[[str], bool]) -> str:
    """Scrape until ``counted`` holds and then until a look at the mailbox ended after
    that (its messages are filed once their reports are counted)."""
    deadline = time.monotonic() + 60
    counted_at: float | None = None
    while True:
        text = httpx.get(f"http://{serve.listen}/metrics", timeout=5).text
        if counted_at is None and counted(text):
            counted_at = time.time()
        last = "mailprobe_dmarc_source_last_success_timestamp_seconds"
        if counted_at is not None and _value(text, last, source="mailbox") >= counted_at:
            return text
        assert time.monotonic() < deadline, f"not filed:\n{text}\n{serve.log()}"
        time.sleep(0.3)


def _folder_counts(lab: Lab) -> dict[str, int]:
    imap = imap_login(lab, "dmarc")
    try:
        counts = {}
        for folder in ("INBOX", "Archive/Aggregate", "Archive/TLS", "Invalid"):
            status, data = imap.select(f'"{folder}"', readonly=True)
            counts[folder] = int(data[0] or 0) if status == "OK" else -1
        return counts
    finally:
        imap.logout()


def _unfile_reports(lab: Lab) -> None:
    """Put reports that an earlier serve on the session lab filed back into INBOX.

    Any serve over the lab's config (the alert end-to-end test runs one) reads the report
    mailbox and files the lab's own reports; this test's fresh state must see them too."""
    imap = imap_login(lab, "dmarc")
    try:
        for folder in ("Archive/Aggregate", "Archive/TLS"):
            status, data = imap.select(f'"{folder}"')
            if status == "OK" and int(data[0] or 0) > 0:
                status, _ = imap.uid("MOVE", "1:*", "INBOX")
                assert status == "OK", f"cannot move {folder} back to INBOX"
    finally:
        imap.logout()


def test_reports_mailed_to_the_lab_reach_metrics_checks_and_the_readiness_report(
    lab: Lab, tmp_path: Path
) -> None:
    _unfile_reports(lab)
    now = int(time.time())
    today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    submit = lab.hosts["submit"].address
    tag = unique("e2e")
    # A receiver saw our submission host fail (a broken signer) and the spoofer again.
    _mail(
        lab,
        f"noreply-dmarc@{lab.world}",
        f"Report Domain: {lab.domain} {tag}",
        aggregate_xml(
            lab.domain,
            tag,
            now - 3600,
            now,
            [
                record(submit, 2, "fail", "fail", lab.domain),
                record(SPOOFER, 5, "fail", "fail", lab.domain),
            ],
            org="receiver.test",
        ),
        "gzip",
    )
    _mail(
        lab,
        f"tlsrpt@{lab.world}",
        f"TLS report {tag}",
        tls_json(lab.domain, tag, today, today, 7, 3, org="receiver.test"),
        "tlsrpt+gzip",
    )
    config = _config(lab, tmp_path)
    serve = ServeProcess(config).start()
    try:
        serve.wait_listening()
        # The lab's two aggregate and one TLS report, and ours.
        text = _filed(
            serve,
            lambda t: (
                _value(t, "mailprobe_dmarc_reports_total", kind="aggregate") >= 3
                and _value(t, "mailprobe_dmarc_reports_total", kind="tls") >= 2
            ),
        )
    finally:
        serve.stop()
    assert (
        _value(text, "mailprobe_dmarc_messages_total", source_class="foreign", dmarc="fail")
        >= 4 + 2 + 5
    )
    assert _value(text, "mailprobe_dmarc_messages_total", source_class="ours", dmarc="fail") == 2
    assert (
        _value(
            text,
            "mailprobe_dmarc_tls_failures_total",
            reporter="receiver.test",
            result_type="certificate-expired",
        )
        == 3
    )
    assert _value(text, "mailprobe_dmarc_source_errors_total") == 0

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "run",
            "-c",
            str(config),
            "--only",
            "dmarc",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    results = {r["check"]: r for r in json.loads(run.stdout)["results"]}
    assert results["spoofing"]["status"] == "warn"  # the lab config fails it from 50 %
    assert f"{SPOOFER} (" in results["spoofing"]["reason"]
    assert results["own-sources"]["status"] == "fail"
    assert f"submit ({submit}): 2 of" in results["own-sources"]["reason"]
    assert results["tls-rpt"]["status"] == "fail"
    assert "certificate-expired x3 reported by receiver.test" in results["tls-rpt"]["reason"]
    assert run.returncode == 2

    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "dmarc",
            "report",
            "-c",
            str(config),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    [domain] = json.loads(report.stdout)["domains"]
    assert domain["verdict"] == "not ready"
    assert [(b["name"], b["address"], b["failing"]) for b in domain["blockers"]] == [
        ("submit", submit, 2)
    ]
    ptr = {s["address"]: s["ptr"] for s in domain["sources"]}
    assert ptr[submit] == lab.hosts["submit"].name  # through the lab's resolver
    assert ptr[SPOOFER] == ""  # TEST-NET: no PTR, and no lookup leaves the lab
    folders = _folder_counts(lab)
    assert folders["INBOX"] == 0, folders
    assert folders["Archive/Aggregate"] >= 3 and folders["Archive/TLS"] >= 2, folders


async def test_imap_create_is_idempotent_and_the_delimiter_is_dovecots(lab: Lab) -> None:
    from exporters.imap import ImapEndpoint, ImapSession

    creds = lab.credentials("dmarc")
    endpoint = ImapEndpoint(
        lab.hosts["imap"].address,
        993,
        username=creds.username,
        password=creds.password(),
        ca_file=lab.ca_file,
        timeout=10,
    )
    session = await ImapSession.open(endpoint)
    try:
        assert await session.delimiter() == "/"  # the lab's namespace inbox separator
        folder = f"Test/{unique('create')}"
        await session.create(folder)
        await session.create(folder)
        assert folder in {f.name for f in await session.list_folders()}
    finally:
        await session.close()


def test_refused_mails_go_to_invalid_and_a_big_one_is_not_read_whole(
    lab: Lab, tmp_path: Path
) -> None:
    tag = unique("refused")
    now = int(time.time())
    small = aggregate_xml(
        lab.domain,
        tag,
        now - 3600,
        now,
        [record(lab.hosts["srs"].address, 1, "pass", "pass", lab.domain)],
    )
    _mail(lab, f"noreply-dmarc@{lab.world}", f"small {tag}", small, "gzip")
    h = lab.hosts
    with smtplib.SMTP(
        h["world"].address, 25, timeout=10, source_address=(h["client"].address, 0)
    ) as smtp:
        smtp.ehlo(h["client"].name)
        smtp.sendmail(
            f"someone@{lab.world}",
            [f"dmarc@{lab.domain}"],
            f"Subject: not a report {tag}\r\n\r\nhello\r\n".encode(),
        )
        padding = "x" * 76 + "\r\n"
        smtp.sendmail(
            f"someone@{lab.world}",
            [f"dmarc@{lab.domain}"],
            f"Subject: big {tag}\r\n\r\n{padding * 400}".encode(),
        )
    config = _config(lab, tmp_path)
    data = yaml.safe_load(config.read_text())
    data["dmarc"]["limits"] = {"max_message_bytes": 16384}
    config.write_text(yaml.safe_dump(data))
    serve = ServeProcess(config).start()
    try:
        serve.wait_listening()
        _filed(
            serve,
            lambda t: (
                _value(t, "mailprobe_dmarc_invalid_reports_total", reason="no_report") >= 1
                and _value(t, "mailprobe_dmarc_invalid_reports_total", reason="too_large") >= 1
            ),
        )
    finally:
        serve.stop()
    imap = imap_login(lab, "dmarc")
    try:
        imap.select('"Invalid"', readonly=True)
        _, found = imap.search(None, "SUBJECT", f'"{tag}"')
        assert len(found[0].split()) == 2  # the mail without a report and the big one
        imap.select('"Archive/Aggregate"', readonly=True)
        _, found = imap.search(None, "SUBJECT", f'"small {tag}"')
        assert len(found[0].split()) == 1
        status, data_ = imap.select("INBOX", readonly=True)
        assert status == "OK" and int(data_[0] or 0) == 0
    finally:
        imap.logout()
