"""Security probes against the lab's real Postfix: healthy, each fault, and through
``mailprobe run`` and ``/metrics``; hostile loopback servers for what Postfix never does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from exporters.result import CheckCannotRun, CheckFailure, Phase, Status
from exporters.smtp.bare_lf import BareLfProbe, probe_bare_lf
from exporters.smtp.probe_client import ProbeEndpoint
from exporters.smtp.security import (
    RelayProbe,
    probe_auth_before_tls,
    probe_open_relay,
    probe_plaintext_auth,
)
from monitor.config import ConfigError, parse_config
from monitor.lab import Lab
from monitor.lab import faults as F
from monitor.lab.layout import SINK_USER
from monitor.lab.mailconfig import config_data
from tests.lab_fixture import broken
from tests.servers import LoopbackServer, SilentServer
from tests.smtpsec_lab import (
    lab_smtp_config,
    one_result,
    promtool_problems,
    run_json,
    sample,
    scrape_once,
)


def endpoint(lab: Lab, host: str, port: int) -> ProbeEndpoint:
    return ProbeEndpoint(
        host=lab.hosts[host].address,
        port=port,
        server_name=lab.hosts[host].name,
        ehlo_name="mailprobe.lab.invalid",
        step_timeout=10.0,
        source_address=lab.hosts["client"].address,
    )


def relay(lab: Lab) -> RelayProbe:
    return RelayProbe(f"dave@{lab.world}", "relay-probe@relay-test.invalid")


def sink(lab: Lab) -> BareLfProbe:
    return BareLfProbe(f"{SINK_USER}@{lab.domain}")


async def test_healthy_lab_passes_every_probe(lab: Lab) -> None:
    mx, submission = endpoint(lab, "mx", 25), endpoint(lab, "submit", 587)
    outcomes = {
        "auth mx": await probe_auth_before_tls(mx, Phase()),
        "auth 587": await probe_auth_before_tls(submission, Phase()),
        "plaintext 587": await probe_plaintext_auth(submission, Phase()),
        "relay mx": await probe_open_relay(mx, relay(lab), Phase()),
        "relay 587": await probe_open_relay(submission, relay(lab), Phase()),
        "bare lf mx": await probe_bare_lf(mx, sink(lab), Phase()),
    }
    for name, outcome in outcomes.items():
        assert outcome.status is Status.OK, f"{name}: {outcome.reason}"
        assert outcome.facts["security_exposed"] == 0, name
    assert outcomes["plaintext 587"].detail is not None
    assert "S: 530 5.7.0 Must issue a STARTTLS command first" in outcomes["plaintext 587"].detail
    assert outcomes["relay mx"].detail is not None
    assert "554 5.7.1" in outcomes["relay mx"].detail
    assert "Relay access denied" in outcomes["relay mx"].detail
    # Postfix with smtpd_forbid_bare_newline=yes reads the bare sequences as text.
    assert outcomes["bare lf mx"].facts["bare_lf_message_accepted"] == 1


async def test_open_relay_fault_fails_the_relay_probe(lab: Lab) -> None:
    mx = endpoint(lab, "mx", 25)
    with broken(lab, F.OPEN_RELAY):
        outcome = await probe_open_relay(mx, relay(lab), Phase())
    assert outcome.status is Status.FAIL
    assert outcome.reason == (
        f"open relay: {lab.hosts['mx'].name}:25 ({lab.hosts['mx'].address}) accepted "
        "RCPT TO:<relay-probe@relay-test.invalid> from an outside client with 250 2.1.5 Ok "
        "(rcpt to); the probe sent RSET, no DATA"
    )
    assert outcome.facts["security_exposed"] == 1


async def test_bare_lf_fault_fails_the_smuggling_probe(lab: Lab) -> None:
    with broken(lab, F.MX_BARE_LF):
        outcome = await probe_bare_lf(endpoint(lab, "mx", 25), sink(lab), Phase())
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith(
        f"{lab.hosts['mx'].name}:25 ({lab.hosts['mx'].address}) ended DATA at a bare "
        "<LF>.<LF> or <LF>.<CR><LF> (answered before the proper end: 250 2.0.0 Ok: queued as "
    )
    assert outcome.reason.endswith(
        "(data with bare <LF>): SMTP smuggling (CVE-2023-51764) is possible"
    )


async def test_auth_before_tls_fault_fails_both_auth_probes(lab: Lab) -> None:
    submission = endpoint(lab, "submit", 587)
    where = f"{lab.hosts['submit'].name}:587 ({lab.hosts['submit'].address})"
    with broken(lab, F.SUBMISSION_AUTH_BEFORE_TLS):
        offered = await probe_auth_before_tls(submission, Phase())
        accepted = await probe_plaintext_auth(submission, Phase())
    assert offered.status is Status.FAIL
    assert offered.reason == (
        f"{where} lists AUTH PLAIN LOGIN in its EHLO reply before STARTTLS (ehlo): "
        "clients may send passwords in the clear"
    )
    assert accepted.status is Status.FAIL
    assert accepted.reason == (
        f"{where} answered AUTH PLAIN before STARTTLS with 334 (auth before starttls): "
        "it takes passwords in the clear"
    )


async def test_bare_lf_probe_needs_an_accepted_sink(lab: Lab) -> None:
    wrong = BareLfProbe(f"nobody@{lab.world}")
    with pytest.raises(CheckCannotRun, match=r"answered RCPT TO with 554 5\.7\.1 .*Relay access"):
        await probe_bare_lf(endpoint(lab, "mx", 25), wrong, Phase())


FAULT_CHECKS = [
    (F.OPEN_RELAY, "mx", "open_relay"),
    (F.MX_BARE_LF, "mx", "bare_lf"),
    (F.SUBMISSION_AUTH_BEFORE_TLS, "submission-587", "auth_before_tls"),
    (F.SUBMISSION_AUTH_BEFORE_TLS, "submission-587", "plaintext_auth"),
]


@pytest.mark.parametrize(("fault", "target", "check"), FAULT_CHECKS)
def test_fault_fails_in_run_and_in_metrics(
    lab: Lab, tmp_path: Path, fault: str, target: str, check: str
) -> None:
    targets = [t for t in config_data(lab)["smtp"]["targets"] if t["name"] == target]
    config = lab_smtp_config(lab, tmp_path / "c.yml", targets=targets)
    with broken(lab, fault):
        result = one_result(run_json(config, "--target", target), check)
        text = scrape_once(config)
    assert result["status"] == "fail", result
    labels = {"kind": "smtp", "check": check, "target": target}
    assert sample(text, "mailprobe_check_status", status="fail", **labels) == 1.0
    assert promtool_problems(text, "mailprobe_smtp_security_", "mailprobe_smtp_bare_lf_") == []
    exposed = sample(text, "mailprobe_smtp_security_exposed", check=check, target=target)
    assert exposed == 1.0


def test_auth_probes_on_implicit_tls_are_a_config_error() -> None:
    text = """
