"""The private registry behind ``/metrics``: check metrics, build info, reloads.

Nothing is registered on prometheus_client's global registry, so ``/metrics`` shows
exactly mailprobe's families and no process or platform metrics of the library's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from prometheus_client.registry import CollectorRegistry

from monitor.metrics import dmarc, dns, mta_sts, smtp_security, tls_quality
from monitor.metrics.checks import BuildInfoCollector, ChecksCollector
from monitor.metrics.facts import FactMetric
from monitor.metrics.smtp import SmtpSessionCollector
from monitor.results import ResultsStore
from monitor.server.reload import ReloadStatus

FACT_METRICS: tuple[FactMetric, ...] = (
    *dns.FACT_METRICS,
    *mta_sts.FACT_METRICS,
    *dmarc.FACT_METRICS,
    *smtp_security.FACT_METRICS,
    *tls_quality.FACT_METRICS,
)
"""Check facts exported as gauges: each source's metrics module names its own entries."""


def build_registry(
    store: ResultsStore,
    reloads: ReloadStatus,
    fact_metrics: Sequence[FactMetric] = FACT_METRICS,
    smtp_ports: Callable[[], Mapping[str, int]] = dict,
) -> CollectorRegistry:
    """``smtp_ports`` names each SMTP target's port, from the config of the moment."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ChecksCollector(store, fact_metrics))
    registry.register(SmtpSessionCollector(store, smtp_ports))
    registry.register(BuildInfoCollector())
    registry.register(reloads)
    return registry
