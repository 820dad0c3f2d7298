"""The ``canary`` section: round-trip routes and the mailboxes that watch them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigPath, Port, PositiveSeconds, Schedule, Strict, check_secret

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
"""Route and mailbox names: they appear in tokens (dot-separated) and metric labels."""


class ImapMailbox(Strict):
    host: str
    """IMAP server address or name."""
    port: Port = 993
    """993 for implicit TLS, 143 for STARTTLS."""
    tls: Literal["implicit", "starttls"] = "implicit"
    """`implicit` (IMAPS, 993) or `starttls` (143)."""
    server_name: str | None = None
    """Name checked against the server's certificate; unset uses `host`."""
    username: str
    password_file: ConfigPath | None = None
    password_env: str | None = None
    """The password is read from `password_file` or the variable named `password_env`."""
    ca_file: ConfigPath | None = None
    """CA bundle for the server's certificate; unset uses the system's."""
    timeout: PositiveSeconds = 10.0
    """Seconds for connecting and for each IMAP command."""

    @model_validator(mode="after")
    def _secret(self) -> ImapMailbox:
        check_secret(self, "password", required=True)
        return self


class CanaryMailbox(ImapMailbox):
    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    """Routes name the mailbox that receives them by this name."""
    archive_folder: str | None = None
    """Move verified canaries and their DSNs here; unset deletes them."""
    junk_poll_interval: PositiveSeconds = 2.0
    """Seconds between looks at the `\\Junk` folder while canaries are in flight (IDLE
    watches INBOX only)."""


class CanaryExpect(Strict):
    """What a delivered copy must show; each set key is one verification."""

    authserv_id: str | None = None
    """Trust Authentication-Results only from this authserv-id (the receiver's name)."""
    spf: str | None = None
    """Expected spf result in the trusted Authentication-Results, e.g. `pass`."""
    dkim: str | None = None
    """Expected dkim result, e.g. `pass`."""
    dmarc: str | None = None
    """Expected dmarc result, e.g. `pass`."""
    dkim_domain: str | None = None
    """d= of a DKIM signature that must verify (checked by mailprobe itself, with dkimpy)."""
    dkim_selector: str | None = None
    """s= of that signature; unset accepts any selector."""
    return_path: str | None = None
    """Regular expression the Return-Path address must match in full, e.g.
    `SRS0=.*@example\\.test`."""
    srs: bool | None = None
    """`true`: the Return-Path must be SRS-rewritten (forwarded routes); `false`: it must
    not be (direct routes)."""
    tls_every_hop: bool = False
    """Every Received header must show TLS."""
    spam_header: str | None = None
    """Header carrying a numeric spam score, e.g. `X-Spam-Score`."""
    spam_max: float | None = None
    """Highest acceptable value of `spam_header`."""
    max_latency: PositiveSeconds | None = None
    """A delivery slower than this fails the latency verification."""

    @field_validator("return_path")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _spam(self) -> CanaryExpect:
        if (self.spam_header is None) != (self.spam_max is None):
            raise ValueError("give both 'spam_header' and 'spam_max', or neither")
        return self


class CanaryRoute(Strict):
    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    smtp_host: str
    """Where the canary is handed in: an MX, a relay or a submission server."""
    smtp_port: Port = 25
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """As for SMTP targets: `starttls` (25/587), `implicit` (465), `none`."""
    server_name: str | None = None
    """Name checked against the SMTP server's certificate; unset uses `smtp_host`."""
    ca_file: ConfigPath | None = None
    """CA bundle for the SMTP server's certificate; unset uses the system's."""
    username: str | None = None
    """SASL login (submission); unset sends without AUTH."""
    password_file: ConfigPath | None = None
    password_env: str | None = None
    """The SASL password, from `password_file` or the variable named `password_env`."""
    ehlo_name: str = "mailprobe.invalid"
    mail_from: str
    """Envelope sender."""
    header_from: str | None = None
    """Header From; unset uses `mail_from`."""
    rcpt_to: str
    mailbox: str
    """Name of the `canary.mailboxes` entry where this route's canaries land."""
    expect: CanaryExpect = CanaryExpect()
    schedule: Schedule = Schedule()
    """`interval` between canaries in `serve`; `timeout` of one SMTP step."""
    deadline: PositiveSeconds = 300.0
    """Seconds after sending by which the canary should have arrived; later is `late`."""
    grace: PositiveSeconds = 900.0
    """Seconds after the deadline before a missing canary is `lost`."""

    @model_validator(mode="after")
    def _secret(self) -> CanaryRoute:
        check_secret(self, "password", required=False)
        if self.username is not None and self.password_file is None and self.password_env is None:
            raise ValueError("'username' needs 'password_file' or 'password_env'")
        return self


class CanarySection(Strict):
    key_file: ConfigPath | None = None
    """HMAC key of the canary tokens; created (mode 0600) on first start if missing.
    Unset uses `canary.key` in `state_dir`."""
    mailboxes: list[CanaryMailbox] = Field(default_factory=list)
    routes: list[CanaryRoute] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> CanarySection:
        names = [m.name for m in self.mailboxes]
        if len(set(names)) != len(names):
            raise ValueError("mailbox names must be unique")
        routes = [r.name for r in self.routes]
        if len(set(routes)) != len(routes):
            raise ValueError("route names must be unique")
        for route in self.routes:
            if route.mailbox not in names:
                known = ", ".join(names) or "none"
                raise ValueError(
                    f"route {route.name}: no mailbox named {route.mailbox!r} (known: {known})"
                )
        return self
