"""Collecting what a DNS check found, and DNS helpers every check uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.rdatatype

from exporters.dns.resolver import Answer, DnssecState, StubResolver
from exporters.result import FactValue, Outcome


@dataclass
class Findings:
    """Problems (worst first in the reason), notes for the detail, and facts."""

    fails: list[str] = field(default_factory=list)
    warns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, FactValue] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.fails.append(message)

    def warn(self, message: str) -> None:
        self.warns.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def dnssec(self, answer: Answer) -> None:
        """Record the DNSSEC state of the check's main answer (worst one wins)."""
        order = [DnssecState.SECURE, DnssecState.INSECURE, DnssecState.BOGUS]
        current = self.facts.get("dnssec_state")
        if current is None or order.index(answer.dnssec) > order.index(DnssecState(str(current))):
            self.facts["dnssec_state"] = answer.dnssec.value

    def outcome(self) -> Outcome:
        detail = "\n".join([*self.fails, *self.warns, *self.notes]) or None
        if self.fails:
            return Outcome.fail("; ".join([*self.fails, *self.warns]), self.facts, detail)
        if self.warns:
            return Outcome.warn("; ".join(self.warns), self.facts, detail)
        return Outcome.ok(self.facts, detail)


def name_text(name: object) -> str:
    """A DNS name as people write it: no trailing dot, lower case."""
    text = name.to_text(omit_final_dot=True) if isinstance(name, dns.name.Name) else str(name)
    return text.rstrip(".").lower()


def txt_values(answer: Answer) -> list[str]:
    """Each TXT record's character-strings joined (RFC 7208 3.3), decoded leniently."""
    out = []
    for rdata in answer.records:
        strings = getattr(rdata, "strings", ())
        out.append(b"".join(strings).decode("utf-8", errors="replace"))
    return out


async def txt_records(resolver: StubResolver, name: str) -> tuple[list[str], Answer]:
    answer = await resolver.query(name, dns.rdatatype.TXT)
    return txt_values(answer), answer


def tagged(values: list[str], prefix: str) -> list[str]:
    """Records whose text starts with ``prefix`` as its own term (case-insensitive)."""
    want = prefix.lower()
    return [
        v
        for v in values
        if v.lower() == want or v.lower().startswith(want + " ") or v.lower().startswith(want + ";")
    ]


def parse_tags(record: str) -> tuple[dict[str, str], list[str]]:
    """``k=v; k2=v2`` tag lists (DKIM RFC 6376 3.2, DMARC, MTA-STS, TLS-RPT).

    Returns the tags and the problems found (duplicate tags, terms without ``=``).
    """
    tags: dict[str, str] = {}
    problems: list[str] = []
    for part in record.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"'{part}' is not a tag=value pair")
            continue
        if key in tags:
            problems.append(f"tag '{key}' appears twice")
            continue
        tags[key] = value.strip()
    return tags, problems
