"""The syslog envelope: timestamp, host, program, pid and message of one line.

Accepted timestamps: RFC 3164 (``Mar  4 10:25:05``, also with ``.ffffff``, which is
what Postfix's own ``maillog_file`` writes without the fraction), RFC 3339 with or
without a fraction and with ``Z``/``+hh:mm`` (Debian 12 rsyslog's default), and an
optional ``<PRI>`` in front. Journald records never come through here: their fields
are used as they are (:meth:`LogAggregator.feed_journal`).

Timestamps stay text until something needs the time: most lines never do, and an
hour-keyed cache makes the rest cheap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

ENVELOPE = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
    r"|[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d{1,9})?)"
    r" +(?P<host>\S+) +(?P<program>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)"
)
"""One anchored pass; ``.`` stops at a newline, so a trailing ``\\n`` is left out."""

Envelope = tuple[str, str, str, str | None, str]
"""``(stamp, host, program, pid, message)``."""


def split_envelope(text: str) -> Envelope | None:
    """Return the envelope fields of ``text``, or None if it is not a syslog line."""
    m = ENVELOPE.match(text)
    if m is None:
        return None
    return m.groups()  # type: ignore[return-value]


MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_RFC3164 = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(\.\d+)?")

FUTURE_TOLERANCE = 7 * 86400.0
"""An RFC 3164 stamp (no year) is placed in the latest year that puts it no later than
this far after the reference time: a log read across New Year, or a clock a little
behind its log, still lands in the right year."""

_CACHE_LIMIT = 2048
"""Hours kept; at ~24 new hours a day the cache is cleared at least every 85 days, so
a cached year can never outlive its year."""


class Clock:
    """Turns envelope timestamps into Unix time.

    ``reference`` gives the time against which a year-less stamp's year is chosen: the
    current time while following, a file's modification time for a one-shot report.
    Naive stamps (RFC 3164, RFC 3339 without offset) are local time.
    """

    def __init__(self, reference: Callable[[], float] = time.time) -> None:
        self._reference = reference
        self._hours: dict[str, float] = {}
        """Hour of a stamp (with its offset) -> Unix time of that hour's start."""

    def epoch(self, stamp: str | float) -> float | None:
        """Seconds since the epoch, or None if ``stamp`` is not a valid time."""
        if isinstance(stamp, float):
            return stamp
        if stamp[:1].isdigit():
            return self._rfc3339(stamp)
        return self._rfc3164(stamp)

    def _rfc3339(self, stamp: str) -> float | None:
        if len(stamp) == 32 and stamp[19] == "." and stamp[26] in "+-":
            # rsyslog's default, 2023-03-14T00:00:31.296623+01:00: no regex when cached
            base = self._hours.get(stamp[:13] + stamp[26:])
            clock = stamp[14:16] + stamp[17:19] + stamp[20:26]
            if base is not None and clock.isdigit():
                return base + int(clock[:2]) * 60 + int(clock[2:4]) + int(clock[4:]) / 1e6
        m = _RFC3339.match(stamp)
        if m is None:
            return None
        hour, minutes, seconds, fraction, offset = m.groups()
        key = hour + (offset or "")
        if len(stamp) == 32:
            key = stamp[:13] + stamp[26:]
        base = self._hours.get(key)
        if base is None:
            if offset is not None and offset != "Z" and ":" not in offset:
                offset = offset[:3] + ":" + offset[3:]
            try:
                parsed = datetime.fromisoformat(hour + ":00:00" + (offset or ""))
            except ValueError:
                return None
            base = parsed.timestamp()
            self._remember(key, base)
        return base + int(minutes) * 60 + int(seconds) + (float(fraction) if fraction else 0.0)

    def _rfc3164(self, stamp: str) -> float | None:
        if len(stamp) == 15 and stamp[12] == ":":
            # Mar 14 00:00:31 / Mar  4 00:00:31: no regex when cached
            base = self._hours.get(stamp[:9])
            clock = stamp[10:12] + stamp[13:15]
            if base is not None and clock.isdigit():
                return base + int(clock[:2]) * 60 + int(clock[2:])
        m = _RFC3164.match(stamp)
        if m is None:
            return None
        month_name, day, hour, minutes, seconds, fraction = m.groups()
        key = stamp[:9] if len(stamp) == 15 else f"{month_name} {day:>2} {hour}"
        base = self._hours.get(key)
        if base is None:
            month = MONTHS.get(month_name)
            if month is None or int(minutes) > 59:
                return None
            found = self._infer_year(month, int(day), int(hour))
            if found is None:
                return None
            base = found
            self._remember(key, base)
        return base + int(minutes) * 60 + int(seconds) + (float(fraction) if fraction else 0.0)

    def _infer_year(self, month: int, day: int, hour: int) -> float | None:
        reference = self._reference()
        year = datetime.fromtimestamp(reference).year
        for candidate in (year + 1, year, year - 1):
            try:
                when = datetime(candidate, month, day, hour).timestamp()
            except ValueError:  # 29 Feb in a year without it, hour 25
                continue
            if when <= reference + FUTURE_TOLERANCE:
                return when
        return None

    def _remember(self, key: str, base: float) -> None:
        if len(self._hours) >= _CACHE_LIMIT:
            self._hours.clear()
        self._hours[key] = base
