"""PTR names of report sources, through the DNS seam every source uses (exporters.dns),
for the readiness report only: parsing never looks anything up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dns.rdatatype
import dns.reversename

from exporters.dns.resolver import DnsError, StubResolver

MAX_LOOKUPS = 100
"""Sources looked up per report at most (the busiest first); the rest show no name."""
PARALLEL = 8


async def ptr_names(resolver: StubResolver, addresses: Sequence[str]) -> dict[str, str]:
    """``address -> first PTR name`` ('' when there is none or the lookup failed)."""
    slots = asyncio.Semaphore(PARALLEL)

    async def one(address: str) -> tuple[str, str]:
        async with slots:
            try:
                reverse = dns.reversename.from_address(address)
                answer = await resolver.query(reverse, dns.rdatatype.PTR)
            except (DnsError, ValueError):
                return address, ""
            names = [r.to_text().rstrip(".") for r in answer.records]
            return address, names[0] if names else ""

    pairs = await asyncio.gather(*(one(a) for a in addresses[:MAX_LOOKUPS]))
    return dict(pairs)
