"""Every fault in `lab faults` is broken and healed, and each state is observed with a
real client: kdig, swaks, openssl s_client, posttls-finger, imaplib, an HTTPS client, or
a message read back over IMAP and verified with dkimpy."""

from __future__ import annotations

import re
import select
import smtplib
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Callable

import pytest

from monitor.lab import Lab, LabError, procs
from monitor.lab import faults as F
from tests.lab_fixture import (
    broken,
    dkim_verifies,
    imap_login,
    submit,
    swaks,
    unique,
    wait_for_message,
    world_results,
)


def kdig(lab: Lab, *args: str, server: str | None = None) -> str:
    done = subprocess.run(
        ["kdig", f"@{server or lab.resolver}", "+dnssec", "+tcp", "+timeout=2", "+retry=0", *args],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    return done.stdout + done.stderr


def noerror_ad(output: str) -> bool:
    return "status: NOERROR" in output and bool(re.search(r";; Flags: .*\bad\b", output))


def smtp_transcript(*args: str) -> str:
    done = swaks(*args)
    return done.stdout + done.stderr


def send_from(lab: Lab, source: str, server: str, rcpt: str, sender: str = "") -> str:
    """One message from ``source``'s address to ``server``:25; the transcript."""
    return smtp_transcript(
        "-s", lab.hosts[server].address, "--local-interface", lab.hosts[source].address,
        "-f", sender or f"dave@{lab.world}", "-t", rcpt, "--h-Subject", unique("fault"),
    )  # fmt: skip


# With postsrsd down, the SRS host answers DATA only after Postfix's tcp_table client has
# tried it 10 times a second apart (fixed in Postfix: about 9 s), so its reply needs more
# than swaks' 10 s per step; then it takes 9 s more to answer QUIT (it mails its
# postmaster a notice, whose sender lookup waits the same way).
SLOW_LOOKUP_TIMEOUT = 60


def data_reply(lab: Lab, source: str, server: str, rcpt: str) -> str:
    """One message from ``source``'s address to ``server``:25: the server's reply to the
    end of DATA (or to the command it refused), without waiting for QUIT's."""
    client = smtplib.SMTP(
        local_hostname="client.test",
        timeout=SLOW_LOOKUP_TIMEOUT,
        source_address=(lab.hosts[source].address, 0),
    )
    message = f"From: dave@{lab.world}\r\nTo: {rcpt}\r\nSubject: {unique('fault')}\r\n\r\nhi\r\n"
    try:
        client.connect(lab.hosts[server].address, 25)
        client.ehlo()
        code, reply = client.mail(f"dave@{lab.world}")
        if code == 250:
            code, reply = client.rcpt(rcpt)
        if code == 250:
            code, reply = client.data(message)
    except smtplib.SMTPResponseException as exc:
        code, reply = exc.smtp_code, exc.smtp_error
    finally:
        client.close()
    return f"{code} {reply.decode()}"


def queued(transcript: str) -> bool:
    return "250 2.0.0 Ok: queued" in transcript


def refused(transcript: str) -> bool:
    return "Connection refused" in transcript or "connection refused" in transcript


def connect_only(lab: Lab, host: str, port: int) -> str:
    args = ["-s", lab.hosts[host].address, "-p", str(port), "--quit-after", "CONNECT"]
    if port == 465:
        args.append("-tlsc")
    return smtp_transcript(*args)


def openssl_verify(lab: Lab, host: str, port: int) -> str:
    """openssl s_client verifying the chain and the host's lab name against the lab CA."""
    args = ["-starttls", "smtp"] if port in (25, 587) else []
    name = lab.hosts[host].name
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"{lab.hosts[host].address}:{port}", *args,
         "-servername", name, "-CAfile", str(lab.ca_file), "-verify_hostname", name,
         "-verify_return_error", "-brief"],
        input="", capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    return done.stdout + done.stderr


