"""The SMTP smuggling class (CVE-2023-51764 and kin): does a bare ``<LF>.<LF>`` end DATA?

A server that ends DATA at ``<LF>.<LF>`` (or ``<LF>.<CR><LF>``) while the sending side
only ends it at ``<CR><LF>.<CR><LF>`` lets a sender smuggle a second message, with a
forged envelope, through a relay that passes bare ``<LF>`` on. The probe writes one
message to a configured *sink* recipient (an address that discards mail) whose body
holds both bare sequences, then waits briefly:

- a reply before the proper ``<CR><LF>.<CR><LF>`` means the server ended DATA at a bare
  sequence: fail;
- otherwise it sends the proper end; one reply then means the server read the bare
  sequences as text: ok (whether it took the message or refused it for its bare
  ``<LF>``, as Postfix's ``smtpd_forbid_bare_newline`` does). More replies than one mean
  the server had ended DATA at a bare sequence and answered slowly: fail.

aiosmtplib drops bytes that arrive while no reply is awaited, which is exactly what
this probe must see, so it speaks over asyncio streams with its own bounded reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from exporters.result import CheckCannotRun, CheckFailure, Outcome, Phase
from exporters.smtp.probe_client import ProbeEndpoint, opportunistic_context
from exporters.smtp.security import EXPOSED

MAX_REPLY_LINES = 100
MAX_LINE_BYTES = 2048
EARLY_REPLY_WAIT = 3.0
"""Seconds to wait for a reply the server should not send before the proper end."""
EXTRA_REPLY_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class BareLfProbe:
    sink: str
    """Recipient that accepts and discards mail; the only one this probe writes to."""
    mail_from: str = ""
    """Envelope sender; "" is the null sender, which never gets a bounce."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class _Session:
    def __init__(
        self, endpoint: ProbeEndpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.writer = writer

    async def reply(self, phase: str, timeout: float | None = None) -> Reply:
        wait = self.endpoint.step_timeout if timeout is None else timeout
        lines: list[bytes] = []
        async with asyncio.timeout(wait):
            while len(lines) < MAX_REPLY_LINES:
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    raise CheckFailure(
                        f"{self.endpoint.where} sent a reply line over {MAX_LINE_BYTES} "
                        f"bytes in {phase}"
                    ) from None
                except asyncio.IncompleteReadError:
                    raise CheckFailure(
                        f"{self.endpoint.where} closed the connection in {phase}"
                    ) from None
                lines.append(line)
                if line[3:4] != b"-":
                    break
            else:
                raise CheckFailure(
                    f"{self.endpoint.where} sent a reply over {MAX_REPLY_LINES} lines in {phase}"
                )
        code_text = lines[-1][:3]
        if not code_text.isdigit():
            raise CheckFailure(f"{self.endpoint.where} sent a line that is not SMTP in {phase}")
        text = " ".join(line[4:].decode("utf-8", "replace").strip() for line in lines)
        return Reply(int(code_text), text)

    async def command(self, line: str, phase: str) -> Reply:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply(phase)


def _message(probe: BareLfProbe) -> bytes:
    sender = probe.mail_from or "mailprobe@invalid"
    return (
        f"From: <{sender}>\r\nTo: <{probe.sink}>\r\n"
        "Subject: mailprobe bare LF probe (CVE-2023-51764); discard\r\n\r\n"
        "Text before a bare <LF>.<CR><LF>\n.\r\n"
        "Text before a bare <LF>.<LF>\n.\n"
        "Text after both.\r\n"
    ).encode()


async def probe_bare_lf(endpoint: ProbeEndpoint, probe: BareLfProbe, phase: Phase) -> Outcome:
    session = await _open(endpoint, phase)
    try:
        return await _exchange(session, probe, phase)
    except TimeoutError:
        raise CheckFailure(
            f"no answer from {endpoint.where} within {endpoint.step_timeout:g} s in {phase.current}"
        ) from None
    except OSError as exc:
        raise CheckFailure(
            f"network error with {endpoint.where} in {phase.current}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    finally:
        session.writer.close()


async def _open(endpoint: ProbeEndpoint, phase: Phase) -> _Session:
    phase.enter("connect and banner")
    implicit = endpoint.tls == "implicit"
    local = (endpoint.source_address, 0) if endpoint.source_address else None
    try:
        async with asyncio.timeout(endpoint.step_timeout):
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=opportunistic_context() if implicit else None,
                server_hostname=endpoint.server_name or endpoint.host if implicit else None,
                local_addr=local,
                limit=MAX_LINE_BYTES,
            )
    except TimeoutError:
        raise CheckFailure(f"no answer from {endpoint.where} in {phase.current}") from None
    except ConnectionRefusedError:
        raise CheckFailure(f"connection refused: {endpoint.where} in {phase.current}") from None
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailure(
            f"cannot connect to {endpoint.where} in {phase.current}: "
            f"{getattr(exc, 'reason', None) or exc.strerror or type(exc).__name__}"
        ) from None
    return _Session(endpoint, reader, writer)


async def _exchange(session: _Session, probe: BareLfProbe, phase: Phase) -> Outcome:
    where = session.endpoint.where
    endpoint = session.endpoint

    def expect(reply: Reply, ok: int, what: str) -> None:
        if reply.code // 100 != ok // 100:
            raise CheckCannotRun(
                f"{where} answered {what} with {reply} ({phase.current}): the bare-LF probe "
                "needs a session that reaches DATA for the sink recipient"
            )

    expect(await session.reply(phase.current), 220, "the connection")
    phase.enter("ehlo")
    ehlo = await session.command(f"EHLO {endpoint.ehlo_name}", phase.current)
    expect(ehlo, 250, "EHLO")
    if endpoint.tls == "starttls" and "STARTTLS" in ehlo.text.upper().split():
        phase.enter("starttls")
        expect(await session.command("STARTTLS", phase.current), 220, "STARTTLS")
        async with asyncio.timeout(endpoint.step_timeout):
            await session.writer.start_tls(
                opportunistic_context(), server_hostname=endpoint.server_name or endpoint.host
            )
        phase.enter("ehlo after starttls")
        expect(await session.command(f"EHLO {endpoint.ehlo_name}", phase.current), 250, "EHLO")
    phase.enter("mail from")
    expect(await session.command(f"MAIL FROM:<{probe.mail_from}>", phase.current), 250, "MAIL")
    phase.enter("rcpt to")
    expect(await session.command(f"RCPT TO:<{probe.sink}>", phase.current), 250, "RCPT")
    phase.enter("data")
    expect(await session.command("DATA", phase.current), 354, "DATA")
    phase.enter("data with bare <LF>")
    session.writer.write(_message(probe))
    await session.writer.drain()
    try:
        early: Reply | None = await session.reply(phase.current, EARLY_REPLY_WAIT)
    except TimeoutError:
        early = None
    if early is not None:
        return _smuggling(where, early)
    phase.enter("end of data")
    session.writer.write(b"\r\n.\r\n")
    await session.writer.drain()
    final = await session.reply(phase.current)
    try:
        extra: Reply | None = await session.reply("after end of data", EXTRA_REPLY_WAIT)
    except (TimeoutError, CheckFailure):
        extra = None
    if extra is not None:
        return _smuggling(where, final, slow=True)
    with contextlib.suppress(TimeoutError, CheckFailure, OSError):
        await session.command("QUIT", "quit")
    accepted = 200 <= final.code < 300
    return Outcome.ok(
        {EXPOSED: 0, "bare_lf_message_accepted": int(accepted)},
        detail=f"{where}: bare <LF> sequences read as text; the proper end got {final}",
    )


def _smuggling(where: str, reply: Reply, *, slow: bool = False) -> Outcome:
    when = "answered after the proper end, then again" if slow else "answered before the proper end"
    return Outcome.fail(
        f"{where} ended DATA at a bare <LF>.<LF> or <LF>.<CR><LF> ({when}: {reply}) "
        "(data with bare <LF>): SMTP smuggling (CVE-2023-51764) is possible",
        {EXPOSED: 1},
    )
