"""The hand-written text exposition of /probe writes what prometheus_client writes."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from monitor.metrics.smtp import SessionRow, session_families
from monitor.metrics.text import render


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _reference(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


FULL = {
    "failed_phase": "starttls",
    "connect_seconds": 0.000123,
    "starttls_seconds": 1.5,
    "ext_starttls": True,
    "ext_size": False,
    "size_limit_bytes": 10240000,
    "tls_version": "TLSv1.3",
    "tls_cipher": 'odd "cipher"\\name\nwith newline ü',
    "tls_key_bits": 256,
    "cert_not_after": 1799163522.0,
    "pkix": "expired",
    "dane": "verified",
    "dane_rollover_scheme": "none",
    "dane_next_matches": False,
}


@pytest.mark.parametrize(
    "rows",
    [
        [SessionRow(("25", "ipv4"), True, FULL)],
        [SessionRow(("25", "ipv4"), False, {}), SessionRow(("465", "ipv6"), True, FULL)],
        [],
    ],
    ids=["full", "two-rows-one-empty", "no-rows"],
)
def test_render_matches_prometheus_client(rows: list[SessionRow]) -> None:
    success = GaugeMetricFamily("probe_success", 'help with "quotes" \\ and\nnewline')
    success.add_metric([], float("nan"))
    took = GaugeMetricFamily("probe_duration_seconds", "took")
    took.add_metric([], float("inf"))
    odd = GaugeMetricFamily("mailprobe_odd_values", "signs and sizes", labels=["v"])
    for n, value in enumerate((-0.0, 0.0, 1.0, -1.0, 1e-9, 12345678.0, float("-inf"))):
        odd.add_metric([str(n)], value)
    families: list[Metric] = [success, took, odd, *session_families(rows, ("port", "family"))]
    assert render(families) == _reference(families)


def test_render_refuses_what_it_does_not_write() -> None:
    counter = CounterMetricFamily("mailprobe_things", "things", value=1.0)
    with pytest.raises(ValueError, match="only gauges"):
        render([counter])
