"""The per-check series alerts are built on: interval, consecutive failures, reason info."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from exporters.result import Check, CheckResult, Kind, Outcome, Phase, Status
from monitor.metrics.checks import REASON_MAX_CHARS, ChecksCollector, reason_label
from monitor.results import ResultsStore


async def _never(phase: Phase) -> Outcome:
    raise AssertionError("not run in these tests")


def _check(target: str, interval: float) -> Check:
    return Check(Kind.DNS, "spf", target, _never, interval_seconds=interval, timeout_seconds=5)


def _result(target: str, status: Status, reason: str = "") -> CheckResult:
    return CheckResult(Kind.DNS, "spf", target, status, reason, 0.1, 1000.0)


def _samples(store: ResultsStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(ChecksCollector(store))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str):
    wanted = {"kind": "dns", "check": "spf", **labels}
    found = [
        (dict(key), value)
        for (metric, key), value in samples.items()
        if metric == name and all(dict(key).get(k) == v for k, v in wanted.items())
    ]
    return found


def test_interval_and_consecutive_failures_follow_the_runs() -> None:
    store = ResultsStore()
    store.register([_check("a.example", 30), _check("b.example", 300)])
    samples = _samples(store)
    assert _get(samples, "mailprobe_check_interval_seconds", target="a.example")[0][1] == 30
    assert _get(samples, "mailprobe_check_interval_seconds", target="b.example")[0][1] == 300
    assert _get(samples, "mailprobe_check_consecutive_failures", target="a.example")[0][1] == 0

    for status in (Status.FAIL, Status.ERROR, Status.FAIL):
        store.record(_result("a.example", status, "SPF of a.example: no record"))
    samples = _samples(store)
    assert _get(samples, "mailprobe_check_consecutive_failures", target="a.example")[0][1] == 3

    store.record(_result("a.example", Status.WARN, "SPF of a.example needs 9 lookups"))
    samples = _samples(store)
    assert _get(samples, "mailprobe_check_consecutive_failures", target="a.example")[0][1] == 0


def test_reason_info_has_one_series_for_a_check_that_is_not_ok_and_none_when_ok() -> None:
    store = ResultsStore()
    store.register([_check("a.example", 30)])
    assert _get(_samples(store), "mailprobe_check_reason_info") == []

    store.record(_result("a.example", Status.FAIL, "no SPF record\n  at a.example"))
    store.record(_result("a.example", Status.FAIL, "SPF of a.example: SERVFAIL"))
    found = _get(_samples(store), "mailprobe_check_reason_info")
    assert found == [
        (
            {
                "kind": "dns",
                "check": "spf",
                "target": "a.example",
                "reason": "SPF of a.example: SERVFAIL",
            },
            1.0,
        )
    ]

    store.record(_result("a.example", Status.OK))
    assert _get(_samples(store), "mailprobe_check_reason_info") == []


def test_reason_label_is_one_line_and_cut() -> None:
    assert reason_label("a\n  b\tc ") == "a b c"
    assert reason_label("") == "(no reason given)"
    long = "x" * (REASON_MAX_CHARS + 50)
    label = reason_label(long)
    assert len(label) == REASON_MAX_CHARS
    assert label.endswith("…")
