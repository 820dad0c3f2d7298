"""A deterministic synthetic mail.log of an internet-facing MX with submission.

No large real log may be shipped here, so the benchmark writes one: the line shapes are
the real ones collected in ``shared/data/postfix`` and research §d, the mix follows the
real pixelpark MX log measured in the research (about half postscreen, a fifth dnsblog,
a few percent message traffic), queue IDs are Postfix long IDs, and bot sessions carry
raw non-UTF-8 client bytes as Postfix writes them. ``--format bsd --ascii`` gives the
variant every competitor can read (mtail stops at the first invalid UTF-8 byte and its
stock program cannot parse RFC 3339 stamps).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

Event = tuple[float, str, int, bytes]
"""(seconds since start, program, pid, message)."""

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjkmnpqrstvwxy"


def _enc(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


PIDS = {
    "postfix/postscreen": 3163107,
    "postfix/dnsblog": 301152,
    "postfix/tlsproxy": 301555,
    "postfix/smtpd": 297535,
    "postfix/10025/smtpd": 302614,
    "postfix/submission/smtpd": 303987,
    "postfix/cleanup": 302604,
    "postfix/qmgr": 3163066,
    "postfix/amavis/smtp": 302609,
    "postfix/pipe": 302615,
    "postfix/smtp": 374637,
    "postfix/lmtp": 302700,
    "postfix/bounce": 505059,
    "postfix/anvil": 3163161,
    "amavis": 237978,
}
PS = "postfix/postscreen"
SMTPD = "postfix/smtpd"
SUB = "postfix/submission/smtpd"
QMGR = "postfix/qmgr"
CLEANUP = "postfix/cleanup"
MX_ADDRESS = "[188.34.187.246]:25"
TLS13 = (
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256"
)


def ev(t: float, program: str, message: str | bytes) -> Event:
    data = message if isinstance(message, bytes) else message.encode()
    return t, program, PIDS[program], data


class MailLog:
    def __init__(self, seed: int, ascii_only: bool) -> None:
        self.rnd = random.Random(seed)
        self.ascii_only = ascii_only
        self.counter = 0

    def qid(self, t: float) -> str:
        self.counter += 1
        seconds = _enc(int(1_678_700_000 + t), 6)
        return seconds + _enc(int(t * 1e4) % 10_000, 4) + "z" + _enc(self.counter, 4)

    def ip(self) -> str:
        r = self.rnd
        return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def garbage(self) -> bytes:
        if self.ascii_only:
            return b"o\\372\\300\\276\\r\\n"
        return bytes([0x6F, 0xFA, 0xC0, 0xBE, 0x20, 0x16])

    # ---- sessions -------------------------------------------------------------

    def probe(self, t: float) -> list[Event]:
        """A monitoring host that connects every minute and only says EHLO."""
        peer = f"[185.48.118.128]:{self.rnd.randint(1024, 65535)}"
        host = "host1.example.net[185.48.118.128]"
        return [
            ev(t, PS, f"CONNECT from {peer} to {MX_ADDRESS}"),
            ev(t + 0.1, PS, f"PASS OLD {peer}"),
            ev(t + 0.11, SMTPD, f"connect from {host}"),
            ev(t + 0.15, SMTPD, f"Anonymous TLS connection established from {host}: {TLS13}"),
            ev(t + 0.16, SMTPD, f"disconnect from {host} ehlo=2 starttls=1 quit=1 commands=4"),
        ]

    def bot(self, t: float) -> list[Event]:
        """A listed client that postscreen keeps away (most of a real MX log)."""
        r = self.rnd
        ip = self.ip()
        peer = f"[{ip}]:{r.randint(1024, 65535)}"
        out = [ev(t, PS, f"CONNECT from {peer} to {MX_ADDRESS}")]
        listings = r.choice((1, 2, 2, 3, 3, 4))
        for i in range(listings):
            zone = "zen.spamhaus.org" if i < 3 else "b.barracudacentral.org"
            code = r.choice((2, 3, 4, 11))
            out.append(
                ev(
                    t + 0.01 * (i + 1),
                    "postfix/dnsblog",
                    f"addr {ip} listed by domain {zone} as 127.0.0.{code}",
                )
            )
        rank = f"DNSBL rank {listings + 1} for {peer}"
        ending = r.random()
        if ending < 0.45:
            out += [
                ev(t + 0.2, PS, f"PREGREET 11 after 0.23 from {peer}: EHLO User\\r\\n"),
                ev(t + 0.21, PS, rank),
                ev(t + 0.6, PS, f"DISCONNECT {peer}"),
            ]
        elif ending < 0.8:
            cipher = "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"
            out += [
                ev(t + 6, PS, rank),
                ev(t + 6.5, "postfix/tlsproxy", f"CONNECT from {peer}"),
                ev(
                    t + 7,
                    "postfix/tlsproxy",
                    f"Anonymous TLS connection established from {peer}: {cipher}",
                ),
                ev(t + 8, "postfix/tlsproxy", f"DISCONNECT {peer}"),
                ev(t + 8, PS, f"HANGUP after 2.2 from {peer} in tests after SMTP handshake"),
                ev(t + 8, PS, f"DISCONNECT {peer}"),
            ]
        elif ending < 0.92:
            after = f"from {peer} after ".encode() + self.garbage()
            out += [
                ev(t + 3, PS, rank),
                ev(t + 3, PS, b"BARE NEWLINE " + after),
                ev(t + 3, PS, b"COMMAND PIPELINING " + after + b": \\26"),
                ev(t + 3, PS, f"HANGUP after 0 from {peer} in tests after SMTP handshake"),
                ev(t + 3, PS, f"DISCONNECT {peer}"),
            ]
        else:
            out += [
                ev(t + 6, PS, rank),
                ev(
                    t + 7,
                    PS,
                    f"NOQUEUE: reject: RCPT from {peer}: 550 5.7.1 Service unavailable; client"
                    f" [{ip}] blocked using zen.spamhaus.org; from=<spam@example.com>,"
                    " to=<user@example.org>, proto=ESMTP, helo=<bot>",
                ),
                ev(t + 7.5, PS, f"DISCONNECT {peer}"),
            ]
        return out

    def inbound(self, t: float) -> list[Event]:
        """A message through postscreen, smtpd, amavis and the 10025 re-injection to Dovecot."""
        r = self.rnd
        ip = self.ip()
        peer = f"[{ip}]:{r.randint(1024, 65535)}"
        client = f"mail{r.randint(1, 999)}.example.com[{ip}]"
        first, second = self.qid(t), self.qid(t + 2)
        mid = f"<{r.getrandbits(64):x}@example.com>"
        size = r.randint(2_000, 400_000)
        rcpt = f"user{r.randint(1, 40):02d}@example.org"
        local = "localhost[127.0.0.1]"
        inject = "postfix/10025/smtpd"
        stats = "mail=1 rcpt=1 data=1 quit=1"
        return [
            ev(t, PS, f"CONNECT from {peer} to {MX_ADDRESS}"),
            ev(t + 0.1, PS, f"PASS {r.choice(('OLD', 'NEW'))} {peer}"),
            ev(t + 0.2, SMTPD, f"connect from {client}"),
            ev(t + 0.3, SMTPD, f"Trusted TLS connection established from {client}: {TLS13}"),
            ev(t + 0.4, SMTPD, f"{first}: client={client}"),
            ev(t + 0.5, CLEANUP, f"{first}: message-id={mid}"),
            ev(t + 0.6, SMTPD, f"disconnect from {client} ehlo=2 starttls=1 {stats} commands=7"),
            ev(
                t + 0.6,
                QMGR,
                f"{first}: from=<news@example.com>, size={size}, nrcpt=1 (queue active)",
            ),
            ev(t + 2.0, inject, f"connect from {local}"),
            ev(t + 2.0, inject, f"{second}: client={local}"),
            ev(t + 2.0, CLEANUP, f"{second}: message-id={mid}"),
            ev(t + 2.0, inject, f"disconnect from {local} ehlo=1 {stats} commands=5"),
            ev(
                t + 2.0,
                QMGR,
                f"{second}: from=<news@example.com>, size={size + 900}, nrcpt=1 (queue active)",
            ),
            ev(
                t + 2.01,
                "amavis",
                f"(237978-11) Passed CLEAN {{RelayedInbound}}, {peer} <news@example.com> ->"
                f" <{rcpt}>, Queue-ID: {first}, Message-ID: {mid}, Hits: 2.913, size: {size},"
                f" queued_as: {second}, 2131 ms",
            ),
            ev(
                t + 2.02,
                "postfix/amavis/smtp",
                f"{first}: to=<{rcpt}>, relay=127.0.0.1[127.0.0.1]:10024, delay=2.4,"
                " delays=0.29/0.02/0.01/2.1, dsn=2.0.0, status=sent (250 2.0.0 from"
                f" MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {second})",
            ),
            ev(t + 2.02, QMGR, f"{first}: removed"),
            ev(
                t + 2.1,
                "postfix/pipe",
                f"{second}: to=<{rcpt}>, relay=dovecot, delay=0.12, delays=0.01/0.01/0/0.1,"
                " dsn=2.0.0, status=sent (delivered via dovecot service)",
            ),
            ev(t + 2.1, QMGR, f"{second}: removed"),
        ]

    def rejected(self, t: float) -> list[Event]:
        r = self.rnd
        ip = self.ip()
        peer = f"[{ip}]:{r.randint(1024, 65535)}"
        client = r.choice(("unknown", f"host-{ip.replace('.', '-')}.example.net")) + f"[{ip}]"
        reply = r.choice(
            (
                "450 4.1.8 <bob@nowhere.invalid>: Sender address rejected: Domain not found",
                "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in"
                " virtual mailbox table",
                "554 5.7.1 <x@example.com>: Relay access denied",
                f"450 4.7.1 Client host rejected: cannot find your hostname, [{ip}]",
                "504 5.5.2 <root@box>: Helo command rejected: need fully-qualified hostname",
            )
        )
        return [
            ev(t, PS, f"CONNECT from {peer} to {MX_ADDRESS}"),
            ev(t + 0.1, PS, f"PASS NEW {peer}"),
            ev(t + 0.2, SMTPD, f"connect from {client}"),
            ev(
                t + 0.5,
                SMTPD,
                f"NOQUEUE: reject: RCPT from {client}: {reply}; from=<bob@nowhere.invalid>"
                " to=<nobody@example.org> proto=ESMTP helo=<box>",
            ),
            ev(
                t + 0.9,
                SMTPD,
                f"disconnect from {client} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
            ),
        ]

    def dropped(self, t: float) -> list[Event]:
        r = self.rnd
        client = f"unknown[{self.ip()}]"
        stage = r.choice(("CONNECT", "EHLO", "STARTTLS", "AUTH", "DATA"))
        verb = r.choice(("lost connection", "timeout"))
        out = [ev(t, SMTPD, f"connect from {client}")]
        if r.random() < 0.3:
            address = client[8:-1]
            out.append(
                ev(
                    t + 0.1,
                    SMTPD,
                    f"warning: hostname bad.example does not resolve to address {address}",
                )
            )
        if r.random() < 0.2:
            out.append(
                ev(t + 0.2, SMTPD, f"warning: non-SMTP command from {client}: GET / HTTP/1.1")
            )
        out += [
            ev(t + 5, SMTPD, f"{verb} after {stage} from {client}"),
            ev(t + 5, SMTPD, f"disconnect from {client} ehlo=1 commands=1"),
        ]
        return out

    def sasl_failure(self, t: float) -> list[Event]:
        client = f"unknown[{self.ip()}]"
        return [
            ev(t, SUB, f"connect from {client}"),
            ev(t + 1, SUB, f"warning: {client}: SASL LOGIN authentication failed: UGFzc3dvcmQ6"),
            ev(t + 1.2, SUB, f"lost connection after AUTH from {client}"),
            ev(t + 1.2, SUB, f"disconnect from {client} ehlo=1 auth=0/1 commands=1/2"),
        ]

    def outbound(self, t: float) -> list[Event]:
        """A user's message through submission to a remote MX: sent, deferred or bounced."""
        r = self.rnd
        qid = self.qid(t)
        client = "unknown[2a02:8109:b240:41c8::15]"
        dest = r.choice(("gmx.de", "web.de", "gmail.com", "example.net", "outlook.com"))
        rcpt = f"friend{r.randint(1, 99)}@{dest}"
        mx = f"mx{r.randint(1, 4)}.{dest}[{self.ip()}]"
        trust = r.choice(("Trusted", "Verified", "Untrusted"))
        size = r.randint(800, 90000)
        stats = "ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8"
        status = f"{qid}: to=<{rcpt}>, relay={mx}:25,"
        out = [
            ev(t, SUB, f"connect from {client}"),
            ev(t + 0.1, SUB, f"Anonymous TLS connection established from {client}: {TLS13}"),
            ev(
                t + 0.3,
                SUB,
                f"{qid}: client={client}, sasl_method=PLAIN, sasl_username=a@example.org",
            ),
            ev(t + 0.4, CLEANUP, f"{qid}: message-id=<{r.getrandbits(64):x}@example.org>"),
            ev(t + 0.5, SUB, f"disconnect from {client} {stats}"),
            ev(t + 0.5, QMGR, f"{qid}: from=<a@example.org>, size={size}, nrcpt=1 (queue active)"),
            ev(t + 0.8, "postfix/smtp", f"{trust} TLS connection established to {mx}:25: {TLS13}"),
        ]
        outcome = r.random()
        if outcome < 0.85:
            out.append(
                ev(
                    t + 1.0,
                    "postfix/smtp",
                    f"{status} delay=0.51, delays=0.02/0.03/0.32/0.14, dsn=2.0.0, status=sent"
                    " (250 Requested mail action okay, completed: id=1MBkYe-1poErv1HjA)",
                )
            )
        elif outcome < 0.95:
            out += [
                ev(
                    t + 1.0,
                    "postfix/smtp",
                    f"{status} delay=6.2, delays=0.1/0/5.2/0.87, dsn=4.7.1, status=deferred"
                    f" (host {mx} said: 450 4.7.1 Greylisted, try again later (in reply to RCPT"
                    " TO command))",
                ),
                ev(
                    t + 400,
                    "postfix/smtp",
                    f"{status} delay=400, delays=399/0.01/0.3/0.2, dsn=2.0.0, status=sent"
                    " (250 2.0.0 Ok: queued as 4QxyzABC)",
                ),
            ]
        else:
            notice = self.qid(t + 1.1)
            out += [
                ev(
                    t + 1.0,
                    "postfix/smtp",
                    f"{status} delay=1.9, delays=0.05/0/1.1/0.71, dsn=5.1.1, status=bounced"
                    f" (host {mx} said: 550 5.1.1 User unknown (in reply to RCPT TO command))",
                ),
                ev(t + 1.1, CLEANUP, f"{notice}: message-id=<{notice}@mx1.example.org>"),
                ev(t + 1.1, "postfix/bounce", f"{qid}: sender non-delivery notification: {notice}"),
                ev(t + 1.1, QMGR, f"{notice}: from=<>, size=3200, nrcpt=1 (queue active)"),
                ev(
                    t + 1.2,
                    "postfix/lmtp",
                    f"{notice}: to=<a@example.org>, relay=mx.example.org[private/dovecot-lmtp],"
                    " delay=0.1, delays=0/0/0.05/0.05, dsn=2.0.0, status=sent (250 2.0.0"
                    " <a@example.org> qYyyBMsl9FRuZQAAA15QOA Saved)",
                ),
                ev(t + 1.2, QMGR, f"{notice}: removed"),
            ]
        out.append(ev(t + 1.3, QMGR, f"{qid}: removed"))
        return out

    def anvil(self, t: float) -> list[Event]:
        key = "for (smtpd:185.48.118.128) at Mar 13 23:57:31"
        return [
            ev(t, "postfix/anvil", f"statistics: max connection rate 1/60s {key}"),
            ev(t, "postfix/anvil", f"statistics: max connection count 1 {key}"),
            ev(t, "postfix/anvil", "statistics: max cache size 2 at Mar 13 23:57:31"),
        ]


