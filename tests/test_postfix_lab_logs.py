"""The lab's own Postfix instances write maillog files (Postfix 3.7 maillog_file): every
line must be understood, counted under the lab's service labels, and a forwarded
message traced across the instances it passed."""

from __future__ import annotations

import time
from pathlib import Path

from exporters.postfix_logs.aggregator import LogAggregator
from monitor.config.logs import LogsSection
from monitor.lab import Lab
from monitor.lab.layout import POSTFIX_INSTANCES
from monitor.lab.mailconfig import config_data
from monitor.logs import log_settings
from monitor.logs.engine import Options, trace
from monitor.logs.reader import Part
from tests.lab_fixture import swaks, unique, wait_for_message
from tests.postfix_metrics import Scrape


def _forward(lab: Lab) -> str:
    subject = unique("logs")
    message_id = f"<{subject}@client.mailprobe.test>"
    sent = swaks(
        "-s", lab.hosts["mx"].address, "--local-interface", lab.hosts["client"].address,
        "-f", f"dave@{lab.world}", "-t", f"forward@{lab.domain}",
        "--h-From", f"alice@{lab.domain}", "--h-Subject", subject,
        "--header", f"Message-Id: {message_id}",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    wait_for_message(lab, subject)
    return message_id


def test_lab_maillogs_are_understood_and_the_forward_is_traced(lab: Lab) -> None:
    message_id = _forward(lab)
    settings = log_settings(LogsSection.model_validate(config_data(lab)["logs"]))
    paths = [Path(lab.maillog(i)) for i in POSTFIX_INSTANCES]
    options = Options(settings, time.time())
    deadline = time.monotonic() + 15
    while True:  # the last hop logs its delivery a moment after the mailbox has it
        lines = trace([Part(p) for p in paths], None, options, message_id)
        services = {line.service for line in lines}
        delivered = [line for line in lines if "status=sent" in line.message]
        if ({"mx", "srs", "world"} <= services and len(delivered) >= 3) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.3)
    assert {"mx", "srs", "world"} <= services, [line.message for line in lines]
    assert len({line.qid for line in lines}) >= 3

    unsupported: list[str] = []
    aggregator = LogAggregator(settings, on_raw=lambda prog, text: unsupported.append(text))
    for path in paths:
        aggregator.feed_lines(path.read_bytes().splitlines())
    aggregator.finish()
    lines_seen = aggregator.snapshot().lines
    assert lines_seen.postfix > 20
    assert unsupported == []
    s = Scrape(aggregator)
    assert s.value("postfix_smtpd_messages_processed_total", service="mx") >= 1
    assert s.value("postfix_smtpd_messages_processed_total", service="srs") >= 1
    assert s.value("postfix_deliveries_total", service="srs", status="sent") >= 1
    assert s.value("postfix_smtp_tls_connections_total", service="mx", trust="Verified") >= 1
    assert s.label_values("postfix_deliveries_total", "domain") <= {lab.domain, lab.world, "other"}
