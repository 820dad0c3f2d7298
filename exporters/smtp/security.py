"""Security probes that never send a message anywhere it could be delivered.

- :func:`probe_auth_before_tls`: the EHLO reply before STARTTLS must not list AUTH
  (RFC 3207 and RFC 8314: passwords only inside TLS).
- :func:`probe_plaintext_auth`: ``AUTH PLAIN`` before STARTTLS must be refused. The probe
  sends the command without credentials; a server that answers 334 (go ahead) gets ``*``,
  which cancels the exchange (RFC 4954 4). No credential is ever sent.
- :func:`probe_open_relay`: as an outside client, ``MAIL FROM`` and ``RCPT TO`` an address
  in a foreign domain; the server must refuse the recipient. Then ``RSET``, never
  ``DATA``: even an open relay gets nothing to relay.

The bare ``<LF>`` probe needs the raw byte exchange and lives in ``bare_lf.py``.
Each probe's outcome carries the fact ``security_exposed``: 1 when the weakness was
seen, 0 when the probe showed it absent, missing when the probe could not tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiosmtplib.errors import SMTPException

from exporters.result import CheckCannotRun, CheckFailure, Outcome, Phase
from exporters.smtp.probe_client import ProbeEndpoint, close_client, failure_reason, open_client

EXPOSED = "security_exposed"
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.\d{1,3}\b")


async def probe_auth_before_tls(endpoint: ProbeEndpoint, phase: Phase) -> Outcome:
    _needs_plaintext_phase(endpoint)
    client = await open_client(endpoint, phase, starttls=False)
    try:
        mechanisms = client.esmtp_extensions.get("auth", "").split()
        offered = client.supports_extension("auth")
    finally:
        await close_client(client)
    if offered:
        listed = " ".join(m.upper() for m in mechanisms) or "(no mechanism)"
        return Outcome.fail(
            f"{endpoint.where} lists AUTH {listed} in its EHLO reply before STARTTLS "
            "(ehlo): clients may send passwords in the clear",
            {EXPOSED: 1},
        )
    return Outcome.ok({EXPOSED: 0}, detail=f"{endpoint.where}: no AUTH in EHLO before STARTTLS")


async def probe_plaintext_auth(endpoint: ProbeEndpoint, phase: Phase) -> Outcome:
    _needs_plaintext_phase(endpoint)
    client = await open_client(endpoint, phase, starttls=False)
    try:
        phase.enter("auth before starttls")
        try:
            reply = await client.execute_command(b"AUTH", b"PLAIN")
            if reply.code == 334:
                phase.enter("auth cancel")
                await client.execute_command(b"*")
        except SMTPException as exc:
            raise CheckFailure(failure_reason(exc, endpoint, phase.current)) from None
    finally:
        await close_client(client)
    said = f"{reply.code} {reply.message}".strip()
    if reply.code == 334 or 200 <= reply.code < 300:
        return Outcome.fail(
            f"{endpoint.where} answered AUTH PLAIN before STARTTLS with {said} "
            "(auth before starttls): it takes passwords in the clear",
            {EXPOSED: 1},
        )
    if 400 <= reply.code < 500:
        return Outcome.warn(
            f"{endpoint.where} deferred AUTH PLAIN before STARTTLS with {said} "
            "(auth before starttls): neither refused nor accepted"
        )
    return Outcome.ok({EXPOSED: 0}, detail=f"AUTH PLAIN before STARTTLS refused: {said}")


def _needs_plaintext_phase(endpoint: ProbeEndpoint) -> None:
    if endpoint.tls == "implicit":
        raise CheckCannotRun(
            f"{endpoint.where} speaks TLS from the first byte: there is no phase before TLS"
        )


@dataclass(frozen=True, slots=True)
class RelayProbe:
    mail_from: str
    """Sender of an outside domain ("" for the null sender)."""
    rcpt_to: str
    """Recipient in a foreign domain the server must not relay to."""


async def probe_open_relay(endpoint: ProbeEndpoint, relay: RelayProbe, phase: Phase) -> Outcome:
    client = await open_client(endpoint, phase, starttls=True)
    try:
        phase.enter("mail from")
        mail = await client.execute_command(f"MAIL FROM:<{relay.mail_from}>".encode())
        rcpt = None
        if 200 <= mail.code < 300:
            phase.enter("rcpt to")
            rcpt = await client.execute_command(f"RCPT TO:<{relay.rcpt_to}>".encode())
            phase.enter("rset")
            await client.execute_command(b"RSET")
    except SMTPException as exc:
        await close_client(client)
        raise CheckFailure(failure_reason(exc, endpoint, phase.current)) from None
    await close_client(client)
    if rcpt is None:
        return Outcome.warn(
            f"{endpoint.where} refused MAIL FROM:<{relay.mail_from}> with {mail.code} "
            f"{mail.message} (mail from): relaying was not tested; configure another mail_from"
        )
    said = f"{rcpt.code} {rcpt.message}"
    if 200 <= rcpt.code < 300:
        return Outcome.fail(
            f"open relay: {endpoint.where} accepted RCPT TO:<{relay.rcpt_to}> from an outside "
            f"client with {said} (rcpt to); the probe sent RSET, no DATA",
            {EXPOSED: 1},
        )
    if 400 <= rcpt.code < 500:
        return Outcome.warn(
            f"{endpoint.where} deferred RCPT TO:<{relay.rcpt_to}> with {said} (rcpt to): "
            "relaying neither refused nor accepted"
        )
    enhanced = _ENHANCED.match(rcpt.message)
    if enhanced is not None and enhanced.group(2) == "1":
        return Outcome.warn(
            f"{endpoint.where} refused RCPT TO:<{relay.rcpt_to}> for its address ({said}), "
            "not as relaying (rcpt to): use a recipient in a domain that exists"
        )
    return Outcome.ok({EXPOSED: 0}, detail=f"RCPT TO:<{relay.rcpt_to}> refused: {said}")
