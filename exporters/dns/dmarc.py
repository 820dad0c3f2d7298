"""The DMARC check: one policy record (RFC 7489, with the RFC 9989 tags), its policy
stage, and the reporting addresses it names (RFC 9990 external destination check)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporters.dns.findings import Findings, name_text, parse_tags, tagged, txt_records
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import Outcome, Phase

POLICIES = ("none", "quarantine", "reject")
READINESS_HINT = (
    "monitoring only, receivers quarantine or reject nothing;"
    " `mailprobe dmarc report` says whether p=quarantine or p=reject is safe"
)
KNOWN_TAGS = {"v", "p", "sp", "np", "psd", "t", "adkim", "aspf", "rua", "ruf", "fo"}
LEGACY_TAGS = {"pct", "rf", "ri"}
"""RFC 7489 tags that RFC 9989 removed; still read by older receivers."""
_MAILTO = re.compile(r"^mailto:([^@\s!]+)@([^!\s]+)(?:!\d+[kmgt]?)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DmarcSettings:
    domain: str


async def check_dmarc(resolver: StubResolver, settings: DmarcSettings, phase: Phase) -> Outcome:
    domain = name_text(settings.domain)
    owner = f"_dmarc.{domain}"
    found = Findings()
    phase.enter(f"TXT {owner}")
    try:
        values, answer = await txt_records(resolver, owner)
    except DnsError as exc:
        return Outcome.fail(f"DMARC: {exc.reason}")
    found.dnssec(answer)
    records = [v for v in values if v.replace(" ", "").startswith("v=DMARC1")]
    if not records:
        why = "the name does not exist" if answer.nxdomain else "no TXT starting 'v=DMARC1'"
        return Outcome.fail(f"no DMARC record at {owner} ({why})", found.facts)
    if len(records) > 1:
        return Outcome.fail(
            f"{len(records)} DMARC records at {owner}; receivers ignore all of them "
            "(RFC 7489 6.6.3)",
            found.facts,
        )
    record = records[0]
    found.note(f"DMARC of {domain}: {record}")
    tags, problems = parse_tags(record)
    for problem in problems:
        found.fail(f"DMARC record {owner}: {problem}")
    _judge_policy(owner, tags, found)
    _judge_alignment_and_options(owner, tags, found)
    for tag in ("rua", "ruf"):
        if tag in tags:
            phase.enter(f"{tag} of {owner}")
            await _judge_reporting(resolver, domain, owner, tag, tags[tag], found)
    if "rua" not in tags:
        found.warn(f"DMARC record {owner} has no rua=: no aggregate reports will arrive")
    return found.outcome()


def _judge_policy(owner: str, tags: dict[str, str], found: Findings) -> None:
    policy = tags.get("p")
    if policy is None:
        found.warn(f"DMARC record {owner} has no p= tag (RFC 9989 reads it as p=none)")
        policy = "none"
    elif policy not in POLICIES:
        found.fail(f"DMARC record {owner}: p={policy} is not none, quarantine or reject")
        return
    found.facts["dmarc_policy"] = policy
    for tag in ("sp", "np"):
        if tag in tags and tags[tag] not in POLICIES:
            found.fail(f"DMARC record {owner}: {tag}={tags[tag]} is not none, quarantine or reject")
    testing = tags.get("t", "n")
    if testing not in ("y", "n"):
        found.fail(f"DMARC record {owner}: t={testing} must be y or n")
    found.facts["dmarc_testing"] = testing == "y"
    pct = _pct(owner, tags, found)
    found.facts["dmarc_pct"] = pct
    if policy == "none":
        found.warn(f"DMARC policy of {owner} is p=none: {READINESS_HINT}")
    elif testing == "y":
        found.warn(f"DMARC policy of {owner} is p={policy} in testing mode (t=y): not applied")
    elif pct < 100:
        found.warn(f"DMARC policy of {owner} applies p={policy} to {pct}% of failing mail only")
    if tags.get("psd", "u") not in ("y", "n", "u"):
        found.fail(f"DMARC record {owner}: psd={tags['psd']} must be y, n or u")


def _pct(owner: str, tags: dict[str, str], found: Findings) -> int:
    text = tags.get("pct", "100")
    if not text.isdigit() or not 0 <= int(text) <= 100:
        found.fail(f"DMARC record {owner}: pct={text} is not a number from 0 to 100")
        return 100
    return int(text)


def _judge_alignment_and_options(owner: str, tags: dict[str, str], found: Findings) -> None:
    for tag in ("adkim", "aspf"):
        if tag in tags and tags[tag] not in ("r", "s"):
            found.fail(f"DMARC record {owner}: {tag}={tags[tag]} must be r or s")
    if "fo" in tags and not all(
        part.strip() in ("0", "1", "d", "s") for part in tags["fo"].split(":")
    ):
        found.fail(f"DMARC record {owner}: fo={tags['fo']} must be 0, 1, d or s (colon separated)")
    unknown = sorted(set(tags) - KNOWN_TAGS - LEGACY_TAGS)
    if unknown:
        found.note(f"DMARC record {owner}: unknown tags ignored: {', '.join(unknown)}")
    legacy = sorted(set(tags) & LEGACY_TAGS)
    if legacy:
        found.note(f"DMARC record {owner}: {', '.join(legacy)} removed by RFC 9989")


async def _judge_reporting(
    resolver: StubResolver,
    domain: str,
    owner: str,
    tag: str,
    value: str,
    found: Findings,
) -> None:
    for uri in (u.strip() for u in value.split(",")):
        match = _MAILTO.match(uri)
        if not match:
            found.fail(f"DMARC record {owner}: {tag} URI '{uri}' is not mailto:user@host")
            continue
        host = name_text(match.group(2))
        if _same_organization(domain, host):
            continue
        auth = f"{domain}._report._dmarc.{host}"
        try:
            values, _ = await txt_records(resolver, auth)
        except DnsError as exc:
            found.warn(f"{tag} of {owner} goes to {host}; its authorization: {exc.reason}")
            continue
        if tagged([v.replace(" ", "") for v in values], "v=DMARC1"):
            found.note(f"{tag} destination {host} authorizes reports for {domain} at {auth}")
            continue
        message = (
            f"{tag} of {owner} sends reports to {host}, which does not authorize them "
            f"(no 'v=DMARC1' TXT at {auth}): receivers will not send {tag} reports there"
        )
        if tag == "rua":
            found.fail(message)
        else:
            found.warn(message)


def _same_organization(domain: str, host: str) -> bool:
    """Same domain or one inside the other.

    Approximates the organizational-domain comparison without a public suffix list;
    a sibling (a.example.org reporting to b.example.org) is checked like an outsider.
    """
    return host == domain or host.endswith("." + domain) or domain.endswith("." + host)
