"""`mailprobe lab config`: a mailprobe config that watches the lab with every kind of
check. Only keys the config model (monitor/config) accepts are written; a test validates
the output with ``monitor.config.parse_config``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from monitor.lab.lab import Lab
from monitor.lab.layout import POSTFIX_INSTANCES, SINK_USER
from monitor.lab.zones import DKIM_SELECTOR, DNSBL_ZONE

SSLYZE_PYTHON = Path(sys.prefix) / "sslyze" / "bin" / "python"
"""Where scripts/setup.sh puts sslyze's interpreter (the `smtp.sslyze_python` default)."""


def config_data(lab: Lab) -> dict[str, Any]:
    h = lab.hosts
    ca = str(lab.ca_file)

    def mailbox(user: str) -> dict[str, Any]:
        creds = lab.credentials(user)
        return {
            "host": h["imap"].address,
            "port": 993,
            "username": creds.username,
            "password_file": str(creds.password_file),
            "ca_file": ca,
        }

    def target(name: str, host: str, port: int, tls: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "host": h[host].address,
            "port": port,
            "tls": tls,
            "server_name": h[host].name,
            "ehlo_name": "mailprobe.lab.invalid",
            "banner_host": h[host].name,
            "dane": "required",
            **extra,
        }

    # The probes connect from the world's client address: an outside client for the fleet.
    outside = h["client"].address
    # The TLS quality scan runs sslyze from its own environment (docs/smtp.md); where
    # scripts/setup.sh has not made it, the config leaves the scan out and says so.
    quality: dict[str, Any] = {"tls_quality": {}} if SSLYZE_PYTHON.exists() else {}

    services = {f"postfix-{i}": i for i in POSTFIX_INSTANCES}
    services["postfix-submission/submission"] = "submission"
    services["postfix-submission/submissions"] = "submission"
    return {
        "state_dir": str(lab.dir / "mailprobe-state"),
        "logs": {
            # Every instance's maillog from its start: the lab's logs are small, and its
            # history is what a demo wants to see; positions then live in state_dir.
            "sources": [
                {
                    "type": "file",
                    "name": f"maillog-{i}",
                    "path": str(lab.maillog(i)),
                    "start": "beginning",
                }
                for i in POSTFIX_INSTANCES
            ],
            "services": services,
            "domains": [lab.domain, lab.world],
        },
        "smtp": {
            "ca_file": ca,
            "targets": [
                target(
                    "mx",
                    "mx",
                    25,
                    "starttls",
                    security={
                        "auth_before_tls": True,
                        "open_relay": {"mail_from": f"dave@{lab.world}"},
                        "bare_lf": {"sink": f"{SINK_USER}@{lab.domain}"},
                        "source_address": outside,
                    },
                    **quality,
                ),
                target("srs", "srs", 25, "starttls"),
                target(
                    "submission-587",
                    "submit",
                    587,
                    "starttls",
                    security={
                        "auth_before_tls": True,
                        "plaintext_auth": True,
                        "open_relay": {"mail_from": f"dave@{lab.world}"},
                        "source_address": outside,
                    },
                ),
                target("submission-465", "submit", 465, "implicit", **quality),
                target("world", "world", 25, "starttls"),
            ],
            "mta_sts": [{"domain": lab.domain}],
        },
        "dns": dns_section(lab),
        "canary": canary_section(lab),
        "dmarc": {
            "domains": [lab.domain],
            "mailbox": mailbox("dmarc"),
            # The fleet's own senders: mail from them failing DMARC is our fault.
            "sources": [
                {"name": key, "networks": [f"{h[key].address}/32"]}
                for key in ("mx", "srs", "submit")
            ],
            # The lab's reports carry a spoofer on purpose (monitor/lab/dmarcreport.py):
            # part of the healthy baseline, so `spoofing` warns about it and fails only
            # when foreign failures are half of all mail.
            "spoofing": {"fail_share": 0.5},
        },
    }


