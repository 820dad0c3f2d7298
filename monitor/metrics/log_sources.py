"""Health of the log sources ``mailprobe serve`` follows: ``postfix_log_source_*``.

What the lines *say* is in ``monitor.metrics.postfix`` (aggregated over every source);
this is how the reading goes, per source: lines and bytes read, rotations, errors, the
time in the newest line. The ``source`` label is the source's state key (its ``name``,
else ``file:<path>``, ``journald`` or ``stdin``), so it is bounded by the config.

A family with nothing to say for a source type (rotations for journald) has no sample
for it rather than a misleading 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

FAILURE_STAGES = ("read", "commit", "process")
"""read: the source stopped with an error and is restarted after a backoff; commit: its
position could not be saved; process: a batch could not be counted (a parser bug)."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    """One source's reading statistics at one instant; None where the type has none."""

    source: str
    up: bool
    lines: int
    bytes: int | None = None
    lines_truncated: int = 0
    rotations: int | None = None
    truncations: int | None = None
    open_errors: int | None = None
    positions_lost: int | None = None
    records_unreadable: int | None = None
    failures: Mapping[str, int] = field(default_factory=dict)
    last_line_time: float | None = None


@dataclass(frozen=True, slots=True)
class CounterSpec:
    name: str
    """Without ``_total``; prometheus_client appends it."""
    help: str
    value: Callable[[SourceStats], int | None]


COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec(
        "postfix_log_source_lines_read",
        "Lines (journald: records) the source read; the aggregator counted each of them.",
        lambda s: s.lines,
    ),
    CounterSpec(
        "postfix_log_source_bytes_read",
        "Bytes the source read, newlines included (file, stdin).",
        lambda s: s.bytes,
    ),
    CounterSpec(
        "postfix_log_source_lines_truncated",
        "Lines (journald: messages) longer than the source's max_line_bytes, cut when read.",
        lambda s: s.lines_truncated,
    ),
    CounterSpec(
        "postfix_log_source_rotations",
        "Rotations by rename the file source followed (new file under the name).",
        lambda s: s.rotations,
    ),
    CounterSpec(
        "postfix_log_source_truncations",
        "Times the file was truncated or rewritten from its start (copytruncate).",
        lambda s: s.truncations,
    ),
    CounterSpec(
        "postfix_log_source_open_errors",
        "Failed attempts to open the file or a rotated one (permission, not a regular file);"
        " retried every poll_interval.",
        lambda s: s.open_errors,
    ),
    CounterSpec(
        "postfix_log_source_positions_lost",
        "Saved positions that could not be resumed (file gone or compressed, journald cursor"
        " refused): lines may have been missed there.",
        lambda s: s.positions_lost,
    ),
    CounterSpec(
        "postfix_log_source_records_unreadable",
        "journalctl output lines that were not a journal record.",
        lambda s: s.records_unreadable,
    ),
)

FAILURES = "postfix_log_source_failures"
FAILURES_HELP = (
    "Source failures by stage: read (the source stopped and is restarted with backoff),"
    " commit (its position could not be saved), process (a batch could not be counted)."
)
UP = "postfix_log_source_up"
UP_HELP = (
    "1 while the source reads normally; 0 while it cannot open its file, waits to be"
    " restarted after a failure, or has ended (stdin at its end)."
)
LAST_LINE = "postfix_log_source_last_line_timestamp_seconds"
LAST_LINE_HELP = "Unix time in the newest line the source read (no sample before the first)."
LAG = "postfix_log_source_lag_seconds"
LAG_HELP = "Scrape time minus the time in the newest line the source read."


class LogSourceCollector(Collector):
    """Renders ``stats()`` (one :class:`SourceStats` per configured source) at scrape time."""

    def __init__(
        self,
        stats: Callable[[], Sequence[SourceStats]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stats = stats
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        up = GaugeMetricFamily(UP, UP_HELP, labels=["source"])
        for s in stats:
            up.add_metric([s.source], 1.0 if s.up else 0.0)
        yield up
        for spec in COUNTERS:
            family = CounterMetricFamily(spec.name, spec.help, labels=["source"])
            for s in stats:
                value = spec.value(s)
                if value is not None:
                    family.add_metric([s.source], value)
            yield family
        failures = CounterMetricFamily(FAILURES, FAILURES_HELP, labels=["source", "stage"])
        for s in stats:
            for stage in FAILURE_STAGES:
                failures.add_metric([s.source, stage], s.failures.get(stage, 0))
        yield failures
        last = GaugeMetricFamily(LAST_LINE, LAST_LINE_HELP, labels=["source"])
        lag = GaugeMetricFamily(LAG, LAG_HELP, labels=["source"])
        now = self._clock()
        for s in stats:
            if s.last_line_time is not None:
                last.add_metric([s.source], s.last_line_time)
                lag.add_metric([s.source], max(0.0, now - s.last_line_time))
        yield last
        yield lag


def render_reference() -> str:
    """The table in docs/postfix-logs.md (``python -m monitor.metrics.log_sources``)."""
    rows = [
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
        f"| `{UP}` | gauge | source | {UP_HELP} |",
    ]
    rows += [f"| `{c.name}_total` | counter | source | {c.help} |" for c in COUNTERS]
    rows += [
        f"| `{FAILURES}_total` | counter | source, stage | {FAILURES_HELP} |",
        f"| `{LAST_LINE}` | gauge | source | {LAST_LINE_HELP} |",
        f"| `{LAG}` | gauge | source | {LAG_HELP} |",
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
