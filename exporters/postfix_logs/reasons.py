"""Reply and reject text -> a reason class from a small, configurable table.

Free text never becomes a label: the first rule whose pattern is found in the text
names the class, and text no rule matches is ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

OTHER = "other"
_CACHE_LIMIT = 4096
_NO_DIGITS = str.maketrans("", "", "0123456789")
_DIGIT = re.compile(r"[0-9]|\\d|\[:digit:\]")


class ReasonRule(NamedTuple):
    """A reason class and the pattern that names it (a tuple: it crosses to worker
    processes, and the compiled build cannot unpickle frozen dataclasses)."""

    reason: str
    pattern: str


DEFAULT_REASONS: tuple[ReasonRule, ...] = (
    ReasonRule("greylist", r"(?i)gr[ae]y-?list"),
    ReasonRule(
        "dnsbl", r"(?i)blocked using|\b(?:rbl|dnsbl|spamhaus|spamcop|barracuda)\b|block ?list"
    ),
    ReasonRule(
        "unknown_user",
        r"(?i)user unknown|unknown user|no such (?:user|mailbox)|"
        r"mailbox (?:unavailable|not found)|recipient not found|does not exist|"
        r"invalid recipient|undeliverable address",
    ),
    ReasonRule("relay_denied", r"(?i)relay access denied|relaying denied"),
    ReasonRule(
        "rate_limit",
        r"(?i)rate limit|too many (?:connections|messages|recipients|errors)|"
        r"throttl|try again later|please try again",
    ),
    ReasonRule(
        "quota", r"(?i)quota|mailbox (?:is )?full|out of storage|insufficient (?:system )?storage"
    ),
    ReasonRule("spf", r"(?i)\bspf\b"),
    ReasonRule("dkim_dmarc", r"(?i)\bdkim\b|\bdmarc\b"),
    ReasonRule("virus", r"(?i)virus|malware|infected"),
    ReasonRule("spam", r"(?i)spam|unsolicited|content rejected|message content"),
    ReasonRule("tls", r"(?i)\btls\b|starttls|encryption required"),
    ReasonRule(
        "dns",
        r"(?i)host not found|domain not found|name service error|no mx |"
        r"cannot find your (?:reverse )?hostname|does not resolve|temporary lookup failure",
    ),
    ReasonRule("helo", r"(?i)helo command rejected"),
    ReasonRule("sender", r"(?i)sender address rejected"),
    ReasonRule("recipient", r"(?i)recipient address rejected"),
    ReasonRule("client", r"(?i)client host rejected|access denied"),
    ReasonRule(
        "connection",
        r"(?i)connection (?:timed out|refused)|no route to host|"
        r"network is unreachable|lost connection|timed out|conversation with",
    ),
    ReasonRule("size", r"(?i)message (?:file )?(?:too big|size exceeds)|too large"),
    ReasonRule("protocol", r"(?i)protocol error|syntax|pipelining|bare <lf>"),
    ReasonRule("policy", r"(?i)policy|not allowed|rejected|prohibited|denied"),
)


class ReasonClassifier:
    """Tries the rules in order; configured rules come before the defaults."""

    def __init__(self, rules: Sequence[ReasonRule]) -> None:
        self._rules = tuple((r.reason, re.compile(r.pattern)) for r in rules)
        self.reasons = frozenset(r.reason for r in rules) | {OTHER}
        self._seen: dict[str, str] = {}
        """Reply texts repeat (same table, same remote site): remember recent answers."""
        self._fold = _NO_DIGITS if not any(_DIGIT.search(r.pattern) for r in rules) else None
        """When no pattern looks at digits, texts that differ only in digits (client
        addresses, ids) share one remembered answer."""

    def __call__(self, text: str) -> str:
        if self._fold is not None:
            text = text.translate(self._fold)
        reason = self._seen.get(text)
        if reason is None:
            reason = next((r for r, p in self._rules if p.search(text) is not None), OTHER)
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            self._seen[text] = reason
        return reason
