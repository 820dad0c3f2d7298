"""From a ``dns`` config section to checks, results and metrics, against a loopback server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.result import Kind, Status
from monitor.checks import build_checks
from monitor.config import ConfigError, parse_config
from monitor.metrics.checks import ChecksCollector
from monitor.metrics.dns import FACT_METRICS
from monitor.results import ResultsStore
from monitor.runner import run_all
from tests.dns_loopback import LoopbackDns, Zone

CONFIG = """
dns:
  resolvers: [{{address: 127.0.0.1, port: {port}}}]
  timeout: 0.5
  retries: 0
  domains:
    - name: example.test
      mx: {{hosts: [mx.example.test]}}
      spf:
        senders:
          - {{name: srs.example.test, address: 127.77.0.4}}
      dkim: [{{selector: lab}}]
      srv: [{{service: submission, port: 587}}]
      mta_sts: true
      tls_rpt: true
  hosts:
    - name: srs.example.test
      addresses: [127.77.0.4]
      tlsa_ports: [25]
      spf: true
  dnsbl:
    zones: [{{zone: bl.test}}]
"""


def zone() -> Zone:
    z = Zone(secure=True, rrsig_expiration="20991231000000")
    z.add("example.test", "SOA", "ns.example.test. admin.example.test. 1 60 60 600 60")
    z.add("example.test", "DNSKEY", "257 3 13 dGhpcyBpcyBub3QgYSByZWFsIGtleQ==")
    z.add("example.test", "MX", "10 mx.example.test.")
    z.add("mx.example.test", "A", "127.77.0.2")
    z.add("srs.example.test", "A", "127.77.0.4")
    z.add("srs.example.test", "TXT", '"v=spf1 a -all"')
    z.add("4.0.77.127.in-addr.arpa", "PTR", "srs.example.test.")
    z.add("example.test", "TXT", '"v=spf1 ip4:127.77.0.0/24 -all"')
    z.add("_dmarc.example.test", "TXT", '"v=DMARC1; p=none; rua=mailto:d@example.test"')
    z.add("_submission._tcp.example.test", "SRV", "0 1 587 mx.example.test.")
    z.add("_mta-sts.example.test", "TXT", '"v=STSv1; id=1"')
    z.add("_smtp._tls.example.test", "TXT", '"v=TLSRPTv1; rua=mailto:t@example.test"')
    z.add("_25._tcp.srs.example.test", "TLSA", "3 1 1 " + "ab" * 32)
    z.add("bl.test", "SOA", "ns.bl.test. admin.bl.test. 1 60 60 600 60")
    return z


async def test_config_to_checks_to_metrics(tmp_path: Path) -> None:
    async with LoopbackDns(zone()).running() as server:
        config = parse_config(CONFIG.format(port=server.port))
        checks = build_checks(config, only=[Kind.DNS])
        keys = sorted((c.name, c.target) for c in checks)
        assert keys == [
            ("dkim", "lab._domainkey.example.test"),
            ("dmarc", "example.test"),
            ("dnsbl", "srs.example.test"),
            ("dnssec", "example.test"),
            ("fcrdns", "srs.example.test"),
            ("mta_sts", "example.test"),
            ("mx", "example.test"),
            ("spf", "example.test"),
            ("spf", "srs.example.test"),
            ("srv", "_submission._tcp.example.test"),
            ("tls_rpt", "example.test"),
            ("tlsa", "_25._tcp.srs.example.test"),
        ]
        results = await run_all(checks, concurrency=4)
    by_key = {(r.check, r.target): r for r in results}
    assert by_key[("dkim", "lab._domainkey.example.test")].status is Status.FAIL
    assert by_key[("dmarc", "example.test")].status is Status.WARN
    others = [r for k, r in by_key.items() if k[0] not in ("dkim", "dmarc")]
    assert all(r.status is Status.OK for r in others), [(r.key, r.reason) for r in others]

    store = ResultsStore()
    store.register(checks)
    for result in results:
        store.record(result)
    registry = CollectorRegistry()
    registry.register(ChecksCollector(store, FACT_METRICS))
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    dmarc = ("check", "dmarc"), ("target", "example.test")
    assert samples[("mailprobe_dns_dmarc_policy", (*dmarc[:1], ("policy", "none"), dmarc[1]))] == 1
    assert (
        samples[("mailprobe_dns_dmarc_policy", (*dmarc[:1], ("policy", "reject"), dmarc[1]))] == 0
    )
    dnssec = (("check", "dnssec"), ("state", "secure"), ("target", "example.test"))
    assert samples[("mailprobe_dns_dnssec_state", dnssec)] == 1
    expiry = (("check", "dnssec"), ("target", "example.test"))
    assert samples[("mailprobe_dns_rrsig_expiry_timestamp_seconds", expiry)] == 4102358400
    assert (
        samples[("mailprobe_dns_spf_lookups", (("check", "spf"), ("target", "example.test")))] == 0
    )
    promtool = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            """
dns:
  resolvers: [{address: resolver.example}]
  domains:
    - name: example.test
      dkim: [{selector: lab, signer_key_file: missing.private}]
      spf: {senders: [{name: srs, address: 127.0.0.1, expect: maybe}]}
""",
            base_dir=tmp_path,
        )
    issues = {issue.path: issue.message for issue in err.value.issues}
    assert issues["dns.resolvers[0].address"] == "'resolver.example' is not an IPv4 or IPv6 address"
    assert issues["dns.domains[0].dkim[0].signer_key_file"].endswith(
        "missing.private does not exist or is not a file"
    )
    assert "dns.domains[0].spf.senders[0].expect" in issues


def test_no_resolvers_is_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("dns: {domains: [{name: example.test}]}")
    assert str(err.value.issues[0]) == (
        "dns (line 1): at least one entry in 'resolvers' is needed to check DNS"
    )
