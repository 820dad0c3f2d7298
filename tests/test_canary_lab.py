"""Canary round trips through the lab's real fleet, healthy and broken, with `mailprobe run`."""

from __future__ import annotations

import asyncio
import imaplib
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.canary.service import CanaryService
from monitor.config import parse_config
from monitor.lab import Lab
from tests.canary_helpers import canary_config, run_canary
from tests.lab_fixture import broken, imap_login, unique

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


def _one(
    lab: Lab, tmp_path: Path, key_file: Path, route: str, deadline: float = 6, grace: float = 2
) -> dict[str, Any]:
    config = canary_config(lab, tmp_path, key_file, deadline=deadline, grace=grace)
    done, results = run_canary(config, route)
    assert route in results, done.stdout + done.stderr
    return results[route]


def test_stop_postfix_srs_is_late_then_lost_deferred_at_the_mx(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    srs = f"{lab.hosts['srs'].name}[{lab.hosts['srs'].address}]:25"
    mx_to_srs = f"deferred at mx: connect to {srs}: Connection refused"
    with broken(lab, "stop-postfix-srs"):
        first = _one(lab, tmp_path, key_file, "inbound-forward")
        assert first["status"] == "fail" and first["facts"]["outcome"] == "pending"
        assert first["reason"].startswith("late: not delivered"), first
        assert mx_to_srs in first["reason"], first
        time.sleep(2)  # past the first canary's deadline + grace
        second = _one(lab, tmp_path, key_file, "inbound-forward")
    earlier = second["facts"][f"earlier_{first['facts']['canary_id']}"]
    assert earlier.startswith("lost: ") and mx_to_srs in earlier, second


def test_stop_postsrsd_is_late_with_the_lookup_failure(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "stop-postsrsd"):  # the MX waits ~9 s for postsrsd, then defers
        result = _one(lab, tmp_path, key_file, "inbound-forward", deadline=15)
    assert result["status"] == "fail" and result["reason"].startswith("late:"), result
    # the lab shows the MX deferring the forward: its alias lookup goes through postsrsd
    assert "deferred at" in result["reason"] and "4.3.0" in result["reason"], result


def test_dkim_key_mismatch_is_delivered_with_dkim_fail_twice(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "dkim-key-mismatch"):
        result = _one(lab, tmp_path, key_file, "outbound-submission", deadline=15)
    facts = result["facts"]
    assert facts["outcome"] == "delivered" and result["status"] == "fail", result
    assert facts["verify_authres_dkim"] is False and facts["verify_dkim_signature"] is False
    assert f"dkim=fail (signature verification failed) header.d={lab.domain} per " \
        f"{lab.hosts['world'].name}" in result["reason"]  # fmt: skip
    assert "checked by mailprobe" in result["reason"]
    assert facts["verify_authres_spf"] is True


def test_spf_missing_srs_is_delivered_with_spf_fail(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "spf-missing-srs"):
        result = _one(lab, tmp_path, key_file, "inbound-forward", deadline=15)
    facts = result["facts"]
    assert facts["outcome"] == "delivered" and facts["verify_authres_spf"] is False, result
    assert "spf=fail" in result["reason"]
    assert facts["verify_dkim_signature"] is True


def test_stop_dovecot_is_receiver_unreachable_not_lost(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "stop-dovecot"):
        result = _one(lab, tmp_path, key_file, "inbound-forward")
    assert result["facts"]["outcome"] == "receiver_unreachable", result
    assert result["reason"].startswith("receiver unreachable: IMAP connect on")
    assert "refused" in result["reason"].lower()


def test_submission_sasl_down_is_send_failed_auth_535(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "submission-sasl-down"):
        result = _one(lab, tmp_path, key_file, "outbound-submission")
    facts = result["facts"]
    assert facts["outcome"] == "send_failed" and facts["failure"] == "auth", result
    assert facts["code"] == 535 and "535 5.7.8" in result["reason"]


def test_mx_rejecting_all_as_spam_is_bounced_with_the_550(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "mx-rejects-all-as-spam"):
        result = _one(lab, tmp_path, key_file, "inbound-forward", deadline=15)
    assert result["facts"]["outcome"] == "bounced", result
    assert "550 5.7.1" in result["reason"] and "spam" in result["reason"]


def test_world_filing_into_junk_is_delivered_junk(lab: Lab, tmp_path: Path, key_file: Path) -> None:
    with broken(lab, "world-files-into-junk"):
        result = _one(lab, tmp_path, key_file, "outbound-submission-465", deadline=15)
    assert result["facts"]["outcome"] == "delivered" and result["facts"]["folder"] == "junk"
    assert result["status"] == "warn" and "\\Junk" in result["reason"], result


def test_world_deferring_all_is_late_deferred_towards_the_world(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "world-defers-all"):
        result = _one(lab, tmp_path, key_file, "outbound-submission")
    world = f"{lab.hosts['world'].name}[{lab.hosts['world'].address}]:25"
    assert result["reason"].startswith("late:"), result
    assert f"deferred at submission -> {world}" in result["reason"]
    assert "451 4.3.2" in result["reason"]


def test_srs_listed_on_dnsbl_is_bounced_blocked_using_bl_test(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    with broken(lab, "srs-listed-on-dnsbl"):
        result = _one(lab, tmp_path, key_file, "inbound-forward", deadline=15)
    assert result["facts"]["outcome"] == "bounced", result
    assert "554 5.7.1" in result["reason"] and "blocked using bl.test" in result["reason"]


async def test_archived_canary_copied_back_counts_as_duplicate_once(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    archive = unique("Archive")
    imap = imap_login(lab)
    try:
        assert imap.create(archive)[0] == "OK"
    finally:
        imap.logout()
    path = canary_config(lab, tmp_path, key_file, deadline=15)
    data = yaml.safe_load(path.read_text())
    data["canary"]["mailboxes"][0]["archive_folder"] = archive
    config = parse_config(yaml.safe_dump(data))
    service = CanaryService(config)
    runtime = await service.acquire()
    try:
        entry = await runtime.send("outbound-submission")
        entry = await runtime.wait(entry.id, time.time() + 20)
        assert entry.state == "delivered", entry
        imap = imap_login(lab)
        try:
            for _ in range(50):  # moved there once its judging is done
                imap.select(archive)
                _, found = imap.uid("SEARCH", "HEADER", "X-Mailprobe-Canary", entry.id)
                if found[0]:
                    break
                await asyncio.sleep(0.1)
            [uid] = found[0].split()
            assert imap.uid("COPY", uid, "INBOX")[0] == "OK"  # a second copy arrives
        finally:
            imap.logout()
        key = ("outbound-submission", "duplicate")
        for _ in range(100):
            if runtime.stats.events[key]:
                break
            await asyncio.sleep(0.1)
        assert runtime.stats.events[key] == 1
        assert runtime.stats.outcomes[("outbound-submission", "delivered")] == 1
    finally:
        await service.release()
    imap = imap_login(lab)
    try:  # both copies are in the archive folder, none left in INBOX
        imap.select(archive, readonly=True)
        _, found = imap.uid("SEARCH", "HEADER", "X-Mailprobe-Canary", entry.id)
        assert len(found[0].split()) == 2
        imap.select("INBOX", readonly=True)
        _, found = imap.uid("SEARCH", "HEADER", "X-Mailprobe-Canary", entry.id)
        assert found[0].split() == []
    finally:
        imap.logout()


async def test_watcher_reconnects_when_dovecot_comes_back(
    lab: Lab, tmp_path: Path, key_file: Path
) -> None:
    config = parse_config(canary_config(lab, tmp_path, key_file, deadline=15).read_text())
    service = CanaryService(config)
    runtime = None
    try:
        with broken(lab, "stop-dovecot"):
            runtime = await service.acquire()
            watcher = runtime.watchers["world"]
            for _ in range(100):
                if watcher.reachable is False:
                    break
                await asyncio.sleep(0.1)
            assert watcher.reachable is False and "IMAP connect" in watcher.error
        for _ in range(150):  # backoff 1, 2, 4 s ...
            if watcher.reachable:
                break
            await asyncio.sleep(0.1)
        assert watcher.reachable is True and watcher.error == ""
        entry = await runtime.send("outbound-submission")
        entry = await runtime.wait(entry.id, time.time() + 20)
        assert entry.state == "delivered", entry
    finally:
        if runtime is not None:
            await service.release()
