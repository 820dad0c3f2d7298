"""What serve knows about config reloads, exported as two metrics."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.metrics.checks import (
    RELOAD_FAILURES,
    RELOAD_FAILURES_HELP,
    RELOAD_SUCCESS,
    RELOAD_SUCCESS_HELP,
)


class ReloadStatus(Collector):
    """Counts failed reloads and remembers whether the last (re)load succeeded.

    Both series exist from start (0 failures, last load successful: serve only starts
    with a valid config).
    """

    def __init__(self) -> None:
        self.failures = 0
        self.last_successful = True

    def succeeded(self) -> None:
        self.last_successful = True

    def failed(self) -> None:
        self.failures += 1
        self.last_successful = False

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(RELOAD_FAILURES, RELOAD_FAILURES_HELP, value=self.failures)
        yield GaugeMetricFamily(
            RELOAD_SUCCESS, RELOAD_SUCCESS_HELP, value=1.0 if self.last_successful else 0.0
        )