smtp:
  targets:
    - {name: s465, host: 127.0.0.1, port: 465, tls: implicit, security: {plaintext_auth: true}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(i) for i in caught.value.issues] == [
        "smtp.targets[0].security (line 4): AUTH probes need a phase before TLS; "
        "this target uses implicit TLS"
    ]


def test_probe_addresses_are_checked() -> None:
    text = """
smtp:
  targets:
    - {name: mx, host: 127.0.0.1, security: {bare_lf: {sink: "no-at-sign"}}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "is not an address like user@example.org" in str(caught.value.issues[0])


class DataServer(LoopbackServer):
    """Speaks SMTP up to DATA (with the replies in ``replies`` by verb), then misbehaves
    as ``after_data`` says."""

    def __init__(self, after_data: str, replies: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.after_data = after_data
        self.replies = replies or {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hostile.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                break
            default = b"250 ok" if verb != b"QUIT" else b"221 bye"
            writer.write(self.replies.get(verb, default) + b"\r\n")
            await writer.drain()
        if self.after_data == "slow-smuggling":
            # Ended DATA at the bare <LF>.<LF> but answered late: the reply to it comes
            # after the proper end, and the stray "." line gets its own.
            await reader.readuntil(b"\r\n.\r\n")
            writer.write(b"250 2.0.0 queued\r\n502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()
        if self.after_data == "refuse-bare-lf":
            await reader.readuntil(b"\n.\n")
            writer.write(b"521 5.5.2 Error: bare <LF> received\r\n")
            await writer.drain()
            return
        if self.after_data == "endless-line":
            while True:  # one reply line without an end, until the client leaves
                writer.write(b"250 " + b"x" * 4096)
                await writer.drain()
        await reader.read()  # "silent": swallow everything, answer nothing


def hostile(port: int, step: float = 2.0) -> ProbeEndpoint:
    return ProbeEndpoint(host="127.0.0.1", port=port, tls="none", step_timeout=step)


async def test_bare_lf_probe_against_a_server_silent_after_data() -> None:
    with DataServer("silent") as server, pytest.raises(CheckFailure) as caught:
        await probe_bare_lf(hostile(server.port), BareLfProbe("sink@x.test"), Phase())
    assert caught.value.reason == f"end of data: no answer from 127.0.0.1:{server.port} within 2 s"


async def test_bare_lf_probe_against_an_endless_reply_line() -> None:
    with DataServer("endless-line") as server, pytest.raises(CheckFailure) as caught:
        await probe_bare_lf(hostile(server.port), BareLfProbe("sink@x.test"), Phase())
    assert caught.value.reason == (
        f"data with bare <LF>: 127.0.0.1:{server.port}: "
        "a reply line longer than 64 KiB without a line end"
    )


async def test_probes_against_a_silent_banner() -> None:
    with SilentServer() as server, pytest.raises(CheckFailure) as caught:
        await probe_open_relay(
            hostile(server.port, 1.0), RelayProbe("a@b.test", "c@d.test"), Phase()
        )
    assert caught.value.reason == (
        f"banner: no complete answer from 127.0.0.1:{server.port} within 1 s"
    )


async def test_bare_lf_refused_before_the_end_is_ambiguous_and_warns() -> None:
    with DataServer("refuse-bare-lf") as server:
        outcome = await probe_bare_lf(hostile(server.port), BareLfProbe("sink@x.test"), Phase())
    assert outcome.status is Status.WARN
    assert outcome.reason == (
        f"127.0.0.1:{server.port} answered 521 5.5.2 Error: bare <LF> received before the "
        "proper end of DATA (data with bare <LF>): it refused the bare <LF>, or ended DATA "
        "at it and refused the message; the probe cannot tell which"
    )
    assert "security_exposed" not in outcome.facts


async def test_bare_lf_answered_late_twice_is_smuggling() -> None:
    with DataServer("slow-smuggling") as server:
        outcome = await probe_bare_lf(hostile(server.port), BareLfProbe("sink@x.test"), Phase())
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith(
        f"127.0.0.1:{server.port} ended DATA at a bare <LF>.<LF> or <LF>.<CR><LF> "
        "(answered after the proper end, then again: 250 2.0.0 queued)"
    )
    assert outcome.facts["security_exposed"] == 1


RELAY = RelayProbe("a@outside.test", "c@foreign.test")


@pytest.mark.parametrize(
    ("replies", "status", "reason"),
    [
        (
            {b"RCPT": b"451 4.3.0 try later"},
            Status.WARN,
            "{where} deferred RCPT TO:<c@foreign.test> with 451 4.3.0 try later (rcpt to): "
            "relaying neither refused nor accepted",
        ),
        (
            {b"RCPT": b"550 5.1.2 <c@foreign.test>: Recipient address rejected: Domain not found"},
            Status.WARN,
            "{where} refused RCPT TO:<c@foreign.test> for its address (550 5.1.2 "
            "<c@foreign.test>: Recipient address rejected: Domain not found), not as "
            "relaying (rcpt to): use a recipient in a domain that exists",
        ),
        (
            {b"MAIL": b"553 5.7.1 sender rejected"},
            Status.WARN,
            "{where} refused MAIL FROM:<a@outside.test> with 553 5.7.1 sender rejected "
            "(mail from): relaying was not tested; configure another mail_from",
        ),
        ({b"RCPT": b"554 5.7.1 Relay access denied"}, Status.OK, ""),
    ],
)
async def test_relay_probe_tells_refused_from_undecided(
    replies: dict[bytes, bytes], status: Status, reason: str
) -> None:
    with DataServer("silent", replies) as server:
        outcome = await probe_open_relay(hostile(server.port), RELAY, Phase())
    assert outcome.status is status
    assert outcome.reason == reason.format(where=f"127.0.0.1:{server.port}")
    assert outcome.facts.get("security_exposed") == (0 if status is Status.OK else None)


async def test_plaintext_auth_deferred_is_undecided() -> None:
    with DataServer("silent", {b"AUTH": b"454 4.7.0 temporary authentication failure"}) as server:
        outcome = await probe_plaintext_auth(hostile(server.port), Phase())
    assert outcome.status is Status.WARN
    assert outcome.reason == (
        f"127.0.0.1:{server.port} deferred AUTH PLAIN before STARTTLS with 454 4.7.0 "
        "temporary authentication failure (auth before starttls): neither refused nor accepted"
    )
