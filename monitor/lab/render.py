"""Turn a lab spec plus the active faults into every configuration file of the lab.

Rendering is pure: it returns ``{path: bytes}``; :func:`write_changed` writes only what
differs, so a fault's reload touches only the services whose files changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from monitor.lab import faults as F
from monitor.lab.keys import load_ec_key, parse_dnskey
from monitor.lab.layout import POSTFIX_INSTANCES, SINK_USER, USERS
from monitor.lab.spec import LabSpec
from monitor.lab.zones import DKIM_SELECTOR, DNSBL_ZONE, ZoneInputs, all_zones, sign_expired

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class TemplateError(KeyError):
    pass


def template(name: str, **values: str) -> str:
    """Fill ``{{key}}`` placeholders of a packaged template; every key must be given."""
    text = resources.files("monitor.lab").joinpath("templates", name).read_text("utf-8")

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise TemplateError(f"template {name}: no value for {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(fill, text)


@dataclass(frozen=True, slots=True)
class Materials:
    """Values derived from the lab's keys and certificates."""

    dkim_txt: str
    world_dkim_txt: str
    tlsa: dict[str, str]
    trust_anchors: str
    password_hashes: dict[str, str]
    mta_sts_id: str


# Certificates each service serves, by the stem of its "live" files, and which issued
# certificate stem goes there depending on the faults.
def live_certificates(faults: Collection[str]) -> dict[str, str]:
    return {
        "mx": "mx-expired" if F.MX_CERT_EXPIRED in faults else "mx",
        "srs": "srs-rotated" if F.SRS_CERT_ROTATED in faults else "srs",
        "submit": "submit",
        "submit-465": "submit-wrongname" if F.SUBMISSION_465_WRONG_NAME in faults else "submit",
        "world": "world",
        "imap": "imap",
        "mtasts": "mtasts",
    }


def key_stem(cert_stem: str) -> str:
    """Fault certificates reuse their host's key, except the rotated one."""
    return {"mx-expired": "mx", "submit-wrongname": "submit"}.get(cert_stem, cert_stem)


def render_all(
    spec: LabSpec, faults: Collection[str], serial: int, m: Materials, dnssec: DnssecKeys
) -> dict[Path, bytes]:
    files: dict[Path, str | bytes] = {}
    lay = spec.layout
    for live, stem in live_certificates(faults).items():
        files[lay.live / f"{live}.key"] = (lay.pki / f"{key_stem(stem)}.key").read_bytes()
        files[lay.live / f"{live}.chain.pem"] = (lay.pki / f"{stem}.chain.pem").read_bytes()
    files[lay.resolv_conf] = f"nameserver {spec.hosts['resolver'].address}\noptions trust-ad\n"
    files.update(_dns(spec, faults, serial, m, dnssec))
    files.update(_milters(spec, faults))
    for instance in POSTFIX_INSTANCES:
        files.update(_postfix(spec, instance, faults))
    files.update(_dovecot(spec, faults, m))
    policy = f"version: STSv1\nmode: enforce\nmx: {spec.hosts['mx'].name}\nmax_age: 86400\n"
    files[lay.mta_sts / "mta-sts.txt"] = policy
    return {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}


@dataclass(frozen=True, slots=True)
class DnssecKeys:
    """Per zone: the private key file and the DNSKEY rdata text (for signing by hand)."""

    key_files: dict[str, Path]
    dnskeys: dict[str, str]


def zone_names(spec: LabSpec) -> list[str]:
    return [spec.domain, spec.world, spec.reverse, DNSBL_ZONE]


