"""Small real socket servers on loopback for faults no real mail server shows on demand.

Each server runs its own event loop in a background thread, so it keeps answering
while a test blocks (on a subprocess, ``time.sleep`` or a synchronous HTTP call) and
works the same from sync and async tests.  Use them as context managers::

    with SilentServer() as silent, SmtpServer(tls=TlsFiles.create(tmp_path)) as smtp:
        ...  # point checks at ("127.0.0.1", silent.port) and smtp.port

- :class:`SilentServer` accepts and never sends a byte (a hung banner).
- :class:`ClosingServer` accepts and closes at once (a crashed daemon behind a proxy).
- :class:`BannerServer` sends fixed bytes, then holds the connection (a refusing or
  garbled banner).
- :class:`SmtpServer` speaks just enough SMTP for a session check: banner, EHLO,
  STARTTLS (with a trustme certificate), NOOP, RSET, QUIT; it counts sessions.

:class:`ServeProcess` runs ``mailprobe serve`` as a subprocess on a free port.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trustme

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for ``names``, written as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca: trustme.CA
    leaf: trustme.LeafCert

    @classmethod
    def create(cls, directory: Path, *names: str) -> TlsFiles:
        ca = trustme.CA()
        leaf = ca.issue_cert(*(names or ("localhost", LOOPBACK)))
        directory.mkdir(parents=True, exist_ok=True)
        ca_file, cert_file, key_file = (
            directory / "ca.pem",
            directory / "cert.pem",
            directory / "key.pem",
        )
        ca.cert_pem.write_to_path(str(ca_file))
        leaf.private_key_pem.write_to_path(str(key_file))
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        return cls(ca_file, cert_file, key_file, ca, leaf)

    def server_context(self, send_ca: bool = False) -> ssl.SSLContext:
        """``send_ca`` also sends the CA certificate, as a chain a DANE-TA record names."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        if send_ca:
            chain = self.cert_file.with_suffix(".chain.pem")
            chain.write_bytes(self.cert_file.read_bytes() + self.ca_file.read_bytes())
            context.load_cert_chain(chain, self.key_file)
        return context


class LoopbackServer:
    """A TCP server on 127.0.0.1 with a free port, run in its own thread and loop."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() cancels open sessions; asyncio would log a cancelled handler
        finally:
            self._handlers.discard(task)
            writer.close()

    hosts: tuple[str, ...] = (LOOPBACK,)
    """Addresses to listen on, all with the same port (e.g. ``("127.0.0.1", "::1")``)."""

    async def _start(self) -> None:
        for _ in range(20):
            self._server = await asyncio.start_server(self._handle, self.hosts[0], 0)
            self.port = self._server.sockets[0].getsockname()[1]
            try:
                self._more = [
                    await asyncio.start_server(self._handle, host, self.port)
                    for host in self.hosts[1:]
                ]
                return
            except OSError:  # that port is taken on another address: try another
                self._server.close()
        raise RuntimeError(f"no port free on all of {self.hosts}")

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for server in getattr(self, "_more", []):
            server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SilentServer(LoopbackServer):
    """Accepts connections and never sends anything: the client waits for a banner."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes


