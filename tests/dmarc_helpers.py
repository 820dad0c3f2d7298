"""Small builders shared by the DMARC tests: configs, report XML and report mails."""

from __future__ import annotations

import gzip
from email.message import EmailMessage
from pathlib import Path

from monitor.config import Config, parse_config


def dmarc_config(state_dir: Path, domains: list[str], extra: str = "") -> Config:
    listed = ", ".join(domains)
    return parse_config(
        f"state_dir: {state_dir}\n"
        f"dmarc:\n  domains: [{listed}]\n  workers: 1\n  in_flight: 2\n{extra}"
    )


def record(source: str, count: int, dkim: str, spf: str, domain: str, reason: str = "") -> str:
    why = f"<reason><type>{reason}</type></reason>" if reason else ""
    return (
        f"<record><row><source_ip>{source}</source_ip><count>{count}</count>"
        f"<policy_evaluated><disposition>none</disposition><dkim>{dkim}</dkim>"
        f"<spf>{spf}</spf>{why}</policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers>"
        f"<auth_results><spf><domain>{domain}</domain><result>{spf}</result></spf>"
        f"</auth_results></record>"
    )


def aggregate_xml(
    domain: str, report_id: str, begin: int, end: int, records: list[str], org: str = "rep.test"
) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata>'
        f"<org_name>{org}</org_name><email>dmarc@{org}</email>"
        f"<report_id>{report_id}</report_id>"
        f"<date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>"
        f"<policy_published><domain>{domain}</domain><p>none</p></policy_published>"
        + "".join(records)
        + "</feedback>\n"
    ).encode()


def report_mail(xml: bytes, message_id: str, sender: str = "dmarc@rep.test") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "dmarc@example.test"
    message["Subject"] = "Report Domain: example.test"
    message["Message-ID"] = message_id
    message.set_content("aggregate report\n")
    message.add_attachment(
        gzip.compress(xml, mtime=0), maintype="application", subtype="gzip", filename="r.xml.gz"
    )
    return message.as_bytes()


def tls_json(
    domain: str,
    report_id: str,
    begin: str,
    end: str,
    ok: int,
    failed: int,
    org: str = "tls.rep.test",
    result_type: str = "certificate-expired",
) -> bytes:
    import json

    details = (
        [
            {
                "result-type": result_type,
                "failed-session-count": failed,
                "sending-mta-ip": "192.0.2.9",
                "receiving-mx-hostname": f"mx.{domain}",
            }
        ]
        if failed
        else []
    )
    return json.dumps(
        {
            "organization-name": org,
            "date-range": {"start-datetime": begin, "end-datetime": end},
            "contact-info": f"tlsrpt@{org}",
            "report-id": report_id,
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-domain": domain,
                        "policy-string": ["version: STSv1", "mode: enforce"],
                        "mx-host": [f"mx.{domain}"],
                    },
                    "summary": {
                        "total-successful-session-count": ok,
                        "total-failure-session-count": failed,
                    },
                    "failure-details": details,
                }
            ],
        }
    ).encode()


def arf_mail(
    domain: str, source_ip: str, feedback_type: str = "auth-failure", reporter: str = "arf.rep.test"
) -> bytes:
    """A minimal RFC 5965 / RFC 6591 feedback report about a message claiming ``domain``."""
    boundary = "arf-boundary"
    auth = "Auth-Failure: dmarc\r\n" if feedback_type == "auth-failure" else ""
    return (
        f"From: feedback@{reporter}\r\nTo: dmarc@{domain}\r\n"
        f"Subject: FW: report\r\nDate: Sun, 6 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{feedback_type}.{source_ip}@{reporter}>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nA feedback report.\r\n"
        f"--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n{auth}"
        f"Source-IP: {source_ip}\r\nReported-Domain: {domain}\r\n"
        f"Arrival-Date: Sun, 6 Dec 2026 09:00:00 +0000\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: someone@{domain}\r\nTo: victim@{reporter}\r\nSubject: hello\r\n"
        f"Date: Sun, 6 Dec 2026 08:59:00 +0000\r\nMessage-ID: <spoof@{domain}>\r\n"
        f"\r\n--{boundary}--\r\n"
    ).encode()
