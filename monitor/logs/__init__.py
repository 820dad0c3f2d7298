"""The Postfix log exporter in the application: settings from the config, log sources
from it, and the one-shot analysis and report that ``mailprobe logs``
(``monitor.commands.logs``) prints. Below the faces: nothing here imports
``monitor.commands`` or ``monitor.server`` (the follower service lives in
``monitor.server.log_following``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporters.postfix_logs.reasons import DEFAULT_REASONS, ReasonRule
from exporters.postfix_logs.settings import LogSettings

if TYPE_CHECKING:
    from monitor.config.logs import LogsSection


def log_settings(section: LogsSection) -> LogSettings:
    """The exporter's typed settings for a validated ``logs`` section."""
    configured = tuple(ReasonRule(r.reason, r.pattern) for r in section.reasons)
    return LogSettings(
        services=dict(section.services),
        domains=tuple(section.domains),
        reasons=configured + DEFAULT_REASONS,
        mtail_compat=section.mtail_compat,
        tracker_max_messages=section.tracker.max_messages,
        tracker_ttl_seconds=section.tracker.ttl,
    )