def generate(
    lines: int, fmt: str = "rfc3339", ascii_only: bool = False, seed: int = 5
) -> Iterator[bytes]:
    """Yield ``lines`` log lines (with newline), oldest first."""
    log = MailLog(seed, ascii_only)
    mix: list[tuple[float, Callable[[float], list[Event]]]] = [
        (0.46, log.bot),
        (0.16, log.probe),
        (0.05, log.inbound),
        (0.06, log.rejected),
        (0.09, log.dropped),
        (0.03, log.sasl_failure),
        (0.03, log.outbound),
        (0.002, log.anvil),
    ]
    weights = [w for w, _ in mix]
    makers = [m for _, m in mix]
    start = datetime(2023, 3, 14, tzinfo=UTC)
    tz = timedelta(hours=1)
    pending: list[Event] = []
    t = 0.0
    emitted = 0
    while emitted < lines:
        t += log.rnd.expovariate(1 / 12.0)
        pending.extend(log.rnd.choices(makers, weights)[0](t))
        pending.sort(key=lambda e: e[0])
        while pending and pending[0][0] <= t and emitted < lines:
            when, program, pid, message = pending.pop(0)
            local = start + tz + timedelta(seconds=when)
            if fmt == "bsd":
                stamp = f"{local:%b} {local.day:2d} {local:%H:%M:%S}"
            else:
                stamp = local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+01:00"
            yield f"{stamp} mx1 {program}[{pid}]: ".encode() + message + b"\n"
            emitted += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("--format", choices=("rfc3339", "bsd"), default="rfc3339")
    parser.add_argument("--ascii", action="store_true", help="escape raw client bytes")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    started = time.monotonic()
    out = sys.stdout.buffer
    for line in generate(args.lines, args.format, args.ascii, args.seed):
        out.write(line)
    print(f"wrote {args.lines} lines in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
