"""Every ``postfix_`` log metric: name, help, labels, and the collector that renders them.

The aggregator (``exporters.postfix_logs``) keeps counters keyed by the line's program
and a few bounded values; at each scrape :class:`PostfixLogCollector` takes one
snapshot and projects those keys onto the label names below, summing what projects
onto the same label values. Names follow prometheus-postfix-exporter (kumina) where it
has the metric, without its bugs: delay histograms carry a real ``stage`` and see
final attempts only, deferrals are counted, ``sasl_method`` has no trailing comma,
and every label value comes from a fixed set, the config, or a capped set.

With ``mtail_compat`` the families the Tor Project's mtail program also defines gain
its labels (``postfix_instance``; TLS ``cipher``, ``secret_bits``, ``algorithm_bits``)
and its own families are added (``postfix_smtp_deliveries``,
``postfix_smtpd_messages_ratelimited_total``, ``postfix_unsupported_log_entries_total``
with the daemon as ``service``, ``spamassassin_ham_total``, ``spamassassin_spam_total``),
so its Grafana dashboard keeps working.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from exporters.postfix_logs.aggregator import LogAggregator, LogSnapshot
from exporters.postfix_logs.histogram import HistogramData

Labels = tuple[str, ...]
Project = Callable[[Any], Labels | None]
"""Maps one state key to label values (None: not part of this family)."""


@dataclass(frozen=True, slots=True)
class Family:
    """One counter family: which state it reads and how keys become labels."""

    name: str
    """Without ``_total``; prometheus_client appends it."""
    help: str
    state: str
    labels: Sequence[str]
    project: Project
    compat: bool = False
    """Shared with the mtail program: gains ``postfix_instance`` in compat mode."""


def _by_service(key: Any) -> Labels:
    return (key.service,)


def _service_rest(key: Any) -> Labels:
    return (key[0].service, *key[1:])


def _service_daemon(key: Any) -> Labels:
    return (key.service, key.daemon)


def _service_daemon_rest(key: Any) -> Labels:
    return (key[0].service, key[0].daemon, *key[1:])


def _identity(key: Any) -> Labels:
    return key if isinstance(key, tuple) else (key,)


def _daemons(names: Iterable[str], project: Project) -> Project:
    wanted = frozenset(names)

    def only(key: Any) -> Labels | None:
        prog = key[0] if isinstance(key, tuple) else key
        return project(key) if prog.daemon in wanted else None

    return only


def _deliveries(key: Any) -> Labels:
    prog, status, dsn_class, domain = key
    return (prog.service, prog.daemon, status, dsn_class, domain)


def _tls(key: Any) -> Labels:
    prog, trust, protocol, _cipher, _secret, _algorithm = key
    return (prog.service, trust, protocol)


FAMILIES: tuple[Family, ...] = (
    # ---- line accounting
    Family(
        "postfix_log_unsupported_lines",
        "Postfix lines no parser understood, by service and daemon.",
        "unsupported",
        ("service", "daemon"),
        _service_daemon,
    ),
    Family(
        "postfix_log_foreign_lines",
        "Lines of other programs sharing the log (rspamd, opendkim, clamav, dovecot, postsrsd...).",
        "foreign",
        ("program",),
        lambda prog: (prog.daemon,),
    ),
    Family(
        "postfix_log_messages",
        "Postfix lines logged with a severity (warning, error, fatal, panic), by daemon.",
        "severity",
        ("service", "daemon", "severity"),
        _service_daemon_rest,
    ),
    # ---- smtpd
    Family(
        "postfix_smtpd_connects",
        "Connections accepted by smtpd.",
        "connects",
        ("service",),
        _by_service,
        compat=True,
    ),
    Family(
        "postfix_smtpd_disconnects",
        "smtpd sessions ended by a disconnect line.",
        "disconnects",
        ("service",),
        _by_service,
        compat=True,
    ),
    Family(
        "postfix_smtpd_commands",
        "SMTP commands per smtpd session (disconnect statistics), accepted or rejected.",
        "commands",
        ("service", "command", "result"),
        _service_rest,
    ),
    Family(
        "postfix_smtpd_connections_lost",
        "smtpd sessions that ended with 'lost connection after STAGE'.",
        "lost",
        ("service", "after_stage"),
        _service_rest,
        compat=True,
    ),
    Family(
        "postfix_smtpd_timeouts",
        "smtpd sessions that ended with 'timeout after STAGE'.",
        "timeouts",
        ("service", "after_stage"),
        _service_rest,
    ),
    Family(
        "postfix_smtpd_protocol_errors",
        "Client protocol errors seen by smtpd (pipelining, bare LF, TLS handshake, ...).",
        "protocol_errors",
        ("service", "error"),
        _service_rest,
    ),
    Family(
        "postfix_smtpd_forward_confirmed_reverse_dns_errors",
        "Clients whose reverse DNS name does not resolve back to their address.",
        "fcrdns",
        ("service",),
        _by_service,
        compat=True,
    ),
    Family(
        "postfix_smtpd_messages_processed",
        "Messages smtpd accepted into the queue (client= lines), by SASL method ('' if none).",
        "processed",
        ("service", "sasl_method"),
        _service_rest,
        compat=True,
    ),
    Family(
        "postfix_smtpd_messages_rejected",
        "SMTP transactions smtpd rejected (policy, milter and before-queue filter rejects).",
        "smtpd_rejects",
        ("service", "stage", "code", "enhanced_code", "reason"),
        _service_rest,
        compat=True,
    ),
    Family(
        "postfix_access_actions",
        "Access-table and milter actions other than reject (reject_warning, hold, discard...).",
        "access_actions",
        ("service", "daemon", "action", "stage"),
        _service_daemon_rest,
    ),
    Family(
        "postfix_milter_actions",
        "Milter verdicts acted on by smtpd or cleanup (rspamd, clamav-milter, ...).",
        "milter_actions",
        ("service", "daemon", "action"),
        _service_daemon_rest,
    ),
    Family(
        "postfix_smtpd_sasl_authentication_failures",
        "Failed SASL authentications at smtpd, by method.",
        "sasl_failures",
        ("service", "method"),
        _service_rest,
        compat=True,
    ),
    Family(
        "postfix_smtpd_sasl_backend_errors",
        "SASL backend errors at smtpd (auth socket or saslauthd unreachable, ...).",
        "sasl_backend",
        ("service",),
        _by_service,
    ),
    # ---- TLS
    Family(
        "postfix_smtpd_tls_connections",
        "TLS sessions smtpd established, by trust level and protocol.",
        "tls",
        ("service", "trust", "protocol"),
        _daemons(("smtpd",), _tls),
        compat=True,
    ),
    Family(
        "postfix_smtp_tls_connections",
        "TLS sessions the smtp/lmtp client established, by trust level and protocol.",
        "tls",
        ("service", "trust", "protocol"),
        _daemons(("smtp", "lmtp"), _tls),
        compat=True,
    ),
    Family(
        "postfix_tlsproxy_tls_connections",
        "TLS sessions tlsproxy established for postscreen, by trust level and protocol.",
        "tls",
        ("service", "trust", "protocol"),
        _daemons(("tlsproxy",), _tls),
    ),
    Family(
        "postfix_tls_failures",
        "TLS failures: certificate verification, handshakes, TLS required but not offered, "
        "smtpd's CA or certificate files unreadable (TLS disabled).",
        "tls_failures",
        ("service", "daemon", "event"),
        _service_daemon_rest,
    ),
    # ---- postscreen and friends
    Family(
        "postfix_postscreen_actions",
        "postscreen events: connect, pass_new/old, dnsbl, pregreet, hangup, listed, ...",
        "postscreen",
        ("service", "action"),
        _service_rest,
    ),
    Family(
        "postfix_postscreen_messages_rejected",
        "Recipients postscreen rejected after its deep protocol tests.",
        "postscreen_rejects",
        ("service", "code", "enhanced_code", "reason"),
        _service_rest,
    ),
    Family(
        "postfix_postscreen_connects_rejected",
        "Connections postscreen refused because it was busy.",
        "postscreen_busy",
        ("service", "reason"),
        _service_rest,
    ),
    Family(
        "postfix_dnsblog_listings",
        "DNSBL hits reported by dnsblog, by zone.",
        "dnsbl",
        ("service", "zone"),
        _service_rest,
    ),
    # ---- queue
    Family(
        "postfix_cleanup_messages_processed",
        "Messages cleanup processed (message-id lines).",
        "cleanup_processed",
        ("service",),
        _by_service,
        compat=True,
    ),
    Family(
        "postfix_cleanup_messages_rejected",
        "Messages cleanup rejected (header/body checks, milter reject at end of data).",
        "cleanup_rejects",
        ("service", "action", "enhanced_code", "reason"),
        _service_rest,
        compat=True,
    ),
    Family(
        "postfix_cleanup_actions",
        "Header and body check actions taken by cleanup.",
        "cleanup_actions",
        ("service", "action", "check"),
        _service_rest,
    ),
    Family(
        "postfix_cleanup_messages_not_accepted",
        "Messages cleanup refused with 'map lookup problem' (a dead table such as postsrsd).",
        "not_accepted",
        ("service", "table"),
        _service_rest,
    ),
    Family(
        "postfix_qmgr_messages_removed",
        "Messages qmgr removed from the queue.",
        "removed",
        ("service",),
        _by_service,
        compat=True,
    ),
    Family(
        "postfix_qmgr_messages_expired",
        "Messages returned to sender after the queue lifetime (expired, force-expired).",
        "expired",
        ("service", "status"),
        _service_rest,
    ),
    Family(
        "postfix_pickup_messages",
        "Messages picked up from the maildrop queue (local submission).",
        "pickup",
        ("service",),
        _by_service,
    ),
    Family(
        "postfix_postsuper_actions",
        "Queue operations by postsuper (removed, requeued, held, released).",
        "postsuper",
        ("service", "action"),
        _service_rest,
    ),
    Family(
        "postfix_bounce_notifications",
        "Notifications the bounce daemon sent (non_delivery, delay, delivery_status, success).",
        "notifications",
        ("service", "notification", "recipient"),
        _service_rest,
    ),
    # ---- delivery
    Family(
        "postfix_deliveries",
        "Delivery attempts per recipient, by transport (delivery agent), status and DSN class.",
        "deliveries",
        ("service", "transport", "status", "dsn_class", "domain"),
        _deliveries,
    ),
    Family(
        "postfix_delivery_problems",
        "Deferred and bounced delivery attempts, by reason class of the reply.",
        "delivery_problems",
        ("service", "transport", "status", "reason"),
        _service_daemon_rest,
    ),
    Family(
        "postfix_smtp_connection_failures",
        "smtp/lmtp client connection failures (timed out, refused, no route, lost, ...).",
        "connection_failures",
        ("service", "daemon", "reason"),
        _service_daemon_rest,
    ),
    Family(
        "postfix_smtp_sasl_authentication_failures",
        "SASL authentications the smtp client failed at a relay host.",
        "client_sasl_failures",
        ("service", "daemon"),
        _service_daemon,
    ),
    Family(
        "postfix_master_events",
        "master and postfix-script events: started, reload, terminating, process exits.",
        "lifecycle",
        ("service", "daemon", "event"),
        _service_daemon_rest,
    ),
    # ---- programs sharing the log
    Family(
        "postfix_srs_rewrites",
        "postsrsd address rewrites, by direction and result.",
        "srs",
        ("direction", "result"),
        _identity,
    ),
    Family(
        "opendkim_signatures_added",
        "DKIM signatures opendkim added, by selector (subject) and domain.",
        "dkim_signed",
        ("subject", "domain"),
        _identity,
    ),
    Family(
        "postfix_rspamd_actions",
        "rspamd verdicts logged to the mail log, by action.",
        "rspamd",
        ("action",),
        _identity,
    ),
    Family(
        "postfix_virus_found",
        "Infected messages reported by clamav.",
        "virus",
        ("program",),
        lambda prog: (prog.daemon,),
    ),
    Family(
        "postfix_spamd_results",
        "SpamAssassin spamd verdicts (ham, spam).",
        "spamd",
        ("result",),
        _identity,
    ),
)


@dataclass(frozen=True, slots=True)
class HistogramFamily:
    name: str
    help: str
    state: str
    labels: Sequence[str]
    project: Project


HISTOGRAMS: tuple[HistogramFamily, ...] = (
    *(
        HistogramFamily(
            f"postfix_{t}_delivery_delay_seconds",
            f"Delay per stage of final {t} deliveries (sent or bounced, never deferred retries).",
            f"delay_{t}",
            ("service", "stage"),
            _service_rest,
        )
        for t in ("smtp", "lmtp", "local", "virtual")
    ),
    HistogramFamily(
        "postfix_pipe_delivery_delay_seconds",
        "Delay per stage of final pipe deliveries (sent or bounced), by pipe transport.",
        "delay_pipe",
        ("service", "stage", "relay"),
        _service_rest,
    ),
    HistogramFamily(
        "postfix_qmgr_messages_inserted_size_bytes",
        "Size of messages entering the active queue (first time only).",
        "size",
        ("service",),
        _by_service,
    ),
    HistogramFamily(
        "postfix_qmgr_messages_inserted_recipients",
        "Recipients of messages entering the active queue (first time only).",
        "recipients",
        ("service",),
        _by_service,
    ),
    HistogramFamily(
        "postfix_postscreen_dnsbl_rank",
        "postscreen's combined DNSBL rank of clients it scored.",
        "dnsbl_rank",
        ("service",),
        _by_service,
    ),
    HistogramFamily(
        "postfix_fleet_delivery_delay_seconds",
        "Time from a message's first receipt in the fleet to its final delivery, by path of"
        " services (queue IDs linked via 'queued as' / 'forwarded as').",
        "fleet_delay",
        ("path",),
        _identity,
    ),
)

MTAIL_NAMES = (
    "postfix_cleanup_messages_processed_total",
    "postfix_cleanup_messages_rejected_total",
    "postfix_qmgr_messages_removed_total",
    "postfix_smtp_deliveries",
    "postfix_smtp_tls_connections_total",
    "postfix_smtpd_connects_total",
    "postfix_smtpd_disconnects_total",
    "postfix_smtpd_forward_confirmed_reverse_dns_errors_total",
    "postfix_smtpd_connections_lost_total",
    "postfix_smtpd_messages_processed_total",
    "postfix_smtpd_messages_rejected_total",
    "postfix_smtpd_messages_ratelimited_total",
    "postfix_smtpd_sasl_authentication_failures_total",
    "postfix_smtpd_tls_connections_total",
    "postfix_unsupported_log_entries_total",
    "spamassassin_ham_total",
    "spamassassin_spam_total",
)
"""Every metric the Tor Project mtail program defines (anarcat/puppet-mtail)."""

TLS_DETAIL_LABELS = ("cipher", "secret_bits", "algorithm_bits")


class PostfixLogCollector(Collector):
    """Renders the aggregator's state at scrape time."""

    def __init__(self, aggregator: LogAggregator, clock: Callable[[], float] = time.time) -> None:
        self._aggregator = aggregator
        self._clock = clock
        self._compat = aggregator.settings.mtail_compat

    def collect(self) -> Iterator[Metric]:
        snapshot = self._aggregator.snapshot()
        yield from self._lines(snapshot)
        for family in FAMILIES:
            yield self._counter(family, snapshot.counters[family.state])
        for histogram in HISTOGRAMS:
            yield _histogram(histogram, snapshot, histogram.state)
        if self._compat:
            yield from _mtail_only(snapshot)

    def _lines(self, snapshot: LogSnapshot) -> Iterator[Metric]:
        lines = snapshot.lines
        family = CounterMetricFamily(
            "postfix_log_lines",
            "Log lines read, by outcome: postfix_parsed, postfix_unsupported, foreign, malformed.",
            labels=["outcome"],
        )
        family.add_metric(["postfix_parsed"], lines.postfix - lines.unsupported)
        family.add_metric(["postfix_unsupported"], lines.unsupported)
        family.add_metric(["foreign"], lines.foreign)
        family.add_metric(["malformed"], lines.malformed)
        yield family
        yield CounterMetricFamily(
            "postfix_log_lines_truncated",
            "Lines longer than logs.max_line_bytes, cut before parsing.",
            value=lines.truncated,
        )
        last = GaugeMetricFamily(
            "postfix_log_last_line_timestamp_seconds",
            "Unix time in the newest log line read (0 before the first line).",
        )
        lag = GaugeMetricFamily(
            "postfix_log_lag_seconds",
            "Scrape time minus the time in the newest log line read.",
        )
        if snapshot.last_line_time is not None:
            last.add_metric([], snapshot.last_line_time)
            lag.add_metric([], max(0.0, self._clock() - snapshot.last_line_time))
        else:
            last.add_metric([], 0.0)
        yield last
        yield lag
        yield GaugeMetricFamily(
            "postfix_tracked_messages",
            "Queue IDs the message tracker holds (bounded by logs.tracker.max_messages).",
            value=snapshot.tracked_messages,
        )

    def _counter(self, family: Family, state: Mapping[Any, int]) -> Metric:
        compat = self._compat and family.compat
        tls = compat and family.state == "tls"
        labels = list(family.labels)
        if compat:
            labels.append("postfix_instance")
        if tls:
            labels.extend(TLS_DETAIL_LABELS)
        sums: defaultdict[Labels, int] = defaultdict(int)
        for key, value in state.items():
            values = family.project(key)
            if values is None:
                continue
            if compat:
                prog = key[0] if isinstance(key, tuple) else key
                values = (*values, prog.instance)
            if tls:
                values = (*values, *key[3:6])
            sums[values] += value
        metric = CounterMetricFamily(family.name, family.help, labels=labels)
        for values, value in sums.items():
            metric.add_metric(list(values), value)
        return metric


