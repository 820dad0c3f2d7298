"""Helpers for asserting on the postfix_ exposition as Prometheus would scrape it."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.postfix_logs.aggregator import LogAggregator
from exporters.postfix_logs.settings import LogSettings
from monitor.metrics.postfix import PostfixLogCollector


class Scrape:
    """One scrape, parsed back from the text format."""

    def __init__(self, aggregator: LogAggregator) -> None:
        registry = CollectorRegistry()
        registry.register(PostfixLogCollector(aggregator))
        self.text = generate_latest(registry).decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert found, f"no sample {name}{labels}"
        return sum(found)

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


def scrape(lines: Iterable[str], settings: LogSettings | None = None) -> Scrape:
    aggregator = LogAggregator(settings)
    aggregator.feed_lines(line.encode() for line in lines)
    aggregator.finish()
    return Scrape(aggregator)
