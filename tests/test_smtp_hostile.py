"""The SMTP prober against hostile servers: small real socket servers on loopback, each
misbehaving one way (tests/servers.py, ``HostileSmtpServer``).

Each must give ``fail`` with a reason naming the phase, within the check's timeout, with
bounded memory; `mailprobe serve` probing all of them at once keeps answering /metrics.
"""

from __future__ import annotations

import ssl
import time
import tracemalloc
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporters.result import Check, Kind, Phase, Status
from exporters.smtp.probe import ProbeSettings, probe_host
from monitor.runner import run_check
from tests.dns_loopback import LoopbackDns, Zone
from tests.servers import LOOPBACK, HostileSmtpServer, ServeProcess, TlsFiles, self_signed

PHASE_TIMEOUT = 1.0
CHECK_TIMEOUT = 3.0

EXPECTED = {
    # behaviour: (phase, words in the reason)
    "never-answers": ("banner", "no complete answer"),
    "banner-then-silence": ("ehlo", "no complete answer"),
    "421-at-banner": ("banner", "refuses sessions: '421 4.3.2"),
    "megabyte-reply": ("ehlo", "EHLO reply longer than 64 KiB"),
    "no-crlf-forever": ("banner", "banner line longer than 64 KiB without a line end"),
    "stalled-tls-handshake": ("starttls", "no complete answer"),
    "garbage-after-starttls": ("starttls", "sent data after its 220 reply to STARTTLS"),
    "reset-after-220": ("ehlo", "reset the connection"),
    "starttls-refused-454": ("starttls", "offered STARTTLS but refused it: '454 4.7.0"),
    "tls-1.0-only": ("starttls", "no common TLS version: the server offers only TLS 1.0"),
    "self-signed": ("starttls", "PKIX: the chain of localhost"),
    "byte-a-second": ("banner", "no complete answer"),
    "non-smtp-banner": ("banner", "banner is not an SMTP reply: 'SSH-2.0-OpenSSH_9.2p1"),
}


def test_every_listed_hostile_server_has_an_expectation() -> None:
    assert set(EXPECTED) == set(HostileSmtpServer.HOSTILE)


def server_context(behaviour: str, tmp: Path) -> ssl.SSLContext | None:
    if behaviour == "tls-1.0-only":
        context = TlsFiles.create(tmp / "old", "localhost").server_context()
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        return context
    if behaviour == "self-signed":
        cert, key = self_signed(tmp / "self")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context
    return None


def settings(port: int, ca_file: Path) -> ProbeSettings:
    return ProbeSettings(
        port=port,
        family="ipv4",
        server_name="localhost",
        phase_timeout=PHASE_TIMEOUT,
        dane="off",
        ca_file=ca_file,
    )


@pytest.fixture
def trusted_ca(tmp_path: Path) -> Path:
    return TlsFiles.create(tmp_path / "trusted", "localhost").ca_file


@pytest.mark.parametrize("behaviour", HostileSmtpServer.HOSTILE)
async def test_hostile_server_fails_in_its_phase_within_the_timeout(
    behaviour: str, tmp_path: Path, trusted_ca: Path
) -> None:
    phase, words = EXPECTED[behaviour]
    with HostileSmtpServer(behaviour, server_context(behaviour, tmp_path)) as server:
        check = Check(
            Kind.SMTP,
            "session_ipv4",
            behaviour,
            partial(probe_host, LOOPBACK, settings(server.port, trusted_ca), None),
            interval_seconds=60,
            timeout_seconds=CHECK_TIMEOUT,
        )
        tracemalloc.start()
        started = time.monotonic()
        try:
            result = await run_check(check)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        took = time.monotonic() - started
    assert result.status is Status.FAIL, (behaviour, result.reason)
    assert result.facts.get("failed_phase") == phase, (behaviour, result.reason)
    assert result.reason.startswith(f"{phase}: "), result.reason
    assert words in result.reason, result.reason
    # The phase timeout fired, not the check's deadline, and nothing ran on past it.
    assert "timeout_phase" not in result.facts
    assert took < CHECK_TIMEOUT
    # Replies are capped at 64 KiB: the floods offer a megabyte or more and the probe
    # holds a fraction of that (about 0.3 MB traced, most of it the first TLS and
    # asyncio set-up of the process); every other case stays within a few megabytes.
    bound = 512 * 1024 if behaviour in ("megabyte-reply", "no-crlf-forever") else 4 << 20
    assert peak < bound, f"{behaviour}: {peak} bytes traced"


async def test_timeout_with_an_unreachable_resolver_says_dns_is_the_likely_cause(
    trusted_ca: Path,
) -> None:
    silent_dns = LoopbackDns(handler=lambda query, transport: None)
    async with silent_dns.running():
        resolver = silent_dns.resolver(timeout=0.5)
        with HostileSmtpServer("never-answers") as server:
            outcome = await probe_host(
                LOOPBACK, settings(server.port, trusted_ca), resolver, Phase()
            )
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith("banner: no complete answer"), outcome.reason
    assert "DNS is the likely cause" in outcome.reason
    assert f"127.0.0.1:{silent_dns.port}" in outcome.reason


async def test_timeout_with_a_working_resolver_does_not_blame_dns(trusted_ca: Path) -> None:
    dns_server = LoopbackDns(handler=Zone(records={}, secure=True))
    async with dns_server.running():
        with HostileSmtpServer("never-answers") as server:
            outcome = await probe_host(
                LOOPBACK, settings(server.port, trusted_ca), dns_server.resolver(), Phase()
            )
    assert outcome.status is Status.FAIL
    assert "DNS" not in outcome.reason, outcome.reason


@pytest.fixture
def hostile_fleet(tmp_path: Path) -> Iterator[dict[str, HostileSmtpServer]]:
    servers = {
        b: HostileSmtpServer(b, server_context(b, tmp_path)) for b in HostileSmtpServer.HOSTILE
    }
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def test_serve_keeps_serving_while_probing_every_hostile_server(
    hostile_fleet: dict[str, HostileSmtpServer], tmp_path: Path, trusted_ca: Path
) -> None:
    config = {
        "defaults": {"interval": 1, "timeout": CHECK_TIMEOUT},
        "smtp": {
            "ca_file": str(trusted_ca),
            "targets": [
                {
                    "name": name,
                    "host": LOOPBACK,
                    "port": server.port,
                    "server_name": "localhost",
                    "phase_timeout": PHASE_TIMEOUT,
                    "dane": "off",
                }
                for name, server in hostile_fleet.items()
            ],
        },
    }
    path = tmp_path / "mailprobe.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with ServeProcess(path) as serve:
        serve.wait_listening()
        deadline = time.monotonic() + 30
        failed: dict[str, str] = {}
        scrapes = 0
        while time.monotonic() < deadline and len(failed) < len(hostile_fleet):
            answer = httpx.get(f"http://{serve.listen}/metrics", timeout=2)
            assert answer.status_code == 200
            scrapes += 1
            for family in text_string_to_metric_families(answer.text):
                for sample in family.samples:
                    if sample.name == "mailprobe_smtp_failed_phase" and sample.value == 1:
                        failed[sample.labels["target"]] = sample.labels["phase"]
            time.sleep(0.3)
        assert failed == {b: phase for b, (phase, _) in EXPECTED.items()}, serve.log()
        assert httpx.get(f"http://{serve.listen}/-/healthy", timeout=2).status_code == 200
        assert serve.process is not None and serve.process.poll() is None
