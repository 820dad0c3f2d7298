"""Field helpers shared by the aggregator, the report and tracing.

``fields`` turns a parsed line into a plain mapping (for ``--trace``, tests and
``--show-unsupported`` neighbours); the others split the compound values Postfix packs
into one field.
"""

from __future__ import annotations

import re
from re import Match

_RELAY = re.compile(r"(?P<host>[^\[\]]*)\[(?P<address>[^\]]*)\](?::(?P<port>\d+))?$")
_TLS_FEATURE = re.compile(
    r"(?P<level>[a-z-]+)(?P<undecided>\?)?(?::(?P<downgrade>[a-z]+))?"
    r"(?:/(?P<violation>!)?(?P<requiretls>requiretls)(?P<requiretls_undecided>\?)?"
    r"(?::(?P<requiretls_downgrade>[a-z]+))?)?$"
)


def fields(match: Match[str]) -> dict[str, str]:
    """The groups a pattern matched, without the ones that did not take part."""
    return {k: v for k, v in match.groupdict().items() if v is not None}


def handed_to(response: str) -> str | None:
    """The next queue ID in ``250 2.0.0 Ok: queued as X`` or ``forwarded as X``."""
    for marker in ("queued as ", "forwarded as "):
        at = response.rfind(marker)
        if at >= 0:
            rest = response[at + len(marker) :].split(None, 1)
            if rest:
                return rest[0].rstrip(")")
    return None


def command_stats(stats: str) -> dict[str, tuple[int, int]]:
    """``ehlo=2 rcpt=0/1 commands=3/4`` -> ``{"ehlo": (2, 2), "rcpt": (0, 1), ...}``:
    (accepted, issued) per SMTP command in an smtpd disconnect line."""
    out: dict[str, tuple[int, int]] = {}
    for item in stats.split():
        name, _, value = item.partition("=")
        ok, slash, total = value.partition("/")
        if ok.isdigit() and (not slash or total.isdigit()):
            out[name] = (int(ok), int(total) if slash else int(ok))
    return out


def split_relay(relay: str) -> tuple[str, str | None, str | None]:
    """``mx.example.com[192.0.2.1]:25`` -> host, address, port (``none``/``local`` -> host only)."""
    m = _RELAY.match(relay)
    if m is None:
        return relay, None, None
    return m["host"], m["address"], m["port"]


def tls_features(value: str) -> dict[str, str]:
    """Postfix 3.10's ``tls=`` status (``dane/!requiretls:nostarttls``) as its parts."""
    m = _TLS_FEATURE.match(value)
    return fields(m) if m is not None else {}
