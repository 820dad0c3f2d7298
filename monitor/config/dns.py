"""The ``dns`` section: resolvers, the mail domains and hosts whose records are checked."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigPath, Port, PositiveSeconds, Schedule, Strict

HostName = str
SpfResult = Literal["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"]


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


class Resolver(Strict):
    address: str
    """Address of a (validating) resolver; DNSSEC states come from its AD flag."""
    port: Port = 53

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return _address(value)


class MxConfig(Strict):
    hosts: list[HostName] = Field(default_factory=list)
    """Hosts that must be among the domain's MX targets."""
    null_mx: bool = False
    """The domain accepts no mail and must publish a Null MX (RFC 7505)."""


class SpfSenderConfig(Strict):
    name: HostName = Field(min_length=1)
    """The sending host (used as HELO and in reasons), e.g. ``srs.example.org``."""
    address: str
    """Address the host sends from."""
    expect: SpfResult = "pass"
    """SPF result this address must get."""
    mail_from: str | None = None
    """Envelope sender to evaluate; unset uses ``postmaster@<domain>``."""

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return _address(value)


class SpfConfig(Strict):
    senders: list[SpfSenderConfig] = Field(default_factory=list)
    """Addresses evaluated against the domain's SPF record, with the result each must get."""


class DkimSelectorConfig(Strict):
    selector: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    signer_key_file: ConfigPath | None = None
    """The signer's private key (PEM, or a base64 Ed25519 seed); the published key must match."""
    signer_config_file: ConfigPath | None = None
    """Or the signer's opendkim.conf: the key it names (KeyFile or KeyTable) must match,
    so a signer switched to another key is caught too."""

    @field_validator("signer_key_file", "signer_config_file")
    @classmethod
    def _exists(cls, value: ConfigPath | None) -> ConfigPath | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} does not exist or is not a file")
        return value

    @model_validator(mode="after")
    def _one_signer_source(self) -> DkimSelectorConfig:
        if self.signer_key_file is not None and self.signer_config_file is not None:
            raise ValueError("give only one of 'signer_key_file' or 'signer_config_file'")
        return self


class SrvConfig(Strict):
    service: str = Field(pattern=r"^[a-z0-9-]+$")
    """Service label: ``submission``, ``submissions``, ``imap``, ``imaps`` (RFC 6186, 8314)."""
    port: Port | None = None
    """Port the record must name, when the fleet fixes one."""


class DnsDomain(Strict):
    name: HostName = Field(min_length=1)
    mx: MxConfig | None = MxConfig()
    """MX check; `null` skips it."""
    spf: SpfConfig | None = SpfConfig()
    """SPF check; `null` skips it."""
    dkim: list[DkimSelectorConfig] = Field(default_factory=list)
    """DKIM selectors to check, one check each."""
    dmarc: bool = True
    """Check the DMARC record at ``_dmarc.<name>``."""
    dnssec: bool = True
    """Check that the zone validates and when its signatures expire."""
    srv: list[SrvConfig] = Field(default_factory=list)
    """SRV records to check, e.g. ``submission`` and ``submissions``."""
    mta_sts: bool = False
    """Check the ``_mta-sts`` TXT record's syntax."""
    tls_rpt: bool = False
    """Check the ``_smtp._tls`` TXT record's syntax."""
    schedule: Schedule = Schedule()


class DnsHost(Strict):
    name: HostName = Field(min_length=1)
    """The mail host's name, e.g. ``mx.example.org``."""
    addresses: list[str] = Field(default_factory=list)
    """Its addresses: FCrDNS and blocklist checks use them."""
    banner_name: HostName | None = None
    """Name the host gives in its SMTP banner, when it differs from ``name``."""
    tlsa_ports: list[Port] = Field(default_factory=list)
    """Ports whose ``_<port>._tcp.<name>`` TLSA records are checked."""
    fcrdns: bool = True
    """Check the reverse DNS of every address (needs `addresses`)."""
    spf: bool = False
    """Check the host's own SPF record (HELO identity): its addresses must pass."""
    dnsbl: bool = True
    """Look its addresses up in `dns.dnsbl.zones`."""
    schedule: Schedule = Schedule()

    @field_validator("addresses")
    @classmethod
    def _valid_addresses(cls, values: list[str]) -> list[str]:
        return [_address(v) for v in values]


class DnsblZoneConfig(Strict):
    zone: HostName = Field(min_length=1)
    """The list's DNS zone, e.g. ``zen.spamhaus.org``."""
    refusal_codes: list[str] | None = None
    """Return codes that mean "query refused", not "listed"; unset uses 127.0.0.1 and
    127.255.255.252/254/255."""
    listed_codes: list[str] = Field(default_factory=list)
    """When set, only these return codes mean listed."""

    @field_validator("refusal_codes", "listed_codes")
    @classmethod
    def _codes(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [_address(v) for v in values]


class DnsblConfig(Strict):
    zones: list[DnsblZoneConfig] = Field(default_factory=list)
    """Blocklists every host address (with ``dnsbl: true``) is looked up in."""
    schedule: Schedule = Schedule()
    """Public lists rate-limit: an interval of 10 minutes or more is kind to them."""


class DnsSection(Strict):
    resolvers: list[Resolver] = Field(default_factory=list)
    """Resolvers to ask, in order; nothing else (never ``/etc/resolv.conf``)."""
    timeout: PositiveSeconds = 2.0
    """Seconds to wait for one answer from one resolver."""
    retries: int = Field(default=1, ge=0, le=5)
    """Further tries of each resolver after a timeout."""
    rrsig_warn_days: float = Field(default=7.0, ge=0)
    """Warn this many days before a zone's earliest RRSIG expires."""
    domains: list[DnsDomain] = Field(default_factory=list)
    hosts: list[DnsHost] = Field(default_factory=list)
    """Mail hosts: TLSA, reverse DNS, per-host SPF and blocklist checks."""
    dnsbl: DnsblConfig = DnsblConfig()

    @model_validator(mode="after")
    def _resolvers_needed(self) -> DnsSection:
        if (self.domains or self.hosts) and not self.resolvers:
            raise ValueError("at least one entry in 'resolvers' is needed to check DNS")
        return self
