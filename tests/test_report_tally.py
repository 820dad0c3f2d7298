"""The report's top tables stay bounded however many distinct addresses a log has."""

from __future__ import annotations

from exporters.postfix_logs.tally import BYTES, MESSAGES, Tally


def test_a_tally_is_bounded_and_keeps_the_heavy_keys() -> None:
    tally = Tally(capacity=100)
    for n in range(20_000):
        row = tally.row(f"bot{n}@spam.example")
        row[MESSAGES] += 1
        row[BYTES] += 100
        if n % 10 == 0:  # a steady sender among the bots
            row = tally.row("newsletter@example.org")
            row[MESSAGES] += 1
            row[BYTES] += 1000
        if n == 5_000:  # one big message, once
            row = tally.row("video@example.org")
            row[MESSAGES] += 1
            row[BYTES] += 50_000_000
        assert len(tally.rows) <= 200
    assert tally.pruned
    assert tally.top(1, MESSAGES)[0] == ("newsletter@example.org", [2000.0, 2_000_000.0, 0, 0, 0])
    assert tally.top(1, BYTES)[0][0] == "video@example.org"


def test_below_capacity_a_tally_is_exact_and_merges() -> None:
    left, right = Tally(capacity=100), Tally(capacity=100)
    for tally, keys in ((left, "abc"), (right, "bcd")):
        for key in keys:
            tally.row(key)[MESSAGES] += 1
    left.merge(right.export())
    assert not left.pruned
    assert [(k, int(r[MESSAGES])) for k, r in left.top(10, MESSAGES)] == [
        ("b", 2),
        ("c", 2),
        ("a", 1),
        ("d", 1),
    ]
