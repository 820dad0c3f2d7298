#!/usr/bin/env python3
"""Real Postfix logs at scale: drive the lab's four Postfix instances with a varied,
bounded SMTP workload and keep the maillogs they write.

    python bench/lablog.py [--lines 700000] [--max-seconds 900] [--workdir DIR]
                           [--net 127.90.0.0/24] [--sessions 24] [--messages 8]

Starts a lab of its own (``WORKDIR/lab``, the ``--net`` block or $MAILPROBE_LAB_NET),
then runs two pools of SMTP clients against it, only from and to the block's loopback
addresses, until the four maillogs hold ``--lines`` lines or ``--max-seconds`` pass:

* message sessions (``--messages`` at once): mail to the forwarding alias at the MX
  (MX -> SRS -> world -> LMTP), the same through the world's relay, authenticated
  submissions on 587 (STARTTLS) and 465 (implicit TLS) with one to three recipients,
  a submission to an unknown world user (bounced back to the sender), a null-sender
  bounce, several recipients at the MX (one unknown), and a client that skips STARTTLS;
* short sessions (``--sessions`` at once): unknown recipients and relay attempts at the
  MX, wrong SASL passwords (PLAIN and LOGIN), plain-text clients on 587, VRFY, clients
  that drop the connection, talk HTTP, pipeline before the greeting or reject the
  server's certificate.

Along the way named lab faults are broken for ``--fault-seconds`` each and healed:
the world defers all mail, a stale TLSA record for the SRS host, postsrsd stopped, a
wrong-name certificate on 465, Dovecot (LMTP and SASL) stopped, the SRS host on the
DNSBL, an expired MX certificate, the world's Postfix stopped. Then the queues drain,
the logs are copied to ``WORKDIR/logs/lab-<instance>.log`` and merged in time order
into ``WORKDIR/logs/lab-merged.log``, a summary goes to ``WORKDIR/logs/summary.json``,
and the lab is taken down.

The lab's two opendkim services take mail in parallel since the lab runs them with a lock
around libunbound's ub_ctx_config() (monitor/lab/ubmutex.py; without it two messages at
once tempfailed or killed opendkim). A watchdog restarts an opendkim that dies anyway
and counts the restarts, so a regression shows in the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import ipaddress
import json
import os
import random
import shutil
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.lab import Lab
from monitor.lab.layout import POSTFIX_INSTANCES
from monitor.lab.procs import alive, read_pid

CLIENT_TIMEOUT = 10.0
REST_SECONDS = 5.0
"""An endpoint that timed out or refused is left alone this long: a throttled or
stopped service would otherwise hold every worker for a whole timeout."""
GUESSERS = 3
"""Password guessing sessions at once."""
FAULTS = (
    "world-defers-all",
    "srs-cert-rotated-tlsa-stale",
    "stop-postsrsd",
    "submission-465-wrong-name",
    "stop-dovecot",
    "srs-listed-on-dnsbl",
    "mx-cert-expired",
    "stop-postfix-world",
)
"""Broken one after another, evenly spread over the run, each healed after a while."""
MILTERS = ("opendkim", "world-opendkim")
MONTHS = {
    name.encode(): number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        1,
    )
}
QUEUES = ("maildrop", "active", "deferred", "hold")
"""Queues that must be empty before the logs are taken (not ``incoming``: a cleanup
aborted by a fault can leave a file there that Postfix removes only much later)."""


@dataclass
class Fleet:
    """What the clients need to know about the running lab."""

    mx: str
    srs: str
    submit: str
    world: str
    client: str
    users: tuple[str, ...]
    """Where the fleet's own users and the world's senders connect from."""
    strangers: tuple[str, ...]
    """Where scanners, spammers and password guessers connect from."""
    domain: str
    world_domain: str
    alice: str
    password: str
    verifying: ssl.SSLContext
    trusting: ssl.SSLContext
    foreign_ca: ssl.SSLContext
    resting: dict[tuple[str, int], float] = field(default_factory=dict)
    """(address, port) -> monotonic time until which no client connects there."""

    @classmethod
    def of(cls, lab: Lab) -> Fleet:
        h = lab.hosts
        net = ipaddress.ip_network(lab.net)
        verifying = ssl.create_default_context(cafile=str(lab.ca_file))
        trusting = ssl.create_default_context()
        trusting.check_hostname = False
        trusting.verify_mode = ssl.CERT_NONE
        # Trusts only the public CAs, so it refuses the lab's certificates mid-handshake.
        foreign_ca = ssl.create_default_context()
        alice = lab.credentials("alice")
        return cls(
            mx=h["mx"].address,
            srs=h["srs"].address,
            submit=h["submit"].address,
            world=h["world"].address,
            client=h["client"].address,
            users=tuple(str(net[i]) for i in range(100, 150)),
            strangers=tuple(str(net[i]) for i in range(150, 200)),
            domain=lab.domain,
            world_domain=lab.world,
            alice=alice.username,
            password=alice.password(),
            verifying=verifying,
            trusting=trusting,
            foreign_ca=foreign_ca,
        )


@dataclass
class Tally:
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    messages_accepted: int = 0
    milter_restarts: int = 0
    faults: list[dict[str, float | str]] = field(default_factory=list)


Scenario = Callable[[Fleet, random.Random], Awaitable[str]]


# ----- messages ---------------------------------------------------------------------------
def message(rnd: random.Random, sender: str, to: list[str], domain: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = rnd.choice(("Report", "Re: lunch", "Invoice 2291", "Fwd: photos", "hi"))
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{time.time_ns()}.{rnd.getrandbits(40):x}@{domain}>"
    lines = rnd.choice((4, 12, 40, 40, 120)) if rnd.random() > 0.01 else 3000
    body = "\n".join(f"line {i} " + "x" * rnd.randrange(10, 70) for i in range(lines))
    msg.set_content(body + "\n")
    return msg.as_bytes()


class Resting(OSError):
    """The endpoint timed out or refused a moment ago (``REST_SECONDS``)."""


class LabSMTP(aiosmtplib.SMTP):
    """An SMTP client that skips, and marks, endpoints that do not answer."""

    def __init__(self, resting: dict[tuple[str, int], float], **kw: Any) -> None:
        super().__init__(**kw)
        self.resting = resting

    async def connect(self, *args: Any, **kw: Any) -> aiosmtplib.SMTPResponse:
        key = (str(self.hostname), int(self.port or 0))
        if self.resting.get(key, 0.0) > time.monotonic():
            raise Resting(f"{key} is resting")
        try:
            return await super().connect(*args, **kw)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if outcome_of(exc) in ("timeout", "connect-refused"):
                self.resting[key] = time.monotonic() + REST_SECONDS
            raise


def smtp(fleet: Fleet, host: str, port: int, source: str | None = None, **kw: Any) -> LabSMTP:
    return LabSMTP(
        fleet.resting,
        hostname=host,
        port=port,
        source_address=(source, 0) if source else None,
        timeout=CLIENT_TIMEOUT,
        **kw,
    )


async def send(
    client: aiosmtplib.SMTP, sender: str, to: list[str], data: bytes, login: tuple[str, str] | None
) -> str:
    async with client:
        if login is not None:
            await client.login(*login)
        errors, _reply = await client.sendmail(sender, to, data)
    return "sent-partly" if errors else "sent"


def outside_sender(fleet: Fleet, rnd: random.Random) -> str:
    user = "canary" if rnd.random() < 0.9 else f"user{rnd.randrange(1000)}"
    return f"{user}@{fleet.world_domain}"


async def forward_to_alias(fleet: Fleet, rnd: random.Random) -> str:
    """A world user's mail to forward@ at the MX: MX -> SRS -> world -> mailbox."""
    source = fleet.client if rnd.random() < 0.6 else rnd.choice(fleet.users)
    sender = outside_sender(fleet, rnd)
    context = fleet.verifying if rnd.random() < 0.5 else fleet.trusting
    to = [f"forward@{fleet.domain}"]
    client = smtp(fleet, fleet.mx, 25, source, tls_context=context, start_tls=True)
    return await send(client, sender, to, message(rnd, sender, to, fleet.world_domain), None)


