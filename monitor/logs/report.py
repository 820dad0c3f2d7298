"""The ``mailprobe logs`` report: one data structure, rendered as text or JSON.

The JSON carries the line accounting first (``{"lines": {"total", "postfix_lines",
"unsupported", "malformed", ...}}``), then the pflogsumm-style summary: message
totals, per-hour traffic, top reject/deferral/bounce reasons, warnings, TLS share,
SASL failures, postscreen and in-fleet delays.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any

from exporters.postfix_logs.histogram import HistogramData
from exporters.postfix_logs.summary import EVENTS
from monitor.logs.engine import Analysis

MESSAGE_COUNTS = (
    "received",
    "delivered",
    "forwarded",
    "deferred",
    "deferrals",
    "bounced",
    "rejected",
    "reject_warnings",
    "held",
    "discarded",
    "expired",
)
"""The report's message totals, in the order both formats list them."""

TOP = 10


def _top(counter: Mapping[str, int], n: int = TOP) -> list[dict[str, Any]]:
    return [{"count": c, "text": t} for t, c in Counter(counter).most_common(n)]


def _iso(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when).astimezone().isoformat()


def _by(state: Mapping[Hashable, int], label: Any) -> dict[str, int]:
    out: defaultdict[str, int] = defaultdict(int)
    for key, value in state.items():
        out[label(key)] += value
    return dict(out)


def build(analysis: Analysis) -> dict[str, Any]:
    aggregator, summary = analysis.aggregator, analysis.summary
    snapshot = aggregator.snapshot()
    counters: dict[str, dict[Any, int]] = snapshot.counters
    lines = snapshot.lines
    totals = summary.totals
    connects = sum(counters["connects"].values())
    smtpd_tls = sum(v for k, v in counters["tls"].items() if k[0].daemon == "smtpd")
    first = aggregator.clock.epoch(aggregator.first_stamp) if aggregator.first_stamp else None
    report: dict[str, Any] = {
        "lines": {
            "total": lines.total,
            "postfix_lines": lines.postfix,
            "unsupported": lines.unsupported,
            "malformed": lines.malformed,
            "foreign": lines.foreign,
            "truncated": lines.truncated,
            "outside_window": lines.outside_window,
        },
        "period": {"first": _iso(first), "last": _iso(snapshot.last_line_time)},
        "messages": {
            name: totals.get(name, 0)
            for name in (*MESSAGE_COUNTS, "bytes_received", "bytes_delivered")
        },
        "hourly": [
            {"hour": hour, **{e: counts.get(e, 0) for e in EVENTS}}
            for hour, counts in sorted(summary.hourly.items())
        ],
        "top": {
            "rejects": _top(summary.reasons["reject"]),
            "deferrals": _top(summary.reasons["defer"]),
            "bounces": _top(summary.reasons["bounce"]),
            "warnings": _top(summary.reasons["warning"]),
            "fatal": _top(summary.reasons["fatal"]),
            "panic": _top(summary.reasons["panic"]),
            "master": _top(summary.reasons["master"]),
            "recipient_domains": _top(summary.recipient_domains),
            "sender_domains": _top(summary.sender_domains),
        },
        "smtpd": {
            "connections": connects,
            "tls_connections": smtpd_tls,
            "tls_share": round(smtpd_tls / connects, 4) if connects else None,
            "sasl_failures": dict(summary.sasl_methods),
            "sasl_failure_clients": _top(summary.sasl_clients),
        },
        "outgoing_tls": _by(
            {k: v for k, v in counters["tls"].items() if k[0].daemon in ("smtp", "lmtp")},
            lambda k: k[1],
        ),
        "postscreen": _by(counters["postscreen"], lambda k: k[1]),
        "unsupported_by_daemon": _by(counters["unsupported"], lambda k: k.daemon),
        "fleet_delay": {
            str(path): _delay(data) for path, data in snapshot.histograms["fleet_delay"].items()
        },
    }
    return report


def _delay(data: HistogramData) -> dict[str, Any]:
    count = sum(data.counts)
    return {"count": count, "average_seconds": round(data.total / count, 3) if count else None}


# ---- text ------------------------------------------------------------------------------


