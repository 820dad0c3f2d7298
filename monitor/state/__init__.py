"""mailprobe's persistent state: one SQLite file, one narrow interface per need.

Each exporter that persists something declares a ``typing.Protocol`` beside its code;
the classes here implement those protocols on the shared :class:`StateStore`, and
``monitor`` hands them in, so exporters never import the application.
"""

from monitor.state.log_positions import LogPositions
from monitor.state.mta_sts import StsPolicies
from monitor.state.store import STATE_FILE_NAME, StateError, StateStore

__all__ = ["STATE_FILE_NAME", "LogPositions", "StateError", "StateStore", "StsPolicies"]
