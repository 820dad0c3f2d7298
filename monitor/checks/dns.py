"""DNS checks from the ``dns`` config section.

Check names are the record kind (``mx``, ``spf``, ``dkim``, ...); targets are the owner
names from the config (``example.org``, ``lab._domainkey.example.org``,
``_25._tcp.mx.example.org``), so metric labels stay bounded by the config.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from exporters.dns.dkim_check import DkimSettings, check_dkim
from exporters.dns.dmarc import DmarcSettings, check_dmarc
from exporters.dns.dnsbl import REFUSAL_CODES, DnsblSettings, DnsblZone, check_dnsbl
from exporters.dns.dnssec import DnssecSettings, check_dnssec
from exporters.dns.fcrdns import FcrdnsSettings, check_fcrdns
from exporters.dns.mx import MxSettings, check_mx
from exporters.dns.policy import PolicyRecordSettings, check_policy_record
from exporters.dns.resolver import StubResolver
from exporters.dns.spf_check import SpfSender, SpfSettings, check_spf
from exporters.dns.srv import SrvSettings, check_srv
from exporters.dns.tlsa_check import TlsaSettings, check_tlsa
from exporters.dns.transport import Server
from exporters.result import Check, CheckFn, Kind
from monitor.config import Config
from monitor.config.base import Schedule
from monitor.config.dns import DnsDomain, DnsHost, DnsSection

Make = Callable[[str, str, CheckFn, Schedule], Check]
"""``make(name, target, run, schedule)``: a DNS check with the section's defaults."""


def make_resolver(section: DnsSection) -> StubResolver:
    return StubResolver(
        [Server(r.address, r.port) for r in section.resolvers],
        timeout=section.timeout,
        retries=section.retries,
    )


def build(config: Config) -> list[Check]:
    section = config.dns
    if not section.resolvers:
        return []
    resolver = make_resolver(section)

    def make(name: str, target: str, run: CheckFn, schedule: Schedule) -> Check:
        return Check(
            kind=Kind.DNS,
            name=name,
            target=target,
            run=run,
            interval_seconds=schedule.interval or config.defaults.interval,
            timeout_seconds=schedule.timeout or config.defaults.timeout,
        )

    checks: list[Check] = []
    for domain in section.domains:
        checks.extend(_domain_checks(domain, section, resolver, make))
    for host in section.hosts:
        checks.extend(_host_checks(host, section, resolver, make))
    return checks


def _domain_checks(
    domain: DnsDomain, section: DnsSection, resolver: StubResolver, make: Make
) -> list[Check]:
    name, schedule = domain.name.rstrip(".").lower(), domain.schedule
    out: list[Check] = []
    if domain.mx is not None:
        mx = MxSettings(name, tuple(domain.mx.hosts), domain.mx.null_mx)
        out.append(make("mx", name, partial(check_mx, resolver, mx), schedule))
    if domain.spf is not None:
        senders = tuple(
            SpfSender(s.name, s.address, s.expect, s.mail_from) for s in domain.spf.senders
        )
        out.append(
            make("spf", name, partial(check_spf, resolver, SpfSettings(name, senders)), schedule)
        )
    for selector in domain.dkim:
        settings = DkimSettings(
            name, selector.selector, selector.signer_key_file, selector.signer_config_file
        )
        target = f"{selector.selector}._domainkey.{name}"
        out.append(make("dkim", target, partial(check_dkim, resolver, settings), schedule))
    if domain.dmarc:
        out.append(
            make("dmarc", name, partial(check_dmarc, resolver, DmarcSettings(name)), schedule)
        )
    if domain.dnssec:
        dnssec = DnssecSettings(name, section.rrsig_warn_days)
        out.append(make("dnssec", name, partial(check_dnssec, resolver, dnssec), schedule))
    for srv in domain.srv:
        settings_srv = SrvSettings(name, srv.service, srv.port)
        out.append(
            make(
                "srv",
                f"_{srv.service}._tcp.{name}",
                partial(check_srv, resolver, settings_srv),
                schedule,
            )
        )
    for kind, wanted in (("mta-sts", domain.mta_sts), ("tls-rpt", domain.tls_rpt)):
        if wanted:
            policy = PolicyRecordSettings(name, kind)
            out.append(
                make(
                    kind.replace("-", "_"),
                    name,
                    partial(check_policy_record, resolver, policy),
                    schedule,
                )
            )
    return out


def _host_checks(
    host: DnsHost, section: DnsSection, resolver: StubResolver, make: Make
) -> list[Check]:
    name, schedule = host.name.rstrip(".").lower(), host.schedule
    addresses = tuple(host.addresses)
    out: list[Check] = []
    for port in host.tlsa_ports:
        tlsa = TlsaSettings(name, port)
        out.append(
            make("tlsa", f"_{port}._tcp.{name}", partial(check_tlsa, resolver, tlsa), schedule)
        )
    if host.fcrdns and addresses:
        fcrdns = FcrdnsSettings(name, addresses, host.banner_name)
        out.append(make("fcrdns", name, partial(check_fcrdns, resolver, fcrdns), schedule))
    if host.spf and addresses:
        senders = tuple(SpfSender(name, a, "pass", f"postmaster@{name}") for a in addresses)
        out.append(
            make("spf", name, partial(check_spf, resolver, SpfSettings(name, senders)), schedule)
        )
    if host.dnsbl and addresses and section.dnsbl.zones:
        zones = tuple(
            DnsblZone(
                z.zone,
                tuple(z.refusal_codes) if z.refusal_codes is not None else tuple(REFUSAL_CODES),
                tuple(z.listed_codes),
            )
            for z in section.dnsbl.zones
        )
        dnsbl = DnsblSettings(name, addresses, zones)
        out.append(
            make("dnsbl", name, partial(check_dnsbl, resolver, dnsbl), section.dnsbl.schedule)
        )
    return out