def posttls_finger(lab: Lab, host: str) -> str:
    done = subprocess.run(
        lab.ns_command(["posttls-finger", "-t5", "-T10", "-c", "-l", "dane-only", "-L",
                        "summary", f"[{lab.hosts[host].name}]:25"]),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout + done.stderr


def verified(output: str) -> bool:
    return "Verified TLS connection established" in output


def mta_sts_policy(lab: Lab) -> str:
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    url = f"https://{lab.hosts['mtasts'].address}/.well-known/mta-sts.txt"
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return str(response.read().decode())
    except OSError as exc:
        return f"error: {exc}"


def imap_ok(lab: Lab) -> bool:
    try:
        imap = imap_login(lab)
    except OSError:
        return False
    imap.logout()
    return True


# Dovecot answers AUTH late on purpose: 2 s after a failure (auth_failure_delay), and
# after one it holds the next attempt from the same address for its penalty (4 s seen
# here, up to 15 s). swaks' 10 s per step left too little room on a busy machine.
AUTH_STEP_TIMEOUT = 30


def auth_transcript(lab: Lab) -> str:
    creds = lab.credentials("alice")
    # swaks reads the password from the environment, never from argv.
    done = subprocess.run(
        ["swaks", "--timeout", str(AUTH_STEP_TIMEOUT), "-s", lab.hosts["submit"].address,
         "-p", "587", "-tls", "-a", "PLAIN", "-au", creds.username, "--quit-after", "AUTH"],
        capture_output=True, text=True, timeout=AUTH_STEP_TIMEOUT * 3,
        env={"PATH": "/usr/bin:/bin", "SWAKS_OPT_auth_password": creds.password()},
    )  # fmt: skip
    return done.stdout + done.stderr


def ehlo_before_tls(lab: Lab) -> str:
    """The EHLO reply of 587 before STARTTLS, as smtplib reads it."""
    with smtplib.SMTP(lab.hosts["submit"].address, 587, timeout=15) as client:
        client.ehlo("client.test")
        return " ".join(sorted(client.esmtp_features))


def tls10_handshake(lab: Lab) -> str:
    """openssl s_client offering only TLS 1.0 (and its old suites) to the MX."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"{lab.hosts['mx'].address}:25", "-starttls",
         "smtp", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"],
        input="", capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    return done.stdout + done.stderr


def bare_lf_reply(lab: Lab) -> str:
    """A message to the MX's sink whose body ends with <LF>.<LF>: the reply that follows
    within 3 s ("early: ..."), or the reply to the proper <CR><LF>.<CR><LF> ("late: ...")."""
    with socket.create_connection((lab.hosts["mx"].address, 25), timeout=15) as conn:
        replies = conn.makefile("rb")

        def reply() -> str:
            lines = [replies.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(replies.readline())
            return lines[-1].decode().strip()

        reply()
        for line in ["EHLO client.test", "MAIL FROM:<>", f"RCPT TO:<sink@{lab.domain}>", "DATA"]:
            conn.sendall(line.encode() + b"\r\n")
            reply()
        conn.sendall(b"Subject: bare LF\r\n\r\ntext\n.\n")
        ready, _, _ = select.select([conn], [], [], 3)
        if ready:
            return "early: " + reply()
        conn.sendall(b"\r\n.\r\n")
        return "late: " + reply()


# fault name -> (observation, is it broken?, is it healthy?)
Observer = tuple[Callable[[Lab], object], Callable[[object], bool], Callable[[object], bool]]


def _str(pred: Callable[[str], bool]) -> Callable[[object], bool]:
    return lambda value: pred(str(value))


def _observers() -> dict[str, Observer]:
    def soa(server_key: str) -> Callable[[Lab], object]:
        return lambda lab: kdig(lab, lab.domain, "SOA", server=lab.hosts[server_key].address)

    def dns_down(out: str) -> bool:
        return "status: NOERROR" not in out

    obs: dict[str, Observer] = {
        "stop-knot": (soa("ns"), _str(dns_down), _str(lambda o: "status: NOERROR" in o)),
        "stop-unbound": (soa("resolver"), _str(dns_down), _str(noerror_ad)),
        "stop-dovecot": (imap_ok, lambda ok: ok is False, lambda ok: ok is True),
        "stop-postsrsd": (
            lambda lab: data_reply(lab, "mx", "srs", f"canary@{lab.world}"),
            _str(lambda t: "451 4.3.0" in t),
            _str(queued),
        ),
        "stop-mta-sts": (
            mta_sts_policy,
            _str(lambda p: p.startswith("error")),
            _str(lambda p: "version: STSv1" in p and "mode: enforce" in p),
        ),
    }
    for service in (F.OPENDKIM, F.OPENDMARC):
        obs[f"stop-{service}"] = (
            lambda lab: send_from(lab, "client", "mx", f"forward@{lab.domain}"),
            _str(lambda t: "451 4.7.1" in t),
            _str(queued),
        )
    for service in (F.WORLD_OPENDKIM, F.WORLD_OPENDMARC):
        obs[f"stop-{service}"] = (
            lambda lab: send_from(lab, "srs", "world", f"canary@{lab.world}"),
            _str(lambda t: "451 4.7.1" in t),
            _str(queued),
        )
    for service, host, port in (
        (F.POSTFIX_MX, "mx", 25),
        (F.POSTFIX_SRS, "srs", 25),
        (F.POSTFIX_SUBMISSION, "submit", 587),
        (F.POSTFIX_WORLD, "world", 25),
    ):
        obs[f"stop-{service}"] = (
            lambda lab, host=host, port=port: connect_only(lab, host, port),
            _str(refused),
            _str(lambda t: bool(re.search(r"<-  220 ", t))),
        )

    def record(name: Callable[[Lab], str], rtype: str) -> Callable[[Lab], object]:
        return lambda lab: kdig(lab, name(lab), rtype)

    def nxdomain(out: str) -> bool:
        return "status: NXDOMAIN" in out and noerror_ad(out.replace("NXDOMAIN", "NOERROR"))

    spf = record(lambda lab: lab.domain, "TXT")
    obs.update(
        {
            F.MX_CERT_EXPIRED: (
                lambda lab: openssl_verify(lab, "mx", 25),
                _str(lambda o: "certificate has expired" in o),
                _str(lambda o: "Verification: OK" in o),
            ),
            F.SUBMISSION_465_WRONG_NAME: (
                lambda lab: openssl_verify(lab, "submit", 465),
                _str(lambda o: "hostname mismatch" in o),
                _str(lambda o: "Verification: OK" in o),
            ),
            F.SRS_CERT_ROTATED: (
                lambda lab: posttls_finger(lab, "srs"),
                _str(lambda o: not verified(o) and "TLSA" in o),
                _str(verified),
            ),
            F.SPF_MISSING_SRS: (
                spf,
                _str(lambda o: noerror_ad(o) and "v=spf1" in o and "a:srs." not in o),
                _str(lambda o: noerror_ad(o) and "a:srs." in o),
            ),
            F.SPF_TOO_MANY_LOOKUPS: (
                spf,
                _str(lambda o: noerror_ad(o) and o.replace('" "', "").count("include:") > 10),
                _str(lambda o: noerror_ad(o) and "v=spf1" in o and "include:" not in o),
            ),
            F.DKIM_RECORD_REMOVED: (
                record(lambda lab: f"lab._domainkey.{lab.domain}", "TXT"),
                _str(nxdomain),
                _str(lambda o: noerror_ad(o) and "v=DKIM1" in o),
            ),
            F.DMARC_RECORD_REMOVED: (
                record(lambda lab: f"_dmarc.{lab.domain}", "TXT"),
                _str(nxdomain),
                _str(lambda o: noerror_ad(o) and "v=DMARC1" in o),
            ),
            F.PTR_REMOVED: (
                lambda lab: kdig(lab, "-x", lab.hosts["srs"].address),
                _str(nxdomain),
                _str(lambda o: noerror_ad(o) and "PTR\tsrs." in o),
            ),
            F.TLSA_REMOVED: (
                record(lambda lab: f"_25._tcp.{lab.hosts['mx'].name}", "TLSA"),
                _str(nxdomain),
                _str(lambda o: noerror_ad(o) and "TLSA\t3 1 1" in o),
            ),
            F.MX_RECORD_REMOVED: (
                record(lambda lab: lab.domain, "MX"),
                _str(lambda o: noerror_ad(o) and "ANSWER: 0" in o),
                _str(lambda o: noerror_ad(o) and "\tMX\t10 mx." in o),
            ),
            F.DNSSEC_BOGUS: (
                lambda lab: (kdig(lab, lab.domain, "SOA"), kdig(lab, "+cd", lab.domain, "SOA")),
                lambda pair: "status: SERVFAIL" in pair[0] and "NOERROR" in pair[1],
                lambda pair: noerror_ad(pair[0]),
            ),
            F.SASL_DOWN: (
                auth_transcript,
                _str(lambda t: "535 5.7.8" in t and "235 " not in t),
                _str(lambda t: "235 2.7.0 Authentication successful" in t),
            ),
            F.MX_REJECTS_SPAM: (
                lambda lab: send_from(lab, "client", "mx", f"forward@{lab.domain}"),
                _str(lambda t: "550 5.7.1" in t and "Message rejected as spam" in t),
                _str(queued),
            ),
            F.WORLD_DEFERS: (
                lambda lab: send_from(lab, "srs", "world", f"canary@{lab.world}"),
                _str(lambda t: "451 4.3.2" in t),
                _str(queued),
            ),
            F.OPEN_RELAY: (
                lambda lab: smtp_transcript(
                    "-s",
                    lab.hosts["mx"].address,
                    "--local-interface",
                    lab.hosts["client"].address,
                    "-f",
                    f"dave@{lab.world}",
                    "-t",
                    "victim@elsewhere.test",
                    "--quit-after",
                    "RCPT",
                ),
                _str(lambda t: bool(re.search(r"<-  250 2\.1\.5 Ok", t))),
                _str(lambda t: "Relay access denied" in t),
            ),
            F.DNSBL_LISTED: (
                lambda lab: (
                    kdig(
                        lab,
                        ".".join(reversed(lab.hosts["srs"].address.split("."))) + ".bl.test",
                        "A",
                    ),
                    send_from(lab, "srs", "world", f"canary@{lab.world}"),
                ),
                lambda pair: "127.0.0.2" in pair[0] and "blocked using bl.test" in pair[1],
                lambda pair: "NXDOMAIN" in pair[0] and queued(pair[1]),
            ),
            F.SUBMISSION_AUTH_BEFORE_TLS: (
                ehlo_before_tls,
                _str(lambda features: "auth" in features.split()),
                _str(lambda features: "auth" not in features.split() and "starttls" in features),
            ),
            F.MX_TLS10: (
                tls10_handshake,
                _str(lambda out: "Protocol version: TLSv1\n" in out),
                _str(lambda out: "Protocol version" not in out and "alert" in out),
            ),
            F.MX_BARE_LF: (
                bare_lf_reply,
                _str(lambda reply: reply.startswith("early: 250 2.0.0 Ok: queued")),
                _str(lambda reply: reply.startswith("late: 250 2.0.0 Ok: queued")),
            ),
        }
    )
    return obs


OBSERVERS = _observers()
MAIL_FAULTS = {F.DKIM_KEY_MISMATCH, F.WORLD_JUNKS}


def test_every_fault_has_an_observer() -> None:
    assert set(OBSERVERS) | MAIL_FAULTS == set(F.BY_NAME)


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_fault_is_seen_broken_and_healed(lab: Lab, name: str) -> None:
    observe, is_broken, is_healthy = OBSERVERS[name]
    before = observe(lab)
    assert is_healthy(before), f"{name}: not healthy before breaking:\n{before}"
    with broken(lab, name):
        during = observe(lab)
        assert is_broken(during), f"{name}: not observed broken:\n{during}"
        assert name in lab.active_faults()
    after = observe(lab)
    assert is_healthy(after), f"{name}: not healthy after healing:\n{after}"
    assert name not in lab.active_faults()


def test_dkim_key_mismatch_fails_verification_at_the_world(lab: Lab) -> None:
    with broken(lab, F.DKIM_KEY_MISMATCH):
        subject = unique("dkim-mismatch")
        submit(lab, 587, subject)
        message = wait_for_message(lab, subject)
        assert not dkim_verifies(lab, message)
        assert "dkim=fail" in world_results(lab, message)
    subject = unique("dkim-healed")
    submit(lab, 587, subject)
    assert dkim_verifies(lab, wait_for_message(lab, subject))


def test_world_files_the_canary_into_junk(lab: Lab) -> None:
    with broken(lab, F.WORLD_JUNKS):
        subject = unique("junk")
        submit(lab, 465, subject)
        message = wait_for_message(lab, subject, folder="Junk")
        assert message["Subject"] == subject
    imap = imap_login(lab)
    try:
        _, listing = imap.list()
        assert any(b"\\Junk" in line for line in listing if isinstance(line, bytes))
    finally:
        imap.logout()
    subject = unique("inbox-again")
    submit(lab, 465, subject)
    wait_for_message(lab, subject, folder="INBOX")


def test_unknown_fault_is_a_clear_error(lab: Lab) -> None:
    with pytest.raises(LabError, match="no fault 'nonsense'"):
        lab.break_fault("nonsense")


def test_reload_fault_returns_after_old_postfix_processes_are_gone(lab: Lab) -> None:
    """After `postfix reload` an idle smtpd of the old configuration may still take the
    next connection; break and heal return only once no such process is left."""
    service = lab.services[F.POSTFIX_SUBMISSION]
    master = procs.read_pid(service.pid_file)
    assert master is not None
    openssl_verify(lab, "submit", 465)  # an smtpd for 465 exists before the reload
    before = procs.children(master)
    assert before
    with broken(lab, F.SUBMISSION_465_WRONG_NAME):
        assert not [p for p in before if procs.alive(p)]
        during = procs.children(master)
        assert "hostname mismatch" in openssl_verify(lab, "submit", 465)
    assert not [p for p in during if procs.alive(p)]
    assert "Verification: OK" in openssl_verify(lab, "submit", 465)
