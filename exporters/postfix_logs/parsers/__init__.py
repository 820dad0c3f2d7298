"""Line parsers: one per Postfix daemon (and per program sharing mail.log).

A parser takes the message part of a line and returns ``(Kind, match)`` or None
(unsupported). Dispatch is by daemon first, then by the message's first word.
"""

from __future__ import annotations

from exporters.postfix_logs.parsers.delivery import AGENT, SMTP
from exporters.postfix_logs.parsers.foreign import FOREIGN_PARSERS, parse_foreign
from exporters.postfix_logs.parsers.queue import BOUNCE, CLEANUP, PICKUP, POSTSUPER, QMGR
from exporters.postfix_logs.parsers.rules import UNKNOWN, Parser, Rules, parse_unknown
from exporters.postfix_logs.parsers.screening import DNSBLOG, POSTSCREEN, TLSPROXY
from exporters.postfix_logs.parsers.smtpd import SMTPD
from exporters.postfix_logs.parsers.system import (
    ANVIL,
    MASTER,
    POSTFIX_COMMAND,
    POSTFIX_SCRIPT,
    SCACHE,
    VERIFY,
)

POSTFIX_RULES: dict[str, Rules] = {
    "smtpd": SMTPD,
    "postscreen": POSTSCREEN,
    "dnsblog": DNSBLOG,
    "tlsproxy": TLSPROXY,
    "anvil": ANVIL,
    "cleanup": CLEANUP,
    "qmgr": QMGR,
    "oqmgr": QMGR,
    "pickup": PICKUP,
    "postsuper": POSTSUPER,
    "bounce": BOUNCE,
    "defer": BOUNCE,
    "trace": BOUNCE,
    "smtp": SMTP,
    "lmtp": SMTP,
    "local": AGENT,
    "virtual": AGENT,
    "pipe": AGENT,
    "error": AGENT,
    "retry": AGENT,
    "discard": AGENT,
    "master": MASTER,
    "postfix-script": POSTFIX_SCRIPT,
    "postfix": POSTFIX_COMMAND,
    "scache": SCACHE,
    "verify": VERIFY,
    # daemons and tools that log only warnings, errors and fatals
    **{
        name: UNKNOWN
        for name in (
            "trivial-rewrite",
            "tlsmgr",
            "proxymap",
            "flush",
            "showq",
            "spawn",
            "qmqpd",
            "postlogd",
            "sendmail",
            "postdrop",
            "postmap",
            "postalias",
            "postqueue",
            "postconf",
            "postmulti",
            "postlog",
            "postkick",
            "postlock",
            "postcat",
        )
    },
}
"""The Postfix daemons known by name: the bounded set of ``daemon`` label values."""

__all__ = [
    "FOREIGN_PARSERS",
    "POSTFIX_RULES",
    "UNKNOWN",
    "Parser",
    "Rules",
    "parse_foreign",
    "parse_unknown",
]
