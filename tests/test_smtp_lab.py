"""The SMTP prober against the lab's real Postfix, knot and unbound.

The checks are exactly what `mailprobe lab config` configures.  The healthy lab passes
every target with PKIX valid and DANE verified; each fault of issue 10 fails the right
target in the right phase with a reason that says what to look at.
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
from monitor.lab.mailconfig import config_yaml
from monitor.runner import run_all, run_check
from tests.lab_fixture import broken

SETTLE_SECONDS = 20.0
"""How long a fault or heal may take to show through the resolver's cache."""


@pytest.fixture(scope="module")
def smtp_checks(lab: Lab) -> dict[str, Check]:
    config = parse_config(config_yaml(lab), "lab config")
    checks = [c for c in build_checks(config, only=[Kind.SMTP]) if c.name.startswith("session_")]
    assert {c.name for c in checks} == {"session_ipv4"}  # the lab's targets are IPv4 literals
    return {c.target: c for c in checks}


async def settle(check: Check, done: Callable[[CheckResult], bool]) -> CheckResult:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        result = await run_check(check)
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


async def test_healthy_lab_every_target_ok_with_dane_verified(
    smtp_checks: dict[str, Check],
) -> None:
    results = await run_all(smtp_checks.values(), concurrency=5)
    by_target = {r.target: r for r in results}
    assert set(by_target) == {"mx", "srs", "submission-587", "submission-465", "world"}
    for target, result in by_target.items():
        assert result.status is Status.OK, (target, result.reason)
        assert result.facts["pkix"] == "valid", target
        assert result.facts["dane"] == "verified", target
        assert str(result.facts["dane_record"]).startswith("3 1 1 "), target
        assert result.facts["tls_version"] in ("TLSv1.2", "TLSv1.3")
        for phase in ("connect", "banner", "ehlo", "tlsa"):
            assert float(result.facts[f"{phase}_seconds"]) > 0, (target, phase)
    assert "starttls_seconds" in by_target["mx"].facts
    assert "tls_seconds" in by_target["submission-465"].facts
    assert by_target["mx"].facts["ext_starttls"] is True
    # AUTH only after TLS on 587: the secured EHLO offers it.
    assert by_target["submission-587"].facts["ext_auth"] is True
    assert "PLAIN" in str(by_target["submission-587"].facts["auth_mechanisms"])
    assert "S: 220 mx.example.test" in (by_target["mx"].detail or "")
    assert by_target["mx"].facts["banner_host"] == "mx.example.test"
    assert by_target["mx"].facts["banner_code"] == 220


FAULTS = [
    # fault, target, failed phase, words in the reason, pkix, dane
    ("stop-postfix-mx", "mx", "connect", ["connection refused"], None, None),
    (
        "mx-cert-expired",
        "mx",
        "starttls",
        ["PKIX", "expired", "DANE", "matches", "still deliver"],
        "expired",
        "verified",
    ),
    (
        "submission-465-wrong-name",
        "submission-465",
        "tls",
        ["PKIX", "not submit.example.test"],
        "name_mismatch",
        "verified",
    ),
    (
        "srs-cert-rotated-tlsa-stale",
        "srs",
        "starttls",
        ["TLSA 3 1 1", "_25._tcp.srs.example.test", "does not match the served key"],
        "valid",
        "mismatch",
    ),
    ("tlsa-removed", "mx", "tlsa", ["no TLSA record at _25._tcp.mx.example.test"], "valid", "off"),
    (
        "dnssec-signatures-expired",
        "mx",
        "tlsa",
        ["bogus", "DANE senders defer"],
        "valid",
        "bogus",
    ),
]


@pytest.mark.parametrize(("fault", "target", "phase", "words", "pkix", "dane"), FAULTS)
async def test_fault_fails_the_right_target_in_the_right_phase(
    lab: Lab,
    smtp_checks: dict[str, Check],
    fault: str,
    target: str,
    phase: str,
    words: list[str],
    pkix: str | None,
    dane: str | None,
) -> None:
    check = smtp_checks[target]
    with broken(lab, fault):
        result = await settle(check, lambda r: r.status is Status.FAIL)
        assert result.status is Status.FAIL, result.reason
        assert result.facts["failed_phase"] == phase, result.reason
        assert result.reason.startswith(f"{phase}: "), result.reason
        for word in words:
            assert word in result.reason, (word, result.reason)
        if pkix is not None:
            assert result.facts["pkix"] == pkix
        if dane is not None:
            assert result.facts["dane"] == dane
    healed = await settle(check, lambda r: r.status is Status.OK)
    assert healed.status is Status.OK, healed.reason
