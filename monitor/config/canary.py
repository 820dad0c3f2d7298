"""The ``canary`` section: round-trip routes and the mailbox that watches them."""

from __future__ import annotations

from pydantic import Field, model_validator

from monitor.config.base import ConfigPath, Port, Schedule, Strict, check_secret


class ImapMailbox(Strict):
    host: str
    """IMAP server name (also checked against its certificate)."""
    port: Port = 993
    """993 for implicit TLS, 143 for STARTTLS."""
    username: str
    password_file: ConfigPath | None = None
    password_env: str | None = None
    """The password is read from `password_file` or the variable named `password_env`."""
    ca_file: ConfigPath | None = None

    @model_validator(mode="after")
    def _secret(self) -> ImapMailbox:
        check_secret(self, "password", required=True)
        return self


class CanaryRoute(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    smtp_host: str
    smtp_port: Port = 25
    mail_from: str
    rcpt_to: str
    schedule: Schedule = Schedule()


class CanarySection(Strict):
    mailbox: ImapMailbox | None = None
    routes: list[CanaryRoute] = Field(default_factory=list)
