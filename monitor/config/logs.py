"""The ``logs`` section: which Postfix logs to follow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from monitor.config.base import ConfigPath, Strict


class LogSource(Strict):
    type: Literal["file", "journald", "stdin"] = "file"
    path: ConfigPath | None = None

    @model_validator(mode="after")
    def _path_for_files(self) -> LogSource:
        if self.type == "file" and self.path is None:
            raise ValueError("a file source needs 'path'")
        return self


class LogsSection(Strict):
    sources: list[LogSource] = Field(default_factory=list)
    services: dict[str, str] = Field(default_factory=dict)
    """Maps a syslog_name path (``postfix-mx``, ``postfix/submission``) to a service label."""
    domains: list[str] = Field(default_factory=list)
