"""The dispatch every daemon parser shares: first word -> a few anchored patterns.

A message's first word (``connect``, ``NOQUEUE:``, ``warning:``, ``CONNECT``) picks a
short tuple of patterns; lines that start with a queue ID (``4PbC4x469Jz3tBr:``) fall
through to the daemon's queue-ID patterns, ordered by how often they occur. Each
pattern is anchored at the start and built from literal words and negated character
classes, so a failing pattern fails within a few characters and nothing backtracks
over a whole line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from re import Match, Pattern

from exporters.postfix_logs.kinds import Kind

Rule = tuple[Kind, Pattern[str]]
Parsed = tuple[Kind, Match[str]]
Parser = Callable[[str], Parsed | None]

QID = r"(?P<qid>[0-9A-Za-z]{5,25})"
"""A queue ID, short (``C6E0DDB74006``) or long (``4PbC4x469Jz3tBr``); also NOQUEUE."""

ENHANCED = r"\d\.\d{1,3}\.\d{1,3}"


def peer(name: str) -> str:
    """``host[address]`` with an optional ``:port``, as groups ``<name>_host`` etc."""
    return (
        rf"(?P<{name}_host>[^\s\[\]]*)\[(?P<{name}_ip>[^\]\s]*)\]"
        rf"(?::(?P<{name}_port>\d+))?"
    )


def compile_rule(kind: Kind, pattern: str) -> Rule:
    return kind, re.compile(pattern)


SEVERITY_HEADS = ("warning:", "error:", "fatal:", "panic:")
SEVERITY = compile_rule(Kind.LOG, r"(?P<level>warning|error|fatal|panic): (?P<text>.*)")
"""Any severity line no specific rule claimed: understood, counted by level."""


class Rules:
    """A daemon's parser: ``rules.parse(message)`` -> ``(Kind, match)`` or None."""

    def __init__(
        self, by_head: Mapping[str, Sequence[Rule]], queue_id: Sequence[Rule] = ()
    ) -> None:
        table = {head: tuple(rules) for head, rules in by_head.items()}
        for head in SEVERITY_HEADS:
            table[head] = (*table.get(head, ()), SEVERITY)
        self.heads = frozenset(table)
        self.table = table
        self.queue_id = tuple(queue_id)
        self.parse = _parser(table, self.queue_id)

    def __call__(self, message: str) -> Parsed | None:
        return self.parse(message)


def _parser(table: dict[str, tuple[Rule, ...]], queue_id: tuple[Rule, ...]) -> Parser:
    """A closure rather than a method: this runs once per line."""
    rules_for = table.get

    def parse(message: str) -> Parsed | None:
        space = message.find(" ")
        for kind, pattern in rules_for(message[:space] if space > 0 else message, queue_id):
            m = pattern.match(message)
            if m is not None:
                return kind, m
        return None

    return parse


UNKNOWN = Rules({})
"""For daemons and programs nobody wrote rules for: only severity lines are understood."""
parse_unknown = UNKNOWN.parse
