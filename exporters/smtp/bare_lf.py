"""The SMTP smuggling class (CVE-2023-51764 and kin): does a bare ``<LF>.<LF>`` end DATA?

A server that ends DATA at ``<LF>.<LF>`` (or ``<LF>.<CR><LF>``) while the sending side
only ends it at ``<CR><LF>.<CR><LF>`` lets a sender smuggle a second message, with a
forged envelope, through a relay that passes bare ``<LF>`` on. The probe writes one
message to a configured *sink* recipient (an address that discards mail) whose body
holds both bare sequences, then waits briefly:

- a 2xx reply before the proper ``<CR><LF>.<CR><LF>`` means the server ended DATA at a
  bare sequence and took the message: fail (a 4xx/5xx one is ambiguous: warn; hanging
  up is a refusal: ok);
- otherwise it sends the proper end; one reply then means the server read the bare
  sequences as text: ok (whether it took the message or refused it for its bare
  ``<LF>``, as Postfix's ``smtpd_forbid_bare_newline`` does). More replies than one mean
  the server had ended DATA at a bare sequence and answered slowly: fail.

The conversation up to DATA is the prober's session (``exporters/smtp/session.py``);
the message and the two short waits use its bounded reply reader directly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporters.result import CheckCannotRun, CheckFailure, Outcome, Phase
from exporters.smtp.probe_client import ProbeEndpoint, command, end_session, open_probe_session
from exporters.smtp.reply import ClosedByServer, Reply, ReplyError, read_reply
from exporters.smtp.security import EXPOSED
from exporters.smtp.session import SmtpSession

EARLY_REPLY_WAIT = 3.0
"""Seconds to wait for a reply the server should not send before the proper end."""
EXTRA_REPLY_WAIT = 1.0
"""Seconds to wait, after the proper end's reply, for one that should not come."""


@dataclass(frozen=True, slots=True)
class BareLfProbe:
    sink: str
    """Recipient that accepts and discards mail; the only one this probe writes to."""
    mail_from: str = ""
    """Envelope sender; "" is the null sender, which never gets a bounce."""


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
    session = await open_probe_session(endpoint, phase)
    where = endpoint.where

    async def expect(line: str, step: str, code: int) -> None:
        reply = await command(session, line, step)
        if reply.code // 100 != code // 100:
            await session.close()
            raise CheckCannotRun(
                f"{where} answered {line.split(':')[0]} with {reply} ({step}): the bare-LF "
                "probe needs a session that reaches DATA for the sink recipient"
            )

    await expect(f"MAIL FROM:<{probe.mail_from}>", "mail from", 250)
    await expect(f"RCPT TO:<{probe.sink}>", "rcpt to", 250)
    await expect("DATA", "data", 354)
    try:
        outcome = await _send(session, probe, endpoint, phase)
    except (ReplyError, OSError) as exc:
        await session.close()
        why = exc.reason if isinstance(exc, ReplyError) else "the connection broke"
        raise CheckFailure(f"{phase.current}: {where}: {why}") from None
    return outcome


async def _send(
    session: SmtpSession, probe: BareLfProbe, endpoint: ProbeEndpoint, phase: Phase
) -> Outcome:
    where = endpoint.where
    phase.enter("data with bare <LF>")
    session.transcript.client("<message with <LF>.<CR><LF> and <LF>.<LF> in its body>")
    session.writer.write(_message(probe))
    await session.writer.drain()
    try:
        early = await _reply_within(session, EARLY_REPLY_WAIT)
    except ClosedByServer:  # it hung up on the bare <LF>: refused, nothing smuggled
        return Outcome.ok(
            {EXPOSED: 0, "bare_lf_message_accepted": 0}, detail=session.transcript.render()
        )
    if early is not None:
        await session.close()
        if early.code >= 400:
            return Outcome.warn(
                f"{where} answered {early} before the proper end of DATA (data with bare "
                "<LF>): it refused the bare <LF>, or ended DATA at it and refused the "
                "message; the probe cannot tell which",
                {"bare_lf_message_accepted": 0},
                session.transcript.render(),
            )
        return _smuggling(where, early, session)
    phase.enter("end of data")
    session.transcript.client(".")
    session.writer.write(b"\r\n.\r\n")
    await session.writer.drain()
    final = await _reply_within(session, endpoint.step_timeout)
    if final is None:
        await session.close()
        raise CheckFailure(
            f"end of data: no answer from {where} within {endpoint.step_timeout:g} s"
        )
    try:
        extra = await _reply_within(session, EXTRA_REPLY_WAIT)
    except ReplyError:
        extra = None  # the server closed after its one reply: nothing more came
    if extra is not None:
        await session.close()
        return _smuggling(where, final, session, slow=True)
    await end_session(session)
    accepted = 200 <= final.code < 300
    return Outcome.ok(
        {EXPOSED: 0, "bare_lf_message_accepted": int(accepted)},
        detail=session.transcript.render(),
    )


async def _reply_within(session: SmtpSession, seconds: float) -> Reply | None:
    try:
        async with asyncio.timeout(seconds):
            return await read_reply(session.reader, session.transcript)
    except TimeoutError:
        return None


def _smuggling(where: str, reply: Reply, session: SmtpSession, *, slow: bool = False) -> Outcome:
    when = "answered after the proper end, then again" if slow else "answered before the proper end"
    return Outcome.fail(
        f"{where} ended DATA at a bare <LF>.<LF> or <LF>.<CR><LF> ({when}: {reply}) "
        "(data with bare <LF>): SMTP smuggling (CVE-2023-51764) is possible",
        {EXPOSED: 1},
        session.transcript.render(),
    )
