"""A connected SMTP session for the security probes, from the prober's session code.

The probes continue the conversation that :func:`exporters.smtp.session.open_session`
starts (connect, banner, EHLO, STARTTLS or the implicit handshake, EHLO again), with
its bounded reply reader, its phase timeouts, its reasons and its transcript. TLS is
opportunistic there (nothing verified): judging certificates is the session check's
job, a probe only needs the conversation an outside MTA would have.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporters.result import CheckFailure, Phase
from exporters.smtp.reply import Reply
from exporters.smtp.session import (
    PhaseFailure,
    SmtpEndpoint,
    SmtpSession,
    TlsMode,
    open_session,
    quit_session,
)


@dataclass(frozen=True, slots=True)
class ProbeEndpoint:
    host: str
    port: int
    tls: TlsMode = "starttls"
    server_name: str | None = None
    ehlo_name: str = "mailprobe.invalid"
    step_timeout: float = 10.0
    source_address: str | None = None
    """Local address to connect from, so the server sees an outside client."""

    @property
    def where(self) -> str:
        """``mx.example.org:25 (192.0.2.1)``: the name people know, and what was dialled."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.server_name and self.server_name != self.host:
            return f"{self.server_name}:{self.port} ({self.host})"
        return f"{host}:{self.port}"

    def session_endpoint(self, tls: TlsMode | None = None) -> SmtpEndpoint:
        return SmtpEndpoint(
            address=self.host,
            port=self.port,
            tls=self.tls if tls is None else tls,
            tls_name=self.server_name,
            ehlo_name=self.ehlo_name,
            phase_timeout=self.step_timeout,
            source_address=self.source_address,
        )


async def open_probe_session(
    endpoint: ProbeEndpoint, phase: Phase, *, tls: TlsMode | None = None
) -> SmtpSession:
    """A session past EHLO (after TLS unless ``tls="none"``); a failure is the check's."""
    try:
        return await open_session(endpoint.session_endpoint(tls), phase)
    except PhaseFailure as exc:
        raise CheckFailure(exc.reason) from None


async def command(session: SmtpSession, line: str, phase: str) -> Reply:
    """One command of a probe; a broken exchange fails the check in the session's words."""
    try:
        return await session.command(line, phase)
    except PhaseFailure as exc:
        await session.close()
        raise CheckFailure(exc.reason) from None


async def end_session(session: SmtpSession) -> None:
    """QUIT and close; a server that drops the line instead changes no verdict."""
    await quit_session(session)
