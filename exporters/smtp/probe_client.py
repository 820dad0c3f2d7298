"""Getting a connected SMTP client for the security probes, and naming its failures.

:func:`open_client` is the one place the probes get a session from: connect (from a
given source address when the probe must look like an outside client), read the banner,
EHLO, and STARTTLS when asked. Probes look like a sending MTA doing opportunistic TLS,
so the certificate is not verified here: judging it is the session check's job.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Literal

import aiosmtplib
from aiosmtplib.errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from exporters.result import CheckFailure, Phase

TlsMode = Literal["starttls", "implicit", "none"]


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


def opportunistic_context() -> ssl.SSLContext:
    """TLS as an MTA without DANE or MTA-STS does it: encrypt, verify nothing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def open_client(endpoint: ProbeEndpoint, phase: Phase, *, starttls: bool) -> aiosmtplib.SMTP:
    """A client past banner and EHLO (and STARTTLS plus EHLO again if ``starttls`` and
    the server offers it, or from the first byte on an implicit-TLS port)."""
    client = aiosmtplib.SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        use_tls=endpoint.tls == "implicit",
        start_tls=False,
        tls_context=opportunistic_context(),
        local_hostname=endpoint.ehlo_name,
        timeout=endpoint.step_timeout,
        source_address=(endpoint.source_address, 0) if endpoint.source_address else None,
    )
    try:
        phase.enter("connect and banner")
        await client.connect()
        phase.enter("ehlo")
        await client.ehlo()
        if starttls and endpoint.tls == "starttls" and client.supports_extension("starttls"):
            phase.enter("starttls")
            await client.starttls(tls_context=opportunistic_context())
            phase.enter("ehlo after starttls")
            await client.ehlo()
    except (SMTPException, ssl.SSLError, OSError) as exc:
        client.close()
        raise CheckFailure(failure_reason(exc, endpoint, phase.current)) from None
    return client


async def close_client(client: aiosmtplib.SMTP) -> None:
    """QUIT if the server still listens; close in any case."""
    try:
        if client.is_connected:
            await client.quit()
    except (SMTPException, OSError):
        pass
    finally:
        client.close()


def failure_reason(exc: BaseException, endpoint: ProbeEndpoint, phase: str) -> str:
    """Say what went wrong from the error's type, naming the host and the phase."""
    where = endpoint.where
    tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(tls_error, ssl.SSLError):
        return f"TLS failed with {where} in {phase}: {tls_error.reason or tls_error}"
    if isinstance(exc, SMTPConnectTimeoutError | SMTPTimeoutError | TimeoutError):
        return f"no answer from {where} within {endpoint.step_timeout:g} s in {phase}"
    if isinstance(exc, SMTPConnectResponseError):
        return f"{where} refused the session at the banner: {exc.code} {exc.message}"
    if isinstance(exc, SMTPConnectError):
        cause = exc.__cause__
        why = (
            "connection refused" if isinstance(cause, ConnectionRefusedError) else "cannot connect"
        )
        return f"{why}: {where} in {phase}"
    if isinstance(exc, SMTPResponseException):
        return f"{where} refused {phase}: {exc.code} {exc.message}"
    if isinstance(exc, SMTPServerDisconnected):
        return f"{where} closed the connection in {phase}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: {where} in {phase}"
    if isinstance(exc, OSError):
        return f"network error with {where} in {phase}: {exc.strerror or type(exc).__name__}"
    return f"SMTP error with {where} in {phase}"
