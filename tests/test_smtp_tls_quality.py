"""TLS quality: the NCSC-NL rating tables, then sslyze (in its worker process) against the
lab's real Postfix, healthy and with TLS 1.0 turned back on, and against hostile servers."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from exporters.result import CheckCannotRun, CheckFailure, Phase, Status
from exporters.smtp.tls_quality import (
    TlsQualitySettings,
    check_tls_quality,
    ffdhe_prime,
    judge,
    rate_certificate,
    rate_key_exchange,
    rate_suite,
)
from monitor.lab import Lab
from monitor.lab import faults as F
from monitor.lab.mailconfig import SSLYZE_PYTHON, config_data
from tests.lab_fixture import broken
from tests.servers import SilentServer
from tests.smtpsec_lab import (
    lab_smtp_config,
    one_result,
    promtool_problems,
    run_json,
    sample,
    scrape_once,
)

needs_sslyze = pytest.mark.skipif(
    not SSLYZE_PYTHON.exists(),
    reason=f"no sslyze environment at {SSLYZE_PYTHON}: scripts/setup.sh creates it",
)


def test_cipher_suites_are_rated_as_ncsc_nl_rates_them() -> None:
    cases = {
        ("TLSv1.3", "TLS_AES_256_GCM_SHA384"): "good",
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256"): "sufficient",
        ("TLSv1.3", "TLS_AES_128_CCM_8_SHA256"): "insufficient",
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"): "sufficient",
        ("TLSv1.2", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"): "sufficient",
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"): "sufficient",
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8"): "insufficient",
        ("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"): "phase_out",
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"): "phase_out",
        ("TLSv1.2", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"): "phase_out",
        ("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"): "insufficient",
        ("TLSv1.2", "TLS_RSA_WITH_AES_128_GCM_SHA256"): "insufficient",
        ("TLSv1.2", "TLS_DH_anon_WITH_AES_256_GCM_SHA384"): "insufficient",
        ("TLSv1.2", "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"): "insufficient",
    }
    assert {case: rate_suite(*case) for case in cases} == cases


def test_key_exchange_groups_are_rated() -> None:
    assert rate_key_exchange({"type": "ECDH", "curve": "X25519", "size": 253}) == "good"
    assert rate_key_exchange({"type": "ECDH", "curve": "secp224r1", "size": 224}) == "phase_out"
    assert rate_key_exchange({"type": "ECDH", "curve": "secp256k1", "size": 256}) == "insufficient"

    def dh(bits: int, prime: int, generator: int = 2) -> dict[str, Any]:
        return {"type": "DH", "size": bits, "prime": format(prime, "x"), "generator": generator}

    assert rate_key_exchange(dh(4096, ffdhe_prime(4096))) == "phase_out"
    assert rate_key_exchange(dh(3072, ffdhe_prime(3072))) == "phase_out"
    assert rate_key_exchange(dh(2048, ffdhe_prime(2048))) == "insufficient"
    assert rate_key_exchange(dh(3072, ffdhe_prime(3072) - 2)) == "insufficient"  # own group
    assert rate_key_exchange(dh(3072, ffdhe_prime(3072), generator=5)) == "insufficient"
    assert rate_key_exchange({"type": "DH", "size": 4096}) == "insufficient"  # group unknown


def test_ffdhe_primes_are_rfc_7919s() -> None:
    """The formula of RFC 7919 appendix A gives the published ffdhe2048 (its first and
    last 96 bits as printed in the RFC), and each prime is a safe prime."""
    text = format(ffdhe_prime(2048), "X")
    assert text.startswith("FFFFFFFFFFFFFFFFADF85458A2BB4A9A")
    assert text.endswith("61285C97FFFFFFFFFFFFFFFF")
    for bits in (2048, 3072):
        p = ffdhe_prime(bits)
        assert p.bit_length() == bits
        assert pow(2, p - 1, p) == 1  # Fermat: p is (very likely) prime
        q = (p - 1) // 2
        assert pow(2, q - 1, q) == 1  # ... and so is (p - 1) / 2


def self_signed(key: Any, digest: hashes.HashAlgorithm) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.test")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, digest)
    )


def test_certificate_keys_and_signatures_are_rated() -> None:
    rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert rate_certificate(self_signed(rsa2048, hashes.SHA256())) == (
        "phase_out",
        "good",
        "RSA 2048 bits",
    )
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert rate_certificate(self_signed(p256, hashes.SHA384())) == (
        "good",
        "good",
        "EC secp256r1",
    )
    assert rate_certificate(self_signed(p256, hashes.SHA224()))[1] == "phase_out"


def scan(**versions: list[dict[str, Any]]) -> dict[str, Any]:
    """A worker's answer: TLS 1.3 with a good suite, a P-256 leaf, and ``versions``."""
    leaf = trustme.CA().issue_cert("mx.test")
    pem = leaf.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return {
        "versions": {"TLSv1.3": [{"name": "TLS_AES_256_GCM_SHA384", "kex": None}], **versions},
        "chain": [base64.b64encode(der).decode()],
        "compression": False,
        "scan_errors": {},
    }