def _dns(
    spec: LabSpec, faults: Collection[str], serial: int, m: Materials, dnssec: DnssecKeys
) -> dict[Path, str]:
    lay = spec.layout
    inputs = ZoneInputs(
        domain=spec.domain,
        world=spec.world,
        reverse=spec.reverse,
        hosts=spec.hosts,
        dkim_txt=m.dkim_txt,
        world_dkim_txt=m.world_dkim_txt,
        tlsa=m.tlsa,
        mta_sts_id=m.mta_sts_id,
        faults=faults,
    )
    files: dict[Path, str] = {}
    zone_entries = []
    for name, text in all_zones(inputs, serial).items():
        if name == spec.domain and F.DNSSEC_BOGUS in faults:
            signed = sign_expired(
                name, text, load_ec_key(dnssec.key_files[name]), parse_dnskey(dnssec.dnskeys[name])
            )
            files[lay.zones / f"{name}.expired.zone"] = signed
            zone_entries.append(
                f"  - domain: {name}\n    file: {name}.expired.zone\n    dnssec-signing: off"
            )
            continue
        files[lay.zones / f"{name}.zone"] = text
        zone_entries.append(
            f"  - domain: {name}\n    file: {name}.zone\n"
            "    dnssec-signing: on\n    dnssec-policy: lab"
        )
    knot_dir = lay.dns / "knot"
    files[lay.knot_conf] = template(
        "knot.conf.tmpl",
        run_dir=str(knot_dir / "run"),
        ns_address=spec.hosts["ns"].address,
        log=str(knot_dir / "knot.log"),
        storage=str(knot_dir / "db"),
        zones_dir=str(lay.zones),
        zones="\n".join(zone_entries),
    )
    files[lay.trust_anchors] = m.trust_anchors
    ns = spec.hosts["ns"].address
    stubs = "".join(
        f'stub-zone:\n    name: "{z.rstrip(".")}."\n    stub-addr: {ns}@53\n'
        for z in [".", "test", *zone_names(spec)]
    )
    files[lay.unbound_conf] = template(
        "unbound.conf.tmpl",
        resolver_address=spec.hosts["resolver"].address,
        unbound_dir=str(lay.unbound),
        log=str(lay.unbound / "unbound.log"),
        pid=str(lay.unbound / "unbound.pid"),
        trust_anchors=str(lay.trust_anchors),
        stubs=stubs.rstrip("\n"),
        control_socket=str(lay.unbound / "control.sock"),
    )
    return files


def _milters(spec: LabSpec, faults: Collection[str]) -> dict[Path, str]:
    lay, h = spec.layout, spec.hosts
    files: dict[Path, str] = {}
    resolver = h["resolver"].address
    for side, domain, host, authserv in (
        ("example", spec.domain, h["milter"], h["mx"].name),
        ("world", spec.world, h["worldmilter"], h["world"].name),
    ):
        dkim_dir = lay.dkim / side
        libunbound = dkim_dir / "libunbound.conf"
        files[libunbound] = template(
            "libunbound.conf.tmpl",
            trust_anchors=str(lay.trust_anchors),
            resolver_address=resolver,
        )
        if side == "example":
            key = "rogue.private" if F.DKIM_KEY_MISMATCH in faults else "lab.private"
            mta_line = f"MTA                     {h['srs'].name},{h['submit'].name}"
            # No client address signs by itself: only the SRS and submission instances
            # (matched by MTA above) do, so the MX verifies mail from every lab client.
            internal = "192.0.2.255/32"
        else:
            key = "lab.private"
            mta_line = "# the world signs for its own users (InternalHosts) only"
            internal = f"127.0.0.1, {h['client'].address}, {h['world'].address}"
        files[dkim_dir / "opendkim.conf"] = template(
            "opendkim.conf.tmpl",
            domain=domain,
            selector=DKIM_SELECTOR,
            key_file=str(dkim_dir / key),
            mta_line=mta_line,
            internal_hosts=internal,
            authserv_id=authserv,
            address=host.address,
            pid=str(dkim_dir / "run" / "opendkim.pid"),
            libunbound_conf=str(libunbound),
        )
        dmarc_dir = lay.dmarc / side
        files[dmarc_dir / "opendmarc.conf"] = template(
            "opendmarc.conf.tmpl",
            authserv_id=authserv,
            address=host.address,
            pid=str(dmarc_dir / "run" / "opendmarc.pid"),
        )
    for instance, authserv in (("mx", h["mx"].name), ("world", h["world"].name)):
        files[lay.spf / f"{instance}.conf"] = template(
            "policyd-spf.conf.tmpl", authserv_id=authserv
        )
    return files


# What the NCSC-NL TLS guidelines (2025-05) rate good or sufficient and nothing else:
# TLS 1.2 and 1.3, and in TLS 1.2 only ECDHE with AES-GCM or ChaCha20-Poly1305 (no CBC,
# no anonymous suites). Postfix's own defaults accept TLS 1.0 and anonymous DH suites.
# Bare <LF> line endings are refused (CVE-2023-51764, SMTP smuggling).
_TLS_SERVER_SOUND = """\
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_ciphers = high
smtpd_tls_mandatory_ciphers = high
tls_high_cipherlist = ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"""
# Postfix 3.7's defaults, as on a server nobody tuned: TLS 1.0 and CBC-SHA1 suites.
_TLS_SERVER_LEGACY = """\
smtpd_tls_protocols = >=TLSv1
smtpd_tls_mandatory_protocols = >=TLSv1
smtpd_tls_ciphers = medium
smtpd_tls_mandatory_ciphers = medium"""


