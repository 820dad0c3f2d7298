"""Programs that share mail.log with Postfix: counted by program, a few lines parsed.

Every line of a known program is understood (kind FOREIGN at least); the shapes below
feed their own metrics or link a queue ID for tracing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from exporters.postfix_logs.kinds import Kind
from exporters.postfix_logs.parsers.rules import QID, Parsed

_ANY = re.compile(r"(?P<text>.*)")

_SRS = (
    # postsrsd 1.x
    re.compile(
        r"srs_(?P<direction>forward|reverse): <(?P<address>[^>]*)>"
        r" (?P<result>rewritten as|not rewritten:) ?(?P<detail>.*)"
    ),
    # postsrsd 2.x (also as a milter, then with a queue ID)
    re.compile(
        r"(?:(?:NOQUEUE|" + QID + r"): )?<(?P<address>[^>]*)>"
        r" (?P<result>forwarded as|not rewritten:|reversed to|not reversed:) ?(?P<detail>.*)"
    ),
    re.compile(QID + r": (?P<result>rejecting invalid SRS address) <(?P<address>[^>]*)>"),
)
_DKIM = re.compile(
    QID + r": DKIM-Signature field added \(s=(?P<selector>[^,]*), d=(?P<domain>[^)]*)\)"
)
_RSPAMD = re.compile(
    r"<[^>]*>; task; rspamd_task_write_log: .*?qid: <(?P<qid>[^>]*)>.*?"
    r"\((?P<setting>[^:()]+): (?P<is_spam>[FT]) \((?P<action>[a-z ]+)\):"
    r" \[(?P<score>-?[\d.]+)/(?P<required>-?[\d.]+)\]"
)
_CLAMD = re.compile(r"(?P<path>.*): (?P<virus>\S+) FOUND$")
_CLAMAV_MILTER = re.compile(
    r"Message (?P<qid>\S+) from <[^>]*> to <[^>]*>.* infected by (?P<virus>\S+)"
)
_SPAMD = re.compile(
    r"spamd: (?P<result>clean message|identified spam)"
    r" \((?P<score>-?[\d.]+)/(?P<required>-?[\d.]+)\)"
)


def _first(kind: Kind, patterns: tuple[re.Pattern[str], ...]) -> Callable[[str], Parsed]:
    def parse(message: str) -> Parsed:
        for pattern in patterns:
            m = pattern.match(message)
            if m is not None:
                return kind, m
        return Kind.FOREIGN, _ANY.match(message)  # type: ignore[return-value]

    return parse


def _clamav(message: str) -> Parsed:
    m = _CLAMAV_MILTER.match(message) if message.startswith("Message ") else None
    if m is None and message.endswith(" FOUND"):
        m = _CLAMD.match(message)
    if m is not None:
        return Kind.VIRUS, m
    return Kind.FOREIGN, _ANY.match(message)  # type: ignore[return-value]


FOREIGN_PARSERS: dict[str, Callable[[str], Parsed | None]] = {
    "postsrsd": _first(Kind.SRS, _SRS),
    "opendkim": _first(Kind.DKIM_SIGNED, (_DKIM,)),
    "rspamd": _first(Kind.RSPAMD, (_RSPAMD,)),
    "clamav": _clamav,
    "spamassassin": _first(Kind.SPAMD, (_SPAMD,)),
}
"""By ``program`` label; programs not listed are understood as FOREIGN lines."""

parse_foreign = _first(Kind.FOREIGN, ())
