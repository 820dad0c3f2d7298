"""Label values: every one comes from a fixed set, a configured list or a capped set."""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"


class BoundedLabel:
    """Admits the first ``limit`` distinct values as they are, folds the rest to ``other``.

    For values that are bounded in practice but not by definition (TLS ciphers, DNSBL
    zones, pipe transports): a misbehaving log cannot grow the series count past it.
    """

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER


def fixed(values: Iterable[str]) -> dict[str, str]:
    """A lookup table for ``table.get(value, OTHER)``."""
    return {v: v for v in values}


STAGES = fixed(
    (
        "CONNECT",
        "HELO",
        "EHLO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "END-OF-MESSAGE",
        "RSET",
        "NOOP",
        "VRFY",
        "ETRN",
        "QUIT",
        "UNKNOWN",
        "XCLIENT",
        "XFORWARD",
    )
)
COMMANDS = fixed(
    (
        "helo",
        "ehlo",
        "starttls",
        "auth",
        "mail",
        "rcpt",
        "data",
        "bdat",
        "rset",
        "noop",
        "vrfy",
        "etrn",
        "quit",
        "unknown",
        "xclient",
        "xforward",
    )
)
SASL_METHODS = fixed(
    (
        "PLAIN",
        "LOGIN",
        "CRAM-MD5",
        "DIGEST-MD5",
        "NTLM",
        "GSSAPI",
        "XOAUTH2",
        "OAUTHBEARER",
        "EXTERNAL",
        "ANONYMOUS",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256",
    )
)
TLS_PROTOCOLS = fixed(("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"))
STATUSES = fixed(
    (
        "sent",
        "deferred",
        "bounced",
        "expired",
        "undeliverable",
        "deliverable",
        "undeliverable-but-not-cached",
    )
)
FINAL_STATUSES = frozenset(("sent", "bounced"))
"""Statuses after which Postfix does not try this recipient again: delays count then."""

ACTIONS = fixed(
    (
        "reject",
        "reject_warning",
        "discard",
        "hold",
        "filter",
        "redirect",
        "warn",
        "warning",
        "info",
        "prepend",
        "replace",
        "bcc",
        "strip",
        "milter-reject",
        "milter-discard",
        "milter-hold",
        "milter-tempfail",
        "milter-header-redirect",
        "milter-header-filter",
        "milter-redirect",
        "milter-quarantine",
    )
)

CONNECT_FAILURES = {
    "Connection timed out": "timed_out",
    "Connection refused": "refused",
    "No route to host": "no_route",
    "Network is unreachable": "unreachable",
    "Connection reset by peer": "reset",
}

POSTSCREEN_ACTIONS = {
    "PASS NEW": "pass_new",
    "PASS OLD": "pass_old",
    "ALLOWLISTED": "allowlisted",
    "WHITELISTED": "allowlisted",
    "DENYLISTED": "denylisted",
    "BLACKLISTED": "denylisted",
    "ALLOWLIST VETO": "allowlist_veto",
    "WHITELIST VETO": "allowlist_veto",
    "PREGREET": "pregreet",
    "HANGUP": "hangup",
    "COMMAND TIME LIMIT": "command_time_limit",
    "COMMAND COUNT LIMIT": "command_count_limit",
    "COMMAND LENGTH LIMIT": "command_length_limit",
    "COMMAND PIPELINING": "command_pipelining",
    "NON-SMTP COMMAND": "non_smtp_command",
    "BARE NEWLINE": "bare_newline",
    "DATA without valid RCPT": "data_without_valid_rcpt",
    "BDAT without valid RCPT": "bdat_without_valid_rcpt",
}
"""Postscreen's words -> ``action`` label; the Postfix 3.6 rename maps to one value."""

POSTSCREEN_BUSY = {
    "too many connections": "too_many_connections",
    "all server ports busy": "all_server_ports_busy",
    "all screening ports busy": "all_screening_ports_busy",
}


def enhanced_code(value: str | None) -> str:
    """An RFC 3463 status (``5.7.1``), or '' when absent, ``other`` when odd-shaped."""
    if value is None:
        return ""
    return value if len(value) <= 7 else OTHER


def reply_code(value: str | None) -> str:
    return value if value is not None else ""


class DomainLabel:
    """A recipient domain if it is in the configured list, else ``other``."""

    __slots__ = ("_domains",)

    def __init__(self, domains: Iterable[str]) -> None:
        self._domains = frozenset(d.lower().rstrip(".") for d in domains)

    def __call__(self, address: str) -> str:
        if not self._domains:
            return OTHER
        domain = address.rpartition("@")[2].lower()
        return domain if domain in self._domains else OTHER