async def forward_via_world(fleet: Fleet, rnd: random.Random) -> str:
    """The canary's route: the world's relay takes it and delivers to the MX by DANE."""
    sender = f"canary@{fleet.world_domain}"
    to = [f"forward@{fleet.domain}"]
    tls = rnd.random() < 0.7
    client = smtp(fleet, fleet.world, 25, fleet.client, tls_context=fleet.trusting, start_tls=tls)
    return await send(client, sender, to, message(rnd, sender, to, fleet.world_domain), None)


def submission_client(fleet: Fleet, rnd: random.Random, source: str) -> aiosmtplib.SMTP:
    if rnd.random() < 0.5:
        return smtp(fleet, fleet.submit, 587, source, tls_context=fleet.verifying, start_tls=True)
    return smtp(fleet, fleet.submit, 465, source, tls_context=fleet.verifying, use_tls=True)


async def submission(fleet: Fleet, rnd: random.Random) -> str:
    """alice sends to one to three recipients in the world and at home."""
    everyone = [f"canary@{fleet.world_domain}", f"forward@{fleet.domain}", f"alias@{fleet.domain}"]
    to = rnd.sample(everyone, rnd.choice((1, 1, 1, 2, 3)))
    client = submission_client(fleet, rnd, rnd.choice(fleet.users))
    data = message(rnd, fleet.alice, to, fleet.domain)
    return await send(client, fleet.alice, to, data, (fleet.alice, fleet.password))


