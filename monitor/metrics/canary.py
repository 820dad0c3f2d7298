"""Canary round trips: ``mailprobe_canary_*``, built at scrape time from the runtime.

Labels are bounded by the config: ``route`` and ``mailbox`` are names from the
``canary`` section, ``outcome``/``event``/``reason``/``check`` come from fixed sets, and
``hop`` is the hop's position in the Received chain (1 = the first server), at most 8.
Every route's outcome counters are pre-initialised to 0, so a rate() over them works from
the first scrape. The last-sent and last-delivered timestamps are restored from the
ledger at start: a monitor that has stopped sending shows as one whose timestamps age.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporters.canary.ledger import EVENTS, OUTCOMES
from exporters.canary.runtime import CanaryRuntime
from exporters.postfix_logs.histogram import Histogram
from monitor.canary.service import CanaryService

SEND_FAILURES = ("connect", "tls", "auth", "rejected_4xx", "rejected_5xx", "timeout")
VERIFICATIONS = (
    "authres_spf",
    "authres_dkim",
    "authres_dmarc",
    "dkim_signature",
    "return_path",
    "tls",
    "spam_score",
    "latency",
)

METRICS = {
    "mailprobe_canary_sent_total": "Canaries handed to SMTP (or attempted), by route.",
    "mailprobe_canary_outcomes_total": "Canaries that reached an outcome, by route and outcome "
    "(delivered, late, lost, bounced, send_failed, receiver_unreachable).",
    "mailprobe_canary_send_failures_total": "send_failed canaries by reason class (connect, "
    "tls, auth, rejected_4xx, rejected_5xx, timeout).",
    "mailprobe_canary_events_total": "duplicate copies of delivered canaries and sends that "
    "timed out after DATA (send_uncertain), by route.",
    "mailprobe_canary_delivery_latency_seconds": "Delivery latency: IMAP INTERNALDATE minus "
    "the sent time, by route.",
    "mailprobe_canary_detection_delay_seconds": "Seconds between INTERNALDATE and mailprobe "
    "seeing the canary, by mailbox (INTERNALDATE has whole seconds).",
    "mailprobe_canary_hop_latency_seconds": "Time spent before each hop of the Received chain, "
    "by route and hop position.",
    "mailprobe_canary_in_flight": "Canaries sent and not yet judged, by route.",
    "mailprobe_canary_overdue": "Canaries in flight past their deadline, by route.",
    "mailprobe_canary_last_sent_timestamp_seconds": "When the route's last canary was sent.",
    "mailprobe_canary_last_delivered_timestamp_seconds": "When the route's last canary was "
    "found delivered (delivered or late).",
    "mailprobe_canary_verification_ok": "1 if the route's last delivered canary passed the "
    "verification, 0 if it failed; absent until one was checked.",
    "mailprobe_canary_last_in_junk": "1 if the route's last delivered canary was found in the "
    "\\Junk folder (filed as spam), 0 if in INBOX; absent until one was delivered.",
    "mailprobe_canary_mailbox_up": "1 if the mailbox's IMAP session is logged in, 0 if it "
    "cannot connect or log in (receiver_unreachable).",
}


def _histogram(name: str, labels: list[str], data: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, METRICS[name], labels=labels)
    for key, snapshot in data.snapshot().items():
        values = [str(v) for v in key] if isinstance(key, tuple) else [str(key)]
        cumulative = snapshot.cumulative()
        buckets = [(f"{b:g}", float(c)) for b, c in zip(data.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", float(cumulative[-1])))
        family.add_metric(values, buckets, snapshot.total)
    return family


class CanaryCollector(Collector):
    def __init__(self, service: CanaryService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        runtime = self._service.runtime
        if runtime is None:
            return
        yield from _families(runtime)


def _families(runtime: CanaryRuntime) -> Iterator[Metric]:
    stats = runtime.stats
    routes = list(runtime.routes)
    sent = CounterMetricFamily("mailprobe_canary_sent", METRICS["mailprobe_canary_sent_total"],
                               labels=["route"])  # fmt: skip
    outcomes = CounterMetricFamily(
        "mailprobe_canary_outcomes", METRICS["mailprobe_canary_outcomes_total"],
        labels=["route", "outcome"],
    )  # fmt: skip
    failures = CounterMetricFamily(
        "mailprobe_canary_send_failures", METRICS["mailprobe_canary_send_failures_total"],
        labels=["route", "reason"],
    )  # fmt: skip
    events = CounterMetricFamily(
        "mailprobe_canary_events", METRICS["mailprobe_canary_events_total"],
        labels=["route", "event"],
    )  # fmt: skip
    for route in routes:
        sent.add_metric([route], stats.sent[route])
        for outcome in OUTCOMES:
            outcomes.add_metric([route, outcome.value], stats.outcomes[(route, outcome.value)])
        for reason in SEND_FAILURES:
            failures.add_metric([route, reason], stats.send_failures[(route, reason)])
        for event in EVENTS:
            events.add_metric([route, event], stats.events[(route, event)])
    yield sent
    yield outcomes
    yield failures
    yield events
    yield _histogram("mailprobe_canary_delivery_latency_seconds", ["route"], stats.latency)
    yield _histogram("mailprobe_canary_detection_delay_seconds", ["mailbox"], stats.detection)
    yield _histogram("mailprobe_canary_hop_latency_seconds", ["route", "hop"], stats.hops)
    in_flight = GaugeMetricFamily(
        "mailprobe_canary_in_flight", METRICS["mailprobe_canary_in_flight"], labels=["route"]
    )
    overdue = GaugeMetricFamily(
        "mailprobe_canary_overdue", METRICS["mailprobe_canary_overdue"], labels=["route"]
    )
    overdue_counts = runtime.overdue_by_route()
    for route, count in runtime.in_flight_by_route().items():
        in_flight.add_metric([route], count)
        overdue.add_metric([route], overdue_counts.get(route, 0))
    yield in_flight
    yield overdue
    for name, values in (
        ("mailprobe_canary_last_sent_timestamp_seconds", stats.last_sent),
        ("mailprobe_canary_last_delivered_timestamp_seconds", stats.last_delivered),
    ):
        family = GaugeMetricFamily(name, METRICS[name], labels=["route"])
        for route in routes:
            if route in values:
                family.add_metric([route], values[route])
        yield family
    verification = GaugeMetricFamily(
        "mailprobe_canary_verification_ok", METRICS["mailprobe_canary_verification_ok"],
        labels=["route", "check"],
    )  # fmt: skip
    for (route, check), ok in sorted(stats.verifications.items()):
        if route in runtime.routes:
            verification.add_metric([route, check], 1.0 if ok else 0.0)
    yield verification
    junk = GaugeMetricFamily(
        "mailprobe_canary_last_in_junk", METRICS["mailprobe_canary_last_in_junk"], labels=["route"]
    )
    for route, in_junk in sorted(stats.junk.items()):
        if route in runtime.routes:
            junk.add_metric([route], 1.0 if in_junk else 0.0)
    yield junk
    up = GaugeMetricFamily(
        "mailprobe_canary_mailbox_up", METRICS["mailprobe_canary_mailbox_up"], labels=["mailbox"]
    )
    for name, watcher in runtime.watchers.items():
        if watcher.reachable is not None:
            up.add_metric([name], 1.0 if watcher.reachable else 0.0)
    yield up
