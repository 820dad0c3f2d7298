"""DNS checks against the lab's knot (signing) and unbound (validating).

The DNS checks are the ones `mailprobe lab config` configures.  The healthy lab passes
every one; each DNS fault the lab can inject fails the right check, and only that one,
with a reason that names the record; healing it brings the check back.  Run with
``MAILPROBE_LAB_NET=127.78.0.0/24`` to keep clear of other test runs' labs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from exporters.result import Check, CheckResult, Kind, Status
from monitor.checks import build_checks
from monitor.config import parse_config
from monitor.lab import Lab
from monitor.lab import faults as F
from monitor.lab.mailconfig import config_yaml
from monitor.runner import run_all, run_check
from tests.lab_fixture import broken

Key = tuple[str, str]
SETTLE_SECONDS = 20.0
"""How long a fault or heal may take to show through the resolver's cache."""


@pytest.fixture(scope="module")
def dns_checks(lab: Lab) -> dict[Key, Check]:
    # Exactly what `mailprobe lab config` prints.
    config = parse_config(config_yaml(lab), "lab config")
    return {(c.name, c.target): c for c in build_checks(config, only=[Kind.DNS])}


async def settle(check: Check, done: Callable[[CheckResult], bool]) -> CheckResult:
    """Run ``check`` until ``done`` holds (the resolver may serve cached data for a few
    seconds after a zone change) or the time is up; return the last result."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        result = await run_check(check)
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


def failing(results: list[CheckResult]) -> set[Key]:
    return {(r.check, r.target) for r in results if r.status in (Status.FAIL, Status.ERROR)}


async def test_healthy_lab_passes_every_dns_check(dns_checks: dict[Key, Check]) -> None:
    results = await run_all(dns_checks.values(), concurrency=8)
    print("\n" + "\n".join(f"{r.check:8} {r.target:38} {r.status:5} {r.reason}" for r in results))
    assert len(results) >= 8
    assert failing(results) == set(), [(r.key, r.reason) for r in results if r.status != "ok"]
    by_key = {(r.check, r.target): r for r in results}
    assert by_key[("dnssec", "example.test")].facts["dnssec_state"] == "secure"
    assert by_key[("spf", "example.test")].facts["spf_lookups"] == 3
    assert by_key[("dkim", "lab._domainkey.example.test")].facts["dkim_key_matches_signer"]
    dmarc = by_key[("dmarc", "example.test")]
    assert dmarc.status is Status.WARN  # the lab publishes p=none, like the reference fleet
    assert "monitoring only, receivers quarantine or reject nothing" in dmarc.reason
    assert "`mailprobe dmarc report`" in dmarc.reason


def expected(lab: Lab) -> list[tuple[str, Key, str]]:
    h = lab.hosts
    srs = h["srs"].address
    reverse = ".".join(reversed(srs.split(".")))
    return [
        (
            F.SPF_MISSING_SRS,
            ("spf", "example.test"),
            f"SPF of example.test does not authorise {srs} (srs.example.test): result fail",
        ),
        (
            F.SPF_TOO_MANY_LOOKUPS,
            ("spf", "example.test"),
            "SPF of example.test needs 14 DNS lookups, over the limit of 10",
        ),
        (
            F.DKIM_RECORD_REMOVED,
            ("dkim", "lab._domainkey.example.test"),
            "no DKIM key at lab._domainkey.example.test",
        ),
        (
            F.DKIM_KEY_MISMATCH,
            ("dkim", "lab._domainkey.example.test"),
            "DKIM key lab._domainkey.example.test (sha256:",
        ),
        (
            F.DMARC_RECORD_REMOVED,
            ("dmarc", "example.test"),
            "no DMARC record at _dmarc.example.test",
        ),
        (
            F.PTR_REMOVED,
            ("fcrdns", "srs.example.test"),
            f"no PTR record for {srs} (srs.example.test) at {reverse}.in-addr.arpa",
        ),
        (
            F.TLSA_REMOVED,
            ("tlsa", "_25._tcp.mx.example.test"),
            "no TLSA record at _25._tcp.mx.example.test",
        ),
        (F.MX_RECORD_REMOVED, ("mx", "example.test"), "no MX record for example.test"),
        (
            F.DNSBL_LISTED,
            ("dnsbl", "srs.example.test"),
            f"{srs} (srs.example.test) is listed on bl.test (127.0.0.2): "
            "listed by the mailprobe lab (fault)",
        ),
    ]


FAULT_NAMES = [
    F.SPF_MISSING_SRS,
    F.SPF_TOO_MANY_LOOKUPS,
    F.DKIM_RECORD_REMOVED,
    F.DKIM_KEY_MISMATCH,
    F.DMARC_RECORD_REMOVED,
    F.PTR_REMOVED,
    F.TLSA_REMOVED,
    F.MX_RECORD_REMOVED,
    F.DNSBL_LISTED,
]


@pytest.mark.parametrize("fault", FAULT_NAMES)
async def test_fault_fails_the_right_check(
    lab: Lab, dns_checks: dict[Key, Check], fault: str
) -> None:
    _, key, reason = next(item for item in expected(lab) if item[0] == fault)
    check = dns_checks[key]
    with broken(lab, fault):
        result = await settle(check, lambda r: r.status is Status.FAIL)
        assert result.status is Status.FAIL, result
        assert reason in result.reason
        others = await run_all([c for k, c in dns_checks.items() if k != key], concurrency=8)
        assert failing(others) == set(), [(r.key, r.reason) for r in others]
    healed = await settle(check, lambda r: r.status in (Status.OK, Status.WARN))
    assert healed.status in (Status.OK, Status.WARN), healed


async def test_expired_signatures_are_bogus_not_missing(
    lab: Lab, dns_checks: dict[Key, Check]
) -> None:
    check = dns_checks[("dnssec", "example.test")]
    with broken(lab, F.DNSSEC_BOGUS):
        result = await settle(check, lambda r: r.status is Status.FAIL)
        assert result.facts["dnssec_state"] == "bogus"
        assert result.reason.startswith("zone example.test is DNSSEC-bogus: SOA example.test:")
        assert "its signatures expired" in result.reason
        assert float(result.facts["rrsig_expiry_timestamp"]) < time.time()
        results = await run_all(dns_checks.values(), concurrency=8)
        in_zone = {
            (r.check, r.target)
            for r in results
            if r.target == "example.test" or r.target.endswith(".example.test")
        }
        assert failing(results) == in_zone - {("dnsbl", k[1]) for k in in_zone}
        for r in results:
            if (r.check, r.target) in failing(results):
                assert "bogus" in r.reason and "no " not in r.reason.split(":")[0], r.reason
        # FCrDNS: the forward lookup failed, so nothing is claimed about where it points
        fcrdns = [r for r in results if r.check == "fcrdns" and r.target.endswith(".example.test")]
        assert fcrdns
        for r in fcrdns:
            assert "resolve back" not in r.reason and "forward-confirmed" not in r.reason, r
            assert r.facts["dnssec_state"] == "bogus", r
    healed = await settle(check, lambda r: r.status is Status.OK)
    assert healed.status is Status.OK, healed