async def submission_bounced(fleet: Fleet, rnd: random.Random) -> str:
    """The world refuses one recipient: the submission host bounces it to postmaster@,
    which the MX delivers to the report mailbox."""
    sender = f"postmaster@{fleet.domain}"
    to = [f"nobody{rnd.randrange(100)}@{fleet.world_domain}", f"canary@{fleet.world_domain}"]
    client = submission_client(fleet, rnd, rnd.choice(fleet.users))
    data = message(rnd, sender, to, fleet.domain)
    return await send(client, sender, to, data, (fleet.alice, fleet.password))


async def null_sender_bounce(fleet: Fleet, rnd: random.Random) -> str:
    """A delivery status notification from the world to the alias (MAIL FROM:<>)."""
    to = [f"forward@{fleet.domain}"]
    data = message(rnd, f"MAILER-DAEMON@{fleet.world_domain}", to, fleet.world_domain)
    client = smtp(fleet, fleet.mx, 25, fleet.client, tls_context=fleet.trusting, start_tls=True)
    return await send(client, "", to, data, None)


async def several_at_mx(fleet: Fleet, rnd: random.Random) -> str:
    """Forward, report mailbox, postmaster and one unknown recipient in one message."""
    sender = outside_sender(fleet, rnd)
    to = [
        f"forward@{fleet.domain}",
        f"alias@{fleet.domain}",
        f"postmaster@{fleet.domain}",
        f"nobody{rnd.randrange(100)}@{fleet.domain}",
    ]
    client = smtp(fleet, fleet.mx, 25, fleet.client, tls_context=fleet.trusting, start_tls=True)
    return await send(client, sender, to, message(rnd, sender, to, fleet.world_domain), None)


async def plaintext_to_mx(fleet: Fleet, rnd: random.Random) -> str:
    """An old client that never says STARTTLS."""
    sender = outside_sender(fleet, rnd)
    to = [f"forward@{fleet.domain}"]
    source = rnd.choice(fleet.strangers)
    client = smtp(fleet, fleet.mx, 25, source, start_tls=False)
    return await send(client, sender, to, message(rnd, sender, to, fleet.world_domain), None)


# ----- short sessions ---------------------------------------------------------------------
async def rcpt_only(fleet: Fleet, rnd: random.Random, rcpt: str, source: str) -> str:
    client = smtp(fleet, fleet.mx, 25, source, tls_context=fleet.trusting, start_tls=None)
    async with client:
        await client.mail(outside_sender(fleet, rnd))
        reply = await client.execute_command(f"RCPT TO:<{rcpt}>".encode())
    return f"rcpt-{reply.code}"


async def unknown_recipient(fleet: Fleet, rnd: random.Random) -> str:
    rcpt = f"{rnd.choice(('info', 'sales', 'admin', 'bob', 'jobs'))}{rnd.randrange(50)}"
    source = rnd.choice((fleet.client, *fleet.users, *fleet.strangers))
    return await rcpt_only(fleet, rnd, f"{rcpt}@{fleet.domain}", source)


async def relay_attempt(fleet: Fleet, rnd: random.Random) -> str:
    rcpt = f"victim{rnd.randrange(1000)}@{fleet.world_domain}"
    return await rcpt_only(fleet, rnd, rcpt, rnd.choice(fleet.strangers))


async def wrong_password(fleet: Fleet, rnd: random.Random) -> str:
    client = submission_client(fleet, rnd, rnd.choice(fleet.strangers))
    user = fleet.alice if rnd.random() < 0.5 else f"admin@{fleet.domain}"
    async with client:
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        method = client.auth_plain if rnd.random() < 0.6 else client.auth_login
        try:
            await method(user, f"guess{rnd.randrange(10_000)}")
        except aiosmtplib.SMTPAuthenticationError as exc:
            return f"auth-{exc.code}"
    return "auth-accepted"


