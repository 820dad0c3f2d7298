"""A whole probe session, with the part after STARTTLS's 220 on a blocking TLS socket
in a worker thread.

asyncio's TLS (``asyncio.sslproto``) pumps every record through memory BIOs in Python
on the event loop; for a prober that does nothing on the connection after the second
EHLO but QUIT, that machinery cost about as much as the handshake's cryptography. Here
the plaintext part (connect, banner, EHLO, STARTTLS) stays on the event loop; then the
socket leaves the asyncio transport and a worker thread handshakes, says EHLO again
and QUIT on a plain :class:`ssl.SSLSocket`: OpenSSL reads and writes the socket itself,
and the thread releases the GIL while it waits and while it computes, so the event
loop goes on meanwhile.

Each phase keeps its own deadline (the socket's timeout is what is left of it before
every wait), its timing, its transcript lines and its reasons, in the same words as
:mod:`exporters.smtp.session`.  A probe cancelled from outside (the check's deadline)
shuts the socket down, which ends the thread's wait at once.

Sessions other probes continue (:func:`exporters.smtp.session.open_session`) and
implicit TLS (465) stay on asyncio's TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from exporters.result import Phase
from exporters.smtp.reply import (
    LINE_TOO_LONG,
    MAX_REPLY_BYTES,
    Reply,
    ReplyBuilder,
    ReplyTooLong,
    closed,
    excerpt,
)
from exporters.smtp.session import (
    EhloInfo,
    PhaseFailure,
    SmtpEndpoint,
    SmtpSession,
    _buffered,
    _ehlo_info,
    _failure,
    _quote,
    open_session,
    quit_session,
)
from exporters.smtp.tlsfacts import TlsFacts, client_context
from exporters.smtp.transcript import Transcript

TLS_THREADS = 32
"""Sessions in their TLS part at once; more wait for a thread (each holds one for at
most three phase timeouts, against a server that stalls every phase)."""

_pool = ThreadPoolExecutor(max_workers=TLS_THREADS, thread_name_prefix="smtp-tls")


async def complete_session(
    endpoint: SmtpEndpoint, phase: Phase, transcript: Transcript
) -> SmtpSession:
    """Talk to ``endpoint`` up to QUIT and close; raise :class:`PhaseFailure` on any
    failure before QUIT (a failed QUIT is only noted, as :func:`quit_session` does)."""
    if endpoint.tls != "starttls":
        session = await open_session(endpoint, phase, transcript)
        await quit_session(session)
        return session
    session = await open_session(endpoint, phase, transcript, plain_only=True)
    try:
        raw = _detach(session)
    except BaseException:
        await session.close()
        raise
    tail = _Tail(session, raw)
    try:
        await asyncio.get_running_loop().run_in_executor(_pool, tail.run)
    except asyncio.CancelledError:
        tail.stop()
        raise
    return session


def _detach(session: SmtpSession) -> socket.socket:
    """The connection's socket, out of asyncio's hands; RFC 3207 5 checked first."""
    early = _buffered(session.reader)
    if early:
        # Nothing may come between the 220 and the handshake; bytes that did were sent
        # in plaintext and would be read as if protected (CVE-2011-0411 class).
        raise PhaseFailure(
            "starttls",
            f"starttls: {session.endpoint.where} sent data after its 220 reply to STARTTLS, "
            f"before the TLS handshake ({excerpt(early)})",
        )
    transport = session.writer.transport
    held = transport.get_extra_info("socket")
    raw = socket.socket(held.family, held.type, held.proto, fileno=os.dup(held.fileno()))
    transport.abort()  # closes asyncio's descriptor; the duplicate keeps the connection
    return raw


class _Tail:
    """Handshake, EHLO, QUIT on one blocking socket, in a worker thread."""

    def __init__(self, session: SmtpSession, raw: socket.socket) -> None:
        self.session = session
        self.endpoint = session.endpoint
        self.sock: socket.socket = raw
        self.buffer = bytearray()
        self.stopped = False

    def stop(self) -> None:
        """From the event loop: end the thread's wait (it closes the socket itself)."""
        self.stopped = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        try:
            self._handshake()
            mark = time.monotonic()
            reply = self._command(f"EHLO {self.endpoint.ehlo_name}", "ehlo_tls")
            self.session.timings["ehlo_tls"] = time.monotonic() - mark
            self.session.ehlo = self._ehlo(reply)
            self._quit()
        finally:
            self.sock.close()

    def _handshake(self) -> None:
        session = self.session
        session.phase.enter("starttls")
        mark = time.monotonic()
        session.transcript.note("TLS handshake")
        timeout = self.endpoint.phase_timeout
        self.sock.settimeout(timeout)
        context = session.tls_context or client_context()
        try:
            tls = context.wrap_socket(
                self.sock, server_hostname=self.endpoint.tls_name, do_handshake_on_connect=False
            )
            self.sock = tls  # before the wait, so that stop() reaches it
            if self.stopped:
                raise TimeoutError
            tls.do_handshake()
        except Exception as exc:
            failure = self._failure("starttls", exc)
            failure.handshake = not failure.timed_out
            raise failure from None
        # The STARTTLS command's own time (up to its 220) was counted on the event loop.
        session.timings["starttls"] = session.timings.get("starttls", 0.0) + (
            time.monotonic() - mark
        )
        try:
            session.tls = TlsFacts.from_ssl(tls)
        except ValueError as exc:
            raise PhaseFailure("starttls", f"starttls: {self.endpoint.where}: {exc}") from None
        session.transcript.note(f"{session.tls.version} {session.tls.cipher}")

    def _ehlo(self, reply: Reply) -> EhloInfo:
        if reply.code != 250:
            raise PhaseFailure(
                "ehlo_tls", f"ehlo_tls: {self.endpoint.where} refused EHLO: {_quote(reply)}"
            )
        return _ehlo_info(reply)

    def _quit(self) -> None:
        mark = time.monotonic()
        try:
            self._command("QUIT", "quit")
        except PhaseFailure as exc:
            self.session.transcript.note(f"QUIT: {exc.reason}")
        finally:
            self.session.timings["quit"] = time.monotonic() - mark

    def _command(self, line: str, phase: str) -> Reply:
        self.session.phase.enter(phase)
        self.session.transcript.client(line)
        deadline = time.monotonic() + self.endpoint.phase_timeout
        try:
            self._wait_time(deadline)
            self.sock.sendall(line.encode("utf-8") + b"\r\n")
            builder = ReplyBuilder(self.session.transcript)
            while True:
                reply = builder.add(self._line(deadline))
                if reply is not None:
                    return reply
        except PhaseFailure:
            raise
        except Exception as exc:
            raise self._failure(phase, exc) from None

    def _line(self, deadline: float) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) > MAX_REPLY_BYTES:
                raise ReplyTooLong(LINE_TOO_LONG)
            self._wait_time(deadline)
            data = self.sock.recv(16384)
            if not data:
                partial, self.buffer = bytes(self.buffer), bytearray()
                raise closed(partial, self.session.transcript)
            self.buffer += data

    def _wait_time(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or self.stopped:
            raise TimeoutError
        self.sock.settimeout(left)

    def _failure(self, phase: str, exc: BaseException) -> PhaseFailure:
        if isinstance(exc, TimeoutError):
            return PhaseFailure(
                phase,
                f"{phase}: no complete answer from {self.endpoint.where} "
                f"within {self.endpoint.phase_timeout:g} s",
                timed_out=True,
            )
        failure = _failure(phase, self.endpoint, exc)
        if failure is None:
            raise exc
        return failure
