"""Zone contents for the lab's DNS: the fleet's domain, the world, the reverse zone of the
lab block and the DNSBL, with the DNS faults applied.

knot signs the zones itself with keys the lab imports; only the "signatures expired"
fault is signed here (by dnspython, with the same key and dates in the past).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import dns.rdtypes.ANY.DNSKEY
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.lab import faults as F
from monitor.lab.dnssec import dnssec
from monitor.lab.net import Host, reverse_name

TTL = 60
NEGATIVE_TTL = 5
DNSBL_ZONE = "bl.test"
DKIM_SELECTOR = "lab"
SPF_PADDING_INCLUDES = 11


@dataclass(frozen=True, slots=True)
class Record:
    owner: str
    """Absolute name without the trailing dot."""
    rtype: str
    data: str


@dataclass(frozen=True, slots=True)
class ZoneInputs:
    domain: str
    world: str
    reverse: str
    hosts: dict[str, Host]
    dkim_txt: str
    world_dkim_txt: str
    tlsa: dict[str, str]
    """TLSA 3 1 1 digests by certificate stem: mx, srs, submit, world, imap."""
    mta_sts_id: str
    faults: Collection[str]


def txt(value: str) -> str:
    """A TXT rdata: the value split into quoted strings of at most 255 bytes."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def spf_record(z: ZoneInputs) -> str:
    h = z.hosts
    senders = [h["mx"].name, h["srs"].name, h["submit"].name]
    if F.SPF_MISSING_SRS in z.faults:
        senders.remove(h["srs"].name)
    mechanisms = [f"a:{n}" for n in senders]
    if F.SPF_TOO_MANY_LOOKUPS in z.faults:
        pads = [f"include:_spf{i}.{z.domain}" for i in range(1, SPF_PADDING_INCLUDES + 1)]
        mechanisms = pads + mechanisms
    return "v=spf1 " + " ".join(mechanisms) + " -all"


def domain_records(z: ZoneInputs) -> list[Record]:
    d, h = z.domain, z.hosts
    recs = [Record(d, "NS", f"{h['ns'].name}.")]
    if F.MX_RECORD_REMOVED not in z.faults:
        recs.append(Record(d, "MX", f"10 {h['mx'].name}."))
    recs.append(Record(d, "TXT", txt(spf_record(z))))
    if F.SPF_TOO_MANY_LOOKUPS in z.faults:
        for i in range(1, SPF_PADDING_INCLUDES + 1):
            recs.append(Record(f"_spf{i}.{d}", "TXT", txt(f"v=spf1 ip4:192.0.2.{i} -all")))
    for key in ("ns", "resolver", "mx", "srs", "submit", "milter", "mtasts"):
        recs.append(Record(h[key].name, "A", h[key].address))
    for key in ("mx", "srs", "submit"):
        recs.append(Record(h[key].name, "TXT", txt("v=spf1 a -all")))
    if F.DKIM_RECORD_REMOVED not in z.faults:
        recs.append(Record(f"{DKIM_SELECTOR}._domainkey.{d}", "TXT", txt(z.dkim_txt)))
    if F.DMARC_RECORD_REMOVED not in z.faults:
        dmarc = f"v=DMARC1; p=none; rua=mailto:dmarc@{d}; fo=1"
        recs.append(Record(f"_dmarc.{d}", "TXT", txt(dmarc)))
    if F.TLSA_REMOVED not in z.faults:
        recs.append(Record(f"_25._tcp.{h['mx'].name}", "TLSA", f"3 1 1 {z.tlsa['mx']}"))
    recs.append(Record(f"_25._tcp.{h['srs'].name}", "TLSA", f"3 1 1 {z.tlsa['srs']}"))
    for port in (465, 587):
        recs.append(Record(f"_{port}._tcp.{h['submit'].name}", "TLSA", f"3 1 1 {z.tlsa['submit']}"))
    recs.append(Record(f"_submission._tcp.{d}", "SRV", f"0 1 587 {h['submit'].name}."))
    recs.append(Record(f"_submissions._tcp.{d}", "SRV", f"0 1 465 {h['submit'].name}."))
    recs.append(Record(f"_mta-sts.{d}", "TXT", txt(f"v=STSv1; id={z.mta_sts_id}")))
    recs.append(Record(f"_smtp._tls.{d}", "TXT", txt(f"v=TLSRPTv1; rua=mailto:dmarc@{d}")))
    return recs


