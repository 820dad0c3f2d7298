"""One SMTP session against one endpoint: connect, banner, EHLO, TLS, QUIT.

Each step runs in a named phase with its own timeout so a hang says where it happened,
and each aiosmtplib error is mapped to a reason by its type, never by its text.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosmtplib
from aiosmtplib.errors import (
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from exporters.result import CheckFailure, FactValue, Outcome, Phase

TlsMode = Literal["starttls", "implicit", "none"]


@dataclass(frozen=True, slots=True)
class SmtpEndpoint:
    host: str
    port: int
    tls: TlsMode = "starttls"
    server_name: str | None = None
    ehlo_name: str = "mailprobe.invalid"
    ca_file: Path | None = None
    step_timeout: float = 10.0
    cert_warn_days: float = 14.0

    @property
    def tls_name(self) -> str:
        return self.server_name or self.host


def _tls_context(endpoint: SmtpEndpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _connect_socket(endpoint: SmtpEndpoint) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    last_error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), endpoint.step_timeout)
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            last_error = exc if isinstance(exc, OSError) else OSError("timed out")
    # asyncio's sock_connect puts its own words in strerror; the errno says it plainly.
    if last_error is None:
        why = "no address"
    elif last_error.errno:
        why = os.strerror(last_error.errno)
    else:
        why = str(last_error)
    raise CheckFailure(
        f"cannot connect to {endpoint.host}:{endpoint.port}: {why.lower()}",
        {"connected": False},
    )


async def probe_session(endpoint: SmtpEndpoint, phase: Phase) -> Outcome:
    """Run one session and return its phase timings as facts."""
    facts: dict[str, FactValue] = {}
    tls_context = _tls_context(endpoint) if endpoint.tls != "none" else None
    phase.enter("connect")
    started = time.monotonic()
    sock = await _connect_socket(endpoint)
    facts["connect_seconds"] = time.monotonic() - started
    client = aiosmtplib.SMTP(
        hostname=endpoint.tls_name,
        sock=sock,
        use_tls=endpoint.tls == "implicit",
        start_tls=False,
        tls_context=tls_context,
        local_hostname=endpoint.ehlo_name,
        timeout=endpoint.step_timeout,
    )
    try:
        phase.enter("tls handshake and banner" if endpoint.tls == "implicit" else "banner")
        mark = time.monotonic()
        greeting = await client.connect()
        facts["banner_seconds"] = time.monotonic() - mark
        facts["banner_code"] = greeting.code

        phase.enter("ehlo")
        mark = time.monotonic()
        await client.ehlo()
        facts["ehlo_seconds"] = time.monotonic() - mark

        if endpoint.tls == "starttls":
            if not client.supports_extension("starttls"):
                raise CheckFailure(
                    f"{endpoint.host}:{endpoint.port} does not offer STARTTLS", facts
                )
            phase.enter("starttls")
            mark = time.monotonic()
            await client.starttls()
            facts["starttls_seconds"] = time.monotonic() - mark
            phase.enter("ehlo after starttls")
            await client.ehlo()
        expiry_warning = _certificate_facts(client, endpoint, facts)

        phase.enter("quit")
        await client.quit()
    except (ssl.SSLError, SMTPException) as exc:
        raise CheckFailure(_failure_reason(exc, endpoint, phase.current), facts) from None
    finally:
        # The transport owns the socket now and closes it when it is done.  Closing it
        # here too would free the fd number while a TLS transport, still waiting for the
        # peer's close_notify, keeps it registered with the event loop: the next socket
        # given that number fails ("File descriptor N is used by transport") and an HTTP
        # request accepted on it in serve hangs.
        client.close()
    facts["total_seconds"] = time.monotonic() - started
    if expiry_warning:
        return Outcome.warn(expiry_warning, facts)
    return Outcome.ok(facts)


def _certificate_facts(
    client: aiosmtplib.SMTP, endpoint: SmtpEndpoint, facts: dict[str, FactValue]
) -> str | None:
    """Record the served certificate's expiry; return a warning when it is near."""
    if client.transport is None:
        return None
    peer = client.transport.get_extra_info("peercert")
    if not peer or "notAfter" not in peer:
        return None
    expires = ssl.cert_time_to_seconds(str(peer["notAfter"]))
    days_left = (expires - time.time()) / 86400
    facts["cert_expiry_timestamp_seconds"] = float(expires)
    facts["cert_days_left"] = round(days_left, 3)
    if days_left < endpoint.cert_warn_days:
        return (
            f"certificate of {endpoint.tls_name} expires in {days_left:.1f} days "
            f"(warn below {endpoint.cert_warn_days:g})"
        )
    return None


def _failure_reason(exc: BaseException, endpoint: SmtpEndpoint, phase: str) -> str:
    """Say what went wrong from the error's type; aiosmtplib wraps TLS errors in its own."""
    tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        return f"certificate not trusted in {phase}: {tls_error.verify_message}"
    if isinstance(tls_error, ssl.SSLError):
        return f"TLS failed in {phase}: {tls_error.reason or tls_error}"
    if isinstance(exc, SMTPTimeoutError):
        return f"no answer within {endpoint.step_timeout:g} s in {phase}"
    if isinstance(exc, SMTPConnectResponseError):
        return f"banner refused: {exc.code} {exc.message}"
    if isinstance(exc, SMTPResponseException):
        return f"{phase} refused: {exc.code} {exc.message}"
    if isinstance(exc, SMTPServerDisconnected):
        return f"server closed the connection in {phase}"
    return f"SMTP error in {phase}: {exc}"
