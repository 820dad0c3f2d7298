"""The ``dns`` section: resolvers and the domains whose mail records are checked."""

from __future__ import annotations

from pydantic import Field

from monitor.config.base import Port, Schedule, Strict


class Resolver(Strict):
    address: str
    port: Port = 53


class DnsDomain(Strict):
    name: str = Field(min_length=1)
    schedule: Schedule = Schedule()


class DnsSection(Strict):
    resolvers: list[Resolver] = Field(default_factory=list)
    domains: list[DnsDomain] = Field(default_factory=list)
