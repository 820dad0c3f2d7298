"""Typed settings of the log parser, aggregator and tracker (filled in by ``monitor``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporters.postfix_logs.reasons import DEFAULT_REASONS, ReasonRule


@dataclass(frozen=True, slots=True)
class LogSettings:
    services: Mapping[str, str] = field(default_factory=dict)
    """syslog_name path (or prefix) -> service label (``postfix-mx`` -> ``mx``)."""
    domains: Sequence[str] = ()
    """Recipient domains kept as label values; all others fold into ``other``."""
    reasons: Sequence[ReasonRule] = DEFAULT_REASONS
    """Reason classes for reject, defer and bounce texts, first match wins."""
    mtail_compat: bool = False
    """Also export the Tor Project mtail program's metric names and labels."""
    tracker_max_messages: int = 100_000
    tracker_ttl_seconds: float = 5 * 86400.0
    max_line_bytes: int = 64 * 1024
    """Longer lines are cut to this size (and counted) before parsing; the sources cut
    first, at their own ``max_line_bytes``, so this is a backstop."""
