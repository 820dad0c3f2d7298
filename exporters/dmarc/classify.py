"""Source classes: is a sending address ours, a forwarder's, or someone else's?

A DMARC failure from ``ours`` means our own setup is broken (a host not signing, an SPF
record missing a sender); from ``foreign``, someone sends as us (spoofing). ``forwarded``
is mail the receiver says came through a forwarder or list (a policy override reason
``forwarded``, ``trusted_forwarder`` or ``mailing_list``, or ``arc=pass`` in its comment):
failures there are what forwarding does to SPF, not spoofing.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from exporters.dmarc.store import RecordRow

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARD_REASONS = frozenset({"forwarded", "trusted_forwarder", "mailing_list"})


class SourceClass(enum.StrEnum):
    OURS = "ours"
    FORWARDED = "forwarded"
    FOREIGN = "foreign"


@dataclass(frozen=True, slots=True)
class OwnSource:
    name: str
    networks: tuple[Network, ...]


class Classifier:
    def __init__(self, sources: Sequence[OwnSource]) -> None:
        self._sources = tuple(sources)

    def own_source(self, address: str) -> str:
        """The name of the configured source ``address`` belongs to, or ''."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return ""
        for source in self._sources:
            if any(ip.version == net.version and ip in net for net in source.networks):
                return source.name
        return ""

    def classify(self, row: RecordRow) -> SourceClass:
        if self.own_source(row.source_ip):
            return SourceClass.OURS
        reasons = set(filter(None, row.overrides.split(",")))
        if reasons & FORWARD_REASONS or "arc=pass" in row.override_comments.lower():
            return SourceClass.FORWARDED
        return SourceClass.FOREIGN


def own_sources(entries: Sequence[tuple[str, Sequence[str]]]) -> list[OwnSource]:
    """``(name, [address or CIDR, ...])`` pairs as :class:`OwnSource`."""
    return [
        OwnSource(name, tuple(ipaddress.ip_network(n, strict=False) for n in networks))
        for name, networks in entries
    ]
