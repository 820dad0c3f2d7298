"""A whole probe session, connect to QUIT, on a blocking socket in a worker thread.

On the event loop a session costs the CPU of asyncio's machinery for every step: the
stream reader and transport, a timeout handle per command, and for TLS
``asyncio.sslproto``, which pumps every record through memory BIOs in Python.  For the
prober's fixed exchange (connect, banner, EHLO, STARTTLS, handshake, EHLO, QUIT) none of
that is needed: here a worker thread speaks it on a plain socket and then an
:class:`ssl.SSLSocket`, OpenSSL reads and writes the socket itself, and the thread
releases the GIL while it waits and while OpenSSL computes, so the event loop goes on
with other probes meanwhile.

Same checks, same words: each phase has its own deadline (the socket's timeout is what
is left of it before every wait), its timing and its transcript lines; replies are read
with :class:`exporters.smtp.reply.ReplyBuilder` under the same 64 KiB bounds, and every
reason comes from :mod:`exporters.smtp.session`.  A probe cancelled from outside (the
check's deadline) shuts the socket down, which ends the thread's wait at once.

Sessions that other probes continue after the second EHLO (AUTH, MAIL, DATA) use
:func:`exporters.smtp.session.open_session` on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from exporters.result import Phase
from exporters.smtp.reply import (
    LINE_TOO_LONG,
    MAX_REPLY_BYTES,
    Reply,
    ReplyBuilder,
    ReplyTooLong,
    closed,
)
from exporters.smtp.session import (
    EhloInfo,
    PhaseFailure,
    SmtpEndpoint,
    check_banner,
    check_starttls_offered,
    check_starttls_reply,
    connect_failure,
    connect_timeout,
    early_data_failure,
    ehlo_result,
    phase_failure,
    phase_timeout,
)
from exporters.smtp.tlsfacts import TlsFacts, client_context
from exporters.smtp.transcript import Transcript

SESSION_THREADS = 64
"""Sessions under way at once; more wait for a thread.  A thread is held for one
session: milliseconds against a healthy server, at most a phase timeout per phase
against one that stalls."""

_NOT_TLS = (
    "WRONG_VERSION_NUMBER",
    "PACKET_LENGTH_TOO_LONG",
    "RECORD_LAYER_FAILURE",
    "HTTP_REQUEST",
)
"""OpenSSL's reasons for a first record that is not TLS at all."""

_pool = ThreadPoolExecutor(max_workers=SESSION_THREADS, thread_name_prefix="smtp-session")


@dataclass
class FinishedSession:
    """What a session to QUIT showed (the connection is closed)."""

    endpoint: SmtpEndpoint
    transcript: Transcript
    timings: dict[str, float] = field(default_factory=dict)
    banner: Reply | None = None
    ehlo: EhloInfo | None = None
    ehlo_before_tls: EhloInfo | None = None
    tls: TlsFacts | None = None


async def complete_session(
    endpoint: SmtpEndpoint, phase: Phase, transcript: Transcript
) -> FinishedSession:
    """Talk to ``endpoint`` up to QUIT and close; raise :class:`PhaseFailure` on any
    failure before QUIT (a failed QUIT is only noted in the transcript)."""
    session = _Session(FinishedSession(endpoint, transcript), phase)
    try:
        await asyncio.get_running_loop().run_in_executor(_pool, session.run)
    except asyncio.CancelledError:
        session.stop()
        raise
    return session.result


