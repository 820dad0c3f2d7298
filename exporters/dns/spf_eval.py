"""SPF evaluation (RFC 7208) by pyspf, the reference implementation, through our resolver.

pyspf is synchronous and asks DNS through its module-level ``DNSLookup`` function (the
seam its own test suite uses).  We replace that function once, at import, with a
dispatcher that serves only evaluations started by :class:`SpfEvaluator`: each runs in
a worker thread and its DNS questions hop back onto the event loop to the configured
:class:`StubResolver`.  A pyspf query made any other way gets a TempError instead of a
silent lookup through ``/etc/resolv.conf``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.rdatatype
import spf as pyspf

from exporters.dns.resolver import MAX_CNAME_HOPS, DnsCnameLoop, DnsError, StubResolver

LookupResult = list[tuple[tuple[str, str], Any]]
_bound_lookup: contextvars.ContextVar[Callable[[str, str], LookupResult] | None] = (
    contextvars.ContextVar("spf_lookup", default=None)
)

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")
QUERY_TIME_LIMIT = 20.0
"""RFC 7208 4.6.4: an evaluation SHOULD be limited to at least 20 s in total."""


def _dispatch(name: str, qtype: str, strict: object = True, timeout: object = None) -> LookupResult:
    lookup = _bound_lookup.get()
    if lookup is None:
        raise pyspf.TempError("DNS: no resolver is bound to this SPF evaluation")
    return lookup(name, qtype)


pyspf.DNSLookup = _dispatch


@dataclass(frozen=True, slots=True)
class SpfVerdict:
    result: str
    explanation: str
    lookups: int
    """DNS-querying terms pyspf evaluated (RFC 7208 4.6.4 counting)."""
    void_lookups: int
    mechanism: str | None
    """The top-level term that decided, e.g. ``ip4:127.0.0.0/8`` or ``default``."""


class SpfEvaluator:
    def __init__(self, resolver: StubResolver, *, query_time: float = QUERY_TIME_LIMIT) -> None:
        self.resolver = resolver
        self.query_time = query_time

    async def evaluate(
        self,
        ip: str,
        mail_from: str,
        helo: str,
        *,
        default_explanation: str | None = None,
    ) -> SpfVerdict:
        """check_host() for ``ip`` sending as ``mail_from`` (empty: the HELO identity)."""
        loop = asyncio.get_running_loop()
        wait = self.resolver.worst_case_seconds * MAX_CNAME_HOPS + 1.0

        def lookup(name: str, qtype: str) -> LookupResult:
            try:
                future = asyncio.run_coroutine_threadsafe(self._lookup(name, qtype), loop)
            except RuntimeError as exc:  # the loop is gone: the check was abandoned
                raise pyspf.TempError(f"DNS: {exc}") from None
            return future.result(timeout=wait)

        def run() -> SpfVerdict:
            _bound_lookup.set(lookup)
            query = pyspf.query(i=ip, s=mail_from, h=helo, querytime=self.query_time)
            if default_explanation is not None:
                query.set_default_explanation(default_explanation)
            result, _code, explanation = query.check()
            return SpfVerdict(
                result=str(result),
                explanation=str(explanation),
                lookups=int(query.lookups),
                void_lookups=int(query.void_lookups),
                mechanism=getattr(query, "mechanism", None),
            )

        # to_thread runs ``run`` in a copy of this context: the binding stays in it.
        return await asyncio.to_thread(run)

    async def _lookup(self, name: str, qtype: str) -> LookupResult:
        try:
            answer = await self.resolver.query(name, qtype)
        except DnsCnameLoop:
            # pyspf's own CNAME handling: a loop yields no data (RFC 7208 5.5/7 skips the
            # name), not an error for the whole evaluation.
            return []
        except DnsError as exc:
            raise pyspf.TempError(f"DNS {exc.reason}") from None
        return [((name, qtype), _value(rdata, qtype)) for rdata in answer.records]


def _value(rdata: Any, qtype: str) -> Any:
    """Rdata in the shapes pyspf's own dnspython driver produces."""
    rdtype = dns.rdatatype.from_text(qtype)
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rdata.address
    if rdtype == dns.rdatatype.MX:
        return (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))
    if rdtype == dns.rdatatype.PTR:
        return rdata.target.to_text(omit_final_dot=True)
    if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        return list(rdata.strings)
    return rdata.to_text()
