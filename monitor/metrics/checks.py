"""Metrics every check has, rendered from the results store at scrape time."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporters.result import Status
from monitor import __version__
from monitor.metrics.facts import FactMetric
from monitor.results import ResultsStore

CHECK_LABELS = ["kind", "check", "target"]

UP = "mailprobe_check_up"
UP_HELP = "1 if the check's last run was ok or warn, 0 if it failed, errored or has not run."
STATUS = "mailprobe_check_status"
STATUS_HELP = "1 for the status of the check's last run (ok, warn, fail, error), 0 for the others."
DURATION = "mailprobe_check_duration_seconds"
DURATION_HELP = "How long the check's last run took."
LAST_RUN = "mailprobe_check_last_run_timestamp_seconds"
LAST_RUN_HELP = "Unix time the check's last run finished; 0 before the first run."
RUNS = "mailprobe_check_runs"  # exposed as mailprobe_check_runs_total
RUNS_HELP = "Runs of the check, by status."
INTERVAL = "mailprobe_check_interval_seconds"
INTERVAL_HELP = "Seconds between two scheduled runs of the check (its configured interval)."
FAILING = "mailprobe_check_consecutive_failures"
FAILING_HELP = "Runs in a row, up to the last one, that ended fail or error; 0 after ok or warn."
REASON = "mailprobe_check_reason_info"
REASON_HELP = (
    "1 while the check's last run was warn, fail or error; the reason label holds that run's"
    " reason (whitespace collapsed, cut at 200 characters). One series per check at most."
)
REASON_MAX_CHARS = 200
"""Bounds the label's size; a reason longer than this ends in an ellipsis."""
BUILD_INFO = "mailprobe_build_info"
BUILD_INFO_HELP = "Always 1; labels carry the mailprobe and Python versions."
RELOAD_FAILURES = "mailprobe_config_reload_failures"  # exposed with _total
RELOAD_FAILURES_HELP = (
    "Config reloads (SIGHUP) that failed: an invalid config, or an extension it changes "
    "could not start; the old config stays."
)
RELOAD_SUCCESS = "mailprobe_config_last_reload_successful"
RELOAD_SUCCESS_HELP = "1 if the last config (re)load succeeded, 0 if it failed."


class ChecksCollector(Collector):
    """Builds the per-check families from one snapshot of the store at each scrape."""

    def __init__(self, store: ResultsStore, fact_metrics: Sequence[FactMetric] = ()) -> None:
        self._store = store
        self._fact_metrics = tuple(fact_metrics)

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(UP, UP_HELP, labels=CHECK_LABELS)
        status = GaugeMetricFamily(STATUS, STATUS_HELP, labels=[*CHECK_LABELS, "status"])
        duration = GaugeMetricFamily(DURATION, DURATION_HELP, labels=CHECK_LABELS)
        last_run = GaugeMetricFamily(LAST_RUN, LAST_RUN_HELP, labels=CHECK_LABELS)
        runs = CounterMetricFamily(RUNS, RUNS_HELP, labels=[*CHECK_LABELS, "status"])
        interval = GaugeMetricFamily(INTERVAL, INTERVAL_HELP, labels=CHECK_LABELS)
        failing = GaugeMetricFamily(FAILING, FAILING_HELP, labels=CHECK_LABELS)
        reason = GaugeMetricFamily(REASON, REASON_HELP, labels=[*CHECK_LABELS, "reason"])
        facts = {
            (f.kind, f.fact): GaugeMetricFamily(
                f.name, f.help, labels=["check", "target", *([f.state_label] if f.states else [])]
            )
            for f in self._fact_metrics
        }
        states = {(f.kind, f.fact): f.states for f in self._fact_metrics if f.states}
        for record in self._store.snapshot():
            labels = [record.kind, record.check, record.target]
            last = record.last
            current = last.status if last is not None else None
            up.add_metric(labels, 1.0 if current in (Status.OK, Status.WARN) else 0.0)
            for s in Status:
                status.add_metric([*labels, s.value], 1.0 if s is current else 0.0)
                runs.add_metric([*labels, s.value], float(record.runs[s]))
            duration.add_metric(labels, last.duration_seconds if last else 0.0)
            last_run.add_metric(labels, last.finished_at if last else 0.0)
            interval.add_metric(labels, record.interval_seconds)
            failing.add_metric(labels, float(record.consecutive_failures))
            if last is None:
                continue
            if last.status is not Status.OK:
                reason.add_metric([*labels, reason_label(last.reason)], 1.0)
            for name, value in last.facts.items():
                family = facts.get((record.kind, name))
                if family is None:
                    continue
                if (record.kind, name) in states:
                    for state in states[(record.kind, name)]:
                        family.add_metric(
                            [record.check, record.target, state], 1.0 if value == state else 0.0
                        )
                elif isinstance(value, int | float | bool):
                    family.add_metric([record.check, record.target], float(value))
        yield from (up, status, duration, last_run, runs, interval, failing, reason)
        yield from facts.values()


def reason_label(reason: str) -> str:
    """A check's reason as a label value: one line, at most ``REASON_MAX_CHARS`` long.

    Cardinality stays bounded because a check has at most one reason series at a time
    (only its last run's, and none while it is ok); the cut bounds each value's size.
    """
    text = " ".join(reason.split()) or "(no reason given)"
    if len(text) <= REASON_MAX_CHARS:
        return text
    return text[: REASON_MAX_CHARS - 1].rstrip() + "…"


class BuildInfoCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(BUILD_INFO, BUILD_INFO_HELP, labels=["version", "python_version"])
        info.add_metric([__version__, platform.python_version()], 1.0)
        yield info
