"""The ``_mta-sts`` (RFC 8461 3.1) and ``_smtp._tls`` (RFC 8460 3) TXT records: syntax.

:func:`read_policy_record` is shared: the DNS check judges the record alone, and the
SMTP prober's MTA-STS check (``exporters/smtp/mta_sts.py``) starts from the same
reading before it fetches and judges the policy itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from exporters.dns.findings import Findings, name_text, parse_tags, txt_records
from exporters.dns.resolver import Answer, DnsError, StubResolver
from exporters.result import FactValue, Outcome, Phase

_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_RUA = re.compile(r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PolicyRecordSettings:
    domain: str
    kind: str
    """``mta-sts`` or ``tls-rpt``."""


OWNER = {"mta-sts": "_mta-sts", "tls-rpt": "_smtp._tls"}
VERSION = {"mta-sts": "STSv1", "tls-rpt": "TLSRPTv1"}


class PolicyRecordError(Exception):
    """No single usable record: the reason says why; ``facts`` has the DNSSEC state."""

    def __init__(self, reason: str, facts: dict[str, FactValue] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facts = dict(facts or {})


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """The one record found at the owner name, its tags and its syntax problems."""

    owner: str
    text: str
    tags: dict[str, str]
    answer: Answer
    problems: list[str] = field(default_factory=list)

    @property
    def sts_id(self) -> str | None:
        """The MTA-STS ``id=``, when it is well formed."""
        value = self.tags.get("id")
        return value if value is not None and _STS_ID.match(value) else None


async def read_policy_record(
    resolver: StubResolver, domain: str, kind: str, phase: Phase
) -> PolicyRecord:
    """Look the record up and check its syntax; raise :class:`PolicyRecordError`."""
    owner = f"{OWNER[kind]}.{name_text(domain)}"
    version = VERSION[kind]
    phase.enter(f"TXT {owner}")
    try:
        values, answer = await txt_records(resolver, owner)
    except DnsError as exc:
        raise PolicyRecordError(f"{kind}: {exc.reason}") from None
    state: dict[str, FactValue] = {"dnssec_state": answer.dnssec.value}
    records = [v for v in values if v.replace(" ", "").startswith(f"v={version}")]
    if not records:
        why = "the name does not exist" if answer.nxdomain else f"no TXT starting 'v={version}'"
        raise PolicyRecordError(f"no {kind} record at {owner} ({why})", state)
    if len(records) > 1:
        raise PolicyRecordError(
            f"{len(records)} {kind} records at {owner}; senders treat that as none", state
        )
    tags, syntax = parse_tags(records[0])
    problems = [f"{kind} record {owner}: {problem}" for problem in syntax]
    if next(iter(tags), None) != "v":
        problems.append(f"{kind} record {owner}: v= must come first")
    if kind == "mta-sts":
        sts_id = tags.get("id")
        if sts_id is None:
            problems.append(f"mta-sts record {owner} has no id= (RFC 8461 3.1)")
        elif not _STS_ID.match(sts_id):
            problems.append(f"mta-sts record {owner}: id={sts_id} must be 1-32 letters or digits")
    else:
        rua = tags.get("rua")
        if rua is None:
            problems.append(f"tls-rpt record {owner} has no rua= (RFC 8460 3)")
        else:
            for uri in (u.strip() for u in rua.split(",")):
                if not _RUA.match(uri):
                    problems.append(
                        f"tls-rpt record {owner}: rua '{uri}' is not a mailto: or https: URI"
                    )
    return PolicyRecord(owner, records[0], tags, answer, problems)


async def check_policy_record(
    resolver: StubResolver, settings: PolicyRecordSettings, phase: Phase
) -> Outcome:
    try:
        record = await read_policy_record(resolver, settings.domain, settings.kind, phase)
    except PolicyRecordError as exc:
        return Outcome.fail(exc.reason, exc.facts)
    found = Findings()
    found.dnssec(record.answer)
    found.note(f"{record.owner}: {record.text}")
    for problem in record.problems:
        found.fail(problem)
    if record.sts_id is not None:
        found.facts["mta_sts_id"] = record.sts_id
    return found.outcome()
