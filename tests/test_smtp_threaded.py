"""The probe's session on a blocking socket in a worker thread (exporters/smtp/threaded.py)
against servers that misbehave only once TLS is up (tests/test_smtp_hostile.py has the
rest): real loopback servers, each failing one way, each reported in its phase within
the phase timeout; and a check cut by its deadline frees the connection at once."""

from __future__ import annotations

import asyncio
import ssl
import time
from functools import partial
from pathlib import Path

import pytest

from exporters.result import Check, Kind, Status
from exporters.smtp.probe import ProbeSettings, probe_host
from monitor.runner import run_check
from tests.servers import LOOPBACK, LoopbackServer, TlsFiles

PHASE_TIMEOUT = 1.0


class AfterTlsServer(LoopbackServer):
    """Plain SMTP up to STARTTLS, then ``behaviour`` once the handshake is done."""

    BEHAVIOURS = ("silent-at-ehlo", "flood-at-ehlo", "close-mid-reply", "refuse-ehlo", "ok")

    def __init__(self, behaviour: str, context: ssl.SSLContext) -> None:
        super().__init__()
        self.behaviour = behaviour
        self.context = context
        self.closed = 0
        """Sessions whose client went away (read returned end of file)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 localhost ESMTP\r\n")
        await writer.drain()
        await reader.readline()
        writer.write(b"250-localhost\r\n250 STARTTLS\r\n")
        await writer.drain()
        await reader.readline()
        writer.write(b"220 2.0.0 Ready to start TLS\r\n")
        await writer.drain()
        await writer.start_tls(self.context)
        await reader.readline()  # EHLO
        b = self.behaviour
        if b == "flood-at-ehlo":
            for _ in range(1024):
                writer.write(b"250-" + b"x" * 996 + b"\r\n")
                await writer.drain()
        elif b == "close-mid-reply":
            writer.write(b"250-localhost\r\n250-PIPE")
            await writer.drain()
            writer.transport.abort()
            return
        elif b == "refuse-ehlo":
            writer.write(b"554 5.7.1 not you\r\n")
            await writer.drain()
        elif b == "ok":
            writer.write(b"250-localhost\r\n250 SIZE 1000\r\n")
            await writer.drain()
            await reader.readline()  # QUIT
            writer.write(b"221 2.0.0 Bye\r\n")
            await writer.drain()
        try:
            await reader.read()
        finally:
            self.closed += 1


EXPECTED = {
    "silent-at-ehlo": "ehlo_tls: no complete answer from 127.0.0.1:",
    "flood-at-ehlo": "EHLO reply longer than 64 KiB",
    "close-mid-reply": "closed the connection in the middle of EHLO reply ('250-PIPE')",
    "refuse-ehlo": "refused EHLO: '554 5.7.1 not you'",
}


def settings(port: int, ca_file: Path) -> ProbeSettings:
    return ProbeSettings(
        port=port,
        family="ipv4",
        server_name="localhost",
        phase_timeout=PHASE_TIMEOUT,
        dane="off",
        ca_file=ca_file,
    )


def check(port: int, ca_file: Path, timeout: float) -> Check:
    return Check(
        Kind.SMTP,
        "session_ipv4",
        "after-tls",
        partial(probe_host, LOOPBACK, settings(port, ca_file), None),
        interval_seconds=60,
        timeout_seconds=timeout,
    )


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
async def test_failure_after_tls_is_named_in_its_phase(behaviour: str, tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path, "localhost")
    with AfterTlsServer(behaviour, tls.server_context()) as server:
        started = time.monotonic()
        result = await run_check(check(server.port, tls.ca_file, 5.0))
        took = time.monotonic() - started
    assert result.status is Status.FAIL, result.reason
    assert result.facts.get("failed_phase") == "ehlo_tls", result.reason
    assert result.reason.startswith("ehlo_tls: ") and EXPECTED[behaviour] in result.reason
    assert "timeout_phase" not in result.facts
    assert took < 5.0


async def test_a_good_session_reports_tls_and_the_second_ehlo(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path, "localhost")
    with AfterTlsServer("ok", tls.server_context()) as server:
        result = await run_check(check(server.port, tls.ca_file, 5.0))
        for _ in range(50):  # the server notices the close a moment later
            if server.closed:
                break
            await asyncio.sleep(0.05)
        assert server.closed == 1
    assert result.status is Status.OK, result.reason
    facts = result.facts
    assert facts["pkix"] == "valid" and facts["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert facts["size_limit_bytes"] == 1000 and facts["ext_starttls"] is True
    for phase in ("starttls", "ehlo_tls", "quit"):
        assert isinstance(facts[f"{phase}_seconds"], float)
    assert "221 2.0.0 Bye" in (result.detail or "")


async def test_the_check_deadline_ends_the_thread_wait(tmp_path: Path) -> None:
    """A check cut by its own deadline while the thread waits for the EHLO reply: the
    socket is shut down, so the server sees the client leave at once, not after the
    phase timeout (set long here)."""
    tls = TlsFiles.create(tmp_path, "localhost")
    with AfterTlsServer("silent-at-ehlo", tls.server_context()) as server:
        long_phase = ProbeSettings(
            port=server.port,
            family="ipv4",
            server_name="localhost",
            phase_timeout=30.0,
            dane="off",
            ca_file=tls.ca_file,
        )
        cut = Check(
            Kind.SMTP,
            "session_ipv4",
            "after-tls",
            partial(probe_host, LOOPBACK, long_phase, None),
            interval_seconds=60,
            timeout_seconds=1.0,
        )
        result = await run_check(cut)
        left_at = time.monotonic()
        while not server.closed and time.monotonic() - left_at < 5:
            await asyncio.sleep(0.05)
        assert server.closed == 1
        assert time.monotonic() - left_at < 5
    assert result.status is Status.FAIL
    assert result.facts.get("timeout_phase") == "ehlo_tls", result.facts
