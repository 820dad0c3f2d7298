"""Generate the Grafana dashboards in this folder with grafana-foundation-sdk.

    .venv/bin/python dashboards/generate.py          # rewrite dashboards/*.json
    .venv/bin/python dashboards/generate.py --check  # exit 1 if a file differs

The JSON files are what Grafana provisions (compose.yaml mounts this folder); this file
is their source. tests/test_dashboards.py checks that the committed JSON is this
generator's output, and the end-to-end test (tests/test_alerts_e2e.py) runs every panel
query against a real Prometheus over the lab and requires data from each.

Every query filters on ``instance=~"$instance"`` (the mailprobe vantage point), so one
Grafana shows several mailprobe instances. Panel descriptions say what the panel answers;
panels that match an alert link to its runbook section.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).resolve().parent
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
RUNBOOKS = "docs/runbooks.md"
"""Relative, as the alerts' runbook_url; set your docs' base in the link if you publish them."""

INST = 'instance=~"$instance"'


@dataclass(frozen=True)
class Q:
    expr: str
    legend: str = ""
    instant: bool = False


def _query(q: Q, ref: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(q.expr).ref_id(ref).datasource(DATASOURCE)
    if q.legend:
        query = query.legend_format(q.legend)
    return query.instant() if q.instant else query.range()


def _thresholds(steps: list[tuple[float | None, str]]) -> gd.ThresholdsConfig:
    return (
        gd.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


Steps = list[tuple[float | None, str]]
BAD_HIGH: Steps = [(None, "green"), (1.0, "red")]
"""0 is good (nothing failing), one or more is red."""


def _runbook(alert: str) -> gd.DashboardLink:
    return (
        gd.DashboardLink(f"Runbook: {alert}")
        .type(dm.DashboardLinkType.LINK)
        .url(f"{RUNBOOKS}#{alert.lower()}")
    )


def ts(
    title: str,
    description: str,
    queries: list[Q],
    unit: str = "short",
    width: int = 12,
    runbook: str = "",
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
    )
    for n, q in enumerate(queries):
        panel = panel.with_target(_query(q, chr(ord("A") + n)))
    if runbook:
        panel = panel.links([_runbook(runbook)])
    return panel


def st(
    title: str,
    description: str,
    query: Q,
    unit: str = "short",
    steps: list[tuple[float | None, str]] | None = None,
    width: int = 4,
    runbook: str = "",
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(5)
        .with_target(_query(Q(query.expr, query.legend, instant=True), "A"))
    )
    if steps:
        panel = panel.thresholds(_thresholds(steps))
    if runbook:
        panel = panel.links([_runbook(runbook)])
    return panel


def tb(title: str, description: str, query: Q, width: int = 24, runbook: str = "") -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .with_target(
            _query(Q(query.expr, query.legend, instant=True), "A").format(pm.PromQueryFormat.TABLE)
        )
    )
    if runbook:
        panel = panel.links([_runbook(runbook)])
    return panel


def variables(extra: list[tuple[str, str]]) -> list[gd.DatasourceVariable | gd.QueryVariable]:
    """Datasource, instance (the vantage point), then ``extra`` (name, label_values query)."""
    out: list[gd.DatasourceVariable | gd.QueryVariable] = [
        gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        gd.QueryVariable("instance")
        .label("mailprobe instance")
        .datasource(DATASOURCE)
        .query("label_values(mailprobe_build_info, instance)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]
    for name, query in extra:
        out.append(
            gd.QueryVariable(name)
            .label(name)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    return out


def board(
    uid: str, title: str, description: str, extra_vars: list[tuple[str, str]]
) -> gd.Dashboard:
    b = (
        gd.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["mailprobe", "mail"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .editable()
    )
    for variable in variables(extra_vars):
        b = b.with_variable(variable)
    return b


# ---- the dashboards -------------------------------------------------------------------


def overview() -> gd.Dashboard:
    b = board(
        "mailprobe-overview",
        "mailprobe: is mail getting through?",
        "Is mail getting through, right now, on every path, and if not, where: every check's"
        " state, the failing ones with their reason, the SMTP endpoints and Postfix's"
        " deliveries, per mailprobe instance.",
        [],
    )
    b = b.with_row(gd.Row("Right now"))
    kinds = (
        ("canary", "Canary routes"),
        ("dns", "DNS checks"),
        ("smtp", "SMTP checks"),
        ("dmarc", "DMARC checks"),
    )
    for kind, title in kinds:
        b = b.with_panel(
            st(
                f"{title} passing",
                f"Share of the {kind} checks whose last run was ok or warn.",
                Q(f'min(instance_kind:mailprobe_checks_up:ratio{{kind="{kind}",{INST}}})'),
                unit="percentunit",
                steps=[(None, "red"), (0.99, "green")],
            )
        )
    b = b.with_panel(
        st(
            "Checks failing",
            "Checks that failed on their last two runs or more (the alerting condition).",
            Q(f"count(mailprobe_check:failing{{{INST}}}) or vector(0)"),
            steps=BAD_HIGH,
        )
    )
    b = b.with_panel(
        st(
            "Alerts firing",
            "Alerts Prometheus has firing for these instances (before Alertmanager's inhibition).",
            Q(f'count(ALERTS{{alertstate="firing",{INST}}}) or vector(0)'),
            steps=BAD_HIGH,
        )
    )
    b = b.with_panel(
        st(
            "SMTP endpoints up",
            "SMTP endpoints whose last session (and TLS/DANE verdicts) passed, of all.",
            Q(f"sum(mailprobe_smtp_up{{{INST}}}) / count(mailprobe_smtp_up{{{INST}}})"),
            unit="percentunit",
            steps=[(None, "red"), (0.99, "green")],
            runbook="MailSMTPEndpointDown",
        )
    )
    b = b.with_panel(
        tb(
            "What is not ok, and why",
            "Every check whose last run was warn, fail or error, with its reason"
            " (mailprobe_check_reason_info). Empty when all is well.",
            Q(f"mailprobe_check_reason_info{{{INST}}}"),
        )
    )
    b = b.with_row(gd.Row("Over time"))
    b = b.with_panel(
        ts(
            "Checks passing by kind",
            "Checks up (ok or warn) per kind; a dip is a failure, its reason is in the table.",
            [Q(f"instance_kind:mailprobe_checks_up:count{{{INST}}}", "{{kind}} {{instance}}")],
        )
    )
    b = b.with_panel(
        ts(
            "Postfix deliveries by status",
            "Delivery attempts per second by service and status (sent, deferred, bounced).",
            [
                Q(
                    f"service_status:postfix_deliveries:rate5m{{{INST}}}",
                    "{{service}} {{status}}",
                )
            ],
            unit="ops",
            runbook="PostfixDeferralsRising",
        )
    )
    return b


def smtp() -> gd.Dashboard:
    t = f'{INST},target=~"$target"'
    b = board(
        "mailprobe-smtp",
        "mailprobe: SMTP, TLS, DANE and certificates",
        "Every SMTP endpoint mailprobe probes: does a session complete, how long each phase"
        " takes, the certificate's PKIX verdict and expiry, DANE, MTA-STS and the security"
        " probes.",
        [("target", "label_values(mailprobe_smtp_up, target)")],
    )
    b = b.with_panel(
        tb(
            "Endpoints",
            "1 when the session and its verdicts passed.",
            Q(f"mailprobe_smtp_up{{{t}}}"),
            width=12,
            runbook="MailSMTPEndpointDown",
        )
    )
    b = b.with_panel(
        ts(
            "Certificate days left",
            "Days until the served certificate expires (warning under 14, critical under 3).",
            [
                Q(
                    f"(mailprobe_smtp_cert_not_after_timestamp_seconds{{{t}}} - time()) / 86400",
                    "{{target}} :{{port}}",
                )
            ],
            unit="d",
            runbook="MailCertificateExpiringSoon",
        )
    )
    b = b.with_panel(
        ts(
            "Session phases",
            "Seconds per phase of the last session (connect, banner, ehlo, starttls, ...).",
            [
                Q(
                    f"mailprobe_smtp_phase_duration_seconds{{{t}}}",
                    "{{target}} {{phase}}",
                )
            ],
            unit="s",
        )
    )
    b = b.with_panel(
        tb(
            "PKIX and DANE verdicts",
            "The state each verdict is in (valid/expired/name_mismatch...; verified/mismatch/"
            "off/bogus...).",
            Q(f"mailprobe_smtp_pkix_state{{{t}}} == 1 or mailprobe_smtp_dane_state{{{t}}} == 1"),
            width=12,
            runbook="MailDANEFailing",
        )
    )
    b = b.with_panel(
        ts(
            "MTA-STS policy fetched",
            "1 while the MTA-STS policy can be fetched over HTTPS.",
            [Q(f"mailprobe_smtp_mta_sts_policy_fetched{{{INST}}}", "{{target}}")],
            runbook="MailMTASTSPolicyUnreachable",
        )
    )
    b = b.with_panel(
        ts(
            "SMTP check durations",
            "How long each SMTP check's last run took.",
            [Q(f'mailprobe_check_duration_seconds{{kind="smtp",{t}}}', "{{target}} {{check}}")],
            unit="s",
        )
    )
    return b


def dns() -> gd.Dashboard:
    t = f'{INST},target=~"$target"'
    b = board(
        "mailprobe-dns",
        "mailprobe: DNS",
        "The DNS a mail fleet depends on: MX, SPF, DKIM, DMARC, PTR, TLSA, DNSSEC and"
        " blocklists, per record.",
        [("target", 'label_values(mailprobe_check_up{kind="dns"}, target)')],
    )
    b = b.with_panel(
        tb(
            "DNS checks",
            "Last status of every DNS check (1 = ok or warn).",
            Q(f'mailprobe_check_up{{kind="dns",{t}}}'),
            width=12,
        )
    )
    b = b.with_panel(
        ts(
            "SPF lookups",
            "DNS lookups an unmatched sender costs (limit 10; the alert starts at 8).",
            [Q(f"mailprobe_dns_spf_lookups{{{t}}}", "{{target}}")],
            runbook="MailSPFNearLookupLimit",
        )
    )
    b = b.with_panel(
        ts(
            "RRSIG expiry (days)",
            "Days until the zone's earliest DNSSEC signature expires.",
            [
                Q(
                    f"(mailprobe_dns_rrsig_expiry_timestamp_seconds{{{t}}} - time()) / 86400",
                    "{{target}}",
                )
            ],
            unit="d",
            runbook="MailRRSIGExpiringSoon",
        )
    )
    b = b.with_panel(
        ts(
            "Blocklist listings",
            "Blocklist zones listing one of the host's addresses (should be 0).",
            [Q(f"mailprobe_dns_dnsbl_listings{{{t}}}", "{{target}}")],
            runbook="MailListedOnBlocklist",
        )
    )
    b = b.with_panel(
        ts(
            "Usable TLSA records",
            "Well-formed TLSA records usable for SMTP DANE per owner name.",
            [Q(f"mailprobe_dns_tlsa_usable_records{{{t}}}", "{{target}}")],
            runbook="MailTLSACheckFailing",
        )
    )
    b = b.with_panel(
        tb(
            "DMARC policy",
            "The published DMARC policy per domain.",
            Q(f"mailprobe_dns_dmarc_policy{{{t}}} == 1"),
            width=12,
        )
    )
    return b


def postfix() -> gd.Dashboard:
    b = board(
        "mailprobe-postfix",
        "mailprobe: Postfix logs",
        "What Postfix's logs say, per service: connections, accepted and rejected mail,"
        " deliveries and their delays, TLS, SASL, log health. The questions of the Tor"
        " Project's postfix-mtail dashboard, on mailprobe's names (with logs.mtail_compat"
        " the mtail names are exported too, so that dashboard keeps working).",
        [("service", "label_values(postfix_smtpd_connects_total, service)")],
    )
    s = f'{INST},service=~"$service"'
    b = b.with_panel(
        ts(
            "smtpd connections",
            "Connections accepted by smtpd per second.",
            [Q(f"sum by (service) (rate(postfix_smtpd_connects_total{{{s}}}[5m]))", "{{service}}")],
            unit="ops",
        )
    )
    b = b.with_panel(
        ts(
            "Messages accepted",
            "Messages smtpd accepted into the queue per second.",
            [
                Q(
                    f"sum by (service) (rate(postfix_smtpd_messages_processed_total{{{s}}}[5m]))",
                    "{{service}}",
                )
            ],
            unit="ops",
        )
    )
    b = b.with_panel(
        ts(
            "Rejected by smtpd",
            "SMTP transactions smtpd rejected per second, by reply class.",
            [
                Q(
                    "sum by (service, code) "
                    f"(rate(postfix_smtpd_messages_rejected_total{{{s}}}[5m]))",
                    "{{service}} {{code}}",
                )
            ],
            unit="ops",
            runbook="PostfixRejectSpike",
        )
    )
    b = b.with_panel(
        ts(
            "Deliveries by status",
            "Delivery attempts per second by status (sent, deferred, bounced).",
            [Q(f"service_status:postfix_deliveries:rate5m{{{s}}}", "{{service}} {{status}}")],
            unit="ops",
            runbook="PostfixDeferralsRising",
        )
    )
    b = b.with_panel(
        ts(
            "Delivery delay (p90)",
            "90th percentile of the time from arrival to final delivery, per stage.",
            [
                Q(
                    "histogram_quantile(0.9, sum by (le, service, stage) "
                    f"(rate(postfix_smtp_delivery_delay_seconds_bucket{{{s}}}[15m])))",
                    "{{service}} {{stage}}",
                )
            ],
            unit="s",
        )
    )
    b = b.with_panel(
        ts(
            "TLS connections",
            "TLS sessions by trust level (smtpd inbound, smtp outbound).",
            [
                Q(
                    "sum by (service, trust) "
                    f"(rate(postfix_smtpd_tls_connections_total{{{s}}}[5m]))",
                    "in {{service}} {{trust}}",
                ),
                Q(
                    "sum by (service, trust) "
                    f"(rate(postfix_smtp_tls_connections_total{{{s}}}[5m]))",
                    "out {{service}} {{trust}}",
                ),
            ],
            unit="ops",
        )
    )
    b = b.with_panel(
        ts(
            "Messages in the queues",
            "Queue IDs the log tracker holds: messages received and not yet delivered or bounced.",
            [Q(f"postfix_tracked_messages{{{INST}}}", "{{instance}}")],
            runbook="PostfixQueueGrowing",
        )
    )
    b = b.with_panel(
        ts(
            "Log sources: lag",
            "Seconds between now and the newest line each source read.",
            [Q(f"postfix_log_source_lag_seconds{{{INST}}}", "{{source}}")],
            unit="s",
            runbook="PostfixLogFollowerStalled",
        )
    )
    return b


def dmarc() -> gd.Dashboard:
    d = f'{INST},domain=~"$domain"'
    b = board(
        "mailprobe-dmarc",
        "mailprobe: DMARC and TLS-RPT",
        "What receivers report about mail in our name: DMARC results by disposition,"
        " our own sources failing, foreign senders, and TLS-RPT failed sessions.",
        [("domain", "label_values(mailprobe_dmarc_messages_total, domain)")],
    )
    b = b.with_panel(
        ts(
            "Reported messages by DMARC result",
            "Messages in aggregate reports received, by DMARC result and disposition.",
            [
                Q(
                    "sum by (domain, dmarc, disposition) "
                    f"(increase(mailprobe_dmarc_messages_total{{{d}}}[1d]))",
                    "{{domain}} {{dmarc}} {{disposition}}",
                )
            ],
        )
    )
    b = b.with_panel(
        st(
            "Own sources failing DMARC",
            "Messages from our own sources failing DMARC in the check's window.",
            Q(f"sum(mailprobe_dmarc_own_failing_messages{{{INST}}})"),
            steps=BAD_HIGH,
            runbook="MailDMARCOwnSourcesFailing",
        )
    )
    b = b.with_panel(
        st(
            "Foreign failing share",
            "Foreign messages failing DMARC as a share of all reported messages.",
            Q(f"max(mailprobe_dmarc_foreign_failing_ratio{{{INST}}})"),
            unit="percentunit",
            steps=[(None, "green"), (0.5, "red")],
            runbook="MailDMARCSpoofingSurge",
        )
    )
    b = b.with_panel(
        st(
            "Newest report (age)",
            "Time since the end of the newest aggregate report's period.",
            Q(
                "time() - max(mailprobe_dmarc_report_end_timestamp_seconds"
                f'{{kind="aggregate",{INST}}})'
            ),
            unit="s",
            runbook="MailDMARCReportsMissing",
        )
    )
    b = b.with_panel(
        tb(
            "Readiness for a stricter policy",
            "The readiness verdict of each domain (mailprobe dmarc report explains it).",
            Q(f"mailprobe_dmarc_readiness{{{INST}}} == 1"),
            width=12,
        )
    )
    b = b.with_panel(
        ts(
            "Reports received",
            "Reports stored, by kind (aggregate, tls, feedback).",
            [Q(f"sum by (kind) (mailprobe_dmarc_reports_total{{{INST}}})", "{{kind}}")],
            width=12,
        )
    )
    return b


def canary() -> gd.Dashboard:
    r = f'{INST},route=~"$route"'
    b = board(
        "mailprobe-canary",
        "mailprobe: canaries and delivery paths",
        "Signed canary mails through the real paths: do they arrive, how fast, hop by hop,"
        " and does what arrives verify (SPF, DKIM, DMARC, SRS, TLS).",
        [("route", "label_values(mailprobe_canary_sent_total, route)")],
    )
    b = b.with_panel(
        tb(
            "Routes right now",
            "Last round trip per route: 1 = delivered and verified (or warn: late, junk).",
            Q(f'mailprobe_check_up{{kind="canary",{INST},target=~"$route"}}'),
            width=12,
            runbook="MailCanaryNotDelivered",
        )
    )
    b = b.with_panel(
        ts(
            "Time since the last delivered canary",
            "Seconds since a canary of the route was last found in its mailbox.",
            [Q(f"time() - mailprobe_canary_last_delivered_timestamp_seconds{{{r}}}", "{{route}}")],
            unit="s",
            runbook="MailCanaryNotDelivered",
        )
    )
    b = b.with_panel(
        ts(
            "Delivery latency (p50, p90)",
            "From handing the canary to SMTP to its arrival in the mailbox (INTERNALDATE).",
            [
                Q(
                    "histogram_quantile(0.5, sum by (le, route) "
                    f"(rate(mailprobe_canary_delivery_latency_seconds_bucket{{{r}}}[15m])))",
                    "p50 {{route}}",
                ),
                Q(
                    "histogram_quantile(0.9, sum by (le, route) "
                    f"(rate(mailprobe_canary_delivery_latency_seconds_bucket{{{r}}}[15m])))",
                    "p90 {{route}}",
                ),
            ],
            unit="s",
        )
    )
    b = b.with_panel(
        ts(
            "Outcomes",
            "Canaries judged per hour by outcome (delivered, late, lost, bounced, send_failed,"
            " receiver_unreachable).",
            [
                Q(
                    "sum by (route, outcome) "
                    f"(increase(mailprobe_canary_outcomes_total{{{r}}}[1h]))",
                    "{{route}} {{outcome}}",
                )
            ],
        )
    )
    b = b.with_panel(
        tb(
            "Verifications of the last delivered canary",
            "1 = ok, 0 = failed, per route and verification.",
            Q(f"mailprobe_canary_verification_ok{{{r}}}"),
            width=12,
            runbook="MailCanaryVerificationFailed",
        )
    )
    b = b.with_panel(
        st(
            "Canary mailboxes logged in",
            "IMAP sessions to the canary mailboxes that are up, of all.",
            Q(
                f"sum(mailprobe_canary_mailbox_up{{{INST}}})"
                f" / count(mailprobe_canary_mailbox_up{{{INST}}})"
            ),
            unit="percentunit",
            steps=[(None, "red"), (0.99, "green")],
            width=6,
            runbook="MailCanaryMailboxUnreachable",
        )
    )
    b = b.with_panel(
        ts(
            "In flight",
            "Canaries sent and not yet judged, per route.",
            [Q(f"mailprobe_canary_in_flight{{{r}}}", "{{route}}")],
            width=6,
        )
    )
    return b


DASHBOARDS = {
    "overview": overview,
    "canary": canary,
    "smtp": smtp,
    "dns": dns,
    "postfix": postfix,
    "dmarc": dmarc,
}


def render(name: str) -> str:
    built = DASHBOARDS[name]().build()
    return json.dumps(built, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    differ = []
    for name in DASHBOARDS:
        path = HERE / f"{name}.json"
        text = render(name)
        if check:
            if not path.exists() or path.read_text() != text:
                differ.append(path.name)
        else:
            path.write_text(text)
    if differ:
        print("out of date (run dashboards/generate.py):", " ".join(differ))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
