"""The lab for tests: one lab per pytest session, plus helpers that talk to it with real
clients (swaks, imaplib) and break/heal faults.

Register with ``pytest_plugins = ["tests.lab_fixture"]`` (tests/conftest.py does).
Tests that use the ``lab`` fixture are skipped when the machine cannot run a lab (not
root, Debian packages missing).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import imaplib
import ipaddress
import os
import random
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dkim
import dns.flags
import dns.resolver
import pytest

from monitor.lab import Lab, LabError
from monitor.lab.lab import REQUIRED_BINARIES
from monitor.lab.net import NET_ENV
from monitor.lab.procs import lo_addresses, tcp_listeners

CLIENT_TIMEOUT = 20


def lab_unavailable() -> str | None:
    """Why this machine cannot run a lab, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = sorted({pkg for b, pkg in REQUIRED_BINARIES.items() if shutil.which(b) is None})
    if missing:
        return "missing Debian packages: " + " ".join(missing)
    return None


def free_net(skip: int = 0) -> str:
    """A /24 in 127.0.0.0/8 that no lab uses now: $MAILPROBE_LAB_NET if set (and skip is
    0), else a block from 127.77.0.0/24 upwards with no address on lo and no listener.
    The scan starts at a random block so parallel test runs rarely pick the same one."""
    if os.environ.get(NET_ENV) and not skip:
        return os.environ[NET_ENV]
    busy = lo_addresses() | {a for a, _ in tcp_listeners()}
    start = random.randrange(77, 200) + skip
    for second in [*range(start, 250), *range(77, start)]:
        net = ipaddress.ip_network(f"127.{second}.0.0/24")
        if not any(ipaddress.ip_address(a) in net for a in busy):
            return str(net)
    raise RuntimeError("no free /24 for a lab in 127.0.0.0/8")


def new_lab_dir() -> Path:
    # Not pytest's tmp_path: its parents are mode 700, which postfix/dovecot can't cross.
    root = Path(tempfile.mkdtemp(prefix="mailprobe-lab-", dir="/tmp"))
    root.chmod(0o755)
    return root


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    root = new_lab_dir()
    the_lab = Lab(root, net=free_net())
    try:
        for attempt in range(1, 4):
            try:
                the_lab.up()
                break
            except LabError as exc:
                # Another test run may have taken the same block a moment ago.
                if "in use" not in str(exc) or attempt == 3:
                    raise
                shutil.rmtree(root, ignore_errors=True)
                root = new_lab_dir()
                the_lab = Lab(root, net=free_net(skip=attempt))
        yield the_lab
    finally:
        the_lab.down()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def broken(lab: Lab, fault: str) -> Iterator[Lab]:
    """Break ``fault`` for the duration of the block, and heal it afterwards."""
    lab.break_fault(fault)
    try:
        yield lab
    finally:
        lab.heal_fault(fault)


# ----- clients -----------------------------------------------------------------------
def swaks(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run swaks (10 s per SMTP step) and return its transcript."""
    return subprocess.run(
        ["swaks", "--timeout", "10", *args],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT + 10,
        check=check,
    )


def tls_context(lab: Lab) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(lab.ca_file))


class LabIMAP(imaplib.IMAP4_SSL):
    """IMAPS to a lab address, checking the certificate for the host's lab name (the
    machine's own resolver does not know lab names)."""

    def __init__(self, address: str, name: str, context: ssl.SSLContext) -> None:
        self._address = address
        super().__init__(name, 993, ssl_context=context, timeout=CLIENT_TIMEOUT)

    def _create_socket(self, timeout: float | None) -> ssl.SSLSocket:
        sock = socket.create_connection((self._address, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def imap_login(lab: Lab, user: str = "canary") -> imaplib.IMAP4_SSL:
    creds = lab.credentials(user)
    host = lab.hosts["imap"]
    imap = LabIMAP(host.address, host.name, tls_context(lab))
    imap.login(creds.username, creds.password())
    return imap


def wait_for_message(
    lab: Lab, subject: str, *, folder: str = "INBOX", user: str = "canary", timeout: float = 20
) -> email.message.EmailMessage:
    """Poll the mailbox over IMAPS until a message with ``subject`` is in ``folder``."""
    deadline = time.monotonic() + timeout
    imap = imap_login(lab, user)
    try:
        while True:
            imap.select(folder)
            _, data = imap.search(None, "SUBJECT", f'"{subject}"')
            ids = data[0].split()
            if ids:
                _, parts = imap.fetch(ids[-1], "(BODY.PEEK[])")
                raw = parts[0][1]
                assert isinstance(raw, bytes)
                message = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(message, email.message.EmailMessage)
                return message
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no message {subject!r} in {user}'s {folder} after {timeout} s"
                )
            time.sleep(0.2)
    finally:
        imap.logout()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def lab_resolver(lab: Lab) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [lab.resolver]
    resolver.lifetime = 5
    resolver.flags = dns.flags.RD | dns.flags.AD  # ask for the AD bit in answers
    return resolver


def dkim_verifies(lab: Lab, message: email.message.EmailMessage) -> bool:
    """dkimpy verification with the key looked up through the lab's resolver."""
    resolver = lab_resolver(lab)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    return bool(dkim.verify(message.as_bytes(), dnsfunc=dnsfunc))


def world_results(lab: Lab, message: email.message.EmailMessage) -> str:
    """All Authentication-Results the world's MX added, joined."""
    world = lab.hosts["world"].name
    found = [
        str(v) for v in message.get_all("Authentication-Results", []) if str(v).startswith(world)
    ]
    return " ".join(found)


def assert_authenticated(lab: Lab, message: email.message.EmailMessage) -> None:
    results = world_results(lab, message)
    for method in ("spf", "dkim", "dmarc"):
        assert f"{method}=pass" in results, results
    signature = str(message["DKIM-Signature"])
    assert re.search(rf"\bd={re.escape(lab.domain)};", signature), signature
    assert dkim_verifies(lab, message)


def submit(lab: Lab, port: int, subject: str) -> None:
    creds = lab.credentials("alice")
    host = lab.hosts["submit"]
    context = tls_context(lab)
    body = f"From: {creds.username}\r\nTo: canary@{lab.world}\r\nSubject: {subject}\r\n\r\nhi\r\n"
    if port == 465:
        with socket.create_connection((host.address, port), 10) as raw:
            sock = context.wrap_socket(raw, server_hostname=host.name)
            client = smtplib.SMTP(timeout=10)
            client.sock = sock
            client.file = None
            code, _ = client.getreply()
            assert code == 220
            client.ehlo("client.test")
            client.login(creds.username, creds.password())
            client.sendmail(creds.username, [f"canary@{lab.world}"], body)
            client.quit()
        return
    with smtplib.SMTP(host.address, port, timeout=10) as client:
        client.ehlo("client.test")
        assert "auth" not in client.esmtp_features, "AUTH offered before STARTTLS"
        client._host = host.name  # name checked against the certificate
        client.starttls(context=context)
        client.ehlo("client.test")
        assert "auth" in client.esmtp_features
        client.login(creds.username, creds.password())
        client.sendmail(creds.username, [f"canary@{lab.world}"], body)