def _histogram(family: HistogramFamily, snapshot: LogSnapshot, state: str) -> Metric:
    bounds = snapshot.histogram_bounds[state]
    merged: dict[Labels, list[float]] = {}
    for key, data in snapshot.histograms[state].items():
        values = family.project(key)
        if values is None:
            continue
        _add(merged.setdefault(values, [0.0] * (len(bounds) + 2)), data)
    metric = HistogramMetricFamily(family.name, family.help, labels=list(family.labels))
    for values, sums in merged.items():
        running, buckets = 0.0, []
        for bound, count in zip((*bounds, float("inf")), sums[:-1], strict=True):
            running += count
            buckets.append((_le(bound), running))
        metric.add_metric(list(values), buckets, sums[-1])
    return metric


def _add(into: list[float], data: HistogramData) -> None:
    for i, count in enumerate(data.counts):
        into[i] += count
    into[-1] += data.total


def _le(bound: float) -> str:
    if bound == float("inf"):
        return "+Inf"
    return repr(float(bound))


def _mtail_only(snapshot: LogSnapshot) -> Iterator[Metric]:
    counters: dict[str, dict[Any, int]] = snapshot.counters
    deliveries = UnknownMetricFamily(
        "postfix_smtp_deliveries",
        "(mtail compat) smtp delivery attempts by status.",
        labels=["postfix_instance", "status"],
    )
    sums: defaultdict[Labels, int] = defaultdict(int)
    for (prog, status, _dsn, _domain), value in counters["deliveries"].items():
        if prog.daemon == "smtp":
            sums[prog.instance, status] += value
    for values, value in sums.items():
        deliveries.add_metric(list(values), value)
    yield deliveries

    ratelimited = CounterMetricFamily(
        "postfix_smtpd_messages_ratelimited",
        "(mtail compat) RCPT rejects whose text says 'Rate limit'.",
        labels=["postfix_instance"],
    )
    for values, value in _by_instance(counters["ratelimited"]).items():
        ratelimited.add_metric(list(values), value)
    yield ratelimited

    unsupported = CounterMetricFamily(
        "postfix_unsupported_log_entries",
        "(mtail compat) Postfix lines no parser understood; 'service' is the daemon.",
        labels=["postfix_instance", "service"],
    )
    sums = defaultdict(int)
    for prog, value in counters["unsupported"].items():
        sums[prog.instance, prog.daemon] += value
    for values, value in sums.items():
        unsupported.add_metric(list(values), value)
    yield unsupported

    spamd = counters["spamd"]
    yield CounterMetricFamily(
        "spamassassin_ham", "(mtail compat) spamd clean messages.", value=spamd.get("ham", 0)
    )
    yield CounterMetricFamily(
        "spamassassin_spam", "(mtail compat) spamd spam messages.", value=spamd.get("spam", 0)
    )


