"""DANE states, rollover, `mx_of` and address families, against real loopback servers:
an SMTP server with a trustme certificate (tests/servers.py) and a small DNS server
that answers with or without the AD bit (tests/dns_loopback.py).

The lab covers the states its faults produce (verified 3 1 1, mismatch, off, bogus);
these cover the record shapes it does not publish: DANE-TA, selector 0, matching types
0 and 2, unusable usages, an unsigned zone, and IPv6 on ::1.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exporters.dns.resolver import StubResolver
from exporters.result import Outcome, Phase, Status
from exporters.smtp.probe import ProbeSettings, probe_host, probe_mx_of
from exporters.smtp.session import Family
from exporters.tlsa import record_for
from tests.dns_loopback import LoopbackDns, Zone
from tests.servers import LOOPBACK, SmtpServer, TlsFiles

NAME = "mx.test"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass
class Rig:
    tls: TlsFiles
    server: SmtpServer
    zone: Zone
    resolver: StubResolver

    def settings(self, **extra: object) -> ProbeSettings:
        base: dict[str, object] = {
            "port": self.server.port,
            "family": "ipv4",
            "server_name": NAME,
            "phase_timeout": 2.0,
            "ca_file": self.tls.ca_file,
        }
        return ProbeSettings(**{**base, **extra})  # type: ignore[arg-type]

    def tlsa(self, *records: str) -> None:
        self.zone.records[(f"_{self.server.port}._tcp.{NAME}.", "TLSA")] = list(records)

    def leaf_der(self) -> bytes:
        pem = self.tls.leaf.cert_chain_pems[0].bytes()
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)

    def ca_der(self) -> bytes:
        cert = x509.load_pem_x509_certificate(self.tls.ca_file.read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)

    async def probe(self, **extra: object) -> Outcome:
        return await probe_host(LOOPBACK, self.settings(**extra), self.resolver, Phase())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    tls = TlsFiles.create(tmp_path / "pki", NAME)
    zone = Zone(secure=True)
    dns_server = LoopbackDns(handler=zone)
    async with dns_server.running():
        with SmtpServer(tls=tls, hostname=NAME, send_ca=True) as server:
            yield Rig(tls, server, zone, dns_server.resolver(timeout=1.0))


def text(usage: int, selector: int, mtype: int, der: bytes) -> str:
    record = record_for(der, usage, selector, mtype)
    return f"{usage} {selector} {mtype} {record.data.hex()}"


@pytest.mark.parametrize(
    ("usage", "selector", "mtype"),
    [(3, 1, 1), (3, 0, 1), (3, 1, 2), (3, 0, 0), (3, 1, 0), (2, 1, 1), (2, 0, 2)],
)
async def test_usable_records_verify(rig: Rig, usage: int, selector: int, mtype: int) -> None:
    der = rig.leaf_der() if usage == 3 else rig.ca_der()
    rig.tlsa(text(usage, selector, mtype, der))
    outcome = await rig.probe(dane="required")
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["dane"] == "verified"
    assert str(outcome.facts["dane_record"]).startswith(f"{usage} {selector} {mtype} ")


async def test_dane_ta_needs_the_name_on_the_leaf(rig: Rig) -> None:
    rig.tlsa(text(2, 1, 1, rig.ca_der()))
    # The same chain, but asked for as another name: DANE-TA checks names, DANE-EE not.
    rig.zone.records[(f"_{rig.server.port}._tcp.other.test.", "TLSA")] = [
        text(2, 1, 1, rig.ca_der())
    ]
    outcome = await rig.probe(server_name="other.test", pkix="report")
    assert outcome.facts["dane"] == "mismatch"
    assert "does not name other.test" in outcome.reason


async def test_only_pkix_usages_are_unusable_for_smtp(rig: Rig) -> None:
    rig.tlsa(text(1, 1, 1, rig.leaf_der()), text(0, 1, 1, rig.ca_der()))
    outcome = await rig.probe()
    assert outcome.status is Status.WARN
    assert outcome.facts["dane"] == "unusable"
    assert "RFC 7672 3.1.3" in outcome.reason
    assert (await rig.probe(dane="required")).status is Status.FAIL


async def test_records_in_an_unsigned_zone_do_not_apply(rig: Rig) -> None:
    rig.zone.secure = False
    rig.tlsa(text(3, 1, 1, rig.leaf_der()))
    outcome = await rig.probe()
    assert outcome.status is Status.OK
    assert outcome.facts["dane"] == "insecure"
    required = await rig.probe(dane="required")
    assert required.status is Status.FAIL
    assert "not DNSSEC-signed" in required.reason


async def test_mismatch_names_record_and_served_key(rig: Rig) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stale = hashlib.sha256(spki).hexdigest()
    rig.tlsa(f"3 1 1 {stale}")
    outcome = await rig.probe()
    served = record_for(rig.leaf_der()).data.hex()
    assert outcome.status is Status.FAIL
    assert outcome.facts["failed_phase"] == "starttls"
    assert f"TLSA 3 1 1 {stale[:8]}… does not match the served key (sha256 {served[:8]}…)" in (
        outcome.reason
    )


def write_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


async def test_rollover_warns_until_the_next_key_is_published(rig: Rig, tmp_path: Path) -> None:
    next_key = write_key(tmp_path / "next.key")
    current = text(3, 1, 1, rig.leaf_der())
    rig.tlsa(current)
    outcome = await rig.probe(next_key_file=next_key)
    assert outcome.status is Status.WARN
    assert outcome.facts["dane_next_matches"] is False
    assert outcome.facts["dane_rollover_scheme"] == "none"
    assert "rollover: no TLSA record" in outcome.reason and "publish 3 1 1 " in outcome.reason
    private = serialization.load_pem_private_key(next_key.read_bytes(), None)
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rig.tlsa(current, f"3 1 1 {hashlib.sha256(spki).hexdigest()}")
    ready = await rig.probe(next_key_file=next_key)
    assert ready.status is Status.OK, ready.reason
    assert ready.facts["dane_next_matches"] is True
    assert ready.facts["dane_rollover_scheme"] == "current+next"


async def test_rollover_with_next_certificate_and_ee_plus_ta(rig: Rig) -> None:
    rig.tlsa(text(3, 1, 1, rig.leaf_der()), text(2, 1, 1, rig.ca_der()))
    outcome = await rig.probe(next_cert_file=rig.tls.cert_file)
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["dane_rollover_scheme"] == "ee+ta"
    assert outcome.facts["dane_next_matches"] is True


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
async def test_mx_of_probes_each_family_on_its_own(tmp_path: Path, family: Family) -> None:
    if family == "ipv6" and not ipv6_loopback():
        pytest.skip("no IPv6 on loopback (::1) on this machine")
    tls = TlsFiles.create(tmp_path / "pki", NAME)
    zone = Zone(secure=True)
    dns_server = LoopbackDns(handler=zone)
    async with dns_server.running():
        with SmtpServer(tls=tls, hostname=NAME, hosts=(LOOPBACK, "::1")) as server:
            leaf = x509.load_pem_x509_certificate(tls.leaf.cert_chain_pems[0].bytes())
            der = leaf.public_bytes(serialization.Encoding.DER)
            zone.add("example.test", "MX", f"10 {NAME}.")
            zone.add(NAME, "A", LOOPBACK)
            zone.add(NAME, "AAAA", "::1")
            zone.add(f"_{server.port}._tcp.{NAME}", "TLSA", text(3, 1, 1, der))
            settings = ProbeSettings(
                port=server.port, family=family, phase_timeout=2.0, ca_file=tls.ca_file
            )
            outcome = await probe_mx_of(
                "example.test", settings, dns_server.resolver(timeout=1.0), Phase()
            )
            assert outcome.status is Status.OK, outcome.reason
            assert outcome.facts["family"] == family
            assert outcome.facts["dane"] == "verified"
            assert server.peers == ["::1" if family == "ipv6" else LOOPBACK]


async def test_mx_of_a_domain_without_the_family_fails_in_resolve(tmp_path: Path) -> None:
    zone = Zone(secure=True)
    zone.add("example.test", "MX", f"10 {NAME}.")
    zone.add(NAME, "A", LOOPBACK)
    dns_server = LoopbackDns(handler=zone)
    async with dns_server.running():
        settings = ProbeSettings(port=25, family="ipv6", phase_timeout=1.0)
        outcome = await probe_mx_of(
            "example.test", settings, dns_server.resolver(timeout=1.0), Phase()
        )
    assert outcome.status is Status.FAIL
    assert outcome.reason == f"resolve: {NAME} has no AAAA record"
    assert outcome.facts["failed_phase"] == "resolve"


async def test_auth_is_never_in_the_transcript(tmp_path: Path) -> None:
    from exporters.smtp.session import SmtpEndpoint, open_session, quit_session

    tls = TlsFiles.create(tmp_path / "pki", NAME)
    with SmtpServer(tls=tls, hostname=NAME) as server:
        endpoint = SmtpEndpoint(LOOPBACK, server.port, tls_name=NAME, phase_timeout=2.0)
        session = await open_session(endpoint)
        secret = "AGFsaWNlAHMzY3JldC1wYXNzd29yZA=="  # \0alice\0s3cret-password
        reply = await session.command(f"AUTH PLAIN {secret}", "auth", secret=True)
        await quit_session(session)
    transcript = session.transcript.render()
    assert reply.code == 502  # the test server knows no AUTH; what matters is the record
    assert "C: AUTH PLAIN <hidden>" in transcript
    assert secret not in transcript and "s3cret" not in transcript
    assert "C: QUIT" in transcript


async def test_banner_must_name_the_expected_host(rig: Rig) -> None:
    rig.tlsa(text(3, 1, 1, rig.leaf_der()))
    assert (await rig.probe(banner_host=NAME)).status is Status.OK
    wrong = await rig.probe(banner_host="mx1.example.org")
    assert wrong.status is Status.FAIL
    assert wrong.facts["failed_phase"] == "banner"
    assert wrong.reason.startswith(f"banner: 127.0.0.1:{rig.server.port} announces itself as ")
    assert f"as {NAME}, expected mx1.example.org" in wrong.reason


async def test_unsigned_address_records_turn_dane_off(tmp_path: Path) -> None:
    """RFC 7672 2.2.2: TLSA records count only for a host whose A/AAAA answer is secure."""
    import dns.flags
    import dns.message
    import dns.rdatatype

    tls = TlsFiles.create(tmp_path / "pki", NAME)
    zone = Zone(secure=True)

    def unsigned_addresses(query: dns.message.Message, via: str) -> object:
        reply = zone(query, via)
        if isinstance(reply, dns.message.Message) and query.question[0].rdtype in (
            dns.rdatatype.A,
            dns.rdatatype.AAAA,
        ):
            reply.flags &= ~dns.flags.AD
        return reply

    dns_server = LoopbackDns(handler=unsigned_addresses)  # type: ignore[arg-type]
    async with dns_server.running():
        with SmtpServer(tls=tls, hostname=NAME) as server:
            leaf = x509.load_pem_x509_certificate(tls.leaf.cert_chain_pems[0].bytes())
            der = leaf.public_bytes(serialization.Encoding.DER)
            zone.add(NAME, "A", LOOPBACK)
            zone.add(f"_{server.port}._tcp.{NAME}", "TLSA", text(3, 1, 1, der))
            resolver = dns_server.resolver(timeout=1.0)
            base = {"port": server.port, "family": "ipv4", "phase_timeout": 2.0}
            auto = await probe_host(
                NAME, ProbeSettings(**base, ca_file=tls.ca_file), resolver, Phase()
            )
            required = await probe_host(
                NAME, ProbeSettings(**base, ca_file=tls.ca_file, dane="required"), resolver, Phase()
            )
    assert auto.status is Status.OK, auto.reason
    assert auto.facts["dane"] == "insecure"
    assert required.status is Status.FAIL
    assert f"the address records of {NAME} are not signed" in required.reason
