"""Metrics of the MTA-STS check (``kind="smtp", check="mta_sts"``, target: the domain).

Besides the per-check metrics of :mod:`monitor.metrics.checks`, the facts below become
gauges labelled ``check`` and ``target``; the domains come from the config, so the
labels stay bounded.
"""

from __future__ import annotations

from monitor.metrics.facts import FactMetric

KIND = "smtp"

FACT_METRICS: tuple[FactMetric, ...] = (
    FactMetric(
        KIND,
        "mta_sts_policy_fetched",
        "mailprobe_smtp_mta_sts_policy_fetched",
        "1 if the MTA-STS policy was fetched over HTTPS (RFC 8461 3.3), 0 if it could not be.",
    ),
    FactMetric(
        KIND,
        "mta_sts_policy_valid",
        "mailprobe_smtp_mta_sts_policy_valid",
        "1 if the fetched MTA-STS policy parses (RFC 8461 3.2), 0 if it does not.",
    ),
    FactMetric(
        KIND,
        "mta_sts_mode",
        "mailprobe_smtp_mta_sts_mode",
        "1 for the MTA-STS policy's mode (enforce, testing, none), 0 for the others.",
        states=("enforce", "testing", "none"),
        state_label="mode",
    ),
    FactMetric(
        KIND,
        "mta_sts_max_age_seconds",
        "mailprobe_smtp_mta_sts_max_age_seconds",
        "max_age of the MTA-STS policy: how long senders cache it.",
    ),
    FactMetric(
        KIND,
        "mta_sts_mx_uncovered",
        "mailprobe_smtp_mta_sts_mx_uncovered",
        "MX hosts of the domain that no mx pattern of the MTA-STS policy matches.",
    ),
    FactMetric(
        KIND,
        "mta_sts_id_stale",
        "mailprobe_smtp_mta_sts_id_stale",
        "1 while the policy text has changed under an unchanged _mta-sts id.",
    ),
)
