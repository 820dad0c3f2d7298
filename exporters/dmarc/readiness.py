"""What ``p=quarantine`` and ``p=reject`` would do, from the aggregate records of a window.

Legitimate mail is ours plus forwarded. A policy acts on messages failing DMARC, so what
it would do to legitimate mail is the legitimate messages that fail. The verdict:

* ``ready for reject``: no legitimate message failed;
* ``ready for quarantine``: our own sources all pass, but forwarded mail fails (reject
  would bounce it; quarantine files it as junk): the forwarders are the blockers;
* ``not ready``: one of our own sources fails DMARC: fix it first (the blockers);
* ``no mail from our sources``: reports came, but none lists one of our configured sources
  (``dmarc.sources`` empty or wrong): nothing says legitimate mail would pass;
* ``no data``: no aggregate report in the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exporters.dmarc.classify import Classifier, SourceClass
from exporters.dmarc.store import RecordRow

READY_REJECT = "ready for reject"
READY_QUARANTINE = "ready for quarantine"
NOT_READY = "not ready"
NO_OWN_MAIL = "no mail from our sources"
NO_DATA = "no data"


@dataclass(slots=True)
class Tally:
    messages: int = 0
    dmarc_pass: int = 0
    dkim_aligned: int = 0
    spf_aligned: int = 0

    @property
    def dmarc_fail(self) -> int:
        return self.messages - self.dmarc_pass

    def add(self, row: RecordRow) -> None:
        self.messages += row.count
        self.dmarc_pass += row.count if row.dmarc_pass else 0
        self.dkim_aligned += row.count if row.dkim_aligned else 0
        self.spf_aligned += row.count if row.spf_aligned else 0

    def as_dict(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "dmarc_pass": self.dmarc_pass,
            "dmarc_fail": self.dmarc_fail,
            "dkim_aligned": self.dkim_aligned,
            "spf_aligned": self.spf_aligned,
        }


@dataclass(slots=True)
class SourceTally:
    address: str
    source_class: SourceClass
    own_name: str
    tally: Tally = field(default_factory=Tally)
    reporters: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Blocker:
    address: str
    source_class: SourceClass
    name: str
    failing: int
    messages: int

    def describe(self) -> str:
        who = f"{self.name} ({self.address})" if self.name else self.address
        return f"{who}: {self.failing} of {self.messages} message(s) fail DMARC"


@dataclass(frozen=True, slots=True)
class Readiness:
    domain: str
    verdict: str
    classes: dict[SourceClass, Tally]
    sources: list[SourceTally]
    blockers: list[Blocker]

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.classes.values())

    @property
    def legitimate_failing(self) -> int:
        """Legitimate messages p=quarantine would quarantine and p=reject would reject."""
        return sum(self.classes[c].dmarc_fail for c in (SourceClass.OURS, SourceClass.FORWARDED))


def assess(domain: str, rows: Iterable[RecordRow], classifier: Classifier) -> Readiness:
    classes = {c: Tally() for c in SourceClass}
    sources: dict[str, SourceTally] = {}
    for row in rows:
        if row.domain != domain:
            continue
        source_class = classifier.classify(row)
        classes[source_class].add(row)
        key = f"{source_class}/{row.source_ip}"
        entry = sources.get(key)
        if entry is None:
            entry = SourceTally(row.source_ip, source_class, classifier.own_source(row.source_ip))
            sources[key] = entry
        entry.tally.add(row)
        entry.reporters.add(row.reporter)
    ordered = sorted(sources.values(), key=lambda s: (-s.tally.messages, s.address))
    own_failing = _blockers(ordered, SourceClass.OURS)
    forwarded_failing = _blockers(ordered, SourceClass.FORWARDED)
    blockers: list[Blocker] = []
    if not ordered:
        verdict = NO_DATA
    elif not classes[SourceClass.OURS].messages:
        verdict = NO_OWN_MAIL
    elif own_failing:
        verdict, blockers = NOT_READY, own_failing
    elif forwarded_failing:
        verdict, blockers = READY_QUARANTINE, forwarded_failing
    else:
        verdict = READY_REJECT
    return Readiness(domain, verdict, classes, ordered, blockers)


def _blockers(sources: list[SourceTally], source_class: SourceClass) -> list[Blocker]:
    failing = [s for s in sources if s.source_class is source_class and s.tally.dmarc_fail]
    failing.sort(key=lambda s: (-s.tally.dmarc_fail, s.address))
    return [
        Blocker(s.address, s.source_class, s.own_name, s.tally.dmarc_fail, s.tally.messages)
        for s in failing
    ]
