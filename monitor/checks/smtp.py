"""SMTP checks from the ``smtp`` config section."""

from __future__ import annotations

from functools import partial

from exporters.result import Check, Kind
from exporters.smtp.session import SmtpEndpoint, probe_session
from monitor.config import Config


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
    return checks
