"""Where log lines come from: files followed by name, journald, stdin."""

from exporters.postfix_logs.sources.positions import LogPositionStore

__all__ = ["LogPositionStore"]
