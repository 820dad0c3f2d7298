"""The lab's acceptance, proved with real clients (swaks, smtplib, imaplib, kdig,
posttls-finger, openssl, dkimpy) rather than with mailprobe's own checks."""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess

import dns.flags
import dns.rdatatype
import dns.resolver
import parsedmarc
import pytest

from monitor.lab import Lab
from tests.lab_fixture import (
    assert_authenticated,
    lab_resolver,
    submit,
    swaks,
    unique,
    wait_for_message,
)


def test_forward_via_mx_alias_arrives_rewritten_signed_and_authenticated(lab: Lab) -> None:
    subject = unique("forward")
    sent = swaks(
        "-s", lab.hosts["mx"].address, "--local-interface", lab.hosts["client"].address,
        "-f", f"dave@{lab.world}", "-t", f"forward@{lab.domain}",
        "--h-From", f"alice@{lab.domain}", "--h-Subject", subject,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    message = wait_for_message(lab, subject)
    return_path = str(message["Return-Path"])
    assert re.fullmatch(rf"<SRS0=[^@]+@{re.escape(lab.domain)}>", return_path), return_path
    assert_authenticated(lab, message)


@pytest.mark.parametrize("port", [587, 465])
def test_authenticated_submission_arrives_signed_and_authenticated(lab: Lab, port: int) -> None:
    subject = unique(f"submit{port}")
    submit(lab, port, subject)
    message = wait_for_message(lab, subject)
    assert str(message["Return-Path"]) == f"<alice@{lab.domain}>"
    assert_authenticated(lab, message)


def test_no_auth_before_starttls_on_587_by_swaks(lab: Lab) -> None:
    plain = swaks("-s", lab.hosts["submit"].address, "-p", "587", "--quit-after", "EHLO")
    assert "250-STARTTLS" in plain.stdout and "AUTH" not in plain.stdout, plain.stdout
    tls = swaks(
        "-s", lab.hosts["submit"].address, "-p", "587", "-tls", "--quit-after", "EHLO"
    )  # fmt: skip
    assert re.search(r"250[ -]AUTH PLAIN LOGIN", tls.stdout), tls.stdout


@pytest.mark.parametrize("host", ["mx", "srs"])
def test_posttls_finger_reports_verified_dane(lab: Lab, host: str) -> None:
    name = lab.hosts[host].name
    done = subprocess.run(
        lab.ns_command(
            ["posttls-finger", "-t5", "-T10", "-c", "-l", "dane-only", "-L", "summary",
             f"[{name}]:25"]
        ),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert f"Verified TLS connection established to {name}" in output, output


def _openssl_spki_sha256(cert: str) -> str:
    pubkey = subprocess.run(
        ["openssl", "x509", "-noout", "-pubkey"], input=cert, capture_output=True, text=True,
        check=True, timeout=10,
    ).stdout  # fmt: skip
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pubkey.encode(),
        capture_output=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    return hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    ("host", "port"), [("mx", 25), ("srs", 25), ("submit", 465), ("submit", 587)]
)
def test_kdig_shows_ad_on_tlsa_that_matches_the_served_key(lab: Lab, host: str, port: int) -> None:
    name = f"_{port}._tcp.{lab.hosts[host].name}"
    done = subprocess.run(
        ["kdig", f"@{lab.resolver}", "+dnssec", "+tcp", "+timeout=3", "+retry=0", name, "TLSA"],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert re.search(r";; Flags: .*\bad\b", done.stdout), done.stdout
    served = (
        ssl.get_server_certificate((lab.hosts[host].address, port), ca_certs=None)
        if port == 465
        else _starttls_cert(lab.hosts[host].address, port)
    )
    digest = _openssl_spki_sha256(served)
    assert re.search(rf"TLSA\s+3 1 1 {digest}", done.stdout, re.IGNORECASE), done.stdout


def _starttls_cert(address: str, port: int) -> str:
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", "-starttls", "smtp"],
        input="", capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", done.stdout, re.S)
    assert match, done.stdout + done.stderr
    return match.group(0) + "\n"


def test_every_ptr_is_forward_confirmed(lab: Lab) -> None:
    resolver = lab_resolver(lab)
    for host in lab.hosts.values():
        ptr = resolver.resolve_address(host.address)
        assert ptr.response.flags & dns.flags.AD, host
        names = [str(r.target).rstrip(".") for r in ptr]
        assert names == [host.name]
        forward = resolver.resolve(host.name, "A")
        assert [r.address for r in forward] == [host.address]


def test_report_mailbox_holds_an_aggregate_report_parsedmarc_reads(lab: Lab) -> None:
    # The aggregate reports (the TLS-RPT report says "Report-ID: <lab-tls-...>").
    subject = f"Report Domain: {lab.domain} Submitter: {lab.world} Report-ID: lab-"
    try:
        message = wait_for_message(lab, subject, user="dmarc", timeout=5)
    except AssertionError:
        # mailprobe's own ingestion (tests/test_dmarc_lab.py) files reports it read there.
        message = wait_for_message(
            lab, subject, folder="Archive/Aggregate", user="dmarc", timeout=1
        )
    attachment = next(part for part in message.iter_attachments())
    # offline: no reverse DNS or map downloads; nothing may leave the machine.
    report = parsedmarc.parse_aggregate_report_file(
        attachment.get_content(), offline=True, always_use_local_files=True
    )
    assert report["policy_published"]["domain"] == lab.domain
    sources = {r["source"]["ip_address"]: r["policy_evaluated"] for r in report["records"]}
    assert sources[lab.hosts["srs"].address]["dkim"] == "pass"
    assert sources["192.0.2.66"]["spf"] == "fail"
