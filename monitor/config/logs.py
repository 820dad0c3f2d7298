"""The ``logs`` section: which Postfix logs to follow."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigPath, Strict

_FILE_ONLY = ("path", "poll_interval", "rotate_wait")
_JOURNALD_ONLY = ("matches", "units", "directory")


class LogSource(Strict):
    type: Literal["file", "journald", "stdin"] = "file"
    path: ConfigPath | None = None
    name: str | None = Field(
        default=None,
        min_length=1,
        description="Names the source's saved position in the state; "
        "default `file:<path>`, `journald` or `stdin`.",
    )
    start: Literal["end", "beginning"] = Field(
        default="end",
        description="Where to start when no position is saved yet (file, journald).",
    )
    max_line_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        le=16 * 1024 * 1024,
        description="Longer lines (journald: messages) are cut to this length and counted.",
    )
    poll_interval: float = Field(
        default=0.25, gt=0, le=10, description="file: seconds between looks at the file."
    )
    rotate_wait: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="file: seconds a rotated file is still read after it stops growing.",
    )
    matches: list[str] | None = Field(
        default=None,
        description="journald: journalctl matches (`FIELD=value`, `+`); "
        "default `SYSLOG_FACILITY=2` (mail).",
    )
    units: list[str] = Field(default_factory=list, description="journald: units (`-u`).")
    directory: ConfigPath | None = Field(
        default=None, description="journald: read journal files from this directory."
    )

    @model_validator(mode="after")
    def _fields_fit_type(self) -> LogSource:
        if self.type == "file" and self.path is None:
            raise ValueError("a file source needs 'path'")
        foreign = [
            key
            for key in self.model_fields_set
            if (key in _FILE_ONLY and self.type != "file")
            or (key in _JOURNALD_ONLY and self.type != "journald")
        ]
        if foreign:
            raise ValueError(f"{', '.join(sorted(foreign))}: not for a {self.type} source")
        if self.type == "stdin" and "start" in self.model_fields_set:
            raise ValueError("start: stdin is always read from its start")
        for match in self.matches or ():
            if match != "+" and "=" not in match:
                raise ValueError(f"matches: {match!r} is not FIELD=value or +")
        return self

    @property
    def state_key(self) -> str:
        """Where the source's position is saved: ``name``, else one derived from the type."""
        if self.name is not None:
            return self.name
        return f"file:{self.path}" if self.type == "file" else self.type


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

    @model_validator(mode="after")
    def _distinct_sources(self) -> LogsSection:
        if sum(source.type == "stdin" for source in self.sources) > 1:
            raise ValueError("sources: there is only one stdin")
        keys = [source.state_key for source in self.sources]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise ValueError(
                f"sources: {', '.join(twice)} given twice; give each a distinct 'name'"
            )
        return self
