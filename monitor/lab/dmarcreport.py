"""Reports from "the world" about the lab's domain, delivered into the report mailbox on
the lab's first start, so the DMARC source reading that mailbox has every kind of report:

* two daily aggregate reports (RFC 7489, gzip): our SRS and submission hosts pass on both
  days; a spoofer (192.0.2.66) fails on both, and a second foreign source (203.0.113.77)
  fails on the earlier day;
* one TLS-RPT report (RFC 8460, ``application/tlsrpt+gzip``) on the MX: every session
  succeeded, so the lab's TLS-RPT check is green until a test mails a failing one.
"""

from __future__ import annotations

import gzip
import json
import smtplib
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from monitor.lab.spec import LabSpec

SPOOFER = "192.0.2.66"
"""TEST-NET-1: never a lab address, only a row in the report."""
SECOND_SPOOFER = "203.0.113.77"
"""TEST-NET-3: the foreign source of the earlier day's report."""
DAY = 86400


def _row(source: str, count: int, header_from: str, dkim: str, spf: str, mail_from: str) -> str:
    """One record; p=none, so the disposition is always none. Results are aligned when the
    domains are the fleet's, so the evaluated results equal the raw ones."""
    return f"""  <record>
    <row>
      <source_ip>{source}</source_ip>
      <count>{count}</count>
      <policy_evaluated>
        <disposition>none</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>
      </policy_evaluated>
    </row>
    <identifiers><header_from>{header_from}</header_from></identifiers>
    <auth_results>
      <dkim><domain>{header_from}</domain><selector>lab</selector><result>{dkim}</result></dkim>
      <spf><domain>{mail_from}</domain><result>{spf}</result></spf>
    </auth_results>
  </record>
"""


def report_xml(spec: LabSpec, report_id: str, begin: int, end: int, earlier: bool = False) -> str:
    """Today's report, or (``earlier``) the day before's with a second foreign source."""
    h, d = spec.hosts, spec.domain
    rows = [
        _row(h["srs"].address, 8 if earlier else 12, d, "pass", "pass", d),
        _row(h["submit"].address, 2 if earlier else 5, d, "pass", "pass", d),
        _row(SPOOFER, 1 if earlier else 3, d, "fail", "fail", "spoofer.invalid"),
    ]
    if earlier:
        rows.append(_row(SECOND_SPOOFER, 2, d, "fail", "fail", "other-spoofer.invalid"))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata>
    <org_name>{spec.world}</org_name>
    <email>noreply-dmarc@{spec.world}</email>
    <report_id>{report_id}</report_id>
    <date_range><begin>{begin}</begin><end>{end}</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>{d}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
{"".join(rows)}</feedback>
"""


def report_message(spec: LabSpec, now: int, earlier: bool = False) -> EmailMessage:
    end = now - DAY if earlier else now
    begin = end - DAY
    report_id = f"lab-{end}"
    filename = f"{spec.world}!{spec.domain}!{begin}!{end}.xml.gz"
    message = EmailMessage()
    message["From"] = f"noreply-dmarc@{spec.world}"
    message["To"] = f"dmarc@{spec.domain}"
    message["Subject"] = (
        f"Report Domain: {spec.domain} Submitter: {spec.world} Report-ID: {report_id}"
    )
    message.set_content(f"DMARC aggregate report for {spec.domain} from {spec.world}.\n")
    payload = gzip.compress(report_xml(spec, report_id, begin, end, earlier).encode(), mtime=0)
    message.add_attachment(payload, maintype="application", subtype="gzip", filename=filename)
    return message


def tls_report_json(spec: LabSpec, report_id: str, begin: int, end: int) -> str:
    """An RFC 8460 report: the world's sessions to our MX, all successful."""
    mx = spec.hosts["mx"].name
    document = {
        "organization-name": spec.world,
        "date-range": {"start-datetime": _iso(begin), "end-datetime": _iso(end)},
        "contact-info": f"tlsrpt@{spec.world}",
        "report-id": report_id,
        "policies": [
            {
                "policy": {
                    "policy-type": "tlsa",
                    "policy-string": [],
                    "policy-domain": spec.domain,
                    "mx-host": [mx],
                },
                "summary": {
                    "total-successful-session-count": 20,
                    "total-failure-session-count": 0,
                },
            }
        ],
    }
    return json.dumps(document, indent=2)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tls_report_message(spec: LabSpec, now: int) -> EmailMessage:
    """RFC 8460 section 5.3: a multipart/report of report-type tlsrpt, gzip JSON inside."""
    begin, end = now - DAY, now
    report_id = f"lab-tls-{end}"
    message = EmailMessage()
    message["From"] = f"tlsrpt@{spec.world}"
    message["To"] = f"dmarc@{spec.domain}"
    message["Subject"] = (
        f"Report Domain: {spec.domain} Submitter: {spec.world} Report-ID: <{report_id}>"
    )
    message["TLS-Report-Domain"] = spec.domain
    message["TLS-Report-Submitter"] = spec.world
    message.set_content(f"TLS-RPT report for {spec.domain} from {spec.world}.\n")
    payload = gzip.compress(tls_report_json(spec, report_id, begin, end).encode(), mtime=0)
    message.add_attachment(
        payload,
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=f"{spec.world}!{spec.domain}!{begin}!{end}!{report_id}.json.gz",
    )
    message.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    return message


def first_reports(spec: LabSpec, now: int) -> list[tuple[str, EmailMessage]]:
    """(envelope sender, message) of every report, oldest first."""
    return [
        (f"noreply-dmarc@{spec.world}", report_message(spec, now, earlier=True)),
        (f"noreply-dmarc@{spec.world}", report_message(spec, now)),
        (f"tlsrpt@{spec.world}", tls_report_message(spec, now)),
    ]


def deliver_first_report(spec: LabSpec, lmtp_socket: Path, mailbox_dir: Path) -> bool:
    """Deliver the reports unless the report mailbox already exists; True if delivered."""
    if mailbox_dir.exists():
        return False
    with smtplib.LMTP(str(lmtp_socket), timeout=10) as lmtp:
        for sender, message in first_reports(spec, int(time.time())):
            lmtp.sendmail(sender, [f"dmarc@{spec.domain}"], message.as_bytes())
    return True
