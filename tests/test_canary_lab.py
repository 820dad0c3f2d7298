"""Canary round trips through the lab's real fleet, healthy and broken, with `mailprobe run`."""

from __future__ import annotations

import imaplib
import re
import time
from pathlib import Path

import pytest

from monitor.lab import Lab
from tests.canary_helpers import canary_config, run_canary
from tests.lab_fixture import imap_login, unique

ROUTES = ("inbound-forward", "outbound-submission", "outbound-submission-465")


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One canary key for the module: each test's run recognises (and removes) canaries an
    earlier test left behind."""
    return tmp_path_factory.mktemp("canary-key") / "canary.key"


def inbox_subjects(lab: Lab, folder: str = "INBOX") -> dict[bytes, frozenset[bytes]]:
    """Subject -> flags (but \\Recent, which only says which session saw it first) of every
    message in the canary mailbox's ``folder``."""
    imap = imap_login(lab)
    try:
        imap.select(folder, readonly=True)
        _, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        found: dict[bytes, frozenset[bytes]] = {}
        for item in data:
            if isinstance(item, tuple):
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                names = flags.group(1).split() if flags else []
                found[item[1].strip()] = frozenset(names) - {b"\\Recent"}
        return found
    except imaplib.IMAP4.error:
        return {}
    finally:
        imap.logout()


def test_healthy_lab_every_route_delivered_and_verified(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    config = canary_config(lab, tmp_path, key_file)
    done, results = run_canary(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(results) == set(ROUTES)
    for route, result in results.items():
        facts = result["facts"]
        assert result["status"] == "ok", (route, result)
        assert facts["outcome"] == "delivered" and facts["folder"] == "inbox"
        checked = {k for k in facts if k.startswith("verify_")}
        assert {"verify_authres_spf", "verify_authres_dkim", "verify_authres_dmarc",
                "verify_dkim_signature", "verify_return_path", "verify_tls"} <= checked  # fmt: skip
        assert all(facts[k] is True for k in checked), facts
        assert 0 <= facts["latency"] < 15
    # cleaned up: no canary of this run is left in the mailbox
    left = b" ".join(inbox_subjects(lab))
    for result in results.values():
        assert result["facts"]["canary_id"].encode() not in left


def test_forged_canary_and_ordinary_mail_are_left_untouched(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    forged = unique("forged")
    ordinary = unique("ordinary")
    token = f"outbound-submission.0123456789abcdef.{int(time.time() * 1000)}.{'0' * 32}"
    imap = imap_login(lab)
    try:
        for subject, extra in (
            (f"mailprobe-canary {token} {forged}", f"X-Mailprobe-Canary: {token}\r\n"),
            (f"about mailprobe-canary {ordinary}", ""),
        ):
            message = (
                f"From: someone@{lab.world}\r\nTo: canary@{lab.world}\r\n"
                f"Subject: {subject}\r\n{extra}Message-ID: <{subject.split()[-1]}@test>\r\n"
                "\r\nhello\r\n"
            )
            status, _ = imap.append("INBOX", "", imaplib.Time2Internaldate(time.time()),
                                    message.encode())  # fmt: skip
            assert status == "OK"
    finally:
        imap.logout()
    before = {
        s: f
        for s, f in inbox_subjects(lab).items()
        if forged.encode() in s or ordinary.encode() in s
    }
    assert len(before) == 2
    done, results = run_canary(canary_config(lab, tmp_path, key_file), "outbound-submission")
    assert results["outbound-submission"]["status"] == "ok", done.stdout + done.stderr
    after = {
        s: f
        for s, f in inbox_subjects(lab).items()
        if forged.encode() in s or ordinary.encode() in s
    }
    assert after == before  # still there, flags unchanged (not even \Seen)
    assert all(b"\\Seen" not in flags for flags in after.values())
