"""The exporter's log sources, built from the config's ``logs.sources`` entries."""

from __future__ import annotations

from dataclasses import replace

from exporters.postfix_logs.sources import (
    FileFollower,
    FileSettings,
    JournalSettings,
    JournalSource,
    LogPositionStore,
    StdinSource,
)
from monitor.config.logs import LogSource

AnySource = FileFollower | JournalSource | StdinSource


def build_source(config: LogSource, positions: LogPositionStore | None) -> AnySource:
    """One source for one config entry, saving its position under ``config.state_key``."""
    key = config.state_key
    if config.type == "file":
        assert config.path is not None  # the model requires it for files
        settings = FileSettings(
            path=config.path,
            key=key,
            poll_interval=config.poll_interval,
            max_line_bytes=config.max_line_bytes,
            start=config.start,
            rotate_wait=config.rotate_wait,
        )
        return FileFollower(settings, positions)
    if config.type == "journald":
        journal = JournalSettings(
            key=key,
            units=tuple(config.units),
            directory=config.directory,
            start=config.start,
            max_message_bytes=config.max_line_bytes,
        )
        if config.matches is not None:  # else the source's default: the mail facility
            journal = replace(journal, matches=tuple(config.matches))
        return JournalSource(journal, positions)
    return StdinSource(max_line_bytes=config.max_line_bytes, key=key)
