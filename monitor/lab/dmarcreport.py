"""A DMARC aggregate report from "the world" about the lab's domain, delivered into the
report mailbox on the lab's first start, so a DMARC check reading that mailbox has real
data: our SRS and submission hosts pass, one outside source fails (a spoofer)."""

from __future__ import annotations

import gzip
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

from monitor.lab.spec import LabSpec

SPOOFER = "192.0.2.66"
"""TEST-NET-1: never a lab address, only a row in the report."""


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


def report_xml(spec: LabSpec, report_id: str, begin: int, end: int) -> str:
    h, d = spec.hosts, spec.domain
    rows = [
        _row(h["srs"].address, 12, d, "pass", "pass", d),
        _row(h["submit"].address, 5, d, "pass", "pass", d),
        _row(SPOOFER, 3, d, "fail", "fail", "spoofer.invalid"),
    ]
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


def report_message(spec: LabSpec, now: int) -> EmailMessage:
    begin, end = now - 86400, now
    report_id = f"lab-{end}"
    filename = f"{spec.world}!{spec.domain}!{begin}!{end}.xml.gz"
    message = EmailMessage()
    message["From"] = f"noreply-dmarc@{spec.world}"
    message["To"] = f"dmarc@{spec.domain}"
    message["Subject"] = (
        f"Report Domain: {spec.domain} Submitter: {spec.world} Report-ID: {report_id}"
    )
    message.set_content(f"DMARC aggregate report for {spec.domain} from {spec.world}.\n")
    payload = gzip.compress(report_xml(spec, report_id, begin, end).encode(), mtime=0)
    message.add_attachment(payload, maintype="application", subtype="gzip", filename=filename)
    return message


def deliver_first_report(spec: LabSpec, lmtp_socket: Path, mailbox_dir: Path) -> bool:
    """Deliver one report unless the report mailbox already exists; True if delivered."""
    if mailbox_dir.exists():
        return False
    with smtplib.LMTP(str(lmtp_socket), timeout=10) as lmtp:
        lmtp.sendmail(
            f"noreply-dmarc@{spec.world}",
            [f"dmarc@{spec.domain}"],
            report_message(spec, int(time.time())).as_bytes(),
        )
    return True
