"""Metrics of the SMTP security probes (``kind="smtp"``; ``check`` is the probe:
``auth_before_tls``, ``plaintext_auth``, ``open_relay``, ``bare_lf``; ``target`` the
target's name from the config, so the labels stay bounded)."""

from __future__ import annotations

from monitor.metrics.facts import FactMetric

KIND = "smtp"

FACT_METRICS: tuple[FactMetric, ...] = (
    FactMetric(
        KIND,
        "security_exposed",
        "mailprobe_smtp_security_exposed",
        "1 if the probe saw the weakness it looks for (AUTH before TLS, plaintext AUTH "
        "accepted, open relay, DATA ended at a bare LF), 0 if it showed it absent; "
        "no sample when the probe could not tell.",
    ),
    FactMetric(
        KIND,
        "bare_lf_message_accepted",
        "mailprobe_smtp_bare_lf_message_accepted",
        "1 if the server took the bare-LF probe's message to the sink after the proper "
        "end of DATA (bare LF read as text), 0 if it refused it.",
    ),
)
