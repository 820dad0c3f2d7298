"""The ``smtp`` section: which SMTP endpoints to probe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.base import ConfigPath, Port, Schedule, Strict


class SmtpTarget(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    host: str = Field(min_length=1)
    port: Port = 25
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    server_name: str | None = None
    """Name expected in the certificate and used for SNI; defaults to ``host``."""
    ehlo_name: str = "mailprobe.invalid"
    cert_warn_days: float = Field(default=14.0, ge=0)
    """A served certificate expiring sooner than this turns the check to warn."""
    schedule: Schedule = Schedule()


class SmtpSection(Strict):
    ca_file: ConfigPath | None = None
    targets: list[SmtpTarget] = Field(default_factory=list)