class ClosingServer(LoopbackServer):
    """Accepts a connection and closes it at once."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return


class BannerServer(LoopbackServer):
    """Sends ``banner`` verbatim, then waits for the client to close."""

    def __init__(self, banner: bytes) -> None:
        super().__init__()
        self.banner = banner

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.banner)
        await writer.drain()
        await reader.read()


class SmtpServer(LoopbackServer):
    """Just enough ESMTP for a session probe; STARTTLS is offered when ``tls`` is given."""

    def __init__(
        self,
        tls: TlsFiles | None = None,
        hostname: str = "mx.test",
        *,
        send_ca: bool = False,
        hosts: tuple[str, ...] = (LOOPBACK,),
    ) -> None:
        super().__init__()
        self.tls = tls
        self.hostname = hostname
        self.send_ca = send_ca
        self.hosts = hosts
        self.sessions_completed = 0
        self.peers: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(str(writer.get_extra_info("sockname")[0]))
        writer.write(f"220 {self.hostname} ESMTP test\r\n".encode())
        await writer.drain()
        secure = False
        while line := await reader.readline():
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                offers = ["PIPELINING", "8BITMIME"]
                if self.tls is not None and not secure:
                    offers.append("STARTTLS")
                lines = [self.hostname, *offers]
                reply = "".join(
                    f"250{' ' if i == len(lines) - 1 else '-'}{text}\r\n"
                    for i, text in enumerate(lines)
                )
                writer.write(reply.encode())
            elif verb == "STARTTLS" and self.tls is not None and not secure:
                writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(self.tls.server_context(self.send_ca))
                secure = True
                continue
            elif verb in ("NOOP", "RSET"):
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                self.sessions_completed += 1
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """``python -m monitor serve`` as a real subprocess on a free loopback port.

    stderr goes to a file (a pipe could fill up and stall the server); read it with
    :meth:`log`.
    """

    def __init__(
        self,
        config: Path,
        *extra_args: str,
        grace: float = 5.0,
        wrapper: Sequence[str] = (),
    ) -> None:
        """``wrapper`` runs serve through a command, e.g. ``("prlimit", "--nofile=1024")``."""
        self.config = config
        self.port = free_port()
        self.listen = f"{LOOPBACK}:{self.port}"
        self._stderr_path = config.with_suffix(".stderr.log")
        self._args = [
            *wrapper,
            sys.executable,
            "-m",
            "monitor",
            "serve",
            "--config",
            str(config),
            "--listen",
            self.listen,
            "--grace",
            f"{grace:g}",
            *extra_args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        with self._stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                self._args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        return self

    def log(self) -> str:
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Wait until the port accepts connections; fail with the log if the process died."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"serve did not listen within {timeout} s:\n{self.log()}")

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Kill a process a test left running (the tests themselves send SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate signed by its own key (no CA at all), as PEM cert and key files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "self-signed.pem", directory / "self-signed.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class HostileSmtpServer(LoopbackServer):
    """One way an SMTP server (or what sits on its port) can misbehave, by name.

    ``HOSTILE`` lists the behaviours; ``context`` is the server-side TLS context the
    TLS behaviours hand out after STARTTLS.  Every behaviour is bounded: the infinite
    ones stop when the client goes away.
    """

    HOSTILE = (
        "never-answers",
        "banner-then-silence",
        "421-at-banner",
        "megabyte-reply",
        "no-crlf-forever",
        "stalled-tls-handshake",
        "garbage-after-starttls",
        "reset-after-220",
        "starttls-refused-454",
        "tls-1.0-only",
        "self-signed",
        "byte-a-second",
        "non-smtp-banner",
    )

    def __init__(self, behaviour: str, context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        assert behaviour in self.HOSTILE, behaviour
        self.behaviour = behaviour
        self.context = context

    async def _ehlo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"250-hostile.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b = self.behaviour
        if b == "never-answers":
            await reader.read()
            return
        if b == "421-at-banner":
            writer.write(b"421 4.3.2 hostile.test Service not available, closing\r\n")
            await writer.drain()
            return
        if b == "non-smtp-banner":
            writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            await writer.drain()
            await reader.read()
            return
        if b == "no-crlf-forever":
            writer.write(b"220 ")
            while True:
                writer.write(b"x" * 4096)
                await writer.drain()
        if b == "byte-a-second":
            for byte in b"220 slow.test ESMTP\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
            await reader.read()
            return
        writer.write(b"220 hostile.test ESMTP\r\n")
        await writer.drain()
        if b == "banner-then-silence":
            await reader.read()
            return
        if b == "reset-after-220":
            await reader.readline()  # EHLO, so the reset lands in one known phase
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if b == "megabyte-reply":
            await reader.readline()
            line = b"250-" + b"x" * 996 + b"\r\n"
            for _ in range(1024):
                writer.write(line)
                await writer.drain()
            writer.write(b"250 end\r\n")
            await writer.drain()
            await reader.read()
            return
        await self._ehlo(reader, writer)
        await reader.readline()  # STARTTLS
        if b == "starttls-refused-454":
            writer.write(b"454 4.7.0 TLS not available due to local problem\r\n")
            await writer.drain()
            await reader.read()
            return
        writer.write(b"220 2.0.0 Ready to start TLS\r\n")
        await writer.drain()
        if b == "stalled-tls-handshake":
            await reader.read()
            return
        if b == "garbage-after-starttls":
            writer.write(b"this is not a TLS record, just text\r\n" * 4)
            await writer.drain()
            await reader.read()
            return
        assert self.context is not None, b
        await writer.start_tls(self.context)
        while line := await reader.readline():
            if line.upper().startswith(b"QUIT"):
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            writer.write(b"250-hostile.test\r\n250 PIPELINING\r\n")
            await writer.drain()
