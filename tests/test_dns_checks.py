"""Each DNS check against small real DNS servers on loopback serving chosen records."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exporters.dns.dkim_check import DkimSettings, check_dkim
from exporters.dns.dmarc import DmarcSettings, check_dmarc
from exporters.dns.dnsbl import DnsblSettings, DnsblZone, check_dnsbl
from exporters.dns.dnssec import DnssecSettings, check_dnssec
from exporters.dns.fcrdns import FcrdnsSettings, check_fcrdns
from exporters.dns.mx import MxSettings, check_mx
from exporters.dns.policy import PolicyRecordSettings, check_policy_record
from exporters.dns.resolver import StubResolver
from exporters.dns.spf_check import SpfSender, SpfSettings, check_spf
from exporters.dns.srv import SrvSettings, check_srv
from exporters.dns.tlsa_check import TlsaSettings, check_tlsa
from exporters.result import Outcome, Phase, Status
from exporters.tlsa import record_for
from tests.dns_loopback import Handler, LoopbackDns, Reply, Zone, validating

D = "example.test"
CheckFn = Callable[[StubResolver, Any, Phase], Awaitable[Outcome]]


async def run(check: CheckFn, settings: object, handler: Handler) -> Outcome:
    async with LoopbackDns(handler).running() as server:
        return await check(server.resolver(timeout=0.3), settings, Phase())


def quoted(record: str) -> str:
    """TXT presentation form, split into 255-byte character-strings as zone files do."""
    return " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))


def fleet() -> Zone:
    """A healthy example.test, shaped like the reference fleet."""
    zone = Zone(secure=True)
    zone.add(D, "MX", "10 mx.example.test.", "20 srs.example.test.")
    for host, ip in [("mx", "127.77.0.2"), ("srs", "127.77.0.4"), ("submit", "127.77.0.5")]:
        zone.add(f"{host}.{D}", "A", ip)
        zone.add(f"{ip.split('.')[-1]}.0.77.127.in-addr.arpa", "PTR", f"{host}.{D}.")
        zone.add(f"{host}.{D}", "TXT", '"v=spf1 a -all"')
    zone.add(D, "TXT", '"v=spf1 a:mx.example.test a:srs.example.test ip4:127.77.0.5 -all"')
    zone.add(D, "TXT", '"google-site-verification=not-spf"')
    zone.add(f"_dmarc.{D}", "TXT", '"v=DMARC1; p=reject; rua=mailto:dmarc@example.test"')
    zone.add(f"_submission._tcp.{D}", "SRV", "0 1 587 submit.example.test.")
    zone.add(f"_submissions._tcp.{D}", "SRV", "0 1 465 submit.example.test.")
    zone.add(f"_mta-sts.{D}", "TXT", '"v=STSv1; id=20260101T000000"')
    zone.add(f"_smtp._tls.{D}", "TXT", '"v=TLSRPTv1; rua=mailto:tlsrpt@example.test"')
    return zone


SRS = SpfSender("srs.example.test", "127.77.0.4")
SENDERS = (
    SpfSender("mx.example.test", "127.77.0.2"),
    SRS,
    SpfSender("submit.example.test", "127.77.0.5"),
)


# ---------------------------------------------------------------- MX


async def test_mx_healthy() -> None:
    outcome = await run(check_mx, MxSettings(D, ("mx.example.test", "srs.example.test")), fleet())
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["mx_records"] == 2 and outcome.facts["mx_targets_resolved"] == 2
    assert outcome.facts["dnssec_state"] == "secure"


async def test_mx_missing_and_expected_host_absent() -> None:
    zone = Zone().add(D, "A", "127.77.0.2")
    outcome = await run(check_mx, MxSettings(D), zone)
    assert outcome.status is Status.FAIL and outcome.reason == "no MX record for example.test"
    zone = fleet()
    zone.records[(f"{D}.", "MX")] = ["10 mx.example.test."]
    outcome = await run(check_mx, MxSettings(D, ("mx.example.test", "srs.example.test")), zone)
    assert outcome.reason == (
        "MX of example.test does not list srs.example.test (has: mx.example.test)"
    )


async def test_mx_target_cname_address_and_unresolvable() -> None:
    zone = Zone().add(D, "MX", "10 alias.example.test.", "20 127.0.0.9.", "30 gone.example.test.")
    zone.add("alias.example.test", "CNAME", "mx.example.test.")
    zone.add("mx.example.test", "A", "127.77.0.2")
    outcome = await run(check_mx, MxSettings(D), zone)
    assert outcome.status is Status.FAIL
    assert "MX target alias.example.test of example.test is a CNAME (to mx.example.test)" in (
        outcome.reason
    )
    assert "MX of example.test points to an address (127.0.0.9)" in outcome.reason
    assert "MX target gone.example.test of example.test has no A or AAAA record" in outcome.reason


async def test_null_mx() -> None:
    zone = Zone().add(D, "MX", "0 .")
    assert (await run(check_mx, MxSettings(D, null_mx=True), zone)).status is Status.OK
    outcome = await run(check_mx, MxSettings(D), zone)
    assert outcome.reason == "MX of example.test is a Null MX: the domain accepts no mail"


# ---------------------------------------------------------------- SPF


async def test_spf_healthy() -> None:
    outcome = await run(check_spf, SpfSettings(D, SENDERS), fleet())
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["spf_lookups"] == 2
    assert outcome.facts["spf_senders_ok"] == 3


async def test_spf_not_covering_srs_names_record_and_sender() -> None:
    zone = fleet()
    zone.records[(f"{D}.", "TXT")] = ['"v=spf1 a:mx.example.test ip4:127.77.0.5 -all"']
    outcome = await run(check_spf, SpfSettings(D, SENDERS), zone)
    assert outcome.status is Status.FAIL
    assert outcome.reason == (
        "SPF of example.test does not authorise 127.77.0.4 (srs.example.test): "
        "result fail, expected pass"
    )


def chain_of_includes(count: int) -> Zone:
    zone = fleet()
    includes = " ".join(f"include:i{n}.example.test" for n in range(count))
    zone.records[(f"{D}.", "TXT")] = [quoted(f"v=spf1 {includes} a:srs.example.test -all")]
    for n in range(count):
        zone.add(f"i{n}.example.test", "TXT", f'"v=spf1 ip4:192.0.2.{n} ?all"')
    return zone


async def test_spf_over_ten_lookups_fails_with_count() -> None:
    outcome = await run(check_spf, SpfSettings(D, (SRS,)), chain_of_includes(11))
    assert outcome.status is Status.FAIL
    assert outcome.facts["spf_lookups"] == 12
    assert outcome.reason.startswith(
        "SPF of example.test needs 12 DNS lookups, over the limit of 10"
    )
    assert "result permerror" in outcome.reason  # pyspf agrees for the SRS sender


async def test_spf_eight_lookups_warns() -> None:
    outcome = await run(check_spf, SpfSettings(D, (SRS,)), chain_of_includes(7))
    assert outcome.status is Status.WARN
    assert outcome.reason.startswith("SPF of example.test needs 8 of at most 10 DNS lookups")


async def test_spf_include_loop() -> None:
    zone = fleet()
    zone.records[(f"{D}.", "TXT")] = ['"v=spf1 include:a.example.test -all"']
    zone.add("a.example.test", "TXT", '"v=spf1 include:b.example.test -all"')
    zone.add("b.example.test", "TXT", '"v=spf1 include:a.example.test -all"')
    started = time.monotonic()
    outcome = await run(check_spf, SpfSettings(D, (SRS,)), zone)
    assert time.monotonic() - started < 5
    assert outcome.status is Status.FAIL
    assert "SPF loop example.test -> a.example.test -> b.example.test -> a.example.test" in (
        outcome.reason
    )


@pytest.mark.parametrize(
    ("term", "section"),
    [("include:", "5.2"), ("include", "5.2"), ("exists:", "5.7"), ("redirect=", "6.1")],
)
async def test_spf_term_without_a_domain_is_a_syntax_error_not_a_loop(
    term: str, section: str
) -> None:
    zone = fleet()
    zone.records[(f"{D}.", "TXT")] = [f'"v=spf1 a:srs.example.test {term} -all"']
    outcome = await run(check_spf, SpfSettings(D, (SRS,)), zone)
    assert outcome.status is Status.FAIL
    assert (
        f"SPF of example.test has a syntax error in '{term}':" in outcome.reason
        and f"(RFC 7208 {section}; a permerror for every sender)" in outcome.reason
    ), outcome.reason
    assert "loop" not in outcome.reason


async def test_spf_two_records_and_plus_all_and_voids() -> None:
    zone = fleet()
    zone.add(D, "TXT", '"v=spf1 -all"')
    outcome = await run(check_spf, SpfSettings(D), zone)
    assert outcome.reason.startswith("2 SPF records at example.test")
    zone = fleet()
    zone.records[(f"{D}.", "TXT")] = ['"v=spf1 a:srs.example.test +all"']
    outcome = await run(check_spf, SpfSettings(D, (SRS,)), zone)
    assert outcome.status is Status.WARN and "ends in +all" in outcome.reason
    zone.records[(f"{D}.", "TXT")] = [
        '"v=spf1 a:n1.example.test a:n2.example.test a:n3.example.test a:srs.example.test -all"'
    ]
    outcome = await run(check_spf, SpfSettings(D, (SRS,)), zone)
    assert outcome.status is Status.FAIL and outcome.facts["spf_void_lookups"] == 3
    assert "makes 3 void lookups, over the limit of 2" in outcome.reason


async def test_spf_missing() -> None:
    outcome = await run(check_spf, SpfSettings(D), Zone().add(D, "A", "127.0.0.1"))
    assert outcome.reason == "no SPF record at example.test (no TXT starting 'v=spf1')"


# ---------------------------------------------------------------- DKIM


def rsa_key(bits: int) -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, base64.b64encode(spki).decode()


def write_pem(key: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def dkim_zone(record: str) -> Zone:
    return fleet().add(f"lab._domainkey.{D}", "TXT", quoted(record))


async def test_dkim_key_matches_signer(tmp_path: Path) -> None:
    key, p = rsa_key(2048)
    settings = DkimSettings(D, "lab", write_pem(key, tmp_path / "lab.private"))
    outcome = await run(check_dkim, settings, dkim_zone(f"v=DKIM1; k=rsa; p={p}"))
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["dkim_key_bits"] == 2048
    assert outcome.facts["dkim_key_matches_signer"] is True


async def test_dkim_key_differs_from_signer(tmp_path: Path) -> None:
    _, published = rsa_key(2048)
    signer, _ = rsa_key(2048)
    settings = DkimSettings(D, "lab", write_pem(signer, tmp_path / "lab.private"))
    outcome = await run(check_dkim, settings, dkim_zone(f"v=DKIM1; k=rsa; p={published}"))
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith("DKIM key lab._domainkey.example.test (sha256:")
    assert f"differs from the signer's key {tmp_path / 'lab.private'}" in outcome.reason


async def test_dkim_follows_the_signers_opendkim_conf(tmp_path: Path) -> None:
    """A signer switched to another key file is caught through its config."""
    published_key, published = rsa_key(2048)
    other_key, _ = rsa_key(2048)
    write_pem(published_key, tmp_path / "lab.private")
    write_pem(other_key, tmp_path / "rogue.private")
    conf = tmp_path / "opendkim.conf"
    settings = DkimSettings(D, "lab", signer_config_file=conf)
    zone = dkim_zone(f"v=DKIM1; k=rsa; p={published}")
    conf.write_text(f"Domain {D}\nSelector lab\nKeyFile {tmp_path / 'lab.private'}\n")
    assert (await run(check_dkim, settings, zone)).status is Status.OK
    conf.write_text(f"Domain {D}\nSelector lab\nKeyFile {tmp_path / 'rogue.private'}\n")
    outcome = await run(check_dkim, settings, zone)
    assert outcome.status is Status.FAIL
    assert f"differs from the signer's key {tmp_path / 'rogue.private'} (named in {conf})" in (
        outcome.reason
    )
    table = tmp_path / "KeyTable"
    table.write_text(f"lab._domainkey.{D} {D}:lab:{tmp_path / 'lab.private'}\n")
    conf.write_text(f"KeyTable refile:{table}\n")
    assert (await run(check_dkim, settings, zone)).status is Status.OK


async def test_dkim_missing_revoked_testing_weak() -> None:
    outcome = await run(check_dkim, DkimSettings(D, "lab"), fleet())
    assert outcome.reason == "no DKIM key at lab._domainkey.example.test (the name does not exist)"
    outcome = await run(check_dkim, DkimSettings(D, "lab"), dkim_zone("v=DKIM1; p="))
    assert outcome.reason == "DKIM key lab._domainkey.example.test is revoked (empty p=)"
    _, p = rsa_key(1024)
    outcome = await run(check_dkim, DkimSettings(D, "lab"), dkim_zone(f"v=DKIM1; t=y; p={p}"))
    assert outcome.status is Status.WARN and outcome.facts["dkim_key_bits"] == 1024
    assert "testing mode (t=y)" in outcome.reason and "RSA 1024 bits" in outcome.reason
    outcome = await run(check_dkim, DkimSettings(D, "lab"), dkim_zone("v=DKIM1; p=!!notbase64"))
    assert outcome.reason == "DKIM key lab._domainkey.example.test: p= is not valid base64"


# ---------------------------------------------------------------- DMARC


def dmarc_zone(record: str) -> Zone:
    zone = fleet()
    zone.records[(f"_dmarc.{D}.", "TXT")] = [f'"{record}"']
    return zone


async def test_dmarc_reject_ok_and_none_warns_with_hint() -> None:
    outcome = await run(check_dmarc, DmarcSettings(D), fleet())
    assert outcome.status is Status.OK and outcome.facts["dmarc_policy"] == "reject"
    zone = dmarc_zone("v=DMARC1;p=none;pct=100;rua=mailto:postmaster@example.test")
    outcome = await run(check_dmarc, DmarcSettings(D), zone)
    assert outcome.status is Status.WARN and outcome.facts["dmarc_policy"] == "none"
    assert outcome.reason == (
        "DMARC policy of _dmarc.example.test is p=none: monitoring only, "
        "receivers quarantine or reject nothing; `mailprobe dmarc report` says whether "
        "p=quarantine or p=reject is safe"
    )


async def test_dmarc_missing_and_duplicate_and_syntax() -> None:
    zone = fleet()
    del zone.records[(f"_dmarc.{D}.", "TXT")]
    outcome = await run(check_dmarc, DmarcSettings(D), zone)
    assert outcome.reason == "no DMARC record at _dmarc.example.test (the name does not exist)"
    zone = fleet().add(f"_dmarc.{D}", "TXT", '"v=DMARC1; p=none"')
    outcome = await run(check_dmarc, DmarcSettings(D), zone)
    assert outcome.reason.startswith("2 DMARC records at _dmarc.example.test")
    zone = dmarc_zone("v=DMARC1; p=block; adkim=x; rua=mailto:dmarc@example.test")
    outcome = await run(check_dmarc, DmarcSettings(D), zone)
    assert "p=block is not none, quarantine or reject" in outcome.reason
    assert "adkim=x must be r or s" in outcome.reason


async def test_dmarc_external_reporting_authorization() -> None:
    zone = dmarc_zone("v=DMARC1; p=quarantine; rua=mailto:agg@reports.other.test")
    outcome = await run(check_dmarc, DmarcSettings(D), zone)
    assert outcome.status is Status.FAIL
    assert outcome.reason == (
        "rua of _dmarc.example.test sends reports to reports.other.test, which does not "
        "authorize them (no 'v=DMARC1' TXT at example.test._report._dmarc.reports.other.test): "
        "receivers will not send rua reports there"
    )
    zone.add("example.test._report._dmarc.reports.other.test", "TXT", '"v=DMARC1"')
    outcome = await run(check_dmarc, DmarcSettings(D), zone)
    assert outcome.status is Status.OK, outcome.reason


# ---------------------------------------------------------------- TLSA


@pytest.fixture(scope="module")
def cert_der() -> bytes:
    ca = trustme.CA()
    cert = ca.issue_cert("mx.example.test")
    from cryptography import x509

    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


async def test_tlsa_secure_and_well_formed(cert_der: bytes) -> None:
    record = record_for(cert_der)
    zone = fleet().add("_25._tcp.mx.example.test", "TLSA", str(record))
    outcome = await run(check_tlsa, TlsaSettings("mx.example.test", 25), zone)
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts == {"dnssec_state": "secure", "tlsa_records": 1, "tlsa_usable_records": 1}


async def test_tlsa_insecure_missing_malformed(cert_der: bytes) -> None:
    record = record_for(cert_der)
    zone = fleet().add("_25._tcp.mx.example.test", "TLSA", str(record))
    zone.secure = False
    outcome = await run(check_tlsa, TlsaSettings("mx.example.test"), zone)
    assert outcome.reason.startswith(
        "TLSA _25._tcp.mx.example.test is not DNSSEC-secure (insecure)"
    )
    outcome = await run(check_tlsa, TlsaSettings("srs.example.test"), fleet())
    assert outcome.reason == (
        "no TLSA record at _25._tcp.srs.example.test (the name does not exist): DANE is off"
    )
    zone = fleet().add("_25._tcp.mx.example.test", "TLSA", "3 1 0 abcdef")
    outcome = await run(check_tlsa, TlsaSettings("mx.example.test"), zone)
    assert "'3 1 0 abcdef…' is unusable: matching type 0 data is not a DER public key" in (
        outcome.reason
    )


# ---------------------------------------------------------------- FCrDNS


async def test_fcrdns_confirmed_missing_and_wrong() -> None:
    settings = FcrdnsSettings("srs.example.test", ("127.77.0.4",))
    outcome = await run(check_fcrdns, settings, fleet())
    assert outcome.status is Status.OK and outcome.facts["fcrdns_confirmed_addresses"] == 1
    zone = fleet()
    del zone.records[("4.0.77.127.in-addr.arpa.", "PTR")]
    outcome = await run(check_fcrdns, settings, zone)
    assert outcome.reason == (
        "no PTR record for 127.77.0.4 (srs.example.test) at 4.0.77.127.in-addr.arpa"
    )
    zone.add("4.0.77.127.in-addr.arpa", "PTR", "mx.example.test.")
    outcome = await run(check_fcrdns, settings, zone)
    assert outcome.reason == (
        "PTR 4.0.77.127.in-addr.arpa -> mx.example.test, which does not resolve back to "
        "127.77.0.4 (srs.example.test): not forward-confirmed"
    )
    zone.add("mx.example.test", "A", "127.77.0.4")  # confirmed, but under another name
    outcome = await run(check_fcrdns, settings, zone)
    assert outcome.status is Status.WARN
    assert outcome.reason == (
        "PTR 4.0.77.127.in-addr.arpa -> mx.example.test, not srs.example.test "
        "as the host calls itself"
    )


# ---------------------------------------------------------------- SRV, MTA-STS, TLS-RPT


async def test_srv_records() -> None:
    outcome = await run(check_srv, SrvSettings(D, "submission", 587), fleet())
    assert outcome.status is Status.OK and outcome.facts["srv_port"] == 587
    outcome = await run(check_srv, SrvSettings(D, "submissions", 587), fleet())
    assert outcome.reason == (
        "SRV _submissions._tcp.example.test -> submit.example.test port 465, expected 587"
    )
    outcome = await run(check_srv, SrvSettings(D, "imaps"), fleet())
    assert outcome.reason.startswith("no SRV record at _imaps._tcp.example.test")
    zone = fleet().add(f"_imap._tcp.{D}", "SRV", "0 1 143 imap.example.test.")
    outcome = await run(check_srv, SrvSettings(D, "imap"), zone)
    assert outcome.reason == (
        "SRV _imap._tcp.example.test -> imap.example.test, which has no A or AAAA record"
    )


async def test_mta_sts_and_tls_rpt_syntax() -> None:
    for kind in ("mta-sts", "tls-rpt"):
        outcome = await run(check_policy_record, PolicyRecordSettings(D, kind), fleet())
        assert outcome.status is Status.OK, outcome.reason
    zone = fleet()
    zone.records[(f"_mta-sts.{D}.", "TXT")] = ['"v=STSv1; id=not-valid!"']
    zone.records[(f"_smtp._tls.{D}.", "TXT")] = ['"v=TLSRPTv1; rua=ftp://x"']
    outcome = await run(check_policy_record, PolicyRecordSettings(D, "mta-sts"), zone)
    assert outcome.reason == (
        "mta-sts record _mta-sts.example.test: id=not-valid! must be 1-32 letters or digits"
    )
    outcome = await run(check_policy_record, PolicyRecordSettings(D, "tls-rpt"), zone)
    assert "rua 'ftp://x' is not a mailto: or https: URI" in outcome.reason


# ---------------------------------------------------------------- DNSBL


def bl_zone(*codes: str, reason: str | None = None) -> Zone:
    zone = Zone().add("bl.test", "SOA", "ns.bl.test. admin.bl.test. 1 60 60 600 60")
    if codes:
        zone.add("4.0.77.127.bl.test", "A", *codes)
    if reason:
        zone.add("4.0.77.127.bl.test", "TXT", f'"{reason}"')
    return zone


BL = DnsblSettings("srs.example.test", ("127.77.0.4",), (DnsblZone("bl.test"),))


async def test_dnsbl_not_listed_listed_and_refused() -> None:
    outcome = await run(check_dnsbl, BL, bl_zone())
    assert outcome.status is Status.OK and outcome.facts["dnsbl_listings"] == 0
    outcome = await run(check_dnsbl, BL, bl_zone("127.0.0.2", reason="spam trap hit"))
    assert outcome.status is Status.FAIL and outcome.facts["dnsbl_listings"] == 1
    assert outcome.reason == (
        "127.77.0.4 (srs.example.test) is listed on bl.test (127.0.0.2): spam trap hit"
    )
    for code in ("127.255.255.254", "127.255.255.255", "127.0.0.1"):
        outcome = await run(check_dnsbl, BL, bl_zone(code))
        assert outcome.status is Status.WARN, code
        assert outcome.facts["dnsbl_listings"] == 0
        assert f"bl.test answered {code} for 127.77.0.4 (srs.example.test)" in outcome.reason
        assert "listing unknown" in outcome.reason


# ---------------------------------------------------------------- DNSSEC


def signed(expiration: str) -> Zone:
    zone = fleet()
    zone.add(D, "SOA", "ns.example.test. admin.example.test. 1 60 60 600 60")
    zone.add(D, "DNSKEY", "257 3 13 dGhpcyBpcyBub3QgYSByZWFsIGtleQ==")
    zone.rrsig_expiration = expiration
    return zone


async def test_dnssec_secure_with_expiry_fact() -> None:
    outcome = await run(check_dnssec, DnssecSettings(D), signed("20991231000000"))
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["rrsig_expiry_timestamp"] == 4102358400
    assert outcome.facts["dnssec_state"] == "secure"


async def test_dnssec_expiry_soon_warns() -> None:
    settings = DnssecSettings(D, warn_days=7, clock=lambda: 4102358400 - 3 * 86400)
    outcome = await run(check_dnssec, settings, signed("20991231000000"))
    assert outcome.status is Status.WARN
    assert outcome.reason.startswith(
        "zone example.test: RRSIG expires 2099-12-31T00:00:00Z, in 3.0 days"
    )


async def test_dnssec_expired_is_bogus_not_missing() -> None:
    outcome = await run(check_dnssec, DnssecSettings(D), validating(signed("20200102000000")))
    assert outcome.status is Status.FAIL
    assert outcome.facts["dnssec_state"] == "bogus"
    assert outcome.facts["rrsig_expiry_timestamp"] == 1577923200
    assert outcome.reason.startswith("zone example.test is DNSSEC-bogus: SOA example.test:")
    assert "its signatures expired 2020-01-02T00:00:00Z" in outcome.reason
    assert outcome.reason.count("DNSSEC-bogus") == 1  # one message for the zone
    mx = await run(check_mx, MxSettings(D), validating(signed("20200102000000")))
    assert "MX example.test: DNSSEC validation failed (bogus)" in mx.reason
    assert "no MX" not in mx.reason


async def test_dnssec_insecure_zone_fails() -> None:
    zone = signed("20991231000000")
    zone.secure = False
    outcome = await run(check_dnssec, DnssecSettings(D), zone)
    assert outcome.reason.startswith(
        "zone example.test is not DNSSEC-signed, or resolver 127.0.0.1:"
    )


async def test_fcrdns_under_bogus_dnssec_claims_nothing_it_did_not_see() -> None:
    """The PTR answer validates, the forward answer is bogus: the check fails on the
    lookup, says nothing of where the name resolves, and its DNSSEC state is bogus."""
    secure, bogus = fleet(), validating(signed("20200102000000"))

    def handler(query: dns.message.Message, via: str) -> Reply:
        ptr = query.question[0].rdtype == dns.rdatatype.PTR
        return secure(query, via) if ptr else bogus(query, via)

    settings = FcrdnsSettings("srs.example.test", ("127.77.0.4",))
    outcome = await run(check_fcrdns, settings, handler)
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith(
        "PTR 4.0.77.127.in-addr.arpa -> srs.example.test, and then A srs.example.test: "
        "DNSSEC validation failed (bogus)"
    ), outcome.reason
    assert "resolve back" not in outcome.reason and "forward-confirmed" not in outcome.reason
    assert outcome.facts["dnssec_state"] == "bogus"
    assert outcome.facts["fcrdns_confirmed_addresses"] == 0
