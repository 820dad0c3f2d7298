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

from exporters.result import CheckCannotRun, Outcome, Phase
from exporters.smtp.probe_client import ProbeEndpoint, command, end_session, open_probe_session

EXPOSED = "security_exposed"
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.\d{1,3}\b")


async def probe_auth_before_tls(endpoint: ProbeEndpoint, phase: Phase) -> Outcome:
    _needs_plaintext_phase(endpoint)
    session = await open_probe_session(endpoint, phase, tls="none")
    ehlo = session.ehlo
    await end_session(session)
    transcript = session.transcript.render()
    if ehlo is not None and "auth" in ehlo.extensions:
        listed = " ".join(ehlo.auth_mechanisms) or "(no mechanism)"
        return Outcome.fail(
            f"{endpoint.where} lists AUTH {listed} in its EHLO reply before STARTTLS "
            "(ehlo): clients may send passwords in the clear",
            {EXPOSED: 1},
            transcript,
        )
    return Outcome.ok({EXPOSED: 0}, detail=transcript)


async def probe_plaintext_auth(endpoint: ProbeEndpoint, phase: Phase) -> Outcome:
    _needs_plaintext_phase(endpoint)
    session = await open_probe_session(endpoint, phase, tls="none")
    reply = await command(session, "AUTH PLAIN", "auth before starttls")
    if reply.code == 334:
        await command(session, "*", "auth cancel")
    await end_session(session)
    transcript = session.transcript.render()
    if reply.code == 334 or 200 <= reply.code < 300:
        return Outcome.fail(
            f"{endpoint.where} answered AUTH PLAIN before STARTTLS with {reply} "
            "(auth before starttls): it takes passwords in the clear",
            {EXPOSED: 1},
            transcript,
        )
    if 400 <= reply.code < 500:
        return Outcome.warn(
            f"{endpoint.where} deferred AUTH PLAIN before STARTTLS with {reply} "
            "(auth before starttls): neither refused nor accepted",
            detail=transcript,
        )
    return Outcome.ok({EXPOSED: 0}, detail=transcript)


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
    session = await open_probe_session(endpoint, phase)
    mail = await command(session, f"MAIL FROM:<{relay.mail_from}>", "mail from")
    rcpt = None
    if 200 <= mail.code < 300:
        rcpt = await command(session, f"RCPT TO:<{relay.rcpt_to}>", "rcpt to")
        await command(session, "RSET", "rset")
    await end_session(session)
    transcript = session.transcript.render()
    if rcpt is None:
        return Outcome.warn(
            f"{endpoint.where} refused MAIL FROM:<{relay.mail_from}> with {mail} "
            "(mail from): relaying was not tested; configure another mail_from",
            detail=transcript,
        )
    if 200 <= rcpt.code < 300:
        return Outcome.fail(
            f"open relay: {endpoint.where} accepted RCPT TO:<{relay.rcpt_to}> from an outside "
            f"client with {rcpt} (rcpt to); the probe sent RSET, no DATA",
            {EXPOSED: 1},
            transcript,
        )
    if 400 <= rcpt.code < 500:
        return Outcome.warn(
            f"{endpoint.where} deferred RCPT TO:<{relay.rcpt_to}> with {rcpt} (rcpt to): "
            "relaying neither refused nor accepted",
            detail=transcript,
        )
    enhanced = _ENHANCED.match(rcpt.text)
    if enhanced is not None and enhanced.group(2) == "1":
        return Outcome.warn(
            f"{endpoint.where} refused RCPT TO:<{relay.rcpt_to}> for its address ({rcpt}), "
            "not as relaying (rcpt to): use a recipient in a domain that exists",
            detail=transcript,
        )
    return Outcome.ok({EXPOSED: 0}, detail=transcript)
