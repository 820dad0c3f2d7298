"""A stub resolver that reuses positive answers for a few seconds, as an MTA's cache does.

``/probe`` may be asked about the same target many times a second (a Prometheus fleet,
a benchmark); asking the validating resolver for the same TLSA RRset each time costs
more than the verdict on it.  Only answers with records are kept, each for the shorter
of its TTL, its earliest RRSIG expiry and ``max_seconds``; NXDOMAIN, NODATA and every
failure (bogus, SERVFAIL, timeouts) are asked again each time, so a broken zone shows
on the next probe.  Probes that ask the same question while it is on its way share the
one query and its outcome (answer or error) rather than sending one each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import dns.name
import dns.rcode
import dns.rdatatype

from exporters.dns.resolver import Answer, StubResolver
from exporters.dns.transport import Server, Transport


class CachingResolver(StubResolver):
    def __init__(
        self,
        servers: Sequence[Server],
        *,
        max_seconds: float,
        max_entries: int = 1024,
        timeout: float = 2.0,
        retries: int = 1,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(servers, timeout=timeout, retries=retries, transport=transport)
        if max_seconds <= 0 or max_entries <= 0:
            raise ValueError("max_seconds and max_entries must be positive")
        self.max_seconds = max_seconds
        self.max_entries = max_entries
        self._answers: dict[tuple[str, int], tuple[float, Answer]] = {}
        self._asking: dict[tuple[str, int], asyncio.Task[Answer]] = {}

    async def query(
        self, name: str | dns.name.Name, rdtype: str | dns.rdatatype.RdataType
    ) -> Answer:
        text = name.to_text() if isinstance(name, dns.name.Name) else name
        key = (text.rstrip(".").lower(), int(dns.rdatatype.RdataType.make(rdtype)))
        now = time.monotonic()
        kept = self._answers.get(key)
        if kept is not None:
            if kept[0] > now:
                return kept[1]
            del self._answers[key]
        task = self._asking.get(key)
        if task is None:
            task = asyncio.ensure_future(self._ask(key, name, rdtype))
            self._asking[key] = task
            task.add_done_callback(lambda _: self._asking.pop(key, None))
        # A waiter cancelled (its check's deadline) leaves the query to the others.
        return await asyncio.shield(task)

    async def _ask(
        self, key: tuple[str, int], name: str | dns.name.Name, rdtype: str | dns.rdatatype.RdataType
    ) -> Answer:
        answer = await super().query(name, rdtype)
        lifetime = self._lifetime(answer)
        if lifetime > 0:
            self._keep(key, time.monotonic() + lifetime, answer)
        return answer

    def _lifetime(self, answer: Answer) -> float:
        if answer.rrset is None or answer.rcode != dns.rcode.NOERROR:
            return 0.0
        lifetime = min(float(answer.rrset.ttl), self.max_seconds)
        if answer.rrsig_expiry is not None:
            lifetime = min(lifetime, answer.rrsig_expiry - time.time())
        return lifetime

    def _keep(self, key: tuple[str, int], until: float, answer: Answer) -> None:
        if len(self._answers) >= self.max_entries:
            now = time.monotonic()
            for stale in [k for k, (end, _) in self._answers.items() if end <= now]:
                del self._answers[stale]
            while len(self._answers) >= self.max_entries:
                del self._answers[next(iter(self._answers))]
        self._answers[key] = (until, answer)