def render_text(report: Mapping[str, Any]) -> Iterable[str]:
    lines, messages = report["lines"], report["messages"]
    period = report["period"]
    yield f"Postfix log summary  {period['first'] or '-'}  ..  {period['last'] or '-'}"
    yield ""
    yield "Lines"
    yield "-----"
    for name in ("total", "postfix_lines", "unsupported", "malformed", "foreign"):
        yield f"  {lines[name]:>10}  {name.replace('_', ' ')}"
    if lines["truncated"]:
        yield f"  {lines['truncated']:>10}  truncated (too long)"
    if lines["outside_window"]:
        yield f"  {lines['outside_window']:>10}  outside --since/--until"
    yield ""
    yield "Grand totals"
    yield "------------"
    for name in MESSAGE_COUNTS:
        yield f"  {messages[name]:>10}  {name.replace('_', ' ')}"
    yield f"  {_bytes(messages['bytes_received']):>10}  bytes received"
    yield f"  {_bytes(messages['bytes_delivered']):>10}  bytes delivered"
    smtpd = report["smtpd"]
    share = smtpd["tls_share"]
    yield ""
    yield "Connections"
    yield "-----------"
    yield f"  {smtpd['connections']:>10}  smtpd connections"
    yield f"  {smtpd['tls_connections']:>10}  with TLS" + (f" ({share:.1%})" if share else "")
    for trust, count in sorted(report["outgoing_tls"].items()):
        yield f"  {count:>10}  outgoing TLS, {trust}"
    for method, count in sorted(smtpd["sasl_failures"].items()):
        yield f"  {count:>10}  SASL {method} authentication failures"
    yield from _traffic(report["hourly"])
    titles = (
        ("rejects", "Top reject reasons"),
        ("deferrals", "Top deferral reasons"),
        ("bounces", "Top bounce reasons"),
        ("warnings", "Warnings"),
        ("fatal", "Fatal errors"),
        ("panic", "Panics"),
        ("master", "Master daemon messages"),
        ("recipient_domains", "Top recipient domains (delivered)"),
    )
    for key, title in titles:
        rows = report["top"][key]
        if rows:
            yield ""
            yield title
            yield "-" * len(title)
            for row in rows:
                yield f"  {row['count']:>10}  {row['text']}"
    if report["postscreen"]:
        yield ""
        yield "postscreen"
        yield "----------"
        for action, count in sorted(report["postscreen"].items(), key=lambda kv: -kv[1]):
            yield f"  {count:>10}  {action}"
    if report["fleet_delay"]:
        yield ""
        yield "In-fleet delivery delay by path"
        yield "-------------------------------"
        for path, stats in sorted(report["fleet_delay"].items()):
            yield f"  {stats['count']:>10}  {path}  (average {stats['average_seconds']} s)"
    if report["unsupported_by_daemon"]:
        yield ""
        yield "Unsupported lines by daemon (see --show-unsupported)"
        yield "----------------------------------------------------"
        for daemon, count in sorted(report["unsupported_by_daemon"].items()):
            yield f"  {count:>10}  {daemon}"


def _traffic(hourly: list[dict[str, Any]]) -> Iterable[str]:
    """Per hour for one day; per day and the daily average per hour for longer spans."""
    if not hourly:
        return
    header = "".join(f"{e:>10}" for e in EVENTS)
    days: dict[str, Counter[str]] = {}
    hours: dict[str, Counter[str]] = {}
    for row in hourly:
        day, hour = row["hour"].split(" ")
        days.setdefault(day, Counter()).update({e: row[e] for e in EVENTS})
        hours.setdefault(hour, Counter()).update({e: row[e] for e in EVENTS})
    if len(days) == 1:
        yield from ("", "Per-hour traffic", "----------------", f"  {'hour':<17}{header}")
        for row in hourly:
            yield f"  {row['hour']:<17}" + "".join(f"{row[e]:>10}" for e in EVENTS)
        return
    yield from ("", "Per-day traffic", "---------------", f"  {'day':<17}{header}")
    for day, counts in sorted(days.items()):
        yield f"  {day:<17}" + "".join(f"{counts[e]:>10}" for e in EVENTS)
    title = f"Per-hour traffic, average of {len(days)} days"
    yield from ("", title, "-" * len(title), f"  {'hour':<17}{header}")
    for hour, counts in sorted(hours.items()):
        yield f"  {hour:<17}" + "".join(f"{counts[e] / len(days):>10.1f}" for e in EVENTS)


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("", "k", "M"):
        if value < 1024:
            return f"{value:.1f}{unit}" if unit else f"{count}"
        value /= 1024
    return f"{value:.1f}G"
