"""SMTP checks from the ``smtp`` config section: one per target and address family.

Check names are ``session_ipv4`` / ``session_ipv6``; targets are the configured names,
so labels stay bounded by the config (MX host names found at run time are facts and
reasons, never labels).
"""

from __future__ import annotations

from functools import partial

from exporters.dns.resolver import StubResolver
from exporters.result import Check, Kind
from exporters.smtp.mta_sts import MtaStsSettings, check_mta_sts
from exporters.smtp.probe import ProbeSettings, probe_host, probe_mx_of
from exporters.smtp.session import Family
from monitor.checks.dns import make_resolver
from monitor.config import Config
from monitor.config.smtp import SmtpProbeSettings
from monitor.state import StsPolicies

PHASE_SHARE = 0.8
"""Default phase timeout as a share of the check's timeout: a hang is then reported
with its phase, and the DNS hint still has time to ask the resolver."""


def probe_settings(
    settings: SmtpProbeSettings, config: Config, port: int, family: Family, timeout: float
) -> ProbeSettings:
    return ProbeSettings(
        port=port,
        family=family,
        tls=settings.tls,
        server_name=settings.server_name,
        banner_host=settings.banner_host,
        ehlo_name=settings.ehlo_name,
        phase_timeout=settings.phase_timeout or timeout * PHASE_SHARE,
        dane=settings.dane,
        pkix=settings.pkix,
        ca_file=config.smtp.ca_file,
        cert_warn_days=settings.cert_warn_days,
        next_cert_file=settings.next_cert_file,
        next_key_file=settings.next_key_file,
    )


def resolver_of(config: Config) -> StubResolver | None:
    return make_resolver(config.dns) if config.dns.resolvers else None


MTA_STS_INTERVAL = 3600.0
"""Policies change seldom and senders cache them for days: hourly is plenty."""


def build(config: Config) -> list[Check]:
    checks = []
    resolver = resolver_of(config)
    for target in config.smtp.targets:
        timeout = target.schedule.timeout or config.defaults.timeout
        for family in target.probed_families:
            settings = probe_settings(target, config, target.port, family, timeout)
            if target.mx_of is not None:
                run = partial(probe_mx_of, target.mx_of, settings, resolver)
            else:
                assert target.host is not None
                run = partial(probe_host, target.host, settings, resolver)
            checks.append(
                Check(
                    kind=Kind.SMTP,
                    name=f"session_{family}",
                    target=target.name,
                    run=run,
                    interval_seconds=target.schedule.interval or config.defaults.interval,
                    timeout_seconds=timeout,
                )
            )
    checks.extend(_mta_sts_checks(config))
    return checks


def _mta_sts_checks(config: Config) -> list[Check]:
    if not config.smtp.mta_sts:
        return []
    resolver = make_resolver(config.dns)
    memory = StsPolicies(config.state_dir)
    checks = []
    for entry in config.smtp.mta_sts:
        domain = entry.domain.rstrip(".").lower()
        timeout = entry.schedule.timeout or config.defaults.timeout
        settings = MtaStsSettings(
            domain=domain,
            ca_file=config.smtp.ca_file,
            # Several steps (TXT, A, MX, HTTPS) share the deadline; one step gets half.
            step_timeout=timeout / 2,
        )
        checks.append(
            Check(
                kind=Kind.SMTP,
                name="mta_sts",
                target=domain,
                run=partial(check_mta_sts, resolver, settings, memory),
                interval_seconds=entry.schedule.interval or MTA_STS_INTERVAL,
                timeout_seconds=timeout,
            )
        )
    return checks
