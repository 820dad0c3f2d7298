"""Metrics of the DNS checks: which facts become which gauges.

Every DNS check also has the per-check metrics of :mod:`monitor.metrics.checks`
(``mailprobe_check_up{kind="dns",check="spf",target="example.org"}`` ...).  Labels are
``check`` (the record kind: mx, spf, dkim, dmarc, dnssec, tlsa, fcrdns, srv, mta_sts,
tls_rpt, dnsbl) and ``target`` (an owner name from the config, e.g.
``lab._domainkey.example.org``), so they stay bounded by the config.
"""

from __future__ import annotations

from monitor.metrics.facts import FactMetric

KIND = "dns"

FACT_METRICS: tuple[FactMetric, ...] = (
    FactMetric(
        KIND,
        "dnssec_state",
        "mailprobe_dns_dnssec_state",
        "1 for the DNSSEC state of the check's answers (secure, insecure, bogus), else 0.",
        states=("secure", "insecure", "bogus"),
    ),
    FactMetric(
        KIND,
        "rrsig_expiry_timestamp",
        "mailprobe_dns_rrsig_expiry_timestamp_seconds",
        "Unix time the zone's earliest RRSIG (on SOA and DNSKEY) expires.",
    ),
    FactMetric(
        KIND,
        "spf_lookups",
        "mailprobe_dns_spf_lookups",
        "DNS-querying terms in the SPF record tree (RFC 7208 4.6.4 limit: 10).",
    ),
    FactMetric(
        KIND,
        "spf_void_lookups",
        "mailprobe_dns_spf_void_lookups",
        "SPF lookups that return no records (RFC 7208 4.6.4 limit: 2).",
    ),
    FactMetric(
        KIND,
        "spf_senders_ok",
        "mailprobe_dns_spf_senders_ok",
        "Configured senders whose SPF result is the expected one.",
    ),
    FactMetric(
        KIND,
        "dkim_key_bits",
        "mailprobe_dns_dkim_key_bits",
        "Size of the published DKIM key (RSA modulus bits; 256 for Ed25519).",
    ),
    FactMetric(
        KIND,
        "dkim_key_matches_signer",
        "mailprobe_dns_dkim_key_matches_signer",
        "1 if the published DKIM key is the public half of the configured signer key.",
    ),
    FactMetric(
        KIND,
        "dmarc_policy",
        "mailprobe_dns_dmarc_policy",
        "1 for the domain's DMARC policy (p=none, quarantine, reject), 0 for the others.",
        states=("none", "quarantine", "reject"),
        state_label="policy",
    ),
    FactMetric(
        KIND,
        "dmarc_pct",
        "mailprobe_dns_dmarc_pct",
        "Percentage of failing mail the DMARC policy applies to (legacy pct=, default 100).",
    ),
    FactMetric(
        KIND,
        "dmarc_testing",
        "mailprobe_dns_dmarc_testing",
        "1 if the DMARC record is in testing mode (t=y, RFC 9989).",
    ),
    FactMetric(
        KIND,
        "mx_records",
        "mailprobe_dns_mx_records",
        "MX records of the domain.",
    ),
    FactMetric(
        KIND,
        "tlsa_usable_records",
        "mailprobe_dns_tlsa_usable_records",
        "Well-formed TLSA records usable for SMTP DANE at the owner name.",
    ),
    FactMetric(
        KIND,
        "fcrdns_confirmed_addresses",
        "mailprobe_dns_fcrdns_confirmed_addresses",
        "Addresses of the host whose PTR name resolves back to them.",
    ),
    FactMetric(
        KIND,
        "dnsbl_listings",
        "mailprobe_dns_dnsbl_listings",
        "Blocklist zones listing one of the host's addresses (address x zone pairs).",
    ),
)
