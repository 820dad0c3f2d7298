"""Turns the config into the list of checks ``run`` and ``serve`` execute.

Each source has a builder module here; this package is the only place that knows
both the config model and the exporters' parameter types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from exporters.result import Check, Kind
from monitor.checks import canary, dmarc, dns, smtp
from monitor.config import Config

Builder = Callable[[Config], list[Check]]

BUILDERS: dict[Kind, Builder] = {
    Kind.SMTP: smtp.build,
    Kind.DNS: dns.build,
    Kind.CANARY: canary.build,
    Kind.DMARC: dmarc.build,
}
"""Kind -> its builder. A kind (and its config section, named like it) with no builder
here has no checks: ``run``, ``serve`` and ``config check`` say so (unchecked_sections)."""

USED_WITHOUT_CHECKS: dict[Kind, str] = {
    Kind.LOGS: "`mailprobe serve` follows the logs it names for metrics, and `mailprobe logs`"
    " reports on them",
}
"""Kinds that have no checks but whose section other commands use, and how."""


def checked_kinds() -> list[Kind]:
    """The kinds that have checks, in Kind order."""
    return [kind for kind in Kind if kind in BUILDERS]


def no_checks_reason(kind: Kind) -> str:
    """Why ``run`` has nothing for ``kind``: a sentence for the user."""
    use = USED_WITHOUT_CHECKS.get(kind)
    if use is not None:
        return f"there are no {kind} checks; the {kind} section is for other commands: {use}"
    return f"there are no {kind} checks yet: the {kind} section is not used yet"


def unchecked_sections(config: Config) -> list[str]:
    """A line for each section the config sets that no check and no command uses yet."""
    return [
        f"{kind}: section not used yet; mailprobe has no {kind} checks, so it has no effect"
        for kind in Kind
        if kind not in BUILDERS
        and kind not in USED_WITHOUT_CHECKS
        and kind.value in config.model_fields_set
    ]


def build_checks(
    config: Config,
    only: Sequence[Kind] | None = None,
    target: str | None = None,
) -> list[Check]:
    """Every configured check, optionally narrowed to some kinds and one target name."""
    checks: list[Check] = []
    for kind, build in BUILDERS.items():
        if only and kind not in only:
            continue
        checks.extend(build(config))
    if target is not None:
        checks = [c for c in checks if target in (c.target, c.name)]
    return checks
