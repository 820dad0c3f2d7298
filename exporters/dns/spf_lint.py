"""The shape of an SPF record tree: lookup budget, void lookups, loops and ``all``.

pyspf evaluates one sender at a time and stops at the first match, so its counts
describe one path.  The limits of RFC 7208 4.6.4 must hold for every sender, so this
walk follows every ``include`` and ``redirect`` and counts every DNS-querying term,
which is the budget an unmatched sender spends.  It is a linter, not an evaluator:
results for real senders come from :mod:`exporters.dns.spf_eval`.

Counting (RFC 7208 4.6.4): ``include``, ``a``, ``mx``, ``ptr``, ``exists`` and
``redirect`` cost one lookup each, wherever they sit in the tree.  A void lookup is a
query those terms make that returns NXDOMAIN or no records; like an IPv4 evaluation,
``a`` and ``exists`` ask for A records.  Targets with macros are counted but not
followed (their name depends on the sender).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dns.rdatatype

from exporters.dns.findings import name_text, tagged, txt_values
from exporters.dns.resolver import DnsCnameLoop, DnsError, StubResolver

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
LOOKUP_WARN = 8
MX_LIMIT = 10
MAX_DEPTH = 10

MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
LOOKUP_MECHANISMS = {"include", "a", "mx", "ptr", "exists"}
NEEDS_DOMAIN = {"include", "exists"}
"""Mechanisms whose ``:domain-spec`` is not optional (RFC 7208 5.2, 5.7)."""
SECTIONS = {"include": "5.2", "a": "5.3", "mx": "5.4", "ptr": "5.5", "exists": "5.7"}
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(?::([^/]*))?(/.*)?$", re.IGNORECASE)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.IGNORECASE)


@dataclass
class SpfTree:
    domain: str
    records: dict[str, str] = field(default_factory=dict)
    """Every record visited, by domain."""
    lookups: int = 0
    void_lookups: int = 0
    lookups_by_term: list[tuple[str, int]] = field(default_factory=list)
    """Top-level lookup terms and the lookups each costs, for the reason."""
    all_qualifier: str | None = None
    """Qualifier of the top-level ``all`` ('+', '-', '~', '?'), None without one."""
    has_redirect: bool = False
    errors: list[str] = field(default_factory=list)
    """Problems that make the record a permerror (or unevaluable) for every sender."""
    warnings: list[str] = field(default_factory=list)


class _Walker:
    def __init__(self, resolver: StubResolver, tree: SpfTree) -> None:
        self.resolver = resolver
        self.tree = tree

    async def record_of(self, domain: str, via: str) -> str | None:
        """The one SPF record of ``domain`` reached through ``via``, or None (noted)."""
        try:
            answer = await self.resolver.query(domain, dns.rdatatype.TXT)
        except DnsCnameLoop as exc:
            self.tree.errors.append(f"{via}: {exc.reason}")
            return None
        except DnsError as exc:
            self.tree.errors.append(f"{via}: {exc.reason} (temperror)")
            return None
        records = tagged(txt_values(answer), "v=spf1")
        if not answer.records:
            self.tree.void_lookups += 1
        if not records:
            self.tree.errors.append(f"{via} points to {domain}, which has no SPF record")
            return None
        if len(records) > 1:
            self.tree.errors.append(
                f"{via} points to {domain}, which has {len(records)} SPF records"
            )
            return None
        return records[0]

    async def is_void(self, name: str, rdtype: dns.rdatatype.RdataType) -> bool:
        try:
            answer = await self.resolver.query(name, rdtype)
        except DnsError:
            return False  # an error, not a void answer; the evaluation reports it
        if rdtype == dns.rdatatype.MX and len(answer.records) > MX_LIMIT:
            self.tree.errors.append(
                f"mx:{name} has {len(answer.records)} MX records (limit {MX_LIMIT})"
            )
        return not answer.records

    async def walk(self, domain: str, record: str, path: list[str]) -> int:
        """Walk ``record`` of ``domain``; return the lookups it costs."""
        self.tree.records[domain] = record
        top = len(path) == 1
        cost = 0
        redirect: str | None = None
        has_all = False
        for term in record.split()[1:]:
            modifier = _MODIFIER.match(term)
            if modifier:
                key, value = modifier.group(1).lower(), modifier.group(2)
                if key == "redirect":
                    if not value:
                        self._syntax(domain, term, "redirect= needs a domain", "6.1")
                        continue
                    redirect = value
                    if top:
                        self.tree.has_redirect = True
                continue
            match = _TERM.match(term)
            mechanism = match.group(2).lower() if match else ""
            if not match or mechanism not in MECHANISMS:
                self.tree.errors.append(f"SPF of {domain} has an unknown term '{term}'")
                continue
            qualifier = match.group(1) or "+"
            target = match.group(3)
            if mechanism == "all":
                has_all = True
                if top:
                    self.tree.all_qualifier = qualifier
                continue
            if mechanism not in LOOKUP_MECHANISMS:
                continue
            if target == "" or (target is None and mechanism in NEEDS_DOMAIN):
                # not the record's own domain (a self-include, a loop): no domain at all
                self._syntax(domain, term, f"{mechanism} needs a domain", SECTIONS[mechanism])
                continue
            cost += 1
            spent = 1
            name = target or domain
            if mechanism == "ptr":
                self.tree.warnings.append(
                    f"SPF of {domain} uses '{term}' (RFC 7208 5.5: do not use ptr)"
                )
            elif "%" in name:
                pass  # depends on the sender: counted, not followed
            elif mechanism == "include":
                spent += await self.follow(name, f"include:{name} in SPF of {domain}", path)
                cost += spent - 1
            elif mechanism in ("a", "exists"):
                if await self.is_void(name, dns.rdatatype.A):
                    self.tree.void_lookups += 1
            elif mechanism == "mx" and await self.is_void(name, dns.rdatatype.MX):
                self.tree.void_lookups += 1
            if top:
                self.tree.lookups_by_term.append((term, spent))
        if redirect is not None and not has_all:
            spent = 1
            if "%" not in redirect:
                spent += await self.follow(
                    redirect, f"redirect={redirect} in SPF of {domain}", path
                )
            cost += spent
            if top:
                self.tree.lookups_by_term.append((f"redirect={redirect}", spent))
        return cost

    def _syntax(self, domain: str, term: str, why: str, section: str) -> None:
        """A term RFC 7208's ABNF does not allow: the record is a permerror for everyone."""
        self.tree.errors.append(
            f"SPF of {domain} has a syntax error in '{term}': {why}"
            f" (RFC 7208 {section}; a permerror for every sender)"
        )

    async def follow(self, target: str, via: str, path: list[str]) -> int:
        target = name_text(target)
        if target in path:
            loop = " -> ".join([*path, target])
            self.tree.errors.append(f"SPF loop {loop}")
            return 0
        if len(path) >= MAX_DEPTH:
            self.tree.errors.append(f"{via}: nesting deeper than {MAX_DEPTH} records")
            return 0
        record = await self.record_of(target, via)
        if record is None:
            return 0
        return await self.walk(target, record, [*path, target])


async def walk_spf(resolver: StubResolver, domain: str, record: str) -> SpfTree:
    """Walk the SPF tree rooted at ``domain``'s (already fetched) ``record``."""
    domain = name_text(domain)
    tree = SpfTree(domain)
    tree.lookups = await _Walker(resolver, tree).walk(domain, record, [domain])
    return tree
