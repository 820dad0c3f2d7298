"""smtpd: sessions, accepted messages, rejects, TLS and SASL on the receiving side."""

from __future__ import annotations

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.parsers.rules import QID, Rules, compile_rule, peer

REPLY_TAIL = (
    r"(?:(?P<code>\d{3}) )?(?:(?P<enhanced>\d\.\d{1,3}\.\d{1,3}) )?(?:<(?P<data>[^>]*)>: )?"
    r"(?P<text>.*?)(?:; (?P<kv>(?:from|to|proto)=.*))?$"
)
"""``550 5.1.1 <rcpt>: Recipient address rejected: ...; from=<..> to=<..> proto=..``."""

TLS_DETAIL = (
    r": (?P<protocol>\S+) with cipher (?P<cipher>\S+)"
    r" \((?P<secret_bits>\d+)/(?P<algorithm_bits>\d+) bits\)"
    r"(?: key-exchange (?P<key_exchange>\S+))?"
    r"(?: server-signature (?P<server_signature>\S+)"
    r"(?: \((?:(?P<server_signature_size>\d+) bits|(?P<server_signature_curve>[^)]+))\))?)?"
    r"(?: server-digest (?P<server_digest>\S+))?"
)
TRUST = r"(?P<trust>Anonymous|Untrusted|Trusted|Verified)"

ACTION = compile_rule(
    Kind.ACTION,
    QID + r": (?P<action>[a-z_-]+): (?P<stage>[A-Z-]+) from " + peer("client") + ": " + REPLY_TAIL,
)
PROXY = compile_rule(
    Kind.PROXY,
    r"(?:" + QID + r": )?proxy-(?P<action>accept|reject): (?P<stage>[A-Z-]+): " + REPLY_TAIL,
)
TLS_IN = compile_rule(
    Kind.TLS,
    TRUST + r" TLS connection (?:established|reused) from " + peer("client") + TLS_DETAIL,
)
SESSION_END = compile_rule(
    Kind.SESSION_END,
    r"(?:NOQUEUE: )?(?P<event>lost connection|timeout|too many errors) after (?P<stage>\S+)"
    r"(?: \((?P<bytes>\d+) bytes\))? from " + peer("client"),
)
_AFTER = r" after (?P<stage>\S+) from " + peer("client")
_WARNINGS = (
    compile_rule(
        Kind.SASL_FAILURE,
        r"(?P<level>warning): " + peer("client") + r": SASL (?P<method>[^\s:]+) authentication"
        r" (?P<result>failed|aborted)(?::? ?(?P<text>.*?))?"
        r"(?:, sasl_username=(?P<sasl_username>.*))?$",
    ),
    compile_rule(
        Kind.FCRDNS,
        r"(?P<level>warning): hostname (?P<hostname>\S+) does not resolve to address"
        r" (?P<client_ip>\S+?)(?:: (?P<text>.*))?$",
    ),
    compile_rule(
        Kind.FCRDNS,
        r"(?P<level>warning): (?P<client_ip>[^\s\[\]]+): "
        r"(?:hostname (?P<hostname>\S+) verification failed"
        r"|address not listed for hostname (?P<listed_hostname>\S+))",
    ),
    compile_rule(
        Kind.PROTOCOL_ERROR,
        r"(?P<level>warning): (?P<event>non-SMTP command|Illegal address syntax) from "
        + peer("client"),
    ),
    compile_rule(
        Kind.SASL_BACKEND, r"(?P<level>warning): SASL(?: authentication failure)?: (?P<text>.*)"
    ),
)

SMTPD = Rules(
    {
        "connect": (compile_rule(Kind.CONNECT, r"connect from " + peer("client")),),
        "disconnect": (
            compile_rule(
                Kind.DISCONNECT, r"disconnect from " + peer("client") + r"(?: (?P<stats>.*))?"
            ),
        ),
        "Anonymous": (TLS_IN,),
        "Untrusted": (TLS_IN,),
        "Trusted": (TLS_IN,),
        "Verified": (TLS_IN,),
        "NOQUEUE:": (ACTION, PROXY, SESSION_END),
        "lost": (SESSION_END,),
        "timeout": (SESSION_END,),
        "too": (SESSION_END,),
        "improper": (
            compile_rule(
                Kind.PROTOCOL_ERROR,
                r"(?P<event>improper command pipelining)" + _AFTER + r"(?:: (?P<text>.*))?",
            ),
        ),
        "bare": (compile_rule(Kind.PROTOCOL_ERROR, r"(?P<event>bare <LF> received)" + _AFTER),),
        "SSL_accept": (
            compile_rule(
                Kind.PROTOCOL_ERROR,
                r"(?P<event>SSL_accept error) from " + peer("client") + r": (?P<text>.*)",
            ),
        ),
        "proxy-accept:": (PROXY,),
        "proxy-reject:": (PROXY,),
        "warning:": _WARNINGS,
        "discarding": (compile_rule(Kind.INFO, r"discarding EHLO keywords: (?P<keywords>.*)"),),
        "setting": (compile_rule(Kind.INFO, r"setting up TLS connection from " + peer("client")),),
        "cannot": (
            compile_rule(
                Kind.TLS_FAILED,
                r"(?P<event>cannot load [^:]+)(?:: disabling TLS support)?$",
            ),
        ),
        "table": (compile_rule(Kind.TABLE_CHANGED, r"table (?P<table>\S+) has changed"),),
    },
    queue_id=(
        compile_rule(
            Kind.CLIENT,
            QID + r": client=" + peer("client") + r"(?:, sasl_method=(?P<sasl_method>[^,\s]*))?"
            r"(?:, sasl_username=(?P<sasl_username>[^,]*))?"
            r"(?:, sasl_sender=(?P<sasl_sender>[^,]*))?",
        ),
        ACTION,
        PROXY,
    ),
)
