"""exporters/imap.py against the lab's real Dovecot, and against misbehaving sockets."""

from __future__ import annotations

import asyncio
import email
import imaplib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from exporters.imap import ImapEndpoint, ImapError, ImapLoginRefused, ImapSession, parse_fetch
from monitor.lab import Lab
from tests.lab_fixture import imap_login, unique
from tests.servers import BannerServer, SilentServer, free_port


def endpoint(lab: Lab, **changes: object) -> ImapEndpoint:
    creds = lab.credentials("canary")
    host = lab.hosts["imap"]
    settings: dict[str, object] = {
        "host": host.address,
        "port": 993,
        "tls": "implicit",
        "username": creds.username,
        "password": creds.password(),
        "server_name": host.name,
        "ca_file": lab.ca_file,
        "timeout": 5.0,
    }
    settings.update(changes)
    return ImapEndpoint(**settings)  # type: ignore[arg-type]


def append(lab: Lab, header: str, folder: str = "INBOX", body: str = "hello\r\n") -> None:
    """Put a message into the canary mailbox with a plain imaplib client (not ours)."""
    imap = imap_login(lab)
    try:
        message = (
            f"From: someone@example.invalid\r\nTo: canary@{lab.world}\r\n"
            f"Subject: {header}\r\nX-Test-Token: {header}\r\n\r\n{body}"
        )
        status, _ = imap.append(
            folder, "", imaplib.Time2Internaldate(time.time()), message.encode()
        )
        assert status == "OK"
    finally:
        imap.logout()


@pytest.fixture
async def session(lab: Lab) -> AsyncIterator[ImapSession]:
    opened = await ImapSession.open(endpoint(lab))
    try:
        yield opened
    finally:
        await opened.close()


async def test_finds_junk_by_special_use_not_by_name(session: ImapSession) -> None:
    folders = await session.list_folders()
    assert any(f.name == "INBOX" for f in folders)
    junk = await session.special_use("\\Junk")
    assert junk is not None
    assert "\\junk" in next(f.flags for f in folders if f.name == junk)
    assert await session.special_use("\\NoSuchUse") is None


async def test_search_fetch_move_delete_touch_only_the_chosen_message(
    lab: Lab, session: ImapSession
) -> None:
    ours, other = unique("imap-ours"), unique("imap-other")
    append(lab, ours, body="x" * 5000 + "\r\n")
    append(lab, other)
    selected = await session.select("INBOX")
    assert selected.exists >= 2 and selected.uidvalidity and selected.uidnext
    [uid] = await session.search_header("X-Test-Token", ours)
    [other_uid] = await session.search_header("X-Test-Token", other)

    [fetched] = await session.fetch([uid])
    assert fetched.uid == uid and not fetched.truncated
    parsed = email.message_from_bytes(fetched.raw)
    assert parsed["Subject"] == ours
    assert fetched.internaldate is not None
    assert abs(fetched.internaldate - datetime.now(UTC)) < timedelta(minutes=2)

    junk = await session.special_use("\\Junk")
    assert junk is not None
    await session.move([uid], junk)
    assert await session.search_header("X-Test-Token", ours) == []
    await session.select(junk)
    [moved] = await session.search_header("X-Test-Token", ours)
    await session.delete([moved])
    assert await session.search_header("X-Test-Token", ours) == []
    await session.select("INBOX")
    assert await session.search_header("X-Test-Token", other) == [other_uid]
    await session.delete([other_uid])


async def test_fetch_is_capped_and_says_so(lab: Lab) -> None:
    token = unique("imap-big")
    append(lab, token, body="y" * 20_000 + "\r\n")
    small = await ImapSession.open(endpoint(lab, max_message_bytes=1000))
    try:
        await small.select("INBOX")
        uids = await small.search_header("X-Test-Token", token)
        [fetched] = await small.fetch(uids)
        assert len(fetched.raw) == 1000 and fetched.size > 20_000 and fetched.truncated
        await small.delete(uids)
    finally:
        await small.close()


async def test_starttls_on_143(lab: Lab) -> None:
    opened = await ImapSession.open(endpoint(lab, port=143, tls="starttls"))
    try:
        assert "AUTH=PLAIN" in opened.capabilities or "IDLE" in opened.capabilities
        assert (await opened.select("INBOX")).uidvalidity
    finally:
        await opened.close()


async def test_idle_wakes_on_new_mail_and_times_out_quietly(lab: Lab, session: ImapSession) -> None:
    assert "IDLE" in session.capabilities
    await session.select("INBOX")
    assert await session.wait_for_change(0.5) is False
    token = unique("imap-idle")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, append, lab, token)
    started = time.monotonic()
    assert await session.wait_for_change(10) is True
    assert time.monotonic() - started < 9
    # the session is usable after IDLE
    uids = await session.search_header("X-Test-Token", token)
    assert len(uids) == 1
    await session.delete(uids)


async def test_wrong_password_is_a_refused_login(lab: Lab) -> None:
    with pytest.raises(ImapLoginRefused) as caught:
        await ImapSession.open(endpoint(lab, password="not-the-password"))
    assert caught.value.phase == "login"
    assert "refused the login of canary@" in caught.value.reason


async def test_wrong_certificate_name_fails_in_tls(lab: Lab) -> None:
    with pytest.raises(ImapError) as caught:
        await ImapSession.open(endpoint(lab, server_name="other.example.test"))
    assert caught.value.phase == "tls"


async def test_refused_connection_names_the_host() -> None:
    port = free_port()
    with pytest.raises(ImapError) as caught:
        await ImapSession.open(ImapEndpoint("127.0.0.1", port, tls="none", timeout=2))
    assert caught.value.phase == "connect"
    assert f"127.0.0.1:{port}" in caught.value.reason


async def test_silent_server_times_out_in_connect() -> None:
    with SilentServer() as silent, pytest.raises(ImapError) as caught:
        await ImapSession.open(ImapEndpoint("127.0.0.1", silent.port, tls="none", timeout=0.5))
    assert caught.value.phase == "connect"
    assert "no IMAP greeting" in caught.value.reason


async def test_server_that_greets_and_then_stays_silent_fails_in_connect() -> None:
    banner = b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"
    with BannerServer(banner) as server, pytest.raises(ImapError) as caught:
        await ImapSession.open(
            ImapEndpoint(
                "127.0.0.1", server.port, tls="none", username="u", password="p", timeout=0.5
            )
        )
    assert caught.value.phase == "connect"
    assert "did not answer CAPABILITY" in caught.value.reason


def test_parse_fetch_reads_items_in_any_order() -> None:
    lines: list[bytes | bytearray] = [
        b'7 FETCH (RFC822.SIZE 11 INTERNALDATE "06-Dec-2026 14:00:01 +0100" BODY[]<0> {5}',
        bytearray(b"Hello"),
        b" UID 42)",
        b"3 FETCH (FLAGS (\\Seen))",
    ]
    [message] = parse_fetch(lines)
    assert message.uid == 42 and message.raw == b"Hello" and message.size == 11
    assert message.truncated
    assert message.internaldate == datetime(2026, 12, 6, 13, 0, 1, tzinfo=UTC)


async def test_implicit_tls_to_a_plaintext_server_fails_in_tls() -> None:
    banner = b"* OK plain text here\r\n"
    with BannerServer(banner) as server, pytest.raises(ImapError) as caught:
        await ImapSession.open(ImapEndpoint("127.0.0.1", server.port, timeout=2))
    assert caught.value.phase in ("tls", "connect")
