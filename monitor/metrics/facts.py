"""Declarations that turn a check's numeric facts into gauges at scrape time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FactMetric:
    """Export fact ``fact`` of checks of ``kind`` as gauge ``name`` labelled check, target."""

    kind: str
    fact: str
    name: str
    help: str
    states: tuple[str, ...] = ()
    """For a text fact with a fixed set of values: one series per value, labelled
    ``state_label``, 1 for the current value and 0 for the others (a StateSet)."""
    state_label: str = "state"
