"""SMTP checks from the ``smtp`` config section: one per target and address family.

Check names are ``session_ipv4`` / ``session_ipv6``; targets are the configured names,
so labels stay bounded by the config (MX host names found at run time are facts and
reasons, never labels).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from exporters.dns.resolver import StubResolver
from exporters.result import Check, CheckFn, Kind
from exporters.smtp.bare_lf import BareLfProbe, probe_bare_lf
from exporters.smtp.mta_sts import MtaStsSettings, check_mta_sts
from exporters.smtp.probe import ProbeSettings, probe_host, probe_mx_of
from exporters.smtp.probe_client import ProbeEndpoint
from exporters.smtp.security import (
    RelayProbe,
    probe_auth_before_tls,
    probe_open_relay,
    probe_plaintext_auth,
)
from exporters.smtp.session import Family
from exporters.smtp.tls_quality import TlsQualitySettings, check_tls_quality
from monitor.checks.dns import make_resolver
from monitor.config import Config
from monitor.config.smtp import SmtpProbeSettings, SmtpTarget
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
SECURITY_INTERVAL = 3600.0
"""Security probes look for configuration mistakes, which appear with changes: hourly."""
TLS_QUALITY_INTERVAL = 86400.0
TLS_QUALITY_TIMEOUT = 300.0
"""The scan makes a few hundred connections: daily, and minutes rather than seconds."""


def sslyze_python(config: Config) -> Path:
    """The interpreter that runs the sslyze worker (``.venv/sslyze`` beside mailprobe's)."""
    return config.smtp.sslyze_python or Path(sys.prefix) / "sslyze" / "bin" / "python"


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
        checks.extend(_security_checks(config, target))
        checks.extend(_tls_quality_checks(config, target, resolver))
    checks.extend(_mta_sts_checks(config))
    return checks


def _security_checks(config: Config, target: SmtpTarget) -> list[Check]:
    security = target.security
    if security is None:
        return []
    assert target.host is not None  # the config model requires it with `security`
    timeout = security.schedule.timeout or config.defaults.timeout
    endpoint = ProbeEndpoint(
        host=target.host,
        port=target.port,
        tls=target.tls,
        server_name=target.server_name,
        ehlo_name=target.ehlo_name,
        # Several steps share the deadline; the bare-LF probe also waits for late replies.
        step_timeout=timeout / 2,
        source_address=security.source_address,
    )
    probes: list[tuple[str, CheckFn]] = []
    if security.auth_before_tls:
        probes.append(("auth_before_tls", partial(probe_auth_before_tls, endpoint)))
    if security.plaintext_auth:
        probes.append(("plaintext_auth", partial(probe_plaintext_auth, endpoint)))
    if security.open_relay is not None:
        relay = RelayProbe(security.open_relay.mail_from, security.open_relay.rcpt_to)
        probes.append(("open_relay", partial(probe_open_relay, endpoint, relay)))
    if security.bare_lf is not None:
        bare = BareLfProbe(security.bare_lf.sink, security.bare_lf.mail_from)
        probes.append(("bare_lf", partial(probe_bare_lf, endpoint, bare)))
    return [
        Check(
            kind=Kind.SMTP,
            name=name,
            target=target.name,
            run=run,
            interval_seconds=security.schedule.interval or SECURITY_INTERVAL,
            timeout_seconds=timeout,
        )
        for name, run in probes
    ]


def _tls_quality_checks(
    config: Config, target: SmtpTarget, resolver: StubResolver | None
) -> list[Check]:
    quality = target.tls_quality
    if quality is None:
        return []
    assert target.host is not None  # the config model requires it with `tls_quality`
    timeout = quality.schedule.timeout or TLS_QUALITY_TIMEOUT
    settings = TlsQualitySettings(
        host=target.host,
        port=target.port,
        starttls=target.tls == "starttls",
        server_name=target.server_name or target.host,
        ehlo_name=target.ehlo_name,
        python=sslyze_python(config),
        # Leave the worker's own deadline a little room before the check's.
        timeout=max(timeout - 5, timeout * 0.9),
        network_timeout=quality.network_timeout,
    )
    return [
        Check(
            kind=Kind.SMTP,
            name="tls_quality",
            target=target.name,
            run=partial(check_tls_quality, settings, resolver),
            interval_seconds=quality.schedule.interval or TLS_QUALITY_INTERVAL,
            timeout_seconds=timeout,
        )
    ]


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
