"""The canary's parts without a lab: token and key, DSNs, Authentication-Results, the trail."""

from __future__ import annotations

import email
import stat
from email.message import Message
from pathlib import Path

import pytest

from exporters.canary.dsn import parse_bounce
from exporters.canary.message import build_message
from exporters.canary.token import CanaryKeyError, Signer, load_or_create_key
from exporters.canary.trail import CanaryTrail
from exporters.canary.verify import Expectations, received_hops, trusted_results, verify_delivery
from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.settings import LogSettings


def test_key_is_created_0600_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "canary.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_or_create_key(path) == key
    path.write_text("not hex\n")
    with pytest.raises(CanaryKeyError, match="not hex"):
        load_or_create_key(path)


def test_only_hmac_valid_tokens_are_ours() -> None:
    signer = Signer(b"k" * 32)
    token, text = signer.new_token("route-1", 1_796_000_000_123)
    assert signer.verify(f"Subject: mailprobe-canary {text}") == token
    route, ident, sent, mac = text.split(".")
    assert signer.verify(f"{route}.{ident}.{sent}.{'0' * 32}") is None  # forged
    assert signer.verify(f"route-2.{ident}.{sent}.{mac}") is None  # another route
    assert Signer(b"x" * 32).verify(text) is None  # another monitor's key


def test_message_has_an_unfolded_token_a_date_and_a_message_id() -> None:
    signer = Signer(b"k" * 32)
    token, text = signer.new_token("a-rather-long-route-name-for-folding", 1_796_000_000_123)
    msgid, raw = build_message(token, text, "alice@example.test", "canary@world.test")
    msg = email.message_from_bytes(raw)
    assert msg["X-Mailprobe-Canary"] == text  # one line: no RFC 2047 re-encoding
    assert msg["Message-ID"] == msgid and msgid.endswith("@example.test>")
    assert msg["Date"] and text in str(msg["Subject"])


def _dsn(token_text: str, action: str = "failed") -> tuple[Message, bytes]:
    raw = (
        "From: MAILER-DAEMON@mx.world.test\r\nTo: canary@world.test\r\nSubject: Undelivered\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nsorry\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.world.test\r\n\r\n"
        f"Final-Recipient: rfc822; forward@example.test\r\nAction: {action}\r\n"
        "Status: 5.7.1\r\nRemote-MTA: dns; mx.example.test\r\n"
        "Diagnostic-Code: smtp; 550 5.7.1 Message rejected\r\n as spam\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"X-Mailprobe-Canary: {token_text}\r\n\r\n--B--\r\n"
    ).encode()
    return email.message_from_bytes(raw), raw


def test_a_failure_dsn_quoting_our_token_is_a_bounce_with_its_words() -> None:
    signer = Signer(b"k" * 32)
    token, text = signer.new_token("inbound-forward", 1_796_000_000_123)
    bounce = parse_bounce(*_dsn(text), signer)
    assert bounce is not None and bounce.token == token
    assert bounce.status == "5.7.1"
    assert bounce.diagnostic == "smtp; 550 5.7.1 Message rejected as spam"
    assert parse_bounce(*_dsn(text, action="delayed"), signer) is None
    assert parse_bounce(*_dsn(text), Signer(b"x" * 32)) is None


HEADERS = (
    "Return-Path: <SRS0=ab=CD=world.test=canary@example.test>\r\n"
    "Received: from mx.world.test by imap.world.test with LMTP id x; "
    "Sun, 06 Dec 2026 14:00:05 +0000\r\n"
    "Authentication-Results: mx.world.test; spf=pass smtp.mailfrom=example.test\r\n"
    'Authentication-Results: mx.world.test; spf=fail reason="not authorized"\r\n'
    "Authentication-Results: evil.example; dkim=pass header.d=example.test\r\n"
    "Authentication-Results: mx.world.test; dkim=pass header.d=example.test\r\n"
    "Received: from srs.example.test (srs.example.test [192.0.2.11]) (using TLSv1.3 with "
    "cipher X) by mx.world.test (Postfix) with ESMTPS id A; Sun, 06 Dec 2026 14:00:04 +0000\r\n"
    "Authentication-Results: mx.world.test; dkim=fail header.d=example.test\r\n"
    "Received: from client (client [192.0.2.30]) by mx.world.test (Postfix) with ESMTP id B; "
    "Sun, 06 Dec 2026 14:00:01 +0000\r\n"
    "\r\nbody\r\n"
)


def test_only_the_trusted_servers_newest_results_count() -> None:
    msg = email.message_from_string(HEADERS)
    results = trusted_results(msg, "mx.world.test")
    assert [(r.method, r.result) for r in results] == [("spf", "pass"), ("spf", "fail"),
                                                       ("dkim", "pass")]  # fmt: skip


async def test_every_result_of_a_method_must_agree_and_hops_show_plain_smtp() -> None:
    msg = email.message_from_string(HEADERS)
    expect = Expectations(
        authserv_id="mx.world.test", spf="pass", dkim="pass", srs=True, tls_every_hop=True
    )
    report = await verify_delivery(HEADERS.encode(), msg, 1_796_565_600.0, 5.0, expect, None)
    by_name = {v.name: v for v in report.verifications}
    assert not by_name["authres_spf"].ok and "spf=fail (not authorized)" in by_name[
        "authres_spf"].detail  # fmt: skip
    assert by_name["authres_dkim"].ok
    assert by_name["return_path"].ok
    assert not by_name["tls"].ok and "mx.world.test" in by_name["tls"].detail
    hops = received_hops(msg, 1_796_565_600.0)
    assert [h.protocol for h in hops] == ["ESMTP", "ESMTPS", "LMTP"]
    assert [h.seconds for h in hops] == [1.0, 3.0, 1.0]


def _feed(aggregator: LogAggregator, lines: list[str]) -> None:
    aggregator.feed_texts(lines)


def test_trail_follows_hand_offs_not_the_order_lines_were_read() -> None:
    trail = CanaryTrail()
    aggregator = LogAggregator(LogSettings(services={"postfix-mx": "mx", "postfix-world": "world"}),
                               observers=[trail])  # fmt: skip
    msgid = "mailprobe-canary.inbound-forward.0123456789abcdef@example.test"
    mx = [
        f"Dec  6 14:00:01 mx postfix-mx/cleanup[1]: BBBBB11111: message-id=<{msgid}>",
        "Dec  6 14:00:01 mx postfix-mx/smtp[2]: BBBBB11111: to=<canary@world.test>, "
        "orig_to=<forward@example.test>, relay=none, delay=0.2, delays=0.2/0/0/0, dsn=4.4.1, "
        "status=deferred (connect to srs.example.test[192.0.2.11]:25: Connection refused)",
    ]
    world = [
        f"Dec  6 14:00:00 mx postfix-world/cleanup[3]: AAAAA11111: message-id=<{msgid}>",
        "Dec  6 14:00:01 mx postfix-world/smtp[4]: AAAAA11111: to=<forward@example.test>, "
        "relay=mx.example.test[192.0.2.10]:25, delay=0.6, delays=0.3/0/0/0.3, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as BBBBB11111)",
    ]
    _feed(aggregator, mx)  # the MX's file happens to be read first
    _feed(aggregator, world)
    where = trail.where(f"<{msgid}>")
    assert where is not None and where.startswith(
        "deferred at mx: connect to srs.example.test[192.0.2.11]:25: Connection refused (1 attempt"
    )
    assert trail.bounced(msgid) is None
    assert trail.where("<mailprobe-canary.other.0000000000000000@x>") is None