async def no_starttls_on_587(fleet: Fleet, rnd: random.Random) -> str:
    client = smtp(fleet, fleet.submit, 587, rnd.choice(fleet.users), start_tls=False)
    async with client:
        await client.ehlo()
        command = b"AUTH PLAIN AGFsaWNlAHNlY3JldA==" if rnd.random() < 0.5 else b"MAIL FROM:<a@b>"
        reply = await client.execute_command(command)
    return f"plain-{reply.code}"


async def vrfy(fleet: Fleet, rnd: random.Random) -> str:
    client = smtp(fleet, fleet.mx, 25, rnd.choice(fleet.strangers), start_tls=False)
    async with client:
        await client.ehlo()
        reply = await client.execute_command(f"VRFY user{rnd.randrange(99)}".encode())
    return f"vrfy-{reply.code}"


async def raw_session(fleet: Fleet, rnd: random.Random, script: list[bytes], wait: bool) -> str:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(fleet.mx, 25, local_addr=(rnd.choice(fleet.strangers), 0)),
        CLIENT_TIMEOUT,
    )
    try:
        if wait:
            await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
        for line in script:
            writer.write(line)
            await writer.drain()
            if wait:
                await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()
    return "raw"


async def drop_early(fleet: Fleet, rnd: random.Random) -> str:
    script = [] if rnd.random() < 0.5 else [b"EHLO scanner.invalid\r\n"]
    return await raw_session(fleet, rnd, script, wait=True)


async def speak_http(fleet: Fleet, rnd: random.Random) -> str:
    return await raw_session(fleet, rnd, [b"GET / HTTP/1.0\r\n", b"Host: mx\r\n"], wait=True)


async def pipeline_early(fleet: Fleet, rnd: random.Random) -> str:
    burst = b"EHLO spammer.invalid\r\nMAIL FROM:<x@spam.invalid>\r\nRCPT TO:<a@b>\r\n"
    return await raw_session(fleet, rnd, [burst], wait=False)


async def refuse_certificate(fleet: Fleet, rnd: random.Random) -> str:
    """A client that trusts other CAs: the handshake fails on its side."""
    if rnd.random() < 0.5:
        client = smtp(
            fleet, fleet.mx, 25, fleet.client, tls_context=fleet.foreign_ca, start_tls=True
        )
        async with client:
            pass
    else:
        source = rnd.choice(fleet.users)
        client = smtp(fleet, fleet.submit, 465, source, tls_context=fleet.foreign_ca, use_tls=True)
        async with client:
            pass
    return "tls-accepted"


MESSAGE_SCENARIOS: dict[Scenario, int] = {
    forward_to_alias: 30,
    forward_via_world: 10,
    submission: 35,
    submission_bounced: 5,
    null_sender_bounce: 5,
    several_at_mx: 8,
    plaintext_to_mx: 7,
}
SESSION_SCENARIOS: dict[Scenario, int] = {
    unknown_recipient: 25,
    relay_attempt: 15,
    wrong_password: 15,
    no_starttls_on_587: 10,
    drop_early: 10,
    speak_http: 5,
    pipeline_early: 5,
    vrfy: 5,
    refuse_certificate: 5,
}


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, Resting):
        return "skipped-resting"
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({r.code for r in exc.recipients})
        return "rcpt-refused-" + "/".join(str(c) for c in codes)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"reply-{exc.code}"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "tls-failed"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connect-refused"
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "timeout"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return "disconnected"
    return type(exc).__name__


async def worker(
    fleet: Fleet,
    rnd: random.Random,
    pool: dict[Scenario, int],
    tally: Tally,
    stop: asyncio.Event,
    limits: dict[Scenario, asyncio.Semaphore],
) -> None:
    """Runs scenarios picked by weight until ``stop``; a scenario in ``limits`` runs only
    while its semaphore has room (Dovecot delays failed logins by up to 15 s per client
    address: unbounded, the guessers would hold every worker)."""
    scenarios, weights = list(pool), list(pool.values())
    while not stop.is_set():
        scenario = rnd.choices(scenarios, weights)[0]
        limit = limits.get(scenario)
        if limit is not None and limit.locked():
            continue
        try:
            if limit is not None:
                async with limit:
                    outcome = await scenario(fleet, rnd)
            else:
                outcome = await scenario(fleet, rnd)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            outcome = outcome_of(exc)
        if outcome == "skipped-resting":
            await asyncio.sleep(0.05)
            continue
        if outcome.startswith("sent"):
            tally.messages_accepted += 1
        tally.outcomes[(scenario.__name__, outcome)] += 1
        if outcome in ("connect-refused", "timeout", "disconnected"):
            await asyncio.sleep(0.5)  # a stopped or throttled service: do not spin