def canary_section(lab: Lab) -> dict[str, Any]:
    """Three routes into the world's canary mailbox, with working credentials."""
    h = lab.hosts
    ca = str(lab.ca_file)
    alice = lab.credentials("alice")
    canary = lab.credentials("canary")
    expect = {
        "authserv_id": h["world"].name,
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "pass",
        "dkim_domain": lab.domain,
        "dkim_selector": DKIM_SELECTOR,
        "tls_every_hop": True,
    }

    def route(name: str, host: str, port: int, tls: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "smtp_host": h[host].address,
            "smtp_port": port,
            "tls": tls,
            "server_name": h[host].name,
            "ca_file": ca,
            "ehlo_name": "mailprobe.lab.invalid",
            "mailbox": "world",
            **extra,
        }

    submission = {
        "username": alice.username,
        "password_file": str(alice.password_file),
        "mail_from": alice.username,
        "rcpt_to": canary.username,
        "expect": {**expect, "srs": False},
    }
    return {
        "key_file": str(lab.dir / "mailprobe-state" / "canary.key"),
        "mailboxes": [
            {
                "name": "world",
                "host": h["imap"].address,
                "port": 993,
                "tls": "implicit",
                "server_name": h["imap"].name,
                "username": canary.username,
                "password_file": str(canary.password_file),
                "ca_file": ca,
            }
        ],
        "routes": [
            # An outside sender's provider (the world) -> MX (alias) -> SRS -> world mailbox.
            route(
                "inbound-forward",
                "world",
                25,
                "starttls",
                mail_from=canary.username,
                header_from=alice.username,
                rcpt_to=f"forward@{lab.domain}",
                expect={**expect, "srs": True, "return_path": rf"SRS0=.*@{re.escape(lab.domain)}"},
            ),
            route("outbound-submission", "submit", 587, "starttls", **submission),
            route("outbound-submission-465", "submit", 465, "implicit", **submission),
        ],
    }


def dns_section(lab: Lab) -> dict[str, Any]:
    """Every DNS record the lab serves, as the ``dns`` section checks it (docs/dns.md)."""
    h = lab.hosts

    def sender(key: str) -> dict[str, str]:
        return {"name": h[key].name, "address": h[key].address}

    def host(key: str, tlsa_ports: list[int], spf: bool = True) -> dict[str, Any]:
        return {
            "name": h[key].name,
            "addresses": [h[key].address],
            "tlsa_ports": tlsa_ports,
            "spf": spf,
        }

    return {
        "resolvers": [{"address": lab.resolver, "port": 53}],
        "domains": [
            {
                "name": lab.domain,
                "mx": {"hosts": [h["mx"].name]},
                "spf": {"senders": [sender("mx"), sender("srs"), sender("submit")]},
                # The signer's config, not one key file, so a signer switched to another
                # key (the dkim-key-mismatch fault) is caught.
                "dkim": [
                    {
                        "selector": DKIM_SELECTOR,
                        "signer_config_file": str(lab.layout.dkim / "example" / "opendkim.conf"),
                    }
                ],
                "srv": [
                    {"service": "submission", "port": 587},
                    {"service": "submissions", "port": 465},
                ],
                "mta_sts": True,
                "tls_rpt": True,
            },
            {
                "name": lab.world,
                "mx": {"hosts": [h["world"].name]},
                "spf": {"senders": [sender("world"), sender("client")]},
                "dkim": [
                    {
                        "selector": DKIM_SELECTOR,
                        "signer_config_file": str(lab.layout.dkim / "world" / "opendkim.conf"),
                    }
                ],
                "srv": [{"service": "imaps", "port": 993}],
            },
        ],
        "hosts": [
            host("mx", [25]),
            host("srs", [25]),
            host("submit", [465, 587]),
            host("world", [25]),
            host("imap", [993], spf=False),
        ],
        "dnsbl": {"zones": [{"zone": DNSBL_ZONE}]},
    }


def config_yaml(lab: Lab) -> str:
    header = (
        f"# mailprobe config for the lab in {lab.dir} (net {lab.net}).\n"
        "# Generated by `mailprobe lab config`; valid while that lab exists.\n"
    )
    if not SSLYZE_PYTHON.exists():
        header += (
            f"# No tls_quality checks: no sslyze environment at {SSLYZE_PYTHON} "
            "(scripts/setup.sh makes it).\n"
        )
    return header + yaml.safe_dump(config_data(lab), sort_keys=False, default_flow_style=False)
