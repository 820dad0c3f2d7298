"""The ``mailprobe logs`` report: one data structure, rendered as text or JSON.

The JSON carries the line accounting first (``{"lines": {"total", "postfix_lines",
"unsupported", "malformed", ...}}``), then the pflogsumm-style summary: message
totals, per-hour traffic, Postfix's delivery delay, top reject/deferral/bounce reasons,
warnings, top senders, recipients and domains, TLS share, SASL failures, postscreen and
in-fleet delays. Sizes are bytes throughout (the text adds KiB/MiB/GiB, 1024-based).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any

from exporters.postfix_logs.histogram import HistogramData
from exporters.postfix_logs.summary import EVENTS, TALLIES, Summary
from exporters.postfix_logs.tally import BYTES, DEFERRALS, DELAY_MAX, DELAY_SUM, MESSAGES, Tally
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


def _period(analysis: Analysis, last: float | None) -> tuple[float | None, float | None]:
    """First and last time of the log: its first and last line, widened to the
    earliest and latest line counted, since a log need not be in time order."""
    aggregator, summary = analysis.aggregator, analysis.summary
    first = aggregator.clock.epoch(aggregator.first_stamp) if aggregator.first_stamp else None
    early, late = summary.earliest, summary.latest
    if early is not None and (first is None or early < first):
        first = early
    if late is not None and (last is None or late > last):
        last = late
    return first, last


def _addresses(tally: Tally, by: int, key: str = "address") -> list[dict[str, Any]]:
    return [
        {key: name, "messages": int(row[MESSAGES]), "bytes": int(row[BYTES])}
        for name, row in tally.top(TOP, by)
    ]


def _recipient_domains(tally: Tally) -> list[dict[str, Any]]:
    rows = []
    for name, row in tally.top(TOP, MESSAGES):
        sent = int(row[MESSAGES])
        rows.append(
            {
                "domain": name,
                "messages": sent,
                "bytes": int(row[BYTES]),
                "deferrals": int(row[DEFERRALS]),
                "average_delay_seconds": round(row[DELAY_SUM] / sent, 3) if sent else None,
                "max_delay_seconds": row[DELAY_MAX],
            }
        )
    return rows


def _tops(summary: Summary) -> dict[str, list[dict[str, Any]]]:
    return {
        "recipient_domains": _recipient_domains(summary.recipient_domains),
        "sender_domains": _addresses(summary.sender_domains, MESSAGES, "domain"),
        "senders_by_count": _addresses(summary.senders, MESSAGES),
        "senders_by_size": _addresses(summary.senders, BYTES),
        "recipients_by_count": _addresses(summary.recipients, MESSAGES),
        "recipients_by_size": _addresses(summary.recipients, BYTES),
        "rejected_clients": [
            {"address": name, "rejects": int(row[MESSAGES])}
            for name, row in summary.rejected_clients.top(TOP, MESSAGES)
        ],
    }


def build(analysis: Analysis) -> dict[str, Any]:
    aggregator, summary = analysis.aggregator, analysis.summary
    snapshot = aggregator.snapshot()
    counters: dict[str, dict[Any, int]] = snapshot.counters
    lines = snapshot.lines
    totals = summary.totals
    connects = sum(counters["connects"].values())
    smtpd_tls = sum(v for k, v in counters["tls"].items() if k[0].daemon == "smtpd")
    first, last = _period(analysis, snapshot.last_line_time)
    count, total, longest = summary.delays
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
        "period": {"first": _iso(first), "last": _iso(last)},
        "messages": {
            name: totals.get(name, 0)
            for name in (
                *MESSAGE_COUNTS,
                "rejected_connections",
                "bytes_received",
                "bytes_delivered",
            )
        },
        "delivery_delay": {
            "count": int(count),
            "average_seconds": round(total / count, 3) if count else None,
            "max_seconds": longest if count else None,
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
            **_tops(summary),
        },
        "top_approximate": [name for name in TALLIES if getattr(summary, name).pruned],
        "distinct": {
            name: sum(1 for row in getattr(summary, name).rows.values() if row[MESSAGES])
            for name in TALLIES
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
        if name == "rejected" and messages["rejected_connections"]:
            refused = messages["rejected_connections"]
            yield f"  {refused:>10}    of them connections refused at CONNECT"
    for name in ("bytes_received", "bytes_delivered"):
        yield f"  {messages[name]:>10}  {name.replace('_', ' ')}{_binary(messages[name])}"
    delay = report["delivery_delay"]
    if delay["count"]:
        yield ""
        yield "Delivery delay (Postfix's delay=, per delivered recipient)"
        yield "-----------------------------------------------------------"
        yield f"  {delay['count']:>10}  deliveries"
        yield f"  {_seconds(delay['average_seconds']):>10}  average"
        yield f"  {_seconds(delay['max_seconds']):>10}  maximum"
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
    )
    for key, title in titles:
        rows = report["top"][key]
        if rows:
            yield ""
            yield title
            yield "-" * len(title)
            for row in rows:
                yield f"  {row['count']:>10}  {row['text']}"
    yield from _top_tables(report)
    if report["postscreen"]:
        yield ""
        yield "postscreen"
        yield "----------"
        for action, count in sorted(report["postscreen"].items(), key=lambda kv: -kv[1]):
            yield f"  {count:>10}  {action}"
    if report["fleet_delay"]:
        yield ""
        title = "In-fleet delivery delay by path (log times, first client= to last delivery)"
        yield title
        yield "-" * len(title)
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


ADDRESS_TABLES = (
    ("senders_by_count", "Top senders by message count (received)"),
    ("recipients_by_count", "Top recipients by message count (delivered)"),
    ("senders_by_size", "Top senders by message size (received)"),
    ("recipients_by_size", "Top recipients by message size (delivered)"),
)


def _top_tables(report: Mapping[str, Any]) -> Iterable[str]:
    """pflogsumm's domain and address summaries: messages, bytes (and delays)."""
    top = report["top"]
    if top["recipient_domains"]:
        title = "Top recipient domains (delivered)"
        yield from ("", title, "-" * len(title))
        yield (
            f"  {'messages':>10}{'bytes':>14}{'deferrals':>11}{'avg delay':>11}"
            f"{'max delay':>11}  domain"
        )
        for row in top["recipient_domains"]:
            yield (
                f"  {row['messages']:>10}{row['bytes']:>14}{row['deferrals']:>11}"
                f"{_seconds(row['average_delay_seconds']):>11}"
                f"{_seconds(row['max_delay_seconds']):>11}  {row['domain']}"
            )
    tables = [("sender_domains", "Top sender domains (received)", "domain")]
    tables += [(key, title, "address") for key, title in ADDRESS_TABLES]
    for key, title, name in tables:
        if top[key]:
            yield from ("", title, "-" * len(title), f"  {'messages':>10}{'bytes':>14}  {name}")
            for row in top[key]:
                yield f"  {row['messages']:>10}{row['bytes']:>14}  {row[name]}"
    if top["rejected_clients"]:
        title = "Top rejected clients"
        yield from ("", title, "-" * len(title))
        for row in top["rejected_clients"]:
            yield f"  {row['rejects']:>10}  {row['address']}"
    if report["top_approximate"]:
        yield ""
        yield (
            "(top tables approximate: more distinct keys than kept in "
            + ", ".join(report["top_approximate"])
            + ")"
        )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} m"
    return f"{value:.1f} s"


def _binary(count: int) -> str:
    """`` (308.7 KiB)`` beside a byte count of a KiB or more; empty below."""
    if count < 1024:
        return ""
    value, units = count / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f" ({value:.1f} {units[0]})"
