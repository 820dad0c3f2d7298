"""The ``smtp`` section: which SMTP endpoints to probe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import ConfigPath, Port, Schedule, Strict


class SmtpTarget(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Label value naming this endpoint in results and metrics."""
    host: str = Field(min_length=1)
    """Host name or address to connect to."""
    port: Port = 25
    """TCP port: 25 (MX), 465 (implicit TLS), 587 (submission)."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """How TLS starts: STARTTLS after EHLO, TLS from the first byte, or not at all."""
    server_name: str | None = None
    """Name expected in the certificate and used for SNI; defaults to ``host``."""
    ehlo_name: str = "mailprobe.invalid"
    """Name sent in EHLO."""
    cert_warn_days: float = Field(default=14.0, ge=0)
    """A served certificate expiring sooner than this turns the check to warn."""
    schedule: Schedule = Schedule()
    """Interval and timeout of this endpoint's checks."""


class MtaStsDomain(Strict):
    domain: str = Field(min_length=1)
    """Mail domain whose MTA-STS policy is fetched and judged (needs `dns.resolvers`)."""
    schedule: Schedule = Schedule()
    """Interval and timeout of this domain's MTA-STS check; unset interval: one hour."""


class SmtpSection(Strict):
    ca_file: ConfigPath | None = None
    """CA bundle trusted for every endpoint; unset uses the system store."""
    targets: list[SmtpTarget] = Field(default_factory=list)
    """Endpoints to probe."""
    mta_sts: list[MtaStsDomain] = Field(default_factory=list)
    """Domains whose MTA-STS policy (RFC 8461) is fetched over HTTPS and judged."""
