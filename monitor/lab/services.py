"""The lab's services: how each starts, where its PID is, how to tell it answers, how to
reload it."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from monitor.lab import faults as F
from monitor.lab.spec import LabSpec

PROBE_TIMEOUT = 0.5
MTASTS_SERVER = Path(__file__).resolve().with_name("mtasts.py")


@dataclass(frozen=True, slots=True)
class Probe:
    """One thing that must answer: a TCP port, or a DNS server.

    kind ``tcp``: connect succeeds. ``auth``: the server answers the zone's SOA with an
    RRSIG (knot has signed). ``validating``: the resolver answers with the AD flag.
    ``answers``: the DNS server sends any response at all (even SERVFAIL).
    """

    kind: str
    address: str
    port: int
    zone: str = ""

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"

    def check(self) -> bool:
        if self.kind == "tcp":
            try:
                with socket.create_connection((self.address, self.port), PROBE_TIMEOUT):
                    return True
            except OSError:
                return False
        query = dns.message.make_query(self.zone, dns.rdatatype.SOA, want_dnssec=True)
        try:
            answer = dns.query.tcp(query, self.address, port=self.port, timeout=PROBE_TIMEOUT)
        except (OSError, dns.exception.DNSException):
            return False
        if self.kind == "answers":
            return True
        if self.kind == "auth":
            return any(r.rdtype == dns.rdatatype.RRSIG for r in answer.answer)
        return bool(answer.flags & dns.flags.AD)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    host: str
    """Key of the lab host it serves (see net._PLAN)."""
    start: tuple[str, ...]
    pid_file: Path
    probes: tuple[Probe, ...]
    reload: tuple[str, ...] = ()
    """argv that makes it re-read its configuration; empty means restart."""
    kill_hard: bool = False
    """libmilter daemons take ~5 s to exit on SIGTERM and keep no state: SIGKILL them."""
    log: Path | None = None


def _tcp(address: str, *ports: int) -> tuple[Probe, ...]:
    return tuple(Probe("tcp", address, p) for p in ports)


def services(spec: LabSpec) -> dict[str, Service]:
    lay, h = spec.layout, spec.hosts
    out: list[Service] = []
    knot_dir = lay.dns / "knot"
    out.append(
        Service(
            F.KNOT,
            "ns",
            ("knotd", "-c", str(lay.knot_conf), "-d"),
            knot_dir / "run" / "knot.pid",
            (Probe("auth", h["ns"].address, 53, spec.domain),),
            reload=("knotc", "-c", str(lay.knot_conf), "-t", "10", "reload"),
            log=knot_dir / "knot.log",
        )
    )
    out.append(
        Service(
            F.UNBOUND,
            "resolver",
            ("unbound", "-c", str(lay.unbound_conf)),
            lay.unbound / "unbound.pid",
            (Probe("validating", h["resolver"].address, 53, spec.domain),),
            reload=("unbound-control", "-c", str(lay.unbound_conf), "reload"),
            log=lay.unbound / "unbound.log",
        )
    )
    out.append(
        Service(
            F.DOVECOT,
            "imap",
            ("dovecot", "-c", str(lay.dovecot_conf)),
            lay.dovecot / "run" / "master.pid",
            _tcp(h["imap"].address, 143, 993),
            reload=("doveadm", "-c", str(lay.dovecot_conf), "reload"),
            log=lay.dovecot / "dovecot.log",
        )
    )
    srs = h["srs"].address
    out.append(
        Service(
            F.POSTSRSD,
            "srs",
            (
                "postsrsd",
                f"-s{lay.srs_secret}",
                f"-d{spec.domain}",
                f"-l{srs}",
                "-f10001",
                "-r10002",
                f"-p{lay.postsrsd / 'postsrsd.pid'}",
                "-unobody",
                "-4",
                "-D",
            ),
            lay.postsrsd / "postsrsd.pid",
            _tcp(srs, 10001, 10002),
        )
    )
    for side, name_dkim, name_dmarc, host in (
        ("example", F.OPENDKIM, F.OPENDMARC, "milter"),
        ("world", F.WORLD_OPENDKIM, F.WORLD_OPENDMARC, "worldmilter"),
    ):
        dkim_dir, dmarc_dir = lay.dkim / side, lay.dmarc / side
        out.append(
            Service(
                name_dkim,
                host,
                # With the ub_ctx_config() lock: opendkim survives parallel mail.
                (
                    "env",
                    f"LD_PRELOAD={lay.ub_config_mutex}",
                    "opendkim",
                    "-x",
                    str(dkim_dir / "opendkim.conf"),
                ),
                dkim_dir / "run" / "opendkim.pid",
                _tcp(h[host].address, 8891),
                kill_hard=True,
            )
        )
        out.append(
            Service(
                name_dmarc,
                host,
                ("opendmarc", "-c", str(dmarc_dir / "opendmarc.conf")),
                dmarc_dir / "run" / "opendmarc.pid",
                _tcp(h[host].address, 8893),
                kill_hard=True,
            )
        )
    sts = lay.mta_sts
    out.append(
        Service(
            F.MTA_STS,
            "mtasts",
            (
                # The file itself, isolated (-I) and without site (-S): it needs only the
                # standard library, and importing the monitor.lab package first cost
                # 0.2 s of CPU, the longest start command of the lab.
                sys.executable,
                "-I",
                "-S",
                str(MTASTS_SERVER),
                "--listen",
                h["mtasts"].address,
                "--cert",
                str(lay.live / "mtasts.chain.pem"),
                "--key",
                str(lay.live / "mtasts.key"),
                "--policy",
                str(sts / "mta-sts.txt"),
                "--pid-file",
                str(sts / "mta-sts.pid"),
                "--log",
                str(sts / "access.log"),
            ),
            sts / "mta-sts.pid",
            _tcp(h["mtasts"].address, 443),
            log=sts / "access.log",
        )
    )
    for instance, name, host, ports in (
        ("mx", F.POSTFIX_MX, "mx", (25,)),
        ("srs", F.POSTFIX_SRS, "srs", (25,)),
        ("submission", F.POSTFIX_SUBMISSION, "submit", (587, 465)),
        ("world", F.POSTFIX_WORLD, "world", (25,)),
    ):
        etc = str(lay.postfix_etc(instance))
        out.append(
            Service(
                name,
                host,
                ("postfix", "-c", etc, "start"),
                lay.postfix(instance) / "spool" / "pid" / "master.pid",
                _tcp(h[host].address, *ports),
                reload=("postfix", "-c", etc, "reload"),
                log=lay.maillog(instance),
            )
        )
    return {s.name: s for s in out}
