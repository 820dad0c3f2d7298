"""postfix_ metric values, read back from the exposition text as Prometheus sees it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from exporters.postfix_logs.settings import LogSettings
from monitor.metrics.postfix import render_reference
from tests.postfix_metrics import scrape
from tests.shared_data import require

T = "2024-05-02T10:00:{:02d}.000000+02:00 mx1 "

MIXED = [
    T.format(0) + "postfix/postscreen[9]: CONNECT from [192.0.2.1]:4000 to [198.51.100.1]:25",
    T.format(0) + "postfix/postscreen[9]: PASS NEW [192.0.2.1]:4000",
    T.format(0) + "postfix/smtpd[10]: connect from a.example.net[192.0.2.1]",
    T.format(1) + "postfix/smtpd[10]: Trusted TLS connection established from a.example.net"
    "[192.0.2.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    T.format(1) + "postfix/smtpd[10]: NOQUEUE: reject: RCPT from a.example.net[192.0.2.1]: 450"
    " 4.7.1 <x@example.org>: Recipient address rejected: Greylisted for 5 minutes;"
    " from=<s@example.net> to=<x@example.org> proto=ESMTP helo=<a.example.net>",
    T.format(2) + "postfix/smtpd[10]: AAAA00001: client=a.example.net[192.0.2.1]",
    T.format(2) + "postfix/cleanup[11]: AAAA00001: message-id=<m1@example.net>",
    T.format(2) + "postfix/smtpd[10]: disconnect from a.example.net[192.0.2.1] ehlo=1"
    " starttls=1 mail=1 rcpt=1/2 data=1 quit=1 commands=6/7",
    T.format(2) + "postfix/qmgr[12]: AAAA00001: from=<s@example.net>, size=2500, nrcpt=2"
    " (queue active)",
    T.format(3) + "postfix/smtp[13]: AAAA00001: to=<u@example.org>, relay=mx.example.org"
    "[203.0.113.5]:25, delay=1.5, delays=0.5/0.1/0.4/0.5, dsn=2.0.0, status=sent (250 ok)",
    T.format(3) + "postfix/smtp[13]: AAAA00001: to=<v@example.com>, relay=mx.example.com"
    "[203.0.113.6]:25, delay=1.5, delays=0.5/0.1/0.4/0.5, dsn=4.4.1, status=deferred"
    " (connect to mx.example.com[203.0.113.6]:25: Connection timed out)",
    T.format(4) + "postfix/smtp[13]: connect to mx.example.com[203.0.113.6]:25: Connection"
    " timed out",
    T.format(50) + "postfix/qmgr[12]: AAAA00001: from=<s@example.net>, size=2500, nrcpt=2"
    " (queue active)",
    T.format(51) + "postfix/smtp[13]: AAAA00001: to=<v@example.com>, relay=mx.example.com"
    "[203.0.113.6]:25, delay=51, delays=50/0.1/0.4/0.5, dsn=5.1.1, status=bounced (host"
    " mx.example.com[203.0.113.6] said: 550 5.1.1 User unknown (in reply to RCPT TO command))",
    T.format(51) + "postfix/bounce[14]: AAAA00001: sender non-delivery notification: BBBB00002",
    T.format(52) + "postfix/qmgr[12]: AAAA00001: removed",
    T.format(5) + "postfix/submission/smtpd[20]: connect from unknown[192.0.2.9]",
    T.format(5) + "postfix/submission/smtpd[20]: warning: unknown[192.0.2.9]: SASL LOGIN"
    " authentication failed: UGFzc3dvcmQ6",
    T.format(6) + "postfix/submission/smtpd[20]: CCCC00003: client=unknown[192.0.2.9],"
    " sasl_method=PLAIN, sasl_username=alice@example.org",
    T.format(7) + "postfix/submission/smtpd[20]: lost connection after DATA from unknown"
    "[192.0.2.9]",
    T.format(8) + "postfix/submission/smtpd[20]: Unsupported line nobody understands",
    T.format(8) + "postfix/master[1]: warning: process /usr/lib/postfix/sbin/smtpd pid 77 exit"
    " status 1",
    T.format(9) + "postfix/qmgr[12]: fatal: scan_dir_push: open directory active: Permission"
    " denied",
    T.format(9) + "opendkim[30]: CCCC00003: DKIM-Signature field added (s=sel1, d=example.org)",
    T.format(9) + "postsrsd[31]: srs_forward: <a@example.net> rewritten as"
    " <SRS0=x=y=example.net=a@example.org>",
    "not a syslog line at all",
]
SETTINGS = LogSettings(
    services={"postfix": "mx", "postfix/submission": "submission"}, domains=["example.org"]
)


def test_line_accounting() -> None:
    s = scrape(MIXED, SETTINGS)
    assert s.value("postfix_log_lines_total", outcome="postfix_parsed") == 22
    assert s.value("postfix_log_lines_total", outcome="postfix_unsupported") == 1
    assert s.value("postfix_log_lines_total", outcome="foreign") == 2
    assert s.value("postfix_log_lines_total", outcome="malformed") == 1
    assert s.value("postfix_log_unsupported_lines_total", service="submission", daemon="smtpd") == 1
    assert s.value("postfix_log_foreign_lines_total", program="opendkim") == 1
    assert s.value("postfix_log_messages_total", daemon="qmgr", severity="fatal") == 1
    assert s.value("postfix_log_messages_total", daemon="master", severity="warning") == 1
    assert s.value("postfix_log_messages_total", daemon="smtpd", severity="warning") == 1
    assert s.value("postfix_log_last_line_timestamp_seconds") == 1714636809.0


def test_smtpd_and_submission_metrics() -> None:
    s = scrape(MIXED, SETTINGS)
    assert s.value("postfix_smtpd_connects_total", service="mx") == 1
    assert s.value("postfix_smtpd_connects_total", service="submission") == 1
    assert s.value("postfix_smtpd_messages_processed_total", service="mx", sasl_method="") == 1
    assert s.label_values("postfix_smtpd_messages_processed_total", "sasl_method") == {"", "PLAIN"}
    reject = {"stage": "RCPT", "code": "450", "enhanced_code": "4.7.1", "reason": "greylist"}
    assert s.value("postfix_smtpd_messages_rejected_total", service="mx", **reject) == 1
    assert s.value("postfix_smtpd_commands_total", command="rcpt", result="accepted") == 1
    assert s.value("postfix_smtpd_commands_total", command="rcpt", result="rejected") == 1
    assert s.value("postfix_smtpd_sasl_authentication_failures_total", method="LOGIN") == 1
    assert s.value("postfix_smtpd_connections_lost_total", after_stage="DATA") == 1
    tls = {"trust": "Trusted", "protocol": "TLSv1.3"}
    assert s.value("postfix_smtpd_tls_connections_total", service="mx", **tls) == 1
    assert s.value("postfix_postscreen_actions_total", action="pass_new") == 1


def test_delivery_metrics_count_every_attempt_but_delays_only_final_ones() -> None:
    s = scrape(MIXED, SETTINGS)
    deliveries = "postfix_deliveries_total"
    assert s.value(deliveries, transport="smtp", status="sent", domain="example.org") == 1
    assert s.value(deliveries, transport="smtp", status="deferred", dsn_class="4") == 1
    assert s.value(deliveries, transport="smtp", status="bounced", domain="other") == 1
    problems = "postfix_delivery_problems_total"
    assert s.value(problems, status="deferred", reason="connection") == 1
    assert s.value(problems, status="bounced", reason="unknown_user") == 1
    delay = "postfix_smtp_delivery_delay_seconds"
    assert s.label_values(delay + "_count", "stage") == {
        "before_queue_manager",
        "queue_manager",
        "connection_setup",
        "transmission",
    }
    # sent + bounced; the deferred attempt is not observed
    assert s.value(delay + "_count", stage="before_queue_manager") == 2
    assert s.value(delay + "_sum", stage="before_queue_manager") == 50.5
    assert s.value(delay + "_bucket", stage="before_queue_manager", le="1.0") == 1
    # queued twice (deferred, then back to active): counted once
    assert s.value("postfix_qmgr_messages_inserted_size_bytes_count") == 1
    assert s.value("postfix_qmgr_messages_inserted_recipients_sum") == 2
    assert s.value("postfix_smtp_connection_failures_total", reason="timed_out") == 1
    kind = {"notification": "non_delivery", "recipient": "sender"}
    assert s.value("postfix_bounce_notifications_total", **kind) == 1
    assert s.value("postfix_qmgr_messages_removed_total") == 1
    assert s.value("postfix_master_events_total", event="process_exit") == 1
    assert s.value("opendkim_signatures_added_total", subject="sel1", domain="example.org") == 1
    assert s.value("postfix_srs_rewrites_total", direction="forward", result="rewritten") == 1


def test_label_values_stay_bounded() -> None:
    lines = [
        T.format(i % 60)
        + f"postfix-{i}/smtp[1]: Q{i:09d}: to=<u{i}@d{i}.example>, relay=r{i}.example"
        f"[192.0.2.1]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)"
        for i in range(500)
    ]
    s = scrape(lines, LogSettings(domains=["d1.example"]))
    assert s.label_values("postfix_deliveries_total", "domain") == {"d1.example", "other"}
    assert s.label_values("postfix_deliveries_total", "service") == {"other"}
    assert len(s.samples) < 200


def _count(path: Path, daemon: str, needle: str) -> int:
    return sum(
        1
        for line in path.read_text(errors="replace").splitlines()
        if f"/{daemon}[" in line and needle in line
    )


def test_public_log_values_match_independent_counts() -> None:
    path = require("postfix", "postfix_exporter-tests_lines.log")
    s = scrape(path.read_text(errors="replace").splitlines())
    assert s.value("postfix_qmgr_messages_removed_total") == _count(path, "qmgr", ": removed")
    assert s.value("postfix_smtpd_sasl_authentication_failures_total") == _count(
        path, "smtpd", "authentication failed"
    )
    for status in ("sent", "deferred", "bounced"):
        expected = sum(_count(path, d, f"status={status}") for d in ("smtp", "virtual"))
        assert s.value("postfix_deliveries_total", status=status) == expected
    assert s.value("postfix_qmgr_messages_expired_total") == _count(path, "qmgr", "expired,")
    assert s.value("postfix_postscreen_actions_total", action="allowlisted") == 2
    assert s.value("postfix_postscreen_actions_total", action="denylisted") == 2
    busy = "postfix_postscreen_connects_rejected_total"
    assert s.value(busy, reason="all_screening_ports_busy") == 1
    assert s.value("postfix_smtp_tls_connections_total", trust="Verified") == 2

    youyo = require("postfix", "youyo-postfix-log-parser_test.log")
    s = scrape(youyo.read_text().splitlines())
    assert s.value("postfix_cleanup_messages_processed_total") == _count(youyo, "cleanup", "id=")
    assert s.value("postfix_smtpd_connects_total") == _count(youyo, "smtpd", "]: connect from")


def test_promtool_accepts_the_exposition() -> None:
    from tests.test_postfix_mtail_compat import LOG

    for settings in (SETTINGS, LogSettings(mtail_compat=True)):
        text = scrape(MIXED + LOG, settings).text
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_metric_reference_in_the_docs_is_current() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "postfix-logs.md").read_text()
    assert render_reference() in doc, (
        "docs/postfix-logs.md is stale: paste `python -m monitor.metrics.postfix` into it"
    )
