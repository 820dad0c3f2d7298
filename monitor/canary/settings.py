"""The exporter's typed settings from a validated ``canary`` section."""

from __future__ import annotations

from exporters.canary.runtime import RouteSettings
from exporters.canary.send import SmtpRoute
from exporters.canary.verify import Expectations
from exporters.canary.watcher import MailboxSettings
from exporters.imap import ImapEndpoint
from monitor.config.base import reveal_secret
from monitor.config.canary import CanaryMailbox, CanaryRoute

DEFAULT_STEP_TIMEOUT = 20.0


def mailbox_settings(mailbox: CanaryMailbox) -> MailboxSettings:
    endpoint = ImapEndpoint(
        host=mailbox.host,
        port=mailbox.port,
        tls=mailbox.tls,
        username=mailbox.username,
        password=reveal_secret(mailbox.password_file, mailbox.password_env) or "",
        server_name=mailbox.server_name,
        ca_file=mailbox.ca_file,
        timeout=mailbox.timeout,
    )
    return MailboxSettings(
        mailbox.name, endpoint, mailbox.archive_folder, junk_poll=mailbox.junk_poll_interval
    )


def route_settings(route: CanaryRoute) -> RouteSettings:
    smtp = SmtpRoute(
        host=route.smtp_host,
        port=route.smtp_port,
        tls=route.tls,
        server_name=route.server_name,
        ca_file=route.ca_file,
        username=route.username,
        password=reveal_secret(route.password_file, route.password_env),
        ehlo_name=route.ehlo_name,
        step_timeout=route.schedule.timeout or DEFAULT_STEP_TIMEOUT,
    )
    e = route.expect
    expect = Expectations(
        authserv_id=e.authserv_id, spf=e.spf, dkim=e.dkim, dmarc=e.dmarc,
        dkim_domain=e.dkim_domain, dkim_selector=e.dkim_selector, return_path=e.return_path,
        srs=e.srs, tls_every_hop=e.tls_every_hop, spam_header=e.spam_header,
        spam_max=e.spam_max, max_latency=e.max_latency,
    )  # fmt: skip
    return RouteSettings(
        name=route.name,
        smtp=smtp,
        mail_from=route.mail_from,
        header_from=route.header_from or route.mail_from,
        rcpt_to=route.rcpt_to,
        mailbox=route.mailbox,
        expect=expect,
        deadline=route.deadline,
        grace=route.grace,
    )
