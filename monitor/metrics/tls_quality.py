"""Metrics of the TLS quality scan (``kind="smtp"``, ``check="tls_quality"``, target: the
target's name from the config, so the labels stay bounded). Ratings are NCSC-NL's, as
internet.nl applies them (docs/smtp.md)."""

from __future__ import annotations

from monitor.metrics.facts import FactMetric

KIND = "smtp"

FACT_METRICS: tuple[FactMetric, ...] = (
    FactMetric(
        KIND,
        "tls_quality_broken_versions",
        "mailprobe_smtp_tls_quality_broken_versions",
        "SSL 2.0 and 3.0 versions the server accepts (must be 0).",
    ),
    FactMetric(
        KIND,
        "tls_quality_legacy_versions",
        "mailprobe_smtp_tls_quality_legacy_versions",
        "TLS 1.0 and 1.1 versions the server accepts (NCSC-NL: phase out).",
    ),
    FactMetric(
        KIND,
        "tls_quality_insufficient_suites",
        "mailprobe_smtp_tls_quality_insufficient_cipher_suites",
        "TLS 1.2/1.3 cipher suites accepted that NCSC-NL rates insufficient.",
    ),
    FactMetric(
        KIND,
        "tls_quality_phase_out_suites",
        "mailprobe_smtp_tls_quality_phase_out_cipher_suites",
        "TLS 1.2/1.3 cipher suites accepted that NCSC-NL rates phase-out.",
    ),
    FactMetric(
        KIND,
        "tls_quality_insufficient_key_exchange",
        "mailprobe_smtp_tls_quality_insufficient_key_exchange_groups",
        "Key exchange groups seen that NCSC-NL rates insufficient (small DH, weak curves).",
    ),
    FactMetric(
        KIND,
        "tls_quality_cert_key_bits",
        "mailprobe_smtp_tls_quality_certificate_key_size",
        "Size in bits of the server certificate's public key as scanned (promtool's lint "
        "refuses a _bits suffix).",
    ),
    FactMetric(
        KIND,
        "tls_quality_cert_insufficient",
        "mailprobe_smtp_tls_quality_certificate_insufficient",
        "Keys and signatures in the served chain (roots excepted) rated insufficient.",
    ),
)