def world_records(z: ZoneInputs) -> list[Record]:
    w, h = z.world, z.hosts
    spf = f"v=spf1 ip4:127.0.0.1 a:{h['world'].name} a:{h['client'].name} -all"
    recs = [
        Record(w, "NS", f"{h['ns'].name}."),
        Record(w, "MX", f"10 {h['world'].name}."),
        Record(w, "TXT", txt(spf)),
        Record(f"{DKIM_SELECTOR}._domainkey.{w}", "TXT", txt(z.world_dkim_txt)),
        Record(f"_dmarc.{w}", "TXT", txt("v=DMARC1; p=none")),
        Record(h["world"].name, "TXT", txt("v=spf1 a -all")),
        Record(f"_25._tcp.{h['world'].name}", "TLSA", f"3 1 1 {z.tlsa['world']}"),
        Record(f"_993._tcp.{h['imap'].name}", "TLSA", f"3 1 1 {z.tlsa['imap']}"),
        Record(f"_imaps._tcp.{w}", "SRV", f"0 1 993 {h['imap'].name}."),
    ]
    for key in ("world", "imap", "worldmilter", "client"):
        recs.append(Record(h[key].name, "A", h[key].address))
    return recs


def reverse_records(z: ZoneInputs) -> list[Record]:
    recs = [Record(z.reverse, "NS", f"{z.hosts['ns'].name}.")]
    for host in z.hosts.values():
        if host.key == "srs" and F.PTR_REMOVED in z.faults:
            continue
        recs.append(Record(reverse_name(host.address), "PTR", f"{host.name}."))
    return recs


def dnsbl_records(z: ZoneInputs) -> list[Record]:
    recs = [Record(DNSBL_ZONE, "NS", f"{z.hosts['ns'].name}.")]
    if F.DNSBL_LISTED in z.faults:
        octets = z.hosts["srs"].address.split(".")
        listed = ".".join(reversed(octets)) + "." + DNSBL_ZONE
        recs.append(Record(listed, "A", "127.0.0.2"))
        recs.append(Record(listed, "TXT", txt("listed by the mailprobe lab (fault)")))
    return recs


def zone_text(origin: str, ns_name: str, serial: int, records: list[Record]) -> str:
    lines = [
        f"$ORIGIN {origin}.",
        f"$TTL {TTL}",
        f"@ SOA {ns_name}. hostmaster.{origin}. {serial} 60 30 600 {NEGATIVE_TTL}",
    ]
    lines += [f"{r.owner}. {r.rtype} {r.data}" for r in records]
    return "\n".join(lines) + "\n"


def all_zones(z: ZoneInputs, serial: int) -> dict[str, str]:
    """Zone name -> zone file text."""
    ns = z.hosts["ns"].name
    return {
        z.domain: zone_text(z.domain, ns, serial, domain_records(z)),
        z.world: zone_text(z.world, ns, serial, world_records(z)),
        z.reverse: zone_text(z.reverse, ns, serial, reverse_records(z)),
        DNSBL_ZONE: zone_text(DNSBL_ZONE, ns, serial, dnsbl_records(z)),
    }


def sign_expired(
    origin: str,
    text: str,
    key: ec.EllipticCurvePrivateKey,
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY,
) -> str:
    """Sign ``text`` with the zone's real key but a validity window that ended 10 days ago."""
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    now = dt.datetime.now(dt.UTC)
    with zone.writer() as txn:
        dnssec.sign_zone(
            zone,
            txn=txn,
            keys=[(key, dnskey)],
            inception=now - dt.timedelta(days=20),
            expiration=now - dt.timedelta(days=10),
        )
    return str(zone.to_text(relativize=False))
