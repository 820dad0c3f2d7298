"""Line parsers: one per Postfix daemon (and per program sharing mail.log).

A parser takes the message part of a line and returns ``(Kind, match)`` or None
(unsupported). Dispatch is by daemon first, then by the message's first word.
"""

from __future__ import annotations

from exporters.postfix_logs.parsers.delivery import AGENT, SMTP
from exporters.postfix_logs.parsers.foreign import FOREIGN_PARSERS, parse_foreign
from exporters.postfix_logs.parsers.queue import BOUNCE, CLEANUP, PICKUP, POSTSUPER, QMGR
from exporters.postfix_logs.parsers.rules import Parser, parse_unknown
from exporters.postfix_logs.parsers.screening import DNSBLOG, POSTSCREEN, TLSPROXY
from exporters.postfix_logs.parsers.smtpd import SMTPD
from exporters.postfix_logs.parsers.system import ANVIL, MASTER, POSTFIX_SCRIPT, SCACHE, VERIFY

POSTFIX_PARSERS: dict[str, Parser] = {
    "smtpd": SMTPD.parse,
    "postscreen": POSTSCREEN.parse,
    "dnsblog": DNSBLOG.parse,
    "tlsproxy": TLSPROXY.parse,
    "anvil": ANVIL.parse,
    "cleanup": CLEANUP.parse,
    "qmgr": QMGR.parse,
    "oqmgr": QMGR.parse,
    "pickup": PICKUP.parse,
    "postsuper": POSTSUPER.parse,
    "bounce": BOUNCE.parse,
    "defer": BOUNCE.parse,
    "trace": BOUNCE.parse,
    "smtp": SMTP.parse,
    "lmtp": SMTP.parse,
    "local": AGENT.parse,
    "virtual": AGENT.parse,
    "pipe": AGENT.parse,
    "error": AGENT.parse,
    "retry": AGENT.parse,
    "discard": AGENT.parse,
    "master": MASTER.parse,
    "postfix-script": POSTFIX_SCRIPT.parse,
    "scache": SCACHE.parse,
    "verify": VERIFY.parse,
    # daemons and tools that log only warnings, errors and fatals
    **{
        name: parse_unknown
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
            "postfix",
        )
    },
}
"""The Postfix daemons known by name: the bounded set of ``daemon`` label values."""

__all__ = ["FOREIGN_PARSERS", "POSTFIX_PARSERS", "Parser", "parse_foreign", "parse_unknown"]