def _tls_server(instance: str, faults: Collection[str]) -> str:
    legacy_tls = instance == "mx" and F.MX_TLS10 in faults
    bare_lf = instance == "mx" and F.MX_BARE_LF in faults
    return "\n".join(
        [
            _TLS_SERVER_LEGACY if legacy_tls else _TLS_SERVER_SOUND,
            f"smtpd_forbid_bare_newline = {'no' if bare_lf else 'yes'}",
            "smtpd_forbid_bare_newline_exclusions =",
        ]
    )


def _postfix(spec: LabSpec, instance: str, faults: Collection[str]) -> dict[Path, str]:
    lay, h = spec.layout, spec.hosts
    etc = lay.postfix_etc(instance)
    host = h[{"mx": "mx", "srs": "srs", "submission": "submit", "world": "world"}[instance]]
    live_stem = {"mx": "mx", "srs": "srs", "submission": "submit", "world": "world"}[instance]
    files: dict[Path, str] = {}
    milter = h["milter"].address
    smtp_inet = "smtp      inet  n       -       n       -       -       smtpd"
    master_extra = ""
    policyd = (
        "policyd-spf unix -     n       n       -       0       spawn\n"
        f"  user=policyd-spf argv=/usr/bin/policyd-spf {lay.spf / instance}.conf"
    )
    if instance == "mx":
        # A client on this machine that does not bind a source address reaches a lab
        # address *from* that address, so no host may trust its own address.
        mynetworks = "0.0.0.0/0" if F.OPEN_RELAY in faults else ""
        spam = F.MX_REJECTS_SPAM in faults
        files[etc / "spam.cidr"] = "0.0.0.0/0 550 5.7.1 Message rejected as spam\n"
        files[etc / "virtual"] = (
            f"forward@{spec.domain} canary@{spec.world}\n"
            f"alias@{spec.domain} dmarc@{spec.domain}\n"
            f"postmaster@{spec.domain} dmarc@{spec.domain}\n"
        )
        files[etc / "mailboxes"] = f"dmarc@{spec.domain} ok\n{SINK_USER}@{spec.domain} ok\n"
        # A recipient whose mail is accepted and thrown away: the bare-LF probe's sink.
        files[etc / "transport"] = f"{SINK_USER}@{spec.domain} discard:mailprobe sink\n"
        extra = f"""\
virtual_alias_maps = texthash:{etc}/virtual
virtual_mailbox_domains = {spec.domain}
virtual_mailbox_maps = texthash:{etc}/mailboxes
virtual_transport = lmtp:unix:{lay.lmtp_socket}
transport_maps = texthash:{etc}/transport
# Forwards leave through the SRS host; the MX never talks to the world itself.
relayhost = [{h["srs"].name}]:25
# Bounces to SRS addresses are turned back into the original sender here.
recipient_canonical_maps = tcp:{h["srs"].address}:10002
recipient_canonical_classes = envelope_recipient
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_policy_service unix:private/policyd-spf
policyd-spf_time_limit = 3600
smtpd_end_of_data_restrictions = {f"check_client_access cidr:{etc}/spam.cidr" if spam else ""}
smtpd_milters = inet:{milter}:8891, inet:{milter}:8893
"""
        master_extra = policyd
    elif instance == "srs":
        mynetworks = f"{h['mx'].address}/32"
        extra = f"""\
# Accept only from the MX; rewrite the envelope sender with postsrsd; sign with opendkim.
smtpd_client_restrictions = permit_mynetworks, reject
smtpd_relay_restrictions = permit_mynetworks, reject
sender_canonical_maps = tcp:{host.address}:10001
sender_canonical_classes = envelope_sender
smtpd_milters = inet:{milter}:8891
"""
    elif instance == "submission":
        mynetworks = ""
        smtp_inet = "# no port 25: this host takes only authenticated submission"
        extra = f"""\
smtpd_sasl_type = dovecot
smtpd_sasl_path = {lay.auth_socket}
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = yes
smtpd_milters = inet:{milter}:8891
non_smtpd_milters = $smtpd_milters
"""
        live = lay.live
        sub_opts = (
            "  -o smtpd_sasl_auth_enable=yes\n"
            "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
            "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
            "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject"
        )
        # The fault makes TLS optional on 587 and lets AUTH (PLAIN, LOGIN) run before it.
        tls_587 = (
            "  -o smtpd_tls_security_level=may\n  -o smtpd_tls_auth_only=no\n"
            if F.SUBMISSION_AUTH_BEFORE_TLS in faults
            else "  -o smtpd_tls_security_level=encrypt\n"
        )
        master_extra = (
            "submission inet n       -       n       -       -       smtpd\n"
            "  -o syslog_name=postfix-submission/submission\n"
            f"{tls_587}"
            f"{sub_opts}\n"
            "submissions inet n      -       n       -       -       smtpd\n"
            "  -o syslog_name=postfix-submission/submissions\n"
            "  -o smtpd_tls_wrappermode=yes\n"
            f"  -o {{smtpd_tls_chain_files = {live}/submit-465.key, "
            f"{live}/submit-465.chain.pem}}\n"
            f"{sub_opts}"
        )
    else:
        mynetworks = f"127.0.0.1/32 {h['client'].address}/32 {host.address}/32"
        wmilter = h["worldmilter"].address
        defer = F.WORLD_DEFERS in faults
        files[etc / "defer.cidr"] = "0.0.0.0/0 451 4.3.2 Try again later\n"
        files[etc / "mailboxes"] = f"canary@{spec.world} ok\npostmaster@{spec.world} ok\n"
        junk = F.WORLD_JUNKS in faults
        files[etc / "junk"] = f"canary@{spec.world} canary+Junk@{spec.world}\n" if junk else ""
        restrictions = ["permit_mynetworks"]
        if defer:
            restrictions.append(f"check_client_access cidr:{etc}/defer.cidr")
        restrictions.append(f"reject_rbl_client {DNSBL_ZONE}")
        extra = f"""\
virtual_mailbox_domains = {spec.world}
virtual_mailbox_maps = texthash:{etc}/mailboxes
virtual_transport = lmtp:unix:{lay.lmtp_socket}
# The "spam filter" of the world: while a fault is active it files the canary into Junk
# (Dovecot's LMTP saves user+Junk into the Junk folder). No recipient_delimiter here, or
# the rewrite would apply to its own result again.
recipient_canonical_maps = texthash:{etc}/junk
recipient_canonical_classes = envelope_recipient
smtpd_client_restrictions = {", ".join(restrictions)}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_policy_service unix:private/policyd-spf
policyd-spf_time_limit = 3600
smtpd_milters = inet:{wmilter}:8891, inet:{wmilter}:8893
"""
        master_extra = policyd
    files[etc / "main.cf"] = template(
        "postfix-main.cf.tmpl",
        tls_server=_tls_server(instance, faults),
        instance=instance,
        hostname=host.name,
        queue_dir=str(lay.postfix(instance) / "spool"),
        data_dir=str(lay.postfix(instance) / "data"),
        address=host.address,
        domain=spec.domain if instance != "world" else spec.world,
        mynetworks=mynetworks,
        maillog=str(lay.maillog(instance)),
        lab_dir=str(lay.root),
        tls_key=str(lay.live / f"{live_stem}.key"),
        tls_chain=str(lay.live / f"{live_stem}.chain.pem"),
        ca_file=str(lay.ca_file),
        extra=extra,
    )
    files[etc / "master.cf"] = template(
        "postfix-master.cf.tmpl", instance=instance, smtp_inet=smtp_inet, extra=master_extra
    )
    return files


