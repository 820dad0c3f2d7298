"""The caching resolver /probe uses, against small real DNS servers on loopback."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
import pytest

from exporters.dns.cache import CachingResolver
from exporters.dns.resolver import DnsBogus, DnsServerFailure
from tests.dns_loopback import LoopbackDns, Reply, Zone, respond, validating

TLSA = "3 1 1 " + "ab" * 32


def caching(srv: LoopbackDns, max_seconds: float = 5.0) -> CachingResolver:
    return CachingResolver([srv.server], max_seconds=max_seconds, timeout=0.5, retries=0)


def asked(srv: LoopbackDns) -> int:
    return len(srv.log)


async def test_a_positive_answer_is_reused_within_its_lifetime() -> None:
    zone = Zone(secure=True).add("_25._tcp.mx.example.test", "TLSA", TLSA)
    async with LoopbackDns(zone).running() as srv:
        resolver = caching(srv)
        first = await resolver.query("_25._tcp.mx.example.test", "TLSA")
        again = await resolver.query("_25._tcp.MX.example.test.", "TLSA")
        assert again is first and asked(srv) == 1
        await resolver.query("_25._tcp.mx.example.test", "A")  # another type: asked
        assert asked(srv) == 2


async def test_the_ttl_bounds_the_lifetime_when_shorter() -> None:
    zone = Zone(secure=True, ttl=1).add("_25._tcp.mx.example.test", "TLSA", TLSA)
    async with LoopbackDns(zone).running() as srv:
        resolver = caching(srv, max_seconds=60.0)
        await resolver.query("_25._tcp.mx.example.test", "TLSA")
        await asyncio.sleep(1.1)
        await resolver.query("_25._tcp.mx.example.test", "TLSA")
        assert asked(srv) == 2


async def test_the_cap_bounds_the_lifetime_when_shorter() -> None:
    zone = Zone(secure=True).add("_25._tcp.mx.example.test", "TLSA", TLSA)
    async with LoopbackDns(zone).running() as srv:
        resolver = caching(srv, max_seconds=0.3)
        await resolver.query("_25._tcp.mx.example.test", "TLSA")
        await asyncio.sleep(0.4)
        await resolver.query("_25._tcp.mx.example.test", "TLSA")
        assert asked(srv) == 2


async def test_no_records_and_failures_are_asked_every_time() -> None:
    zone = Zone(secure=True).add("mx.example.test", "A", "192.0.2.1")
    async with LoopbackDns(zone).running() as srv:
        resolver = caching(srv)
        for _ in range(2):
            assert (await resolver.query("_25._tcp.mx.example.test", "TLSA")).records == []
        assert asked(srv) == 2
    async with LoopbackDns(lambda q, via: respond(q, dns.rcode.SERVFAIL)).running() as srv:
        resolver = caching(srv)
        with pytest.raises(DnsServerFailure):
            await resolver.query("_25._tcp.mx.example.test", "TLSA")
        once = asked(srv)  # SERVFAIL is asked again with CD=1, to tell bogus apart
        with pytest.raises(DnsServerFailure):
            await resolver.query("_25._tcp.mx.example.test", "TLSA")
        assert asked(srv) == 2 * once


async def test_a_bogus_answer_is_reported_every_time() -> None:
    zone = Zone(secure=True, rrsig_expiration="20200102000000")
    zone.add("_25._tcp.mx.example.test", "TLSA", TLSA)
    async with LoopbackDns(validating(zone)).running() as srv:
        resolver = caching(srv)
        for _ in range(2):
            with pytest.raises(DnsBogus):
                await resolver.query("_25._tcp.mx.example.test", "TLSA")


async def test_the_cache_stays_bounded() -> None:
    def every_name(query: dns.message.Message, via: str) -> Reply:
        return Zone().add(query.question[0].name.to_text(), "A", "192.0.2.1")(query, via)

    async with LoopbackDns(every_name).running() as srv:
        resolver = CachingResolver([srv.server], max_seconds=60, max_entries=3, timeout=0.5)
        for n in range(5):
            await resolver.query(f"h{n}.example.test", "A")
        assert len(resolver._answers) == 3
        await resolver.query("h4.example.test", "A")  # newest kept
        await resolver.query("h0.example.test", "A")  # oldest dropped
        assert asked(srv) == 6


async def test_an_answer_is_not_kept_past_its_signatures() -> None:
    zone = Zone(secure=True, rrsig_expiration="20200102000000")
    zone.add("_25._tcp.mx.example.test", "TLSA", TLSA)
    async with LoopbackDns(zone).running() as srv:
        resolver = caching(srv)
        for _ in range(2):
            assert (await resolver.query("_25._tcp.mx.example.test", "TLSA")).records
        assert asked(srv) == 2


async def test_questions_asked_at_once_share_one_query() -> None:
    zone = Zone(secure=True).add("_25._tcp.mx.example.test", "TLSA", TLSA)
    async with LoopbackDns(zone).running() as srv:
        resolver = caching(srv)
        answers = await asyncio.gather(
            *(resolver.query("_25._tcp.mx.example.test", "TLSA") for _ in range(20))
        )
        assert asked(srv) == 1 and all(a is answers[0] for a in answers)
    async with LoopbackDns(lambda q, via: respond(q, dns.rcode.SERVFAIL)).running() as srv:
        resolver = caching(srv)
        results = await asyncio.gather(
            *(resolver.query("_25._tcp.mx.example.test", "TLSA") for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, DnsServerFailure) for r in results)
        assert asked(srv) <= 2  # one query (and its CD=1 retry) for all five