# ----- the lab around the workload ---------------------------------------------------------
class LineCount:
    """Lines in the four maillogs, read incrementally."""

    def __init__(self, lab: Lab) -> None:
        self.paths = {i: lab.maillog(i) for i in POSTFIX_INSTANCES}
        self.offsets = dict.fromkeys(POSTFIX_INSTANCES, 0)
        self.lines = dict.fromkeys(POSTFIX_INSTANCES, 0)

    def update(self) -> int:
        for instance, path in self.paths.items():
            try:
                with path.open("rb") as log:
                    log.seek(self.offsets[instance])
                    data = log.read()
            except FileNotFoundError:
                continue
            self.offsets[instance] += len(data)
            self.lines[instance] += data.count(b"\n")
        return sum(self.lines.values())


def restart_milter(lab: Lab, name: str) -> None:
    """Restart one opendkim service through the lab's own fault."""
    fault = {"opendkim": "stop-opendkim", "world-opendkim": "stop-world-opendkim"}[name]
    lab.break_fault(fault)
    lab.heal_fault(fault)


async def milter_watchdog(lab: Lab, lab_lock: asyncio.Lock, tally: Tally) -> None:
    """Restart an opendkim that died (none should) and count it."""
    while True:
        await asyncio.sleep(0.2)
        for name in MILTERS:
            pid = read_pid(lab.services[name].pid_file)
            if pid is not None and alive(pid):
                continue
            async with lab_lock:
                await asyncio.to_thread(restart_milter, lab, name)
            tally.milter_restarts += 1


async def fault_windows(
    lab: Lab,
    lab_lock: asyncio.Lock,
    progress: Callable[[], float],
    seconds: float,
    tally: Tally,
    started: float,
) -> None:
    for number, name in enumerate(FAULTS):
        while progress() < (number + 0.5) / (len(FAULTS) + 0.5):
            await asyncio.sleep(0.5)
        async with lab_lock:
            await asyncio.to_thread(lab.break_fault, name)
        broken = time.monotonic()
        await asyncio.sleep(seconds)
        async with lab_lock:
            await asyncio.to_thread(lab.heal_fault, name)
        tally.faults.append(
            {
                "fault": name,
                "broken_at_s": round(broken - started, 1),
                "healed_at_s": round(time.monotonic() - started, 1),
            }
        )
        print(f"  fault {name}: broken {seconds:.0f} s, healed", flush=True)


def queued(lab: Lab) -> int:
    total = 0
    for instance in POSTFIX_INSTANCES:
        spool = lab.dir / "postfix" / instance / "spool"
        for queue in QUEUES:
            for _root, _dirs, files in os.walk(spool / queue):
                total += len(files)
    return total


