"""The ``logs`` section: which Postfix logs to follow."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigPath, Strict


class LogSource(Strict):
    type: Literal["file", "journald", "stdin"] = "file"
    path: ConfigPath | None = None

    @model_validator(mode="after")
    def _path_for_files(self) -> LogSource:
        if self.type == "file" and self.path is None:
            raise ValueError("a file source needs 'path'")
        return self


_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


class ReasonClass(Strict):
    reason: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="Label value for replies this pattern finds (`reason` label).",
    )
    pattern: str = Field(description="Python regular expression searched in the reply text.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class MessageTracking(Strict):
    max_messages: int = Field(
        default=100_000,
        ge=1_000,
        le=10_000_000,
        description="Queue IDs followed at once; the oldest are dropped beyond this.",
    )
    ttl: float = Field(
        default=5 * 86400.0,
        gt=0,
        le=30 * 86400.0,
        description="Seconds a queue ID is followed after it was first seen.",
    )


class LogsSection(Strict):
    mtail_compat: bool = Field(
        default=False,
        description="Also export the Tor Project mtail postfix program's metric names and labels.",
    )
    reasons: list[ReasonClass] = Field(
        default_factory=list,
        description="Reason classes for reject, defer and bounce replies, tried in order "
        "before the built-in table (docs/postfix-logs.md).",
    )
    tracker: MessageTracking = Field(
        default_factory=MessageTracking,
        description="Bounds of the per-message tracker behind the in-fleet delay histograms.",
    )

    @model_validator(mode="after")
    def _label_values(self) -> LogsSection:
        bad = sorted(v for v in self.services.values() if not _LABEL.fullmatch(v))
        if bad:
            raise ValueError(f"services: {', '.join(map(repr, bad))} is not a label value")
        return self

    sources: list[LogSource] = Field(default_factory=list)
    services: dict[str, str] = Field(default_factory=dict)
    """Maps a syslog_name path (``postfix-mx``, ``postfix/submission``) to a service label."""
    domains: list[str] = Field(default_factory=list)
