"""Metrics of serve's HTTP connections: how many are open and why serve closed some."""

from __future__ import annotations

CONNECTIONS = "mailprobe_http_connections"
CONNECTIONS_HELP = "Client connections to the HTTP server open now."
CONNECTIONS_MAX = "mailprobe_http_connections_max"
CONNECTIONS_MAX_HELP = (
    "Client connections the HTTP server keeps open at most "
    "(web.max_connections, lowered to fit the open-file limit)."
)
DROPPED = "mailprobe_http_connections_dropped"  # exposed with _total
DROPPED_HELP = (
    "Client connections serve closed itself, by reason: header_timeout, idle_timeout, "
    "evicted (to make room for a new one) or refused (every connection had a request "
    "in progress)."
)
DROP_REASONS = ("header_timeout", "idle_timeout", "evicted", "refused")
