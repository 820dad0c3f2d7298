"""One SMTP session with one address: connect, banner, EHLO, TLS, EHLO again, QUIT.

Each step runs in a named phase with its own timeout and is timed, so a hang or an
error says where it happened.  The exchange is spoken over asyncio streams rather
than through ``aiosmtplib.SMTP``: the prober needs the raw conversation (a transcript,
byte limits on replies, the served chain of a handshake that verifies nothing) and the
reasons must name SMTP's own words; aiosmtplib's EHLO parser is reused.

:func:`open_session` hands back a connected :class:`SmtpSession` after STARTTLS (or the
implicit handshake) and the second EHLO, for other probes to continue the
conversation with :meth:`SmtpSession.command`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal

from aiosmtplib.esmtp import parse_esmtp_extensions

from exporters.result import Phase
from exporters.smtp.reply import MAX_REPLY_BYTES, Reply, ReplyError, excerpt, read_reply
from exporters.smtp.tlsfacts import TlsFacts, client_context
from exporters.smtp.transcript import Transcript

TlsMode = Literal["starttls", "implicit", "none"]
Family = Literal["ipv4", "ipv6"]

PHASES = ("resolve", "tlsa", "connect", "tls", "banner", "ehlo", "starttls", "ehlo_tls", "quit")
"""Every phase a session or a probe reports, in order (``tls`` is the implicit
handshake on 465, ``starttls`` the command and its handshake)."""

EXTENSIONS = ("starttls", "pipelining", "size", "smtputf8", "requiretls", "chunking", "auth")


@dataclass(frozen=True, slots=True)
class SmtpEndpoint:
    """One address to talk to and how."""

    address: str
    port: int
    tls: TlsMode = "starttls"
    tls_name: str | None = None
    """SNI and the name the certificate must carry; None for an IP literal target."""
    banner_host: str | None = None
    ehlo_name: str = "mailprobe.invalid"
    phase_timeout: float = 8.0
    source_address: str | None = None
    """Local address to connect from (the security probes' outside client); None: any."""

    @property
    def where(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


class PhaseFailure(Exception):
    """A phase failed; ``reason`` names the phase and what to look at."""

    def __init__(self, phase: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.phase = phase
        self.reason = reason
        self.timed_out = timed_out
        self.handshake = False
        """True when the TLS handshake itself broke (not a timeout): worth asking
        which versions the server does speak."""


@dataclass(frozen=True, slots=True)
class EhloInfo:
    host: str
    extensions: frozenset[str]
    auth_mechanisms: tuple[str, ...]
    size_limit: int | None


@dataclass
class SmtpSession:
    endpoint: SmtpEndpoint
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    phase: Phase
    transcript: Transcript
    tls_context: ssl.SSLContext | None = None
    """The client context for the handshake; None: :func:`client_context`."""
    timings: dict[str, float] = field(default_factory=dict)
    banner: Reply | None = None
    ehlo: EhloInfo | None = None
    ehlo_before_tls: EhloInfo | None = None
    tls: TlsFacts | None = None

    async def command(self, line: str, phase: str, *, secret: bool = False) -> Reply:
        """Send one command line and read its reply within the phase timeout."""
        self.phase.enter(phase)
        self.transcript.client(line, secret=secret)
        async with self._bounded(phase):
            self.writer.write(line.encode("utf-8") + b"\r\n")
            await self.writer.drain()
            return await read_reply(self.reader, self.transcript)

    async def reply(self, phase: str) -> Reply:
        self.phase.enter(phase)
        async with self._bounded(phase):
            return await read_reply(self.reader, self.transcript)

    def _bounded(self, phase: str) -> _Bounded:
        return _Bounded(self, phase)

    async def close(self) -> None:
        """Drop the connection without waiting on the peer (QUIT is the polite way)."""
        self.writer.transport.abort()


class _Bounded:
    """Run a phase within the endpoint's phase timeout; turn every failure into words."""

    def __init__(self, session: SmtpSession, phase: str) -> None:
        self.session = session
        self.name = phase
        self._timeout = asyncio.timeout(session.endpoint.phase_timeout)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            await self._timeout.__aexit__(type(exc) if exc else None, exc, None)
        except TimeoutError:
            raise phase_timeout(self.session.endpoint, self.name) from None
        if exc is None or isinstance(exc, PhaseFailure):
            return
        failure = phase_failure(self.name, self.session.endpoint, exc)
        if failure is not None:  # else a cancellation or a bug: it passes unchanged
            raise failure from None


def phase_failure(phase: str, endpoint: SmtpEndpoint, exc: BaseException) -> PhaseFailure | None:
    what = "EHLO reply" if phase.startswith("ehlo") else f"{phase} reply"
    if phase == "banner":
        what = "banner"
    if isinstance(exc, ReplyError):
        reason = exc.reason.replace("a reply", what, 1)
        if reason.startswith("not an SMTP reply"):
            reason = f"{what} is {reason}"
        return PhaseFailure(phase, f"{phase}: {endpoint.where}: {reason}")
    if isinstance(exc, ssl.SSLError):
        return PhaseFailure(
            phase, f"{phase}: TLS handshake with {endpoint.where} failed: {_tls_words(exc)}"
        )
    if isinstance(exc, ConnectionResetError):
        return PhaseFailure(phase, f"{phase}: {endpoint.where} reset the connection")
    if isinstance(exc, OSError):
        return PhaseFailure(phase, f"{phase}: {endpoint.where}: {_os_words(exc)}")
    return None


_TLS_REASONS = {
    "UNSUPPORTED_PROTOCOL": "no common TLS version: the server offers only versions "
    "older than TLS 1.2",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no common TLS version: the server offers only versions "
    "older than TLS 1.2",
    "WRONG_VERSION_NUMBER": "the server's answer is not TLS",
    "PACKET_LENGTH_TOO_LONG": "the server's answer is not TLS",
    "RECORD_LAYER_FAILURE": "the server's answer is not TLS",
    "NO_SHARED_CIPHER": "no cipher in common",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the handshake (no common cipher or "
    "version)",
    "UNEXPECTED_EOF_WHILE_READING": "the server closed the connection during the handshake",
}


def _tls_words(exc: ssl.SSLError) -> str:
    """OpenSSL's reason code, said in words; the code itself for anything unlisted."""
    if isinstance(exc, ssl.SSLEOFError):
        return "the server closed the connection during the handshake"
    code = exc.reason or ""
    return _TLS_REASONS.get(code, f"OpenSSL reports {code or exc.__class__.__name__}")


def _os_words(exc: OSError) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused (nothing listens on that port: is the server running?)"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to the host"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def _connect(endpoint: SmtpEndpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    family = socket.AF_INET6 if ":" in endpoint.address else socket.AF_INET
    local = (endpoint.source_address, 0) if endpoint.source_address else None
    return await asyncio.open_connection(
        endpoint.address, endpoint.port, family=family, limit=MAX_REPLY_BYTES, local_addr=local
    )


def _server_hostname(endpoint: SmtpEndpoint) -> str | None:
    return endpoint.tls_name


async def open_session(
    endpoint: SmtpEndpoint,
    phase: Phase | None = None,
    transcript: Transcript | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> SmtpSession:
    """Connect and talk up to a secured EHLO; raise :class:`PhaseFailure` on any failure.

    The session is open on return: finish it with :func:`quit_session` (or ``close``).
    (:mod:`exporters.smtp.threaded` runs the same exchange to QUIT on blocking sockets.)
    """
    phase = phase or Phase()
    transcript = transcript or Transcript()
    phase.enter("connect")
    transcript.note(f"connect to {endpoint.where}")
    mark = time.monotonic()
    try:
        async with asyncio.timeout(endpoint.phase_timeout):
            reader, writer = await _connect(endpoint)
    except TimeoutError:
        raise connect_timeout(endpoint) from None
    except OSError as exc:
        raise connect_failure(endpoint, exc) from None
    session = SmtpSession(endpoint, reader, writer, phase, transcript, tls_context)
    session.timings["connect"] = time.monotonic() - mark
    try:
        await _talk(session)
    except BaseException:
        await session.close()
        raise
    return session


async def _talk(session: SmtpSession) -> None:
    endpoint = session.endpoint
    if endpoint.tls == "implicit":
        await _handshake(session, "tls")
    mark = time.monotonic()
    banner = await session.reply("banner")
    session.timings["banner"] = time.monotonic() - mark
    session.banner = banner
    check_banner(endpoint, banner)
    session.ehlo = await _ehlo(session, "ehlo")
    if endpoint.tls == "starttls":
        session.ehlo_before_tls = session.ehlo
        check_starttls_offered(endpoint, session.ehlo)
        mark = time.monotonic()
        check_starttls_reply(endpoint, await session.command("STARTTLS", "starttls"))
        await _handshake(session, "starttls", started=mark)
        session.ehlo = await _ehlo(session, "ehlo_tls")


def check_banner(endpoint: SmtpEndpoint, banner: Reply) -> None:
    if banner.code != 220:
        raise PhaseFailure("banner", f"banner: {endpoint.where} refuses sessions: {_quote(banner)}")
    if endpoint.banner_host is not None:
        announced = (banner.lines[0].split() or [""])[0]
        if announced.rstrip(".").lower() != endpoint.banner_host.rstrip(".").lower():
            raise PhaseFailure(
                "banner",
                f"banner: {endpoint.where} announces itself as {announced or '(nothing)'}, "
                f"expected {endpoint.banner_host} (check myhostname / smtpd_banner)",
            )


def check_starttls_offered(endpoint: SmtpEndpoint, ehlo: EhloInfo) -> None:
    if "starttls" not in ehlo.extensions:
        raise PhaseFailure("ehlo", f"ehlo: {endpoint.where} does not offer STARTTLS after EHLO")


def check_starttls_reply(endpoint: SmtpEndpoint, reply: Reply) -> None:
    if reply.code != 220:
        raise PhaseFailure(
            "starttls",
            f"starttls: {endpoint.where} offered STARTTLS but refused it: {_quote(reply)}",
        )


def early_data_failure(endpoint: SmtpEndpoint, phase: str, early: bytes) -> PhaseFailure:
    # RFC 3207 5: nothing may come between the 220 and the handshake; bytes that did
    # were sent in plaintext and would be read as if protected (CVE-2011-0411 class).
    return PhaseFailure(
        phase,
        f"{phase}: {endpoint.where} sent data after its 220 reply to STARTTLS, "
        f"before the TLS handshake ({excerpt(early)})",
    )


def connect_timeout(endpoint: SmtpEndpoint) -> PhaseFailure:
    return PhaseFailure(
        "connect",
        f"connect: no answer from {endpoint.where} within {endpoint.phase_timeout:g} s "
        "(a firewall dropping packets?)",
        timed_out=True,
    )


def connect_failure(endpoint: SmtpEndpoint, exc: OSError) -> PhaseFailure:
    return PhaseFailure("connect", f"connect: {endpoint.where}: {_os_words(exc)}")


def phase_timeout(endpoint: SmtpEndpoint, phase: str) -> PhaseFailure:
    return PhaseFailure(
        phase,
        f"{phase}: no complete answer from {endpoint.where} within {endpoint.phase_timeout:g} s",
        timed_out=True,
    )


def ehlo_result(endpoint: SmtpEndpoint, phase: str, reply: Reply) -> EhloInfo:
    if reply.code != 250:
        raise PhaseFailure(phase, f"{phase}: {endpoint.where} refused EHLO: {_quote(reply)}")
    return _ehlo_info(reply)


async def _ehlo(session: SmtpSession, phase: str) -> EhloInfo:
    mark = time.monotonic()
    reply = await session.command(f"EHLO {session.endpoint.ehlo_name}", phase)
    session.timings[phase] = time.monotonic() - mark
    return ehlo_result(session.endpoint, phase, reply)


def _ehlo_info(reply: Reply) -> EhloInfo:
    extensions, auth = parse_esmtp_extensions("\n".join(reply.lines))
    size_text = extensions.get("size", "")
    return EhloInfo(
        host=(reply.lines[0].split() or [""])[0],
        extensions=frozenset(extensions),
        auth_mechanisms=tuple(m.upper() for m in auth),
        size_limit=int(size_text) if size_text.isdigit() else None,
    )


async def _handshake(session: SmtpSession, phase: str, started: float | None = None) -> None:
    session.phase.enter(phase)
    mark = started if started is not None else time.monotonic()
    early = _buffered(session.reader)
    if early:
        raise early_data_failure(session.endpoint, phase, early)
    session.transcript.note("TLS handshake")
    try:
        async with session._bounded(phase):
            await session.writer.start_tls(
                session.tls_context or client_context(),
                server_hostname=_server_hostname(session.endpoint),
            )
    except PhaseFailure as exc:
        exc.handshake = not exc.timed_out
        raise
    session.timings[phase] = time.monotonic() - mark
    ssl_object = session.writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        raise PhaseFailure(phase, f"{phase}: no TLS session with {session.endpoint.where}")
    try:
        session.tls = TlsFacts.from_ssl(ssl_object)
    except ValueError as exc:
        raise PhaseFailure(phase, f"{phase}: {session.endpoint.where}: {exc}") from None
    session.transcript.note(f"{session.tls.version} {session.tls.cipher}")


def _buffered(reader: asyncio.StreamReader) -> bytes:
    """Bytes already read from the socket but not consumed (StreamReader keeps them in
    ``_buffer``; there is no public accessor)."""
    buffer = getattr(reader, "_buffer", b"")
    return bytes(buffer[:40]) if isinstance(buffer, bytes | bytearray) else b""


async def quit_session(session: SmtpSession) -> None:
    """Say QUIT and close; a server that drops the line instead is no failure of its own."""
    mark = time.monotonic()
    try:
        await session.command("QUIT", "quit")
    except PhaseFailure as exc:
        session.transcript.note(f"QUIT: {exc.reason}")
    finally:
        session.timings["quit"] = time.monotonic() - mark
        await session.close()


def _quote(reply: Reply) -> str:
    return excerpt(str(reply), 120)
