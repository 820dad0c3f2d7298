"""The result model every check returns, shared by all signal sources.

A check is an ``async`` callable that takes a :class:`Phase` tracker and returns an
:class:`Outcome`.  The runner in ``monitor`` adds timing and turns exceptions and
timeouts into results, so a check only reports what it saw.  Failures are raised as
:class:`CheckFailure` (or a subclass) carrying the reason; the runner never parses
exception text to decide a status.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

FactValue = float | int | str | bool


class Kind(enum.StrEnum):
    LOGS = "logs"
    SMTP = "smtp"
    DNS = "dns"
    CANARY = "canary"
    DMARC = "dmarc"


class Status(enum.StrEnum):
    """Outcome of one check run; ``ERROR`` means the check could not run at all."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}


class Phase:
    """Names the step a check is in, so a timeout can say where it stopped."""

    def __init__(self, initial: str = "start") -> None:
        self.current = initial

    def enter(self, name: str) -> None:
        self.current = name


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check saw: a status, a reason for anything not ok, and typed facts."""

    status: Status
    reason: str = ""
    facts: Mapping[str, FactValue] = field(default_factory=dict)
    detail: str | None = None

    @classmethod
    def ok(cls, facts: Mapping[str, FactValue] | None = None, detail: str | None = None) -> Outcome:
        return cls(Status.OK, "", dict(facts or {}), detail)

    @classmethod
    def warn(
        cls, reason: str, facts: Mapping[str, FactValue] | None = None, detail: str | None = None
    ) -> Outcome:
        return cls(Status.WARN, reason, dict(facts or {}), detail)

    @classmethod
    def fail(
        cls, reason: str, facts: Mapping[str, FactValue] | None = None, detail: str | None = None
    ) -> Outcome:
        return cls(Status.FAIL, reason, dict(facts or {}), detail)


class CheckFailure(Exception):
    """Raised by a check when what it probes is broken: becomes ``fail`` with this reason."""

    status = Status.FAIL

    def __init__(self, reason: str, facts: Mapping[str, FactValue] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facts: dict[str, FactValue] = dict(facts or {})


class CheckCannotRun(CheckFailure):
    """Raised when the check itself cannot run (bad setting, missing file): ``error``."""

    status = Status.ERROR


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One finished run of one check, as stored, exported and reported."""

    kind: Kind
    check: str
    target: str
    status: Status
    reason: str
    duration_seconds: float
    finished_at: float
    facts: Mapping[str, FactValue] = field(default_factory=dict)
    detail: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, self.check, self.target)


CheckFn = Callable[[Phase], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Check:
    """A named, scheduled probe: what to run, how often, and how long it may take."""

    kind: Kind
    name: str
    target: str
    run: CheckFn
    interval_seconds: float
    timeout_seconds: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind.value, self.name, self.target)
