"""Whole DNS checks against misbehaving real servers on loopback: each ends as a failed
check whose reason says what went wrong, within the resolver's time bound."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from exporters.dns.mx import MxSettings, check_mx
from exporters.dns.spf_check import SpfSender, SpfSettings, check_spf
from exporters.result import Phase, Status
from tests.dns_loopback import Handler, LoopbackDns, Reply, Zone, respond


def servfail(query: dns.message.Message, via: str) -> Reply:
    return respond(query, dns.rcode.SERVFAIL)


def silent(query: dns.message.Message, via: str) -> Reply:
    return None


def truncated(query: dns.message.Message, via: str) -> Reply:
    response = respond(query)
    response.flags |= dns.flags.TC
    if via == "udp":
        return response
    wire = response.to_wire()
    return len(wire).to_bytes(2, "big") + wire[:5]  # announce the answer, send part, hang up


def oversized(query: dns.message.Message, via: str) -> Reply:
    name = query.question[0].name
    rdtype = query.question[0].rdtype
    if rdtype == dns.rdatatype.MX:
        values = [f"{n} mx{n:03d}.example.test." for n in range(200)]
    else:
        values = [f'"v=spf1 ip4:192.0.2.{n}/32 {"x" * 100}"' for n in range(40)]
    return respond(query, answer=[dns.rrset.from_text_list(name, 60, "IN", rdtype, values)])


def cname_loop(query: dns.message.Message, via: str) -> Reply:
    zone = Zone().add("example.test", "CNAME", "loop.example.test.")
    zone.add("loop.example.test", "CNAME", "example.test.")
    return zone(query, via)


CASES: list[tuple[str, Handler, bool, str]] = [
    ("servfail", servfail, True, "SERVFAIL from 127.0.0.1:"),
    ("silent", silent, True, "no answer from 127.0.0.1:"),
    ("truncated", truncated, True, "truncated the UDP answer; retry over TCP: 127.0.0.1:"),
    ("oversized", oversized, False, "-byte buffer the query advertised; retry over TCP"),
    ("cname-loop", cname_loop, True, "CNAME loop example.test -> loop.example.test -> example"),
]


@pytest.mark.parametrize(("label", "handler", "tcp", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_bad_server_fails_mx_and_spf_with_a_reason(
    label: str, handler: Handler, tcp: bool, expected: str
) -> None:
    async with LoopbackDns(handler, tcp=tcp).running() as server:
        resolver = server.resolver(timeout=0.3, retries=1)
        for check, settings, question in (
            (check_mx, MxSettings("example.test"), "MX example.test: "),
            (
                check_spf,
                SpfSettings("example.test", (SpfSender("srs.example.test", "127.77.0.4"),)),
                "SPF: TXT example.test: ",
            ),
        ):
            started = time.monotonic()
            outcome = await check(resolver, settings, Phase())  # type: ignore[operator]
            elapsed = time.monotonic() - started
            assert outcome.status is Status.FAIL, (label, outcome)
            assert outcome.reason.startswith(question), outcome.reason
            assert expected in outcome.reason, outcome.reason
            assert elapsed <= resolver.worst_case_seconds + 0.5


async def test_include_loop_fails_spf_with_the_loop_named() -> None:
    zone = Zone().add("example.test", "TXT", '"v=spf1 include:_spf.example.test -all"')
    zone.add("_spf.example.test", "TXT", '"v=spf1 include:example.test -all"')
    async with LoopbackDns(zone).running() as server:
        settings = SpfSettings("example.test", (SpfSender("srs.example.test", "127.77.0.4"),))
        outcome = await check_spf(server.resolver(), settings, Phase())
    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith("SPF loop example.test -> _spf.example.test -> example.test")
    assert "result permerror" in outcome.reason
