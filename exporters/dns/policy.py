"""The ``_mta-sts`` (RFC 8461 3.1) and ``_smtp._tls`` (RFC 8460 3) TXT records: syntax.

Fetching and judging the MTA-STS policy itself is the SMTP prober's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporters.dns.findings import Findings, name_text, parse_tags, txt_records
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import Outcome, Phase

_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_RUA = re.compile(r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PolicyRecordSettings:
    domain: str
    kind: str
    """``mta-sts`` or ``tls-rpt``."""


OWNER = {"mta-sts": "_mta-sts", "tls-rpt": "_smtp._tls"}
VERSION = {"mta-sts": "STSv1", "tls-rpt": "TLSRPTv1"}


async def check_policy_record(
    resolver: StubResolver, settings: PolicyRecordSettings, phase: Phase
) -> Outcome:
    owner = f"{OWNER[settings.kind]}.{name_text(settings.domain)}"
    version = VERSION[settings.kind]
    found = Findings()
    phase.enter(f"TXT {owner}")
    try:
        values, answer = await txt_records(resolver, owner)
    except DnsError as exc:
        return Outcome.fail(f"{settings.kind}: {exc.reason}")
    found.dnssec(answer)
    records = [v for v in values if v.replace(" ", "").startswith(f"v={version}")]
    if not records:
        why = "the name does not exist" if answer.nxdomain else f"no TXT starting 'v={version}'"
        return Outcome.fail(f"no {settings.kind} record at {owner} ({why})", found.facts)
    if len(records) > 1:
        return Outcome.fail(
            f"{len(records)} {settings.kind} records at {owner}; senders treat that as none",
            found.facts,
        )
    found.note(f"{owner}: {records[0]}")
    tags, problems = parse_tags(records[0])
    for problem in problems:
        found.fail(f"{settings.kind} record {owner}: {problem}")
    if next(iter(tags), None) != "v":
        found.fail(f"{settings.kind} record {owner}: v= must come first")
    if settings.kind == "mta-sts":
        sts_id = tags.get("id")
        if sts_id is None:
            found.fail(f"mta-sts record {owner} has no id= (RFC 8461 3.1)")
        elif not _STS_ID.match(sts_id):
            found.fail(f"mta-sts record {owner}: id={sts_id} must be 1-32 letters or digits")
        else:
            found.facts["mta_sts_id"] = sts_id
    else:
        rua = tags.get("rua")
        if rua is None:
            found.fail(f"tls-rpt record {owner} has no rua= (RFC 8460 3)")
        else:
            for uri in (u.strip() for u in rua.split(",")):
                if not _RUA.match(uri):
                    found.fail(
                        f"tls-rpt record {owner}: rua '{uri}' is not a mailto: or https: URI"
                    )
    return found.outcome()
