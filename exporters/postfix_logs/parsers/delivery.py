"""Delivery agents (smtp, lmtp, local, virtual, pipe, error, discard, retry): status
lines and the smtp/lmtp client's connection, reply and TLS lines."""

from __future__ import annotations

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.parsers.rules import QID, Rules, compile_rule, peer
from exporters.postfix_logs.parsers.smtpd import TLS_DETAIL, TRUST

DELIVERY = compile_rule(
    Kind.DELIVERY,
    QID + r": to=<?(?P<to>[^,>]*)>?, (?:orig_to=<?(?P<orig_to>[^,>]*)>?, )?"
    r"relay=(?P<relay>[^,]*), (?:conn_use=(?P<conn_use>\d+), )?delay=(?P<delay>[\d.]+), "
    r"delays=(?P<d_before_qmgr>[\d.]+)/(?P<d_in_qmgr>[\d.]+)/(?P<d_conn_setup>[\d.]+)"
    r"/(?P<d_transmission>[\d.]+), (?:tls=(?P<tls>[^,\s]+), )?"
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[a-z-]+) \((?P<response>.*)\)",
)
"""``to=, [orig_to=,] relay=, [conn_use=,] delay=, delays=a/b/c/d, [tls=,] dsn=, status=``."""

RELAY = peer("relay")
_BARE_HOST = r"(?P<server>[^\s\[\]:]+)"
"""A server named without ``[address]``, as Postfix 2.2-2.4's TLS client logged it
(``setting up TLS connection to smtp.gmail.com``); tried after the usual ``host[ip]``."""
_TLS_TO = compile_rule(
    Kind.TLS, TRUST + r" TLS connection (?:established|reused) to " + RELAY + TLS_DETAIL
)

SMTP = Rules(
    {
        "connect": (
            compile_rule(Kind.CONNECT_FAILED, r"connect to " + RELAY + r": (?P<reason>.*)"),
        ),
        "Anonymous": (_TLS_TO,),
        "Untrusted": (_TLS_TO,),
        "Trusted": (_TLS_TO,),
        "Verified": (_TLS_TO,),
        "certificate": (
            compile_rule(
                Kind.TLS_FAILED,
                r"(?P<event>certificate verification failed) for " + RELAY + r": (?P<reason>.*)",
            ),
            compile_rule(
                Kind.TLS_FAILED,
                r"(?P<event>certificate verification failed) for "
                + _BARE_HOST
                + r": (?P<reason>.*)",
            ),
        ),
        "server": (
            compile_rule(
                Kind.TLS_FAILED,
                r"(?P<event>server certificate verification failed) for "
                + RELAY
                + r": (?P<reason>.*)",
            ),
        ),
        "SSL_connect": (
            compile_rule(
                Kind.TLS_FAILED, r"(?P<event>SSL_connect error) to " + RELAY + r": (?P<reason>.*)"
            ),
            compile_rule(
                Kind.TLS_FAILED,
                r"(?P<event>SSL_connect error) to " + _BARE_HOST + r": (?P<reason>.*)",
            ),
        ),
        "setting": (
            compile_rule(
                Kind.INFO,
                r"setting up TLS connection to (?:" + RELAY + r"|" + _BARE_HOST + r")$",
            ),
        ),
        "Host": (compile_rule(Kind.INFO, r"Host offered STARTTLS: \[(?P<relay_host>[^\]]*)\]"),),
    },
    queue_id=(
        DELIVERY,
        compile_rule(
            Kind.REMOTE_REPLY,
            QID + r": host " + RELAY + r" (?:said|(?P<refused>refused to talk to me)): "
            r"(?P<response>.*?)(?: \(in reply to (?P<command>.*) command\))?$",
        ),
        compile_rule(
            Kind.CONVERSATION_LOST,
            QID
            + r": (?P<event>lost connection|conversation) with "
            + RELAY
            + r" (?:timed out )?while (?P<stage>.*)",
        ),
        compile_rule(
            Kind.CLIENT_SASL_FAILED,
            QID + r": SASL authentication failed; server " + RELAY + r" said: (?P<response>.*)",
        ),
        compile_rule(
            Kind.TLS_FAILED,
            QID + r": (?P<event>Cannot start TLS|TLS is required"
            r"|Server certificate not (?:trusted|verified))(?:[:,]? (?P<reason>.*))?",
        ),
        compile_rule(
            Kind.INFO,
            QID + r": enabling PIX workarounds: (?P<workaround>.*) for " + RELAY,
        ),
        compile_rule(
            Kind.INFO,
            QID + r": enabling PIX workarounds: (?P<workaround>.*) for (?P<server>\S+)$",
        ),
        compile_rule(Kind.INFO, QID + r": breaking line > \d+ bytes"),
        compile_rule(Kind.INFO, RELAY + r": re-using session"),
    ),
)

AGENT = Rules({}, queue_id=(DELIVERY,))
"""local, virtual, pipe, error, retry, discard: status lines only (and severities)."""
