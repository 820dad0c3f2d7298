"""Turns the config into the list of checks ``run`` and ``serve`` execute.

Each source has a builder module here; this package is the only place that knows
both the config model and the exporters' parameter types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from exporters.result import Check, Kind
from monitor.checks import dmarc, dns, smtp
from monitor.config import Config

Builder = Callable[[Config], list[Check]]

BUILDERS: dict[Kind, Builder] = {
    Kind.SMTP: smtp.build,
    Kind.DNS: dns.build,
    Kind.DMARC: dmarc.build,
}


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