def test_judge_fails_ssl3_and_warns_on_tls10() -> None:
    suite = [{"name": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "kex": None}]
    outcome = judge("mx.test:25", scan(SSLv3=suite, **{"TLSv1.0": suite}))
    assert outcome.status is Status.FAIL
    assert outcome.reason == (
        "TLS quality of mx.test:25: accepts SSL 3.0 (broken: must be off); "
        "accepts TLS 1.0 (NCSC-NL: phase out, then off)"
    )
    warned = judge("mx.test:25", scan(**{"TLSv1.1": suite}))
    assert warned.status is Status.WARN
    assert warned.facts["tls_quality_legacy_versions"] == 1
    assert judge("mx.test:25", scan()).status is Status.OK
    untested = scan()
    untested["scan_errors"] = {
        "TLSv1.0": {"reason": "CONNECTIVITY_ISSUE", "kind": "ConnectionToServerTimedOut"},
        "certificate": {"reason": "BUG_IN_SSLYZE", "kind": "KeyError"},
    }
    assert judge("mx.test:25", untested).reason == (
        "TLS quality of mx.test:25: TLS 1.0 could not be tested (no answer to the "
        "connection); certificate could not be tested (bug in sslyze)"
    )


def settings(lab: Lab, host: str, port: int, starttls: bool) -> TlsQualitySettings:
    return TlsQualitySettings(
        host=lab.hosts[host].address,
        port=port,
        starttls=starttls,
        server_name=lab.hosts[host].name,
        ehlo_name="mailprobe.lab.invalid",
        python=SSLYZE_PYTHON,
        timeout=120,
    )


@needs_sslyze
async def test_healthy_lab_servers_are_rated_sufficient(lab: Lab) -> None:
    for host, port, starttls in (("mx", 25, True), ("submit", 465, False)):
        outcome = await check_tls_quality(settings(lab, host, port, starttls), None, Phase())
        assert outcome.status is Status.OK, outcome.reason
        assert outcome.facts["tls_quality_insufficient_suites"] == 0
        assert outcome.facts["tls_quality_legacy_versions"] == 0
        assert outcome.facts["tls_quality_cert_key_bits"] == 256
        assert outcome.detail is not None
        assert "protocol versions accepted: TLS 1.2, TLS 1.3" in outcome.detail


@needs_sslyze
def test_tls10_fault_fails_in_run_and_metrics(lab: Lab, tmp_path: Path) -> None:
    targets = [
        {**t, "security": None} for t in config_data(lab)["smtp"]["targets"] if t["name"] == "mx"
    ]
    config = lab_smtp_config(lab, tmp_path / "c.yml", targets=targets)
    with broken(lab, F.MX_TLS10):
        result = one_result(run_json(config, "--target", "mx"), "tls_quality")
        text = scrape_once(config, ready_timeout=120)
    assert result["status"] == "fail", result
    reason = result["reason"]
    assert reason.startswith(
        f"TLS quality of {lab.hosts['mx'].name}:25 ({lab.hosts['mx'].address}): "
        "cipher suites NCSC-NL rates insufficient: "
    )
    assert "accepts TLS 1.0 and TLS 1.1 (NCSC-NL: phase out, then off)" in reason
    labels = {"kind": "smtp", "check": "tls_quality", "target": "mx"}
    assert sample(text, "mailprobe_check_status", status="fail", **labels) == 1.0
    assert promtool_problems(text, "mailprobe_smtp_tls_quality_") == []
    legacy = sample(text, "mailprobe_smtp_tls_quality_legacy_versions", target="mx")
    assert legacy == 2.0
    insufficient = sample(
        text, "mailprobe_smtp_tls_quality_insufficient_cipher_suites", target="mx"
    )
    assert insufficient is not None and insufficient > 0


@needs_sslyze
async def test_scan_of_a_silent_server_fails_with_a_reason() -> None:
    with SilentServer() as server:
        quality = TlsQualitySettings(
            host="127.0.0.1",
            port=server.port,
            starttls=True,
            server_name="127.0.0.1",
            ehlo_name="mailprobe.invalid",
            python=SSLYZE_PYTHON,
            timeout=60,
            network_timeout=1,
        )
        with pytest.raises(CheckFailure) as caught:
            await check_tls_quality(quality, None, Phase())
    assert caught.value.reason.startswith(f"TLS scan of 127.0.0.1:{server.port}: ")
    assert caught.value.reason.endswith("(tls scan)")


async def test_a_worker_that_hangs_is_killed_at_the_deadline(tmp_path: Path) -> None:
    hanging = tmp_path / "python"
    pid_file = tmp_path / "pid"
    hanging.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    hanging.chmod(0o755)
    quality = TlsQualitySettings(
        host="127.0.0.1",
        port=25,
        starttls=True,
        server_name="mx.test",
        ehlo_name="mailprobe.invalid",
        python=hanging,
        timeout=0.5,
    )
    with pytest.raises(CheckFailure, match=r"did not finish within 0\.5 s \(tls scan\)"):
        await check_tls_quality(quality, None, Phase())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(int(pid_file.read_text()), 0)


async def test_a_worker_that_floods_its_output_is_cut(tmp_path: Path) -> None:
    flooding = tmp_path / "python"
    flooding.write_text("#!/bin/sh\nexec yes 'not json'\n")
    flooding.chmod(0o755)
    quality = TlsQualitySettings(
        host="127.0.0.1",
        port=25,
        starttls=True,
        server_name="mx.test",
        ehlo_name="mailprobe.invalid",
        python=flooding,
        timeout=30,
    )
    with pytest.raises(
        CheckCannotRun,
        match=r"^the sslyze worker for mx.test:25 \(127.0.0.1\) printed more than 4 MiB$",
    ):
        await check_tls_quality(quality, None, Phase())


async def test_a_missing_sslyze_environment_cannot_run(tmp_path: Path) -> None:
    quality = TlsQualitySettings(
        host="127.0.0.1",
        port=25,
        starttls=True,
        server_name="mx.test",
        ehlo_name="mailprobe.invalid",
        python=tmp_path / "nothing",
        timeout=5,
    )
    with pytest.raises(CheckCannotRun, match=r"does not exist: scripts/setup\.sh creates it"):
        await check_tls_quality(quality, None, Phase())
