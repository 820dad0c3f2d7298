"""postscreen, dnsblog and tlsproxy: the zombie-blocking front of an MX.

On an internet-facing MX these are most of the log. Raw client bytes appear after
``PREGREET``/``BARE NEWLINE``/``COMMAND PIPELINING``; they are matched by ``.*``
and never used as labels.
"""

from __future__ import annotations

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.parsers.rules import Rules, compile_rule, peer
from exporters.postfix_logs.parsers.smtpd import REPLY_TAIL, TLS_DETAIL, TRUST

CLIENT = peer("client")
_AFTER = r" from " + CLIENT + r" after (?P<stage>[^\s:]*)(?::? ?(?P<text>.*))?"

_LISTED = compile_rule(
    Kind.PS_LISTED,
    r"(?P<action>ALLOWLISTED|WHITELISTED|DENYLISTED|BLACKLISTED"
    r"|ALLOWLIST VETO|WHITELIST VETO) " + CLIENT,
)
_COMMAND = compile_rule(
    Kind.PS_VIOLATION,
    r"(?P<violation>COMMAND (?:TIME|COUNT|LENGTH) LIMIT|COMMAND PIPELINING)" + _AFTER,
)
_WITHOUT_RCPT = compile_rule(
    Kind.PS_VIOLATION, r"(?P<violation>(?:DATA|BDAT) without valid RCPT) from " + CLIENT
)
CACHE_CLEANUP = compile_rule(
    Kind.INFO,
    r"cache (?P<cache>\S+) (?P<cleanup_type>full|partial) cleanup:"
    r" retained=(?P<retained>\d+) dropped=(?P<dropped>\d+) entries",
)

POSTSCREEN = Rules(
    {
        "CONNECT": (
            compile_rule(Kind.PS_CONNECT, r"CONNECT from " + CLIENT + r" to " + peer("server")),
        ),
        "PASS": (compile_rule(Kind.PS_PASS, r"PASS (?P<pass_type>NEW|OLD) " + CLIENT),),
        "DISCONNECT": (compile_rule(Kind.PS_DISCONNECT, r"DISCONNECT " + CLIENT),),
        "DNSBL": (compile_rule(Kind.PS_DNSBL, r"DNSBL rank (?P<rank>\d+) for " + CLIENT),),
        "PREGREET": (
            compile_rule(
                Kind.PS_VIOLATION,
                r"(?P<violation>PREGREET) (?P<bytes>\d+) after (?P<seconds>[\d.]+) from "
                + CLIENT
                + r"(?:: (?P<text>.*))?",
            ),
        ),
        "HANGUP": (
            compile_rule(
                Kind.PS_VIOLATION,
                r"(?P<violation>HANGUP) after (?P<seconds>[\d.]+) from "
                + CLIENT
                + r" in (?P<phase>.*)",
            ),
        ),
        "COMMAND": (_COMMAND,),
        "NON-SMTP": (compile_rule(Kind.PS_VIOLATION, r"(?P<violation>NON-SMTP COMMAND)" + _AFTER),),
        "BARE": (compile_rule(Kind.PS_VIOLATION, r"(?P<violation>BARE NEWLINE)" + _AFTER),),
        "DATA": (_WITHOUT_RCPT,),
        "BDAT": (_WITHOUT_RCPT,),
        "ALLOWLISTED": (_LISTED,),
        "WHITELISTED": (_LISTED,),
        "DENYLISTED": (_LISTED,),
        "BLACKLISTED": (_LISTED,),
        "ALLOWLIST": (_LISTED,),
        "WHITELIST": (_LISTED,),
        "NOQUEUE:": (
            compile_rule(
                Kind.PS_BUSY, r"NOQUEUE: reject: CONNECT from " + CLIENT + r": (?P<text>.*)"
            ),
            compile_rule(
                Kind.PS_REJECT,
                r"(?P<qid>NOQUEUE): (?P<action>reject): (?P<stage>[A-Z-]+) from "
                + CLIENT
                + ": "
                + REPLY_TAIL,
            ),
        ),
        "cache": (CACHE_CLEANUP,),
    }
)

DNSBLOG = Rules(
    {
        "addr": (
            compile_rule(
                Kind.DNSBL_LISTED,
                r"addr (?P<client_ip>\S+) (?:listed|blocked) by domain (?P<dnsbl>\S+)"
                r" as (?P<result>\S+)",
            ),
        ),
    }
)

_TLS_FROM = compile_rule(
    Kind.TLS, TRUST + r" TLS connection (?:established|reused) from " + CLIENT + TLS_DETAIL
)
TLSPROXY = Rules(
    {
        "CONNECT": (compile_rule(Kind.INFO, r"CONNECT from " + CLIENT),),
        "DISCONNECT": (compile_rule(Kind.INFO, r"DISCONNECT " + CLIENT),),
        "Anonymous": (_TLS_FROM,),
        "Untrusted": (_TLS_FROM,),
        "Trusted": (_TLS_FROM,),
        "Verified": (_TLS_FROM,),
        "TLS": (
            compile_rule(
                Kind.TLS_HANDSHAKE_FAILED,
                r"TLS handshake failed for service=(?P<tls_service>\S+) peer=" + CLIENT,
            ),
        ),
    }
)