def _by_instance(state: Mapping[Any, int]) -> dict[Labels, int]:
    sums: defaultdict[Labels, int] = defaultdict(int)
    for prog, value in state.items():
        sums[(prog.instance,)] += value
    return sums


def render_reference() -> str:
    """The metric table in docs/postfix-logs.md (``python -m monitor.metrics.postfix``)."""
    rows = [
        "| metric | type | labels | meaning |",
        "|---|---|---|---|",
        "| `postfix_log_lines_total` | counter | outcome | Log lines read, by outcome:"
        " postfix_parsed, postfix_unsupported, foreign, malformed. |",
        "| `postfix_log_lines_truncated_total` | counter | | Lines cut before parsing. |",
        "| `postfix_log_last_line_timestamp_seconds` | gauge | | Time in the newest line. |",
        "| `postfix_log_lag_seconds` | gauge | | Scrape time minus the newest line's time. |",
        "| `postfix_tracked_messages` | gauge | | Queue IDs the message tracker holds. |",
    ]
    for family in FAMILIES:
        labels = ", ".join(family.labels) + (" (+mtail)" if family.compat else "")
        rows.append(f"| `{family.name}_total` | counter | {labels} | {family.help} |")
    for histogram in HISTOGRAMS:
        labels = ", ".join(histogram.labels)
        rows.append(f"| `{histogram.name}` | histogram | {labels} | {histogram.help} |")
    for name in MTAIL_NAMES:
        if not any(name in (f"{f.name}_total", f.name) for f in FAMILIES):
            rows.append(f"| `{name}` | counter | (mtail) | Only with `logs.mtail_compat`. |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
