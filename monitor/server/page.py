"""The status page at ``/``: every check with its last status and reason.

Everything that comes from config or from a probed server (names, reasons) is
HTML-escaped; the page has no scripts and no external resources.
"""

from __future__ import annotations

import time
from html import escape

from monitor import __version__
from monitor.results import CheckRecord

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    ".ok{background:#dfd}.warn{background:#ffd}.fail,.error{background:#fdd}"
    ".pending{background:#eee}"
)


def _ago(finished_at: float, now: float) -> str:
    seconds = max(0.0, now - finished_at)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def render_status_page(records: list[CheckRecord], ready: bool) -> str:
    now = time.time()
    rows = []
    for record in sorted(records, key=lambda r: (r.kind, r.check, r.target)):
        last = record.last
        status = last.status.value if last else "pending"
        cells = [
            record.kind,
            record.check,
            record.target,
            status,
            _ago(last.finished_at, now) if last else "not run yet",
            f"{last.duration_seconds:.3f} s" if last else "",
            last.reason if last else "",
        ]
        rows.append(
            f'<tr class="{escape(status)}">'
            + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
            + "</tr>"
        )
    state = "ready" if ready else "starting: not every check has run yet"
    headers = ("kind", "check", "target", "status", "last run", "duration", "reason")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>mailprobe</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>mailprobe {escape(__version__)}</h1>"
        f"<p>{escape(state)}; checks: {len(records)}. "
        '<a href="metrics">metrics</a> · <a href="-/healthy">healthy</a> · '
        '<a href="-/ready">ready</a></p>'
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in headers)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>\n"
    )
