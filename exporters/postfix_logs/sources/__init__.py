"""Where log lines come from: files followed by name, journald, stdin.

Every source yields :class:`Batch` es: raw lines as bytes (decoding is the parser's
job, so no byte sequence can stop a source) or, for journald, :class:`JournalRecord`
s. After processing a batch, hand it to the source's ``commit`` to persist the
position right after it through a :class:`LogPositionStore`.
"""

from exporters.postfix_logs.sources.batch import Batch, Source
from exporters.postfix_logs.sources.files import FileCounters, FileFollower, FileSettings
from exporters.postfix_logs.sources.journal import (
    JournalCounters,
    JournalError,
    JournalRecord,
    JournalSettings,
    JournalSource,
)
from exporters.postfix_logs.sources.merge import merge
from exporters.postfix_logs.sources.positions import LogPositionStore
from exporters.postfix_logs.sources.stdin import StdinSource, StreamCounters

__all__ = [
    "Batch",
    "FileCounters",
    "FileFollower",
    "FileSettings",
    "JournalCounters",
    "JournalError",
    "JournalRecord",
    "JournalSettings",
    "JournalSource",
    "LogPositionStore",
    "Source",
    "StdinSource",
    "StreamCounters",
    "merge",
]
