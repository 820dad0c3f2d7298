"""logfmt logging on stderr: one line per event, friendly to journald and grep.

The same line over and over (a client sending garbage in a loop, a resource running
out) is kept to a few per minute, so a hostile or broken peer cannot fill the disk.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        parts.extend(
            f"{key}={_quote(value)}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        )
        if record.exc_info and record.levelno >= logging.ERROR:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class RepeatLimiter(logging.Filter):
    """Passes at most ``burst`` copies of one line per ``window`` seconds.

    A line is its logger, level, message and fields, or what the record's ``_repeat_key``
    says (lines that differ only in what a client sent).  The first copy let through after
    some were held back carries ``repeats_suppressed=N``.  Memory is bounded: beyond
    ``max_lines`` distinct lines the least recently seen is forgotten.
    """

    def __init__(self, burst: int = 5, window: float = 60.0, max_lines: int = 1024) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.max_lines = max_lines
        self._seen: OrderedDict[tuple[object, ...], list[float]] = OrderedDict()
        """line -> [window start, copies passed in it, copies held back since the last]."""

    @property
    def remembered(self) -> int:
        """Distinct lines the limiter keeps count of now (at most ``max_lines``)."""
        return len(self._seen)

    def filter(self, record: logging.LogRecord) -> bool:
        fields = tuple(
            (key, str(value))
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        )
        key = getattr(record, "_repeat_key", None) or (
            record.name,
            record.levelno,
            record.getMessage(),
            fields,
        )
        now = time.monotonic()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window:
            held = state[2] if state is not None else 0
            state = [now, 0.0, held]
            self._seen[key] = state
        self._seen.move_to_end(key)
        if len(self._seen) > self.max_lines:
            self._seen.popitem(last=False)
        if state[1] >= self.burst:
            state[2] += 1
            return False
        state[1] += 1
        if state[2]:
            record.repeats_suppressed = int(state[2])
            state[2] = 0
        return True


OWN_LOGGERS = ("monitor", "exporters")
"""The packages whose loggers follow --log-level; every other logger is a library's."""


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    handler.addFilter(RepeatLimiter())
    chosen = logging.getLevelName(level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries speak at warning and above unless debugging: their info lines
    # (aioimaplib's "ignored untagged response", say) are not for a mailprobe user.
    root.setLevel(chosen if chosen == logging.DEBUG else max(chosen, logging.WARNING))
    for ours in OWN_LOGGERS:
        logging.getLogger(ours).setLevel(chosen)
    # asyncio and httpx are chatty even at debug: warning and above only.
    for noisy in ("asyncio", "httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