class _Session:
    """One session on one blocking socket, run by a worker thread."""

    def __init__(self, result: FinishedSession, phase: Phase) -> None:
        self.result = result
        self.endpoint = result.endpoint
        self.transcript = result.transcript
        self.phase = phase
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.stopped = False

    def stop(self) -> None:
        """From the event loop: end the thread's wait (it closes the socket itself)."""
        self.stopped = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        try:
            self._talk()
        finally:
            if self.sock is not None:
                self.sock.close()

    def _talk(self) -> None:
        endpoint, result = self.endpoint, self.result
        self._connect()
        if endpoint.tls == "implicit":
            self._handshake("tls", time.monotonic())
        mark = time.monotonic()
        result.banner = self._reply("banner", time.monotonic() + endpoint.phase_timeout)
        result.timings["banner"] = time.monotonic() - mark
        check_banner(endpoint, result.banner)
        result.ehlo = self._ehlo("ehlo")
        if endpoint.tls == "starttls":
            result.ehlo_before_tls = result.ehlo
            check_starttls_offered(endpoint, result.ehlo)
            mark = time.monotonic()
            check_starttls_reply(endpoint, self._command("STARTTLS", "starttls"))
            early = self._early_data()
            if early:
                raise early_data_failure(endpoint, "starttls", early)
            self._handshake("starttls", mark)
            result.ehlo = self._ehlo("ehlo_tls")
        self._quit()

    def _early_data(self) -> bytes:
        """Bytes the server sent after its 220 to STARTTLS, read or still waiting in the
        socket (a server that speaks TLS sends nothing before the client's hello)."""
        assert self.sock is not None
        if self.buffer:
            return bytes(self.buffer[:40])
        self.sock.settimeout(0.0)
        try:
            return self.sock.recv(40, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return b""  # the handshake will say what is wrong with the connection

    def _connect(self) -> None:
        endpoint = self.endpoint
        self.phase.enter("connect")
        self.transcript.note(f"connect to {endpoint.where}")
        mark = time.monotonic()
        family = socket.AF_INET6 if ":" in endpoint.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock = sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.source_address:
                sock.bind((endpoint.source_address, 0))
            sock.settimeout(endpoint.phase_timeout)
            if self.stopped:
                raise TimeoutError
            sock.connect((endpoint.address, endpoint.port))
        except TimeoutError:
            raise connect_timeout(endpoint) from None
        except OSError as exc:
            raise connect_failure(endpoint, exc) from None
        self.result.timings["connect"] = time.monotonic() - mark

    def _handshake(self, phase: str, started: float) -> None:
        assert self.sock is not None
        self.phase.enter(phase)
        self.transcript.note("TLS handshake")
        self.sock.settimeout(self.endpoint.phase_timeout)
        try:
            tls = client_context().wrap_socket(
                self.sock, server_hostname=self.endpoint.tls_name, do_handshake_on_connect=False
            )
            self.sock = tls  # before the wait, so that stop() reaches it
            if self.stopped:
                raise TimeoutError
            tls.do_handshake()
        except Exception as exc:
            failure = self._failure(phase, exc)
            if phase == "starttls" and getattr(exc, "reason", None) in _NOT_TLS:
                # Plaintext right behind the 220 is usually caught by _early_data; bytes
                # a moment later reach OpenSSL instead: the same fault, said as such.
                failure = PhaseFailure(
                    phase,
                    f"{phase}: TLS handshake with {self.endpoint.where} failed: the server "
                    "sent data after its 220 reply to STARTTLS that is not TLS",
                )
            failure.handshake = not failure.timed_out
            raise failure from None
        self.result.timings[phase] = time.monotonic() - started
        try:
            facts = TlsFacts.from_ssl(tls)
        except ValueError as exc:
            raise PhaseFailure(phase, f"{phase}: {self.endpoint.where}: {exc}") from None
        self.result.tls = facts
        self.transcript.note(f"{facts.version} {facts.cipher}")

    def _ehlo(self, phase: str) -> EhloInfo:
        mark = time.monotonic()
        reply = self._command(f"EHLO {self.endpoint.ehlo_name}", phase)
        self.result.timings[phase] = time.monotonic() - mark
        return ehlo_result(self.endpoint, phase, reply)

    def _quit(self) -> None:
        mark = time.monotonic()
        try:
            self._command("QUIT", "quit")
        except PhaseFailure as exc:
            self.transcript.note(f"QUIT: {exc.reason}")
        finally:
            self.result.timings["quit"] = time.monotonic() - mark

    def _command(self, line: str, phase: str) -> Reply:
        assert self.sock is not None
        self.phase.enter(phase)
        self.transcript.client(line)
        deadline = time.monotonic() + self.endpoint.phase_timeout
        try:
            self._wait_time(deadline)
            self.sock.sendall(line.encode("utf-8") + b"\r\n")
        except Exception as exc:
            raise self._failure(phase, exc) from None
        return self._reply(phase, deadline)

    def _reply(self, phase: str, deadline: float) -> Reply:
        self.phase.enter(phase)
        builder = ReplyBuilder(self.transcript)
        try:
            while True:
                reply = builder.add(self._line(deadline))
                if reply is not None:
                    return reply
        except Exception as exc:
            raise self._failure(phase, exc) from None

    def _line(self, deadline: float) -> bytes:
        assert self.sock is not None
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
                raise closed(partial, self.transcript)
            self.buffer += data

    def _wait_time(self, deadline: float) -> None:
        assert self.sock is not None
        left = deadline - time.monotonic()
        if left <= 0 or self.stopped:
            raise TimeoutError
        self.sock.settimeout(left)

    def _failure(self, phase: str, exc: BaseException) -> PhaseFailure:
        if isinstance(exc, PhaseFailure):
            return exc
        if isinstance(exc, TimeoutError):
            return phase_timeout(self.endpoint, phase)
        failure = phase_failure(phase, self.endpoint, exc)
        if failure is None:
            raise exc
        return failure
