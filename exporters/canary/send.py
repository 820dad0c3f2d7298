"""Hand one canary to an SMTP server with aiosmtplib, and say how it went.

Every step has its own timeout. A failure before the message was handed over is
``send_failed`` with a reason class (connect, tls, auth, rejected_4xx, rejected_5xx,
timeout) and the server's words; a timeout or a lost connection once DATA began is
``send_uncertain``: the server may have queued the message, so it is still watched for.
Reasons come from aiosmtplib's typed errors, never from their text.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiosmtplib
from aiosmtplib.errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

TlsMode = Literal["starttls", "implicit", "none"]
FailureClass = Literal["connect", "tls", "auth", "rejected_4xx", "rejected_5xx", "timeout"]


@dataclass(frozen=True, slots=True)
class SmtpRoute:
    host: str
    port: int
    tls: TlsMode = "starttls"
    server_name: str | None = None
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ehlo_name: str = "mailprobe.invalid"
    step_timeout: float = 20.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SendResult:
    state: Literal["sent", "failed", "uncertain"]
    failure: FailureClass | None = None
    reason: str = ""
    code: int | None = None
    queue_reply: str = ""
    """The server's final reply text (``250 2.0.0 Ok: queued as X``)."""


def _context(route: SmtpRoute) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(route.ca_file) if route.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _reply_failure(phase: str, route: SmtpRoute, exc: SMTPResponseException) -> SendResult:
    text = " ".join(exc.message.split())
    if isinstance(exc, SMTPAuthenticationError) or phase == "auth":
        return SendResult(
            "failed",
            "auth",
            f"{route.where} refused AUTH for {route.username}: {exc.code} {text}",
            exc.code,
        )
    if phase == "tls":
        return SendResult(
            "failed", "tls", f"{route.where} refused STARTTLS: {exc.code} {text}", exc.code
        )
    kind: FailureClass = "rejected_4xx" if 400 <= exc.code < 500 else "rejected_5xx"
    if exc.code < 400:
        kind = "rejected_5xx" if phase != "connect" else "connect"
    return SendResult(
        "failed", kind, f"{route.where} rejected {phase}: {exc.code} {text}", exc.code
    )


async def send_message(
    route: SmtpRoute, mail_from: str, rcpt_to: str, message: bytes
) -> SendResult:
    phase = "connect"
    tls_name = route.server_name or route.host
    smtp: aiosmtplib.SMTP | None = None
    try:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(route.step_timeout):
                sock = socket.socket(socket.AF_INET6 if ":" in route.host else socket.AF_INET)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (route.host, route.port))
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            return SendResult(
                "failed", "timeout", f"no connection to {route.where} in {route.step_timeout:g} s"
            )
        except OSError as exc:
            return SendResult(
                "failed", "connect", f"cannot connect to {route.where}: {exc.strerror or exc}"
            )
        smtp = aiosmtplib.SMTP(
            hostname=tls_name,
            sock=sock,
            local_hostname=route.ehlo_name,
            timeout=route.step_timeout,
            use_tls=route.tls == "implicit",
            start_tls=False,
            tls_context=_context(route) if route.tls != "none" else None,
        )
        phase = "tls" if route.tls == "implicit" else "connect"
        await smtp.connect()
        phase = "ehlo"
        await smtp.ehlo()
        if route.tls == "starttls":
            phase = "tls"
            await smtp.starttls(server_hostname=tls_name, tls_context=_context(route))
            phase = "ehlo"
            await smtp.ehlo()
        if route.username is not None:
            phase = "auth"
            await smtp.login(route.username, route.password or "")
        phase = "MAIL FROM"
        await smtp.mail(mail_from)
        phase = "RCPT TO"
        await smtp.rcpt(rcpt_to)
        phase = "DATA"
        reply = await smtp.data(message)
        phase = "QUIT"
        with contextlib.suppress(SMTPException):  # queued already: QUIT changes nothing
            await smtp.quit()
        return SendResult("sent", code=reply.code, queue_reply=f"{reply.code} {reply.message}")
    except (SMTPTimeoutError, TimeoutError):
        if phase == "DATA":
            return SendResult(
                "uncertain",
                "timeout",
                f"{route.where} did not answer DATA within {route.step_timeout:g} s: it may "
                "have queued the canary",
            )
        return SendResult(
            "failed",
            "timeout",
            f"{route.where}: no answer in {phase} within {route.step_timeout:g} s",
        )
    except SMTPResponseException as exc:
        return _reply_failure(phase, route, exc)
    except SMTPServerDisconnected:
        if phase == "DATA":
            return SendResult(
                "uncertain",
                "timeout",
                f"{route.where} closed the connection during DATA: it may have queued the canary",
            )
        kind: FailureClass = "tls" if phase == "tls" else "connect"
        return SendResult("failed", kind, f"{route.where} closed the connection in {phase}")
    except ssl.SSLError as exc:
        return SendResult(
            "failed", "tls", f"TLS handshake with {route.where} failed: {exc.reason or exc}"
        )
    except (SMTPException, OSError) as exc:
        kind = "tls" if phase == "tls" else "auth" if phase == "auth" else "connect"
        cause = exc.__cause__ if isinstance(exc.__cause__, ssl.SSLError) else None
        if cause is not None:
            return SendResult(
                "failed", "tls", f"TLS handshake with {route.where} failed: {cause.reason or cause}"
            )
        words = str(exc) or type(exc).__name__
        return SendResult("failed", kind, f"{route.where}: {phase} failed: {words}")
    finally:
        if smtp is not None and smtp.is_connected:
            smtp.close()
