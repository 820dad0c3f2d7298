"""DMARC checks from the ``dmarc`` section: five per configured domain, judging the
reports stored in the state file (docs/dmarc.md).

Check names are ``own-sources``, ``spoofing``, ``reports-fresh``, ``tls-rpt`` and
``readiness``; the target is the domain from the config, so labels stay bounded.
"""

from __future__ import annotations

from functools import partial

from exporters.dmarc.checks import (
    DmarcCheckSettings,
    check_own_sources,
    check_readiness,
    check_reports_fresh,
    check_spoofing,
    check_tls_rpt,
)
from exporters.dmarc.classify import Classifier, own_sources
from exporters.result import Check, CheckFn, Kind
from monitor.config import Config
from monitor.config.dmarc import DmarcSection
from monitor.state.dmarc_reports import DmarcReportFile

CHECKS = (
    ("own-sources", check_own_sources),
    ("spoofing", check_spoofing),
    ("reports-fresh", check_reports_fresh),
    ("tls-rpt", check_tls_rpt),
    ("readiness", check_readiness),
)


def classifier_of(section: DmarcSection) -> Classifier:
    return Classifier(own_sources([(s.name, s.networks) for s in section.sources]))


def build(config: Config) -> list[Check]:
    section = config.dmarc
    if not section.domains:
        return []
    reader = DmarcReportFile(config.state_dir)
    classifier = classifier_of(section)
    checks: list[Check] = []
    for domain in section.domains:
        settings = DmarcCheckSettings(
            domain=domain,
            classifier=classifier,
            window_days=section.window_days,
            fresh_days=section.fresh_days,
            spoofing_warn_messages=section.spoofing.warn_messages,
            spoofing_fail_share=section.spoofing.fail_share,
        )
        for name, check in CHECKS:
            run: CheckFn = partial(check, reader, settings)
            checks.append(
                Check(
                    kind=Kind.DMARC,
                    name=name,
                    target=domain,
                    run=run,
                    interval_seconds=section.schedule.interval or config.defaults.interval,
                    timeout_seconds=section.schedule.timeout or config.defaults.timeout,
                )
            )
    return checks
