"""MTA-STS (RFC 8461): policy syntax and MX patterns, then the check against the lab's
real policy server, knot and unbound, with the state store remembering policies."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from exporters.dns.resolver import StubResolver
from exporters.dns.transport import Server
from exporters.result import Outcome, Phase, Status
from exporters.smtp.mta_sts import (
    MtaStsSettings,
    RememberedPolicy,
    check_mta_sts,
    mx_matches,
    parse_policy,
)
from monitor.lab import Lab
from monitor.state import StsPolicies
from tests.dns_loopback import LoopbackDns, Zone
from tests.lab_fixture import broken
from tests.servers import LOOPBACK, LoopbackServer, TlsFiles
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
        f"https get: MTA-STS policy {url} cannot be fetched: "
        f"{lab.hosts['mtasts'].address}: connection refused"
    )
    labels = {"kind": "smtp", "check": "mta_sts", "target": lab.domain}
    assert sample(text, "mailprobe_check_up", **labels) == 0.0
    assert sample(text, "mailprobe_check_status", status="fail", **labels) == 1.0
    assert promtool_problems(text, "mailprobe_smtp_mta_sts_") == []
    fetched = sample(text, "mailprobe_smtp_mta_sts_policy_fetched", target=lab.domain)
    assert fetched == 0.0


# ------------------------------------------- a misbehaving policy server on loopback
POLICY_URL = "https://mta-sts.example.test/.well-known/mta-sts.txt"
LAB_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 604800\r\n"


class PolicyServer(LoopbackServer):
    """HTTPS on loopback answering the policy request as ``mode`` says."""

    def __init__(self, tls: TlsFiles, mode: str, policy: str = LAB_POLICY) -> None:
        super().__init__()
        self.tls, self.mode, self.policy = tls, mode, policy

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, LOOPBACK, 0, ssl=self.tls.server_context()
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if self.mode == "silent":
            await reader.read()
            return
        headers, body = {"Content-Type": "text/plain"}, self.policy.encode()
        status = "200 OK"
        if self.mode == "redirect":
            status, headers["Location"] = "301 Moved", "https://elsewhere.test/policy"
        elif self.mode == "html":
            headers["Content-Type"] = "text/html"
        elif self.mode == "huge":
            body = b"mx: filler.example.test\n" * 4096  # about 96 KiB
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()


def policy_zone() -> Zone:
    zone = Zone(secure=True)
    zone.add("example.test", "MX", "10 mx.example.test.")
    zone.add("_mta-sts.example.test", "TXT", '"v=STSv1; id=1"')
    zone.add("mta-sts.example.test", "A", "127.0.0.1")
    return zone


async def check_against(server: PolicyServer) -> Outcome:
    settings = MtaStsSettings(
        "example.test", ca_file=server.tls.ca_file, step_timeout=1.0, port=server.port
    )
    async with LoopbackDns(policy_zone()).running() as dns_server:
        return await check_mta_sts(dns_server.resolver(), settings, None, Phase())


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (
            "redirect",
            "HTTP 301 to https://elsewhere.test/policy (senders do not follow redirects), not 200",
        ),
        ("html", "media type is 'text/html', not text/plain"),
        ("huge", "policy longer than 65536 bytes"),
        ("silent", "no answer within 1 s"),
    ],
)
async def test_policy_server_misbehaviour_fails_with_its_reason(
    tmp_path: Path, mode: str, why: str
) -> None:
    tls = TlsFiles.create(tmp_path, "mta-sts.example.test")
    with PolicyServer(tls, mode) as server:
        outcome = await check_against(server)
    assert outcome.status is Status.FAIL
    assert (
        outcome.reason
        == f"https get: MTA-STS policy {POLICY_URL} cannot be fetched: 127.0.0.1: {why}"
    )
    assert outcome.facts["mta_sts_policy_fetched"] == 0


async def test_certificate_for_another_name_is_not_trusted(tmp_path: Path) -> None:
    tls = TlsFiles.create(tmp_path, "www.example.test")
    with PolicyServer(tls, "good") as server:
        outcome = await check_against(server)
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith(
        f"https get: MTA-STS policy {POLICY_URL} cannot be fetched: 127.0.0.1: "
        "certificate not trusted: Hostname mismatch"
    )


async def test_an_mx_outside_the_patterns_fails_in_enforce_and_warns_in_testing(
    tmp_path: Path,
) -> None:
    tls = TlsFiles.create(tmp_path, "mta-sts.example.test")
    other = "version: STSv1\nmode: {mode}\nmx: *.other.test\nmax_age: 604800\n"
    with PolicyServer(tls, "good", other.format(mode="enforce")) as server:
        enforce = await check_against(server)
    with PolicyServer(tls, "good", other.format(mode="testing")) as server:
        testing = await check_against(server)
    message = (
        "MTA-STS policy of example.test does not cover MX mx.example.test (patterns: *.other.test)"
    )
    assert enforce.status is Status.FAIL
    assert enforce.reason == message + ": STS senders will not deliver there"
    assert testing.status is Status.WARN
    assert testing.reason == (
        "MTA-STS policy of example.test is in mode testing: senders report but deliver; " + message
    )
    assert enforce.facts["mta_sts_mx_uncovered"] == testing.facts["mta_sts_mx_uncovered"] == 1
