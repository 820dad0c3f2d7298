"""Oracle: the prober's DANE verdict agrees with Postfix's own `posttls-finger -c -l dane`,
run through the lab's validating resolver, for every lab host, healthy and under the
faults that change the verdict (a PKIX-expired certificate that DANE-EE still verifies,
a stale TLSA record, a removed one).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from exporters.result import Check, Kind
from monitor.checks import build_checks
from monitor.config import parse_config
from monitor.lab import Lab
from monitor.lab.mailconfig import config_yaml
from monitor.runner import run_check
from tests.lab_fixture import broken

pytestmark = pytest.mark.skipif(
    shutil.which("posttls-finger") is None, reason="posttls-finger (Debian: postfix)"
)

# target name in `mailprobe lab config` -> (lab host, port)
TARGETS = {
    "mx": ("mx", 25),
    "srs": ("srs", 25),
    "submission-587": ("submit", 587),
    "submission-465": ("submit", 465),
    "world": ("world", 25),
}


@pytest.fixture(scope="module")
def checks(lab: Lab) -> dict[str, Check]:
    config = parse_config(config_yaml(lab), "lab config")
    return {c.target: c for c in build_checks(config, only=[Kind.SMTP]) if c.name == "session_ipv4"}


def finger_verified(lab: Lab, target: str) -> tuple[bool, str]:
    host, port = TARGETS[target]
    args = ["posttls-finger", "-t5", "-T10", "-c", "-l", "dane", "-L", "summary"]
    if port == 465:
        args.append("-w")  # TLS from the first byte
    args.append(f"[{lab.hosts[host].name}]:{port}")
    done = subprocess.run(lab.ns_command(args), capture_output=True, text=True, timeout=30)
    output = done.stdout + done.stderr
    return "Verified TLS connection established" in output, output


async def agree(lab: Lab, check: Check) -> tuple[str, bool]:
    ours = await run_check(check)
    theirs, output = finger_verified(lab, check.target)
    assert (ours.facts.get("dane") == "verified") == theirs, (
        f"{check.target}: mailprobe says DANE {ours.facts.get('dane')} ({ours.reason}); "
        f"posttls-finger says: {output.strip()}"
    )
    return str(ours.facts.get("dane")), theirs


async def test_healthy_lab_every_host_verified_by_both(lab: Lab, checks: dict[str, Check]) -> None:
    assert set(checks) == set(TARGETS)
    for check in checks.values():
        assert await agree(lab, check) == ("verified", True)


@pytest.mark.parametrize(
    ("fault", "target", "dane"),
    [
        ("mx-cert-expired", "mx", "verified"),  # DANE-EE ignores dates: both still verify
        ("srs-cert-rotated-tlsa-stale", "srs", "mismatch"),
        ("tlsa-removed", "mx", "off"),
    ],
)
async def test_fault_verdicts_agree(
    lab: Lab, checks: dict[str, Check], fault: str, target: str, dane: str
) -> None:
    with broken(lab, fault):
        ours, theirs = await agree(lab, checks[target])
        assert ours == dane
        assert theirs is (dane == "verified")