def _dovecot(spec: LabSpec, faults: Collection[str], m: Materials) -> dict[Path, str]:
    lay = spec.layout
    files: dict[Path, str] = {}
    users = []
    for user in USERS:
        address = spec.user_address(user)
        users.append(f"{address}::8:8::{lay.mail / address}::")
    files[lay.dovecot / "users"] = "\n".join(users) + "\n"
    passwd = "".join(f"{spec.user_address(u)}:{m.password_hashes[u]}\n" for u in USERS)
    files[lay.dovecot / "passwd.imap"] = passwd
    down = F.SASL_DOWN in faults
    files[lay.dovecot / "passwd.smtp"] = "# SASL backend down (lab fault)\n" if down else passwd
    files[lay.dovecot_conf] = template(
        "dovecot.conf.tmpl",
        imap_name=spec.hosts["imap"].name,
        dovecot_dir=str(lay.dovecot),
        instance_tag=spec.hosts["imap"].address.replace(".", "-"),
        imap_address=spec.hosts["imap"].address,
        tls_chain=str(lay.live / "imap.chain.pem"),
        tls_key=str(lay.live / "imap.key"),
        world=spec.world,
    )
    return files


def unreadable_files(spec: LabSpec, faults: Collection[str]) -> list[Path]:
    """Files a fault makes unreadable (mode 000), so their reader fails as on a dead
    backend. Dovecot re-opens a passwd-file whose inode changed and then gets EACCES."""
    if F.SASL_DOWN in faults:
        return [spec.layout.dovecot / "passwd.smtp"]
    return []


def write_changed(files: dict[Path, bytes]) -> list[Path]:
    """Write files whose content differs (atomically); return the paths written."""
    written = []
    for path, content in files.items():
        try:
            if path.read_bytes() == content:
                continue
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        written.append(path)
    return written