async def generate(lab: Lab, args: argparse.Namespace) -> dict[str, object]:
    fleet = Fleet.of(lab)
    tally = Tally()
    counter = LineCount(lab)
    lab_lock = asyncio.Lock()
    stop = asyncio.Event()
    started = time.monotonic()
    target, cap = int(args.lines), float(args.max_seconds)

    def progress() -> float:
        by_lines = sum(counter.lines.values()) / target
        return max(by_lines, (time.monotonic() - started) / cap)

    seed = random.Random(args.seed)
    limits: dict[Scenario, asyncio.Semaphore] = {wrong_password: asyncio.Semaphore(GUESSERS)}
    pools = [MESSAGE_SCENARIOS] * args.messages + [SESSION_SCENARIOS] * args.sessions
    workers = [
        asyncio.create_task(worker(fleet, random.Random(seed.random()), pool, tally, stop, limits))
        for pool in pools
    ]
    watchdog = asyncio.create_task(milter_watchdog(lab, lab_lock, tally))
    faults = asyncio.create_task(
        fault_windows(lab, lab_lock, progress, args.fault_seconds, tally, started)
    )
    last_report = started
    while progress() < 1.0:
        await asyncio.sleep(1.0)
        lines = counter.update()
        now = time.monotonic()
        if now - last_report >= 15:
            last_report = now
            elapsed = now - started
            accepted = tally.messages_accepted
            print(
                f"  {elapsed:5.0f} s  {lines:8d} lines ({lines / elapsed:5.0f}/s)"
                f"  {accepted:6d} messages ({accepted / elapsed:4.1f}/s)"
                f"  opendkim restarts {tally.milter_restarts}",
                flush=True,
            )
    generation_s = time.monotonic() - started
    generated_lines = counter.update()
    stop.set()
    await asyncio.gather(*workers)
    faults.cancel()
    await asyncio.gather(faults, return_exceptions=True)
    async with lab_lock:
        for name in lab.active_faults():
            await asyncio.to_thread(lab.heal_fault, name)
    drain_started = time.monotonic()
    while queued(lab) and time.monotonic() - drain_started < args.drain_seconds:
        await asyncio.sleep(1.0)
    left_queued = queued(lab)
    await asyncio.sleep(2.0)  # the last removed/disconnect lines
    watchdog.cancel()
    await asyncio.gather(watchdog, return_exceptions=True)
    final_lines = counter.update()
    by_scenario: dict[str, dict[str, int]] = {}
    for (scenario, outcome), count in sorted(tally.outcomes.items()):
        by_scenario.setdefault(scenario, {})[outcome] = count
    return {
        "target_lines": args.lines,
        "generation_seconds": round(generation_s, 1),
        "lines_at_stop": generated_lines,
        "lines": final_lines,
        "lines_by_instance": dict(counter.lines),
        "lines_per_second": round(generated_lines / generation_s, 1),
        "messages_accepted": tally.messages_accepted,
        "messages_per_second": round(tally.messages_accepted / generation_s, 2),
        "drain_seconds": round(time.monotonic() - drain_started, 1),
        "left_in_queues": left_queued,
        "opendkim_restarts": tally.milter_restarts,
        "faults": tally.faults,
        "sessions": by_scenario,
        "message_workers": args.messages,
        "session_workers": args.sessions,
        "seed": args.seed,
    }


# ----- output -----------------------------------------------------------------------------
def stamp_key(line: bytes) -> tuple[int, bytes]:
    """Orders Postfix's ``Mmm dd hh:mm:ss`` stamps (one run spans at most a year)."""
    return MONTHS.get(line[:3], 0), line[4:15]


def merged(paths: list[Path]) -> Iterator[bytes]:
    files = [path.open("rb") for path in paths]
    try:
        first = {stamp_key(f.readline())[0] for f in files} - {0}
        for f in files:
            f.seek(0)
        start = min(first, default=1)

        def key(line: bytes) -> tuple[int, bytes]:
            month, rest = stamp_key(line)
            return (month + 12 if month < start else month), rest

        yield from heapq.merge(*files, key=key)
    finally:
        for f in files:
            f.close()


def collect(lab: Lab, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for instance in POSTFIX_INSTANCES:
        copy = out / f"lab-{instance}.log"
        shutil.copyfile(lab.maillog(instance), copy)
        copies.append(copy)
    with (out / "lab-merged.log").open("wb") as target:
        target.writelines(merged(copies))
    return [*copies, out / "lab-merged.log"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=700_000, help="stop at this many lines")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="or after this long")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mailprobe-lablog"))
    parser.add_argument(
        "--net", default=os.environ.get("MAILPROBE_LAB_NET", "127.90.0.0/24"), help="lab /24"
    )
    parser.add_argument("--sessions", type=int, default=24, help="short sessions at once")
    parser.add_argument("--messages", type=int, default=8, help="message sessions at once")
    parser.add_argument("--fault-seconds", type=float, default=20.0)
    parser.add_argument("--drain-seconds", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    lab_dir = args.workdir / "lab"
    args.workdir.mkdir(parents=True, exist_ok=True)
    if lab_dir.exists():
        Lab(lab_dir).down()
        shutil.rmtree(lab_dir)
    lab = Lab(lab_dir, net=args.net)
    up = lab.up()
    print(f"lab up in {up.seconds:.1f} s: {lab_dir}, net {lab.net}", flush=True)
    try:
        summary = asyncio.run(generate(lab, args))
        files = collect(lab, args.workdir / "logs")
    finally:
        lab.down()
    summary["files"] = {str(p): p.stat().st_size for p in files}
    (args.workdir / "logs" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
