"""SMTP checks from the ``smtp`` config section."""

from __future__ import annotations

from functools import partial

from exporters.result import Check, Kind
from exporters.smtp.mta_sts import MtaStsSettings, check_mta_sts
from exporters.smtp.session import SmtpEndpoint, probe_session
from monitor.checks.dns import make_resolver
from monitor.config import Config
from monitor.state import StsPolicies

MTA_STS_INTERVAL = 3600.0
"""Policies change seldom and senders cache them for days: hourly is plenty."""


def build(config: Config) -> list[Check]:
    checks = []
    for target in config.smtp.targets:
        timeout = target.schedule.timeout or config.defaults.timeout
        endpoint = SmtpEndpoint(
            host=target.host,
            port=target.port,
            tls=target.tls,
            server_name=target.server_name,
            ehlo_name=target.ehlo_name,
            ca_file=config.smtp.ca_file,
            step_timeout=timeout,
            cert_warn_days=target.cert_warn_days,
        )
        checks.append(
            Check(
                kind=Kind.SMTP,
                name="session",
                target=target.name,
                run=partial(probe_session, endpoint),
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
