"""The SPF check: one record, its tree within the RFC 7208 limits, each sender's result."""

from __future__ import annotations

from dataclasses import dataclass

from exporters.dns.findings import Findings, name_text, tagged, txt_records
from exporters.dns.resolver import DnsError, StubResolver
from exporters.dns.spf_eval import SpfEvaluator
from exporters.dns.spf_lint import LOOKUP_LIMIT, LOOKUP_WARN, VOID_LIMIT, SpfTree, walk_spf
from exporters.result import Outcome, Phase


@dataclass(frozen=True, slots=True)
class SpfSender:
    """A host that sends as the domain, and the result its address should get."""

    name: str
    address: str
    expect: str = "pass"
    mail_from: str | None = None
    """Envelope sender to evaluate; ``postmaster@<domain>`` when unset."""


@dataclass(frozen=True, slots=True)
class SpfSettings:
    domain: str
    senders: tuple[SpfSender, ...] = ()


async def check_spf(resolver: StubResolver, settings: SpfSettings, phase: Phase) -> Outcome:
    domain = name_text(settings.domain)
    found = Findings()
    phase.enter(f"TXT {domain}")
    try:
        values, answer = await txt_records(resolver, domain)
    except DnsError as exc:
        return Outcome.fail(f"SPF: {exc.reason}")
    found.dnssec(answer)
    records = tagged(values, "v=spf1")
    if answer.nxdomain:
        return Outcome.fail(f"SPF of {domain}: the domain does not exist (NXDOMAIN)", found.facts)
    if not records:
        return Outcome.fail(f"no SPF record at {domain} (no TXT starting 'v=spf1')", found.facts)
    if len(records) > 1:
        listed = " | ".join(records)
        return Outcome.fail(
            f"{len(records)} SPF records at {domain} (RFC 7208 3.2 allows one: "
            f"permerror): {listed}",
            found.facts,
        )
    record = records[0]
    found.note(f"SPF of {domain}: {record}")
    phase.enter(f"SPF tree of {domain}")
    tree = await walk_spf(resolver, domain, record)
    _judge_tree(tree, found)
    evaluator = SpfEvaluator(resolver)
    ok = 0
    for sender in settings.senders:
        phase.enter(f"SPF of {domain} for {sender.address}")
        mail_from = sender.mail_from or f"postmaster@{domain}"
        verdict = await evaluator.evaluate(sender.address, mail_from, sender.name)
        if verdict.result == sender.expect:
            ok += 1
            found.note(f"{sender.address} ({sender.name}): {verdict.result} as expected")
            continue
        why = f" ({verdict.explanation})" if verdict.result in ("permerror", "temperror") else ""
        verb = "does not authorise" if sender.expect == "pass" else "gives an unexpected result for"
        found.fail(
            f"SPF of {domain} {verb} {sender.address} ({sender.name}): "
            f"result {verdict.result}{why}, expected {sender.expect}"
        )
    found.facts["spf_senders_ok"] = ok
    return found.outcome()


def _judge_tree(tree: SpfTree, found: Findings) -> None:
    domain = tree.domain
    found.facts["spf_lookups"] = tree.lookups
    found.facts["spf_void_lookups"] = tree.void_lookups
    for error in tree.errors:
        found.fail(error)
    if tree.lookups > LOOKUP_LIMIT:
        found.fail(
            f"SPF of {domain} needs {tree.lookups} DNS lookups, over the limit of "
            f"{LOOKUP_LIMIT} (permerror for senders it does not match early): {_costs(tree)}"
        )
    elif tree.lookups >= LOOKUP_WARN:
        found.warn(
            f"SPF of {domain} needs {tree.lookups} of at most {LOOKUP_LIMIT} DNS lookups: "
            f"{_costs(tree)}"
        )
    if tree.void_lookups > VOID_LIMIT:
        found.fail(
            f"SPF of {domain} makes {tree.void_lookups} void lookups, over the limit of "
            f"{VOID_LIMIT} (permerror)"
        )
    found.warns.extend(tree.warnings)
    qualifier = tree.all_qualifier
    if qualifier == "+":
        found.warn(f"SPF of {domain} ends in +all: every host on the internet may send as it")
    elif qualifier == "?":
        found.warn(f"SPF of {domain} ends in ?all: unlisted senders get neutral, not rejected")
    elif qualifier is None and not tree.has_redirect:
        found.warn(f"SPF of {domain} has no 'all' term: unlisted senders get neutral")


def _costs(tree: SpfTree) -> str:
    return ", ".join(f"{term} {cost}" for term, cost in tree.lookups_by_term if cost)
