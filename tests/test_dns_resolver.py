"""The stub resolver against small real DNS servers on loopback, each misbehaving."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from exporters.dns.resolver import (
    DnsBadAnswer,
    DnsBogus,
    DnsCnameLoop,
    DnsRefused,
    DnssecState,
    DnsServerFailure,
    DnsTimeout,
    StubResolver,
)
from tests.dns_loopback import LoopbackDns, Reply, Zone, respond

RRSIG = (
    "TXT 13 2 60 20300101000000 20200101000000 12345 example.test. "
    "dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgcGFyc2Vz"
)


def txt_zone(secure: bool = False) -> Zone:
    return Zone(secure=secure).add("example.test", "TXT", '"v=spf1 -all"')


async def test_answer_insecure_and_secure() -> None:
    async with LoopbackDns(txt_zone()).running() as srv:
        answer = await srv.resolver().query("example.test", "TXT")
        assert answer.dnssec is DnssecState.INSECURE
        assert [r.to_text() for r in answer.records] == ['"v=spf1 -all"']
    async with LoopbackDns(txt_zone(secure=True)).running() as srv:
        answer = await srv.resolver().query("example.test", "TXT")
        assert answer.dnssec is DnssecState.SECURE


async def test_nxdomain_and_nodata_are_answers() -> None:
    async with LoopbackDns(txt_zone()).running() as srv:
        missing = await srv.resolver().query("nothere.example.test", "TXT")
        assert missing.nxdomain and missing.records == []
        nodata = await srv.resolver().query("example.test", "MX")
        assert not nodata.nxdomain and nodata.records == []


async def test_query_asks_for_dnssec_data() -> None:
    seen: list[dns.message.Message] = []

    def handler(query: dns.message.Message, via: str) -> Reply:
        seen.append(query)
        return respond(query)

    async with LoopbackDns(handler).running() as srv:
        await srv.resolver().query("example.test", "A")
    assert seen[0].ednsflags & dns.flags.DO
    assert seen[0].flags & dns.flags.AD and not seen[0].flags & dns.flags.CD


async def test_servfail_is_a_server_failure() -> None:
    async with LoopbackDns(lambda q, via: respond(q, dns.rcode.SERVFAIL)).running() as srv:
        with pytest.raises(DnsServerFailure) as err:
            await srv.resolver().query("example.test", "TXT")
    assert err.value.reason == f"TXT example.test: SERVFAIL from {srv.server}"


async def test_servfail_that_answers_with_cd_is_bogus() -> None:
    """What a validating resolver does with an expired signature."""

    def validating(query: dns.message.Message, via: str) -> Reply:
        if not query.flags & dns.flags.CD:
            return respond(query, dns.rcode.SERVFAIL)
        name = query.question[0].name
        return respond(
            query,
            answer=[
                dns.rrset.from_text(name, 60, "IN", "TXT", '"v=spf1 -all"'),
                dns.rrset.from_text(name, 60, "IN", "RRSIG", RRSIG),
            ],
        )

    async with LoopbackDns(validating).running() as srv:
        with pytest.raises(DnsBogus) as err:
            await srv.resolver().query("example.test", "TXT")
    assert "bogus" in err.value.reason and "TXT example.test" in err.value.reason
    assert err.value.answer.dnssec is DnssecState.BOGUS
    assert err.value.answer.rrsig_expiry == 1893456000  # 2030-01-01T00:00:00Z


async def test_refused() -> None:
    async with LoopbackDns(lambda q, via: respond(q, dns.rcode.REFUSED)).running() as srv:
        with pytest.raises(DnsRefused, match=r"refused by 127\.0\.0\.1"):
            await srv.resolver().query("example.test", "TXT")


async def test_silent_server_times_out_within_the_bound() -> None:
    async with LoopbackDns(lambda q, via: None).running() as srv:
        resolver = srv.resolver(timeout=0.2, retries=2)
        started = time.monotonic()
        with pytest.raises(DnsTimeout) as err:
            await resolver.query("example.test", "TXT")
        elapsed = time.monotonic() - started
    assert 0.55 < elapsed < 1.5
    assert "within 0.2 s (3 tries each)" in err.value.reason


async def test_retry_moves_to_the_next_resolver() -> None:
    async with (
        LoopbackDns(lambda q, via: None).running() as silent,
        LoopbackDns(txt_zone()).running() as good,
    ):
        resolver = StubResolver([silent.server, good.server], timeout=0.2, retries=0)
        answer = await resolver.query("example.test", "TXT")
    assert answer.server == good.server


def truncating(tcp_reply: str) -> object:
    zone = txt_zone()

    def handler(query: dns.message.Message, via: str) -> Reply:
        if via == "udp":
            response = respond(query)
            response.flags |= dns.flags.TC
            return response
        full = zone(query, via)
        assert isinstance(full, dns.message.Message)
        wire = full.to_wire()
        if tcp_reply == "ok":
            return full
        return len(wire).to_bytes(2, "big") + wire[: len(wire) // 2]  # then hang up

    return handler


async def test_truncated_udp_falls_back_to_tcp() -> None:
    async with LoopbackDns(truncating("ok")).running() as srv:  # type: ignore[arg-type]
        answer = await srv.resolver().query("example.test", "TXT")
    assert answer.records and [entry[0] for entry in srv.log] == ["udp", "tcp"]


async def test_truncated_everywhere_is_a_bad_answer() -> None:
    async with LoopbackDns(truncating("cut")).running() as srv:  # type: ignore[arg-type]
        with pytest.raises(DnsBadAnswer) as err:
            await srv.resolver().query("example.test", "TXT")
    assert "truncated the UDP answer; retry over TCP" in err.value.reason
    assert "closed the TCP connection after" in err.value.reason


def oversized(query: dns.message.Message, via: str) -> Reply:
    name = query.question[0].name
    big = [f'"{index:04d}{"x" * 200}"' for index in range(20)]
    return respond(query, answer=[dns.rrset.from_text_list(name, 60, "IN", "TXT", big)])


async def test_oversized_udp_answer_is_retried_over_tcp() -> None:
    async with LoopbackDns(oversized).running() as srv:
        answer = await srv.resolver().query("example.test", "TXT")
    assert len(answer.records) == 20 and [entry[0] for entry in srv.log] == ["udp", "tcp"]


async def test_oversized_without_tcp_is_a_bad_answer() -> None:
    async with LoopbackDns(oversized, tcp=False).running() as srv:
        with pytest.raises(DnsBadAnswer) as err:
            await srv.resolver().query("example.test", "TXT")
    assert "larger than the 1232-byte buffer the query advertised" in err.value.reason
    assert "retry over TCP: TCP connection to" in err.value.reason


async def test_cname_loop_in_one_answer() -> None:
    zone = Zone().add("a.example.test", "CNAME", "b.example.test.")
    zone.add("b.example.test", "CNAME", "a.example.test.")
    async with LoopbackDns(zone).running() as srv:
        with pytest.raises(DnsCnameLoop) as err:
            await srv.resolver().query("a.example.test", "TXT")
    assert err.value.reason == (
        "TXT a.example.test: CNAME loop a.example.test -> b.example.test -> a.example.test"
    )


async def test_cname_chain_the_server_did_not_follow() -> None:
    """A server that returns one CNAME per answer: the stub asks for the target itself."""

    def one_hop(query: dns.message.Message, via: str) -> Reply:
        name = query.question[0].name.to_text()
        nxt = {"a.example.test.": "b.example.test.", "b.example.test.": "a.example.test."}
        return respond(query, answer=[dns.rrset.from_text(name, 60, "IN", "CNAME", nxt[name])])

    async with LoopbackDns(one_hop).running() as srv:
        with pytest.raises(DnsCnameLoop, match=r"CNAME loop a\.example\.test -> b\.example\.test"):
            await srv.resolver().query("a.example.test", "TXT")
        assert len(srv.log) == 2


async def test_cname_followed_to_data() -> None:
    zone = Zone().add("alias.example.test", "CNAME", "real.example.test.")
    zone.add("real.example.test", "A", "127.0.0.9")
    async with LoopbackDns(zone).running() as srv:
        answer = await srv.resolver().query("alias.example.test", "A")
    assert [r.to_text() for r in answer.records] == ["127.0.0.9"]
    assert answer.canonical.to_text() == "real.example.test."


async def test_malformed_answer_is_named_not_a_timeout() -> None:
    def garbage(query: dns.message.Message, via: str) -> Reply:
        return query.id.to_bytes(2, "big") + b"\x81\x80\x00\x01\x00\x05"  # header, no body

    async with LoopbackDns(garbage, tcp=False).running() as srv:
        started = time.monotonic()
        with pytest.raises(DnsBadAnswer) as err:
            await srv.resolver(timeout=2.0).query("example.test", "TXT")
    assert time.monotonic() - started < 1.0
    assert f"{srv.server} sent a malformed answer" in err.value.reason
