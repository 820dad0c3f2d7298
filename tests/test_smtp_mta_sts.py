"""MTA-STS (RFC 8461): policy syntax and MX patterns, then the check against the lab's
real policy server, knot and unbound, with the state store remembering policies."""

from __future__ import annotations

import hashlib
from pathlib import Path

from exporters.dns.resolver import StubResolver
from exporters.dns.transport import Server
from exporters.result import Phase, Status
from exporters.smtp.mta_sts import (
    MtaStsSettings,
    RememberedPolicy,
    check_mta_sts,
    mx_matches,
    parse_policy,
)
from monitor.lab import Lab
from monitor.state import StsPolicies
from tests.lab_fixture import broken
from tests.smtpsec_lab import (
    lab_smtp_config,
    one_result,
    promtool_problems,
    run_json,
    sample,
    scrape_once,
)

GOOD = (
    "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmx: *.backup.test\r\n"
    "max_age: 604800\r\n"
)


def test_policy_parses_and_names_each_problem() -> None:
    policy = parse_policy(GOOD)
    assert policy.problems == ()
    assert (policy.mode, policy.max_age, policy.mx) == (
        "enforce",
        604800,
        ("mx.example.test", "*.backup.test"),
    )
    bad = parse_policy("version: STSv2\nmode: strict\nmax_age: 99999999999\nmode: none\njunk\n")
    assert bad.problems == (
        "'mode' appears twice",
        "line 5 is not 'key: value'",
        "version is 'STSv2', not 'STSv1'",
        "max_age '99999999999' is not a number of seconds",
    )
    assert parse_policy("version: STSv1\nmode: enforce\nmax_age: 31557601\n").problems == (
        "max_age 31557601 is above the limit of 31557600 (RFC 8461 3.2)",
        "no 'mx' pattern",
    )
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 0\n").problems == ()


def test_mx_patterns_follow_rfc_8461_wildcards() -> None:
    assert mx_matches("*.example.com", "mail.example.com")
    assert mx_matches("*.example.com", "MAIL.Example.com.")
    assert not mx_matches("*.example.com", "example.com")
    assert not mx_matches("*.example.com", "a.b.example.com")
    assert mx_matches("mx.example.com", "mx.example.com")
    assert not mx_matches("mx.example.com", "mx2.example.com")


def lab_resolver(lab: Lab) -> StubResolver:
    return StubResolver([Server(lab.resolver, 53)], timeout=2.0, retries=1)


def settings(lab: Lab) -> MtaStsSettings:
    return MtaStsSettings(lab.domain, ca_file=lab.ca_file, step_timeout=5.0)


async def test_lab_policy_is_fetched_and_covers_the_mx(lab: Lab, tmp_path: Path) -> None:
    memory = StsPolicies(tmp_path)
    outcome = await check_mta_sts(lab_resolver(lab), settings(lab), memory, Phase())
    assert outcome.status is Status.OK, outcome.reason
    assert outcome.facts["mta_sts_policy_fetched"] == 1
    assert outcome.facts["mta_sts_mode"] == "enforce"
    assert outcome.facts["mta_sts_max_age_seconds"] == 86400
    assert outcome.facts["mta_sts_mx_uncovered"] == 0
    assert outcome.facts["mta_sts_id_stale"] == 0
    remembered = await memory.recall(lab.domain)
    body = (lab.layout.mta_sts / "mta-sts.txt").read_bytes()
    assert remembered is not None and remembered.sha256 == hashlib.sha256(body).hexdigest()


async def test_policy_changed_under_the_same_id_warns_until_the_id_changes(
    lab: Lab, tmp_path: Path
) -> None:
    memory = StsPolicies(tmp_path)
    resolver = lab_resolver(lab)
    first = await check_mta_sts(resolver, settings(lab), memory, Phase())
    assert first.status is Status.OK, first.reason
    remembered = await memory.recall(lab.domain)
    assert remembered is not None
    # As if the last run had seen another text under the id the lab publishes now.
    await memory.remember(lab.domain, RememberedPolicy(remembered.policy_id, "0" * 64))
    changed = await check_mta_sts(resolver, settings(lab), memory, Phase())
    assert changed.status is Status.WARN
    assert changed.facts["mta_sts_id_stale"] == 1
    assert (
        f"MTA-STS policy at https://mta-sts.{lab.domain}/.well-known/mta-sts.txt changed but "
        f"the id in _mta-sts.{lab.domain} is still {remembered.policy_id}" in changed.reason
    )
    # Same text again, same id: the caches are still stale, so the warning stays.
    again = await check_mta_sts(resolver, settings(lab), memory, Phase())
    assert again.status is Status.WARN and again.facts["mta_sts_id_stale"] == 1
    # A new id (the operator bumped it): senders refetch, the warning goes.
    stored = await memory.recall(lab.domain)
    assert stored is not None
    await memory.remember(lab.domain, RememberedPolicy("older", stored.sha256, "older"))
    fresh = await check_mta_sts(resolver, settings(lab), memory, Phase())
    assert fresh.status is Status.OK and fresh.facts["mta_sts_id_stale"] == 0


async def test_an_unwritable_state_dir_warns_and_still_judges(lab: Lab, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    outcome = await check_mta_sts(
        lab_resolver(lab), settings(lab), StsPolicies(blocker / "state"), Phase()
    )
    assert outcome.status is Status.WARN
    assert outcome.reason.startswith(
        f"MTA-STS for {lab.domain}: policy changes cannot be followed: cannot create state_dir"
    )
    assert outcome.facts["mta_sts_mode"] == "enforce"


def test_stop_mta_sts_fails_in_run_and_metrics(lab: Lab, tmp_path: Path) -> None:
    config = lab_smtp_config(lab, tmp_path / "c.yml", mta_sts=[{"domain": lab.domain}])
    healthy = one_result(run_json(config, "--only", "smtp"), "mta_sts")
    assert healthy["status"] == "ok", healthy
    with broken(lab, "stop-mta-sts"):
        result = one_result(run_json(config, "--only", "smtp"), "mta_sts")
        text = scrape_once(config)
    url = f"https://mta-sts.{lab.domain}/.well-known/mta-sts.txt"
    assert result["status"] == "fail"
    assert result["reason"] == (
        f"https get: MTA-STS policy {url} cannot be fetched: {lab.hosts['mtasts'].address}: connection refused"
    )
    labels = {"kind": "smtp", "check": "mta_sts", "target": lab.domain}
    assert sample(text, "mailprobe_check_up", **labels) == 0.0
    assert sample(text, "mailprobe_check_status", status="fail", **labels) == 1.0
    assert promtool_problems(text, "mailprobe_smtp_mta_sts_") == []
    fetched = sample(text, "mailprobe_smtp_mta_sts_policy_fetched", target=lab.domain)
    assert fetched == 0.0
