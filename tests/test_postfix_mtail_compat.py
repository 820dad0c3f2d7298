"""With logs.mtail_compat, every metric the Tor Project's mtail program defines is
exported under its name and with (at least) its labels, so its dashboard keeps working.

The declarations below are the ``counter`` lines of anarcat/puppet-mtail
``files/postfix.mtail`` (the program's metric contract: name and label names).
"""

from __future__ import annotations

import pytest

from exporters.postfix_logs.settings import LogSettings
from monitor.metrics.postfix import MTAIL_NAMES
from tests.postfix_metrics import scrape

TPA_PROGRAM_COUNTERS = """
counter postfix_cleanup_messages_processed_total by postfix_instance
counter postfix_cleanup_messages_rejected_total by postfix_instance
counter postfix_qmgr_messages_removed_total by postfix_instance
counter postfix_smtp_deliveries by postfix_instance, status
counter postfix_smtp_tls_connections_total by postfix_instance, trust, protocol, cipher, secret_bits, algorithm_bits
counter postfix_smtpd_connects_total by postfix_instance
counter postfix_smtpd_disconnects_total by postfix_instance
counter postfix_smtpd_forward_confirmed_reverse_dns_errors_total by postfix_instance
counter postfix_smtpd_connections_lost_total by postfix_instance, after_stage
counter postfix_smtpd_messages_processed_total by postfix_instance
counter postfix_smtpd_messages_rejected_total by postfix_instance, code
counter postfix_smtpd_messages_ratelimited_total by postfix_instance
counter postfix_smtpd_sasl_authentication_failures_total by postfix_instance
counter postfix_smtpd_tls_connections_total by postfix_instance, trust, protocol, cipher, secret_bits, algorithm_bits
counter postfix_unsupported_log_entries_total by postfix_instance, service
counter spamassassin_ham_total
counter spamassassin_spam_total
"""  # noqa: E501


def _declared() -> dict[str, set[str]]:
    out = {}
    for line in TPA_PROGRAM_COUNTERS.strip().splitlines():
        name, _, labels = line.removeprefix("counter ").partition(" by ")
        out[name] = {label.strip() for label in labels.split(",") if label.strip()}
    return out


T = "Feb  3 19:52:22 mail-01/mail-01 "
LOG = [
    T + "postfix/cleanup[1]: AAAAA00001: message-id=<m@x>",
    T + "postfix/cleanup[1]: AAAAA00001: reject: header Subject: spam from x[192.0.2.1];"
    " from=<a@x> to=<b@y> proto=ESMTP helo=<x>: 5.7.1 message content rejected",
    T + "postfix/qmgr[2]: AAAAA00001: removed",
    T + "postfix/smtp[3]: AAAAA00002: to=<a@b.example>, relay=mx.b.example[192.0.2.2]:25,"
    " delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)",
    T + "postfix-out/smtp[3]: Untrusted TLS connection established to mx.b.example"
    "[192.0.2.2]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
    T + "postfix/smtpd[4]: connect from x[192.0.2.1]",
    T + "postfix/smtpd[4]: disconnect from x[192.0.2.1] ehlo=1 quit=1 commands=2",
    T + "postfix/smtpd[4]: warning: hostname x does not resolve to address 192.0.2.1",
    T + "postfix/smtpd[4]: lost connection after EHLO from x[192.0.2.1]",
    T + "postfix/smtpd[4]: AAAAA00003: client=x[192.0.2.1]",
    T + "postfix/smtpd[4]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 450 4.7.1 <b@y>:"
    " Recipient address rejected: Rate limit exceeded; from=<a@x> to=<b@y> proto=ESMTP helo=<x>",
    T + "postfix/smtpd[4]: warning: x[192.0.2.1]: SASL PLAIN authentication failed: bad",
    T + "postfix/smtpd[4]: Anonymous TLS connection established from x[192.0.2.1]: TLSv1.3"
    " with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    T + "postfix/smtpd[4]: something nobody parses",
    T + "spamd[5]: spamd: clean message (-1.0/5.0) for nobody:65534 in 0.5 seconds, 1 bytes.",
    T + "spamd[5]: spamd: identified spam (9.0/5.0) for nobody:65534 in 0.5 seconds, 1 bytes.",
]


def test_the_name_list_is_the_programs() -> None:
    assert set(MTAIL_NAMES) == set(_declared())


@pytest.mark.parametrize(("name", "labels"), sorted(_declared().items()))
def test_every_mtail_metric_is_exported_with_its_labels(name: str, labels: set[str]) -> None:
    s = scrape(LOG, LogSettings(mtail_compat=True))
    samples = [x for x in s.samples if x.name == name]
    assert samples, f"{name} missing"
    assert all(labels <= set(x.labels) for x in samples), samples
    assert sum(x.value for x in samples) >= 1


def test_compat_values_follow_the_program() -> None:
    s = scrape(LOG, LogSettings(mtail_compat=True))
    assert s.value("postfix_smtp_deliveries", postfix_instance="postfix", status="sent") == 1
    tls = {"cipher": "ECDHE-RSA-AES256-GCM-SHA384", "secret_bits": "256", "algorithm_bits": "256"}
    value = s.value("postfix_smtp_tls_connections_total", postfix_instance="postfix-out", **tls)
    assert value == 1
    assert s.value("postfix_unsupported_log_entries_total", service="smtpd") == 1
    assert s.value("postfix_smtpd_messages_ratelimited_total") == 1
    assert (s.value("spamassassin_ham_total"), s.value("spamassassin_spam_total")) == (1, 1)


def test_without_compat_the_extra_names_and_labels_are_absent() -> None:
    s = scrape(LOG)
    names = {x.name for x in s.samples}
    assert "postfix_smtp_deliveries" not in names
    assert "spamassassin_ham_total" not in names
    assert not any("postfix_instance" in x.labels for x in s.samples)
