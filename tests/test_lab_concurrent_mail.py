"""The lab takes mail in parallel: messages sent at once through every DKIM milter (signing
on submission and on the SRS host, verifying at the MX and at the world) all arrive
signed and verified, and no opendkim dies on the way.

Debian 12's opendkim hands its libunbound configuration file to ub_ctx_config() for every
message, and that parser is not thread-safe; without the lab's fix two messages at once
end opendkim with "fatal flex scanner internal error" (docs/lab.md).
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import re
import ssl
import time

import aiosmtplib

from monitor.lab import Lab
from monitor.lab import faults as F
from monitor.lab.procs import alive, read_pid
from tests.lab_fixture import imap_login, tls_context, unique, world_results

PATHS = {"mx": 10, "world": 3, "submit": 3}
"""How many messages take each path in one round; a round's 16 are sent at once."""
ROUNDS = 8
SMTP_TIMEOUT = 15.0
ARRIVAL_TIMEOUT = 30.0
DKIM_MILTERS = (F.OPENDKIM, F.WORLD_OPENDKIM)


def milter_pids(lab: Lab) -> dict[str, int | None]:
    return {name: read_pid(lab.services[name].pid_file) for name in DKIM_MILTERS}


def milter_died(lab: Lab) -> bool:
    return any(pid is None or not alive(pid) for pid in milter_pids(lab).values())


def body(sender: str, to: str, subject: str) -> str:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nparallel\r\n"


async def submit(
    lab: Lab, context: ssl.SSLContext, subject: str, together: asyncio.Barrier
) -> None:
    """alice on 587 (STARTTLS, AUTH): the submission host signs, the world verifies."""
    creds = lab.credentials("alice")
    to = f"canary@{lab.world}"
    client = aiosmtplib.SMTP(
        hostname=lab.hosts["submit"].address,
        port=587,
        tls_context=context,
        start_tls=True,
        timeout=SMTP_TIMEOUT,
    )
    async with client:
        await client.login(creds.username, creds.password())
        await asyncio.wait_for(together.wait(), SMTP_TIMEOUT)
        await client.sendmail(creds.username, [to], body(creds.username, to, subject))


async def forward(lab: Lab, subject: str, via: str, together: asyncio.Barrier) -> None:
    """A world user's mail to forward@ sent to ``via`` (the MX, or the world's relay that
    signs it and hands it to the MX): the MX verifies, the SRS host signs, the world
    verifies. Without STARTTLS, so the messages reach the milters closer together."""
    sender, to = f"dave@{lab.world}", f"forward@{lab.domain}"
    client = aiosmtplib.SMTP(
        hostname=lab.hosts[via].address,
        port=25,
        source_address=(lab.hosts["client"].address, 0),
        start_tls=False,
        timeout=SMTP_TIMEOUT,
    )
    async with client:
        await client.ehlo()
        await asyncio.wait_for(together.wait(), SMTP_TIMEOUT)
        await client.sendmail(sender, [to], body(f"alice@{lab.domain}", to, subject))


async def send_round(lab: Lab, prefix: str) -> dict[str, BaseException | None]:
    """Open every session, then send all messages at the same moment (so they reach the
    milters together); each subject with the error its send ended in, if any."""
    context = tls_context(lab)
    together = asyncio.Barrier(sum(PATHS.values()))
    subjects: list[str] = []
    sends = []
    for path, count in PATHS.items():
        for n in range(count):
            subject = f"{prefix}-{path}-{n}"
            subjects.append(subject)
            if path == "submit":
                sends.append(submit(lab, context, subject, together))
            else:
                sends.append(forward(lab, subject, path, together))
    outcomes = await asyncio.gather(*sends, return_exceptions=True)
    return {
        s: o if isinstance(o, BaseException) else None
        for s, o in zip(subjects, outcomes, strict=True)
    }


async def send_rounds(lab: Lab, prefix: str) -> dict[str, BaseException | None]:
    sent: dict[str, BaseException | None] = {}
    for number in range(ROUNDS):
        sent |= await send_round(lab, f"{prefix}-{number}")
        if any(sent.values()) or milter_died(lab):
            break  # already broken: say so now
    return sent


def wait_for_all(
    lab: Lab, prefix: str, count: int, timeout: float
) -> dict[str, email.message.EmailMessage]:
    """Poll the canary's INBOX until ``count`` messages whose subject starts with
    ``prefix`` are there; return them by subject."""
    deadline = time.monotonic() + timeout
    imap = imap_login(lab)
    try:
        while True:
            imap.select("INBOX")
            _, data = imap.search(None, "SUBJECT", f'"{prefix}"')
            ids = data[0].split()
            if len(ids) >= count or time.monotonic() > deadline or milter_died(lab):
                break
            time.sleep(0.3)
        found: dict[str, email.message.EmailMessage] = {}
        for msg_id in ids:
            _, parts = imap.fetch(msg_id, "(BODY.PEEK[])")
            raw = parts[0][1]
            assert isinstance(raw, bytes)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)
            found[str(message["Subject"])] = message
        return found
    finally:
        imap.logout()


def test_parallel_mail_is_signed_and_verified_and_no_opendkim_dies(lab: Lab) -> None:
    before = milter_pids(lab)
    assert all(pid is not None and alive(pid) for pid in before.values()), before
    prefix = unique("parallel")
    sent = asyncio.run(send_rounds(lab, prefix))
    failed = {s: repr(e) for s, e in sent.items() if e is not None}
    subjects = [s for s, e in sent.items() if e is None]

    arrived = wait_for_all(lab, prefix, len(subjects), 0 if failed else ARRIVAL_TIMEOUT)
    after = milter_pids(lab)
    dead = {name: pid for name, pid in after.items() if pid is None or not alive(pid)}
    assert not dead and after == before, f"opendkim before {before}, after {after}; {failed}"
    assert not failed, f"{len(failed)} of {len(sent)} sends failed: {failed}"
    missing = sorted(set(subjects) - set(arrived))
    assert not missing, f"{len(missing)} of {len(subjects)} did not arrive: {missing}"
    # The world's verdict on our signature, with a DNSSEC-validated key ("secure").
    ours = re.compile(rf"dkim=pass \([^)]*\bsecure\) header\.d={re.escape(lab.domain)}\b")
    for subject, message in arrived.items():
        results = world_results(lab, message)
        assert ours.search(results), f"{subject}: {results}"
