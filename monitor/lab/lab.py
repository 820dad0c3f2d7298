"""The lab: a real miniature mail fleet on this machine, started, broken and healed here.

``Lab`` is the Python face used by the CLI, by the tests and by other parts of
mailprobe: it knows every host, address, credential file and log of the lab.
"""

from __future__ import annotations

import grp
import hashlib
import math
import os
import pwd
import shutil
import smtplib
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

from monitor.lab import faults as F
from monitor.lab import pki, postfix_start, procs, ubmutex
from monitor.lab.dmarcreport import deliver_first_report
from monitor.lab.keys import (
    dkim_txt,
    dnskey,
    ensure_ec_key,
    ensure_rsa_key,
    ensure_secret_file,
    ssha256,
)
from monitor.lab.layout import POSTFIX_INSTANCES, USERS
from monitor.lab.net import Host, check_domain, resolve_net
from monitor.lab.render import (
    DnssecKeys,
    Materials,
    render_all,
    unreadable_files,
    write_changed,
    zone_names,
)
from monitor.lab.services import Service, services
from monitor.lab.spec import DEFAULT_DOMAIN, DEFAULT_WORLD, LabSpec
from monitor.lab.state import LabState, locked

READY_TIMEOUT = 20.0
PID_FILE_TIMEOUT = 8.0
RELOAD_TIMEOUT = 10.0

# binary -> Debian package that provides it
REQUIRED_BINARIES: dict[str, str] = {
    "postfix": "postfix",
    "postconf": "postfix",
    "dovecot": "dovecot-core",
    "doveadm": "dovecot-core",
    "knotd": "knot",
    "knotc": "knot",
    "keymgr": "knot",
    "unbound": "unbound",
    "unbound-control": "unbound",
    "postsrsd": "postsrsd",
    "opendkim": "opendkim",
    "opendmarc": "opendmarc",
    "policyd-spf": "postfix-policyd-spf-python",
    "cc": "gcc",  # builds the opendkim lock library (monitor/lab/ubmutex.py)
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setsid": "util-linux",
}
REQUIRED_FILES: dict[str, str] = {
    "/usr/lib/dovecot/imap": "dovecot-imapd",
    "/usr/lib/dovecot/lmtp": "dovecot-lmtpd",
}


class LabError(RuntimeError):
    """A lab command cannot do what was asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A lab login. The password is only in ``password_file``."""

    username: str
    password_file: Path

    def password(self) -> str:
        return self.password_file.read_text(encoding="ascii").strip()


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    host: str
    endpoints: str
    up: bool
    pid: int | None


@dataclass(frozen=True, slots=True)
class UpResult:
    already_running: bool
    seconds: float


class Lab:
    """One lab, living in ``root``. Construction does not start anything."""

    def __init__(
        self,
        root: Path | str,
        net: str | None = None,
        domain: str | None = None,
        world: str | None = None,
    ) -> None:
        root = Path(root).absolute()
        saved = LabState.load(root / "lab.json")
        if saved is not None:
            for label, asked, have in (
                ("net", net, saved.net),
                ("domain", domain, saved.domain),
                ("world", world, saved.world),
            ):
                if asked is not None and asked != have:
                    raise LabError(
                        f"{root} holds a lab with {label} {have}; remove the folder or use "
                        f"another --dir for {label} {asked}"
                    )
            net, domain, world = saved.net, saved.domain, saved.world
        try:
            self.spec = LabSpec(
                root,
                resolve_net(net),
                check_domain(domain or DEFAULT_DOMAIN),
                check_domain(world or DEFAULT_WORLD),
            )
        except ValueError as exc:
            raise LabError(str(exc)) from None
        if self.spec.domain == self.spec.world:
            raise LabError("the fleet's domain and the world's domain must differ")
        self.layout = self.spec.layout
        self.services: dict[str, Service] = services(self.spec)

    # ----- what other code needs to know about the lab -------------------------------
    @property
    def dir(self) -> Path:
        return self.spec.root

    @property
    def net(self) -> str:
        return str(self.spec.net)

    @property
    def domain(self) -> str:
        return self.spec.domain

    @property
    def world(self) -> str:
        return self.spec.world

    @property
    def hosts(self) -> dict[str, Host]:
        """Hosts by role: ns, resolver, mx, srs, submit, milter, mtasts, world, imap,
        worldmilter, client."""
        return self.spec.hosts

    @property
    def ca_file(self) -> Path:
        return self.layout.ca_file

    @property
    def resolver(self) -> str:
        return self.spec.hosts["resolver"].address

    def credentials(self, user: str) -> Credentials:
        """``alice`` (submission login), ``canary`` (world mailbox), ``dmarc`` (reports)."""
        if user not in USERS:
            raise LabError(f"no lab user {user!r}; users: {', '.join(USERS)}")
        return Credentials(self.spec.user_address(user), self.layout.password_file(user))

    def maillog(self, instance: str) -> Path:
        if instance not in POSTFIX_INSTANCES:
            raise LabError(f"no Postfix instance {instance!r}: {', '.join(POSTFIX_INSTANCES)}")
        return self.layout.maillog(instance)

    def postfix_config_dir(self, instance: str) -> Path:
        return self.layout.postfix_etc(instance)

    def state(self) -> LabState | None:
        return LabState.load(self.layout.state_file)

    def active_faults(self) -> list[str]:
        state = self.state()
        return list(state.faults) if state else []

    def ns_command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside the lab's mount namespace (lab resolv.conf)."""
        state = self.state()
        if state is None or not state.running or state.holder is None:
            raise LabError(f"the lab in {self.dir} is not running")
        return procs.in_namespace(state.holder, argv)

    # ----- up ---------------------------------------------------------------------------
    def up(self) -> UpResult:
        with locked(self.layout.lock_file):
            state = self.state()
            if state is not None and state.running and self._holder_alive(state):
                return UpResult(True, state.up_seconds or 0.0)
            self._check_binaries()
            self._check_dir()
            self._check_free()
            started = time.monotonic()
            state = LabState(self.net, self.domain, self.world, serial=_next_serial(state))
            try:
                self._write_config(state)
                procs.add_addresses(self.spec.addresses())
                state.holder = procs.start_holder(self.layout.resolv_conf, self.layout.holder_pid)
                state.mnt_ns = procs.mount_namespace(state.holder)
                state.running = True
                state.save(self.layout.state_file)
                self._start(list(self.services.values()), state)
                self._wait_ready(list(self.services.values()))
                report_box = self.layout.mail / self.spec.user_address("dmarc")
                deliver_first_report(self.spec, self.layout.lmtp_socket, report_box)
            except (LabError, procs.ProcessError, OSError, smtplib.SMTPException) as exc:
                self._teardown(state)
                raise LabError(f"lab up failed: {exc}") from None
            state.up_seconds = round(time.monotonic() - started, 2)
            state.save(self.layout.state_file)
            return UpResult(False, state.up_seconds)

    def _holder_alive(self, state: LabState) -> bool:
        return (
            state.holder is not None
            and procs.alive(state.holder)
            and procs.mount_namespace(state.holder) == state.mnt_ns
        )

    def _check_binaries(self) -> None:
        missing = {pkg for b, pkg in REQUIRED_BINARIES.items() if shutil.which(b) is None}
        missing |= {pkg for f, pkg in REQUIRED_FILES.items() if not Path(f).exists()}
        if missing:
            raise LabError(
                "missing Debian packages: "
                + " ".join(sorted(missing))
                + " (install them with apt-get; see deploy/apt-packages.txt)"
            )
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it adds loopback addresses and mounts)")

    def _check_dir(self) -> None:
        """Daemons that drop privileges (postfix, opendkim, dovecot) must reach DIR."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        for parent in self.dir.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise LabError(
                    f"{parent} is not searchable by other users, so the lab's daemons "
                    f"(which run as postfix, opendkim, dovecot) cannot reach {self.dir}; "
                    "choose a --dir elsewhere"
                )

    def _check_free(self) -> None:
        ours = set(self.spec.addresses())
        busy = sorted(f"{a}:{p}" for a, p in procs.tcp_listeners() if a in ours)
        if busy:
            raise LabError(
                f"addresses of {self.net} are in use ({', '.join(busy)}): another lab runs "
                f"there; stop it or choose another --net"
            )

    # ----- configuration ----------------------------------------------------------------
    def _write_config(self, state: LabState) -> None:
        materials, dnssec = self._materials()
        files = render_all(self.spec, state.faults, state.serial, materials, dnssec)
        postfix_start.cool_down(write_changed(files))
        ubmutex.ensure_library(self.layout.ub_config_mutex)
        self._fix_ownership()
        for path in unreadable_files(self.spec, state.faults):
            path.chmod(0)
        self._import_dnssec_keys(dnssec)

    def _materials(self) -> tuple[Materials, DnssecKeys]:
        lay, h = self.layout, self.spec.hosts
        for path in (lay.secrets, lay.pki, lay.live, lay.dnssec_keys):
            path.mkdir(parents=True, exist_ok=True)
        lay.secrets.chmod(0o700)
        hashes = {u: ssha256(ensure_secret_file(lay.password_file(u))) for u in USERS}
        ensure_secret_file(lay.srs_secret, 32)
        ca_cert, ca_key = pki.ensure_ca(lay.pki)

        def cert(stem: str, host: str, **kw: Any) -> pki.CertSpec:
            return pki.CertSpec(stem, (h[host].name,), stem, addresses=(h[host].address,), **kw)

        specs = [
            cert("mx", "mx"),
            replace(cert("mx-expired", "mx", expired=True), key_stem="mx"),
            cert("srs", "srs"),
            cert("srs-rotated", "srs"),
            cert("submit", "submit"),
            # Wrong name and no IP SAN: no client can match it to the submission host.
            pki.CertSpec("submit-wrongname", (f"mail.{self.world}",), "submit"),
            cert("world", "world"),
            cert("imap", "imap"),
            cert("mtasts", "mtasts"),
        ]
        for spec in specs:
            pki.issue(lay.pki, spec, ca_cert, ca_key)
        tlsa = {
            s: pki.tlsa_311(lay.pki / f"{s}.crt") for s in ("mx", "srs", "submit", "world", "imap")
        }
        dkim = {}
        for side in ("example", "world"):
            (lay.dkim / side / "run").mkdir(parents=True, exist_ok=True)
            (lay.dmarc / side / "run").mkdir(parents=True, exist_ok=True)
            dkim[side] = dkim_txt(ensure_rsa_key(lay.dkim / side / "lab.private"))
        ensure_rsa_key(lay.dkim / "example" / "rogue.private")
        key_files, dnskeys, anchors = {}, {}, []
        for zone in zone_names(self.spec):
            key_file = lay.dnssec_keys / f"{zone}.pem"
            rdata = dnskey(ensure_ec_key(key_file))
            key_files[zone], dnskeys[zone] = key_file, rdata.to_text()
            anchors.append(f"{zone}. 3600 IN DNSKEY {rdata.to_text()}")
        sts_id = hashlib.sha256(h["mx"].name.encode()).hexdigest()[:16]
        materials = Materials(
            dkim_txt=dkim["example"],
            world_dkim_txt=dkim["world"],
            tlsa=tlsa,
            trust_anchors="\n".join(anchors) + "\n",
            password_hashes=hashes,
            mta_sts_id=sts_id,
        )
        return materials, DnssecKeys(key_files, dnskeys)

    def _fix_ownership(self) -> None:
        lay = self.layout
        postfix = pwd.getpwnam("postfix")
        opendkim = pwd.getpwnam("opendkim")
        opendmarc = pwd.getpwnam("opendmarc")
        mail = pwd.getpwnam("mail")
        dovecot_gid = grp.getgrnam("dovecot").gr_gid
        for instance in POSTFIX_INSTANCES:
            postfix_start.prepare_queue(lay.postfix(instance) / "spool")
            data = lay.postfix(instance) / "data"
            data.mkdir(parents=True, exist_ok=True)
            os.chown(data, postfix.pw_uid, postfix.pw_gid)
        for side in ("example", "world"):
            for path in [lay.dkim / side / "run", *(lay.dkim / side).glob("*.private")]:
                os.chown(path, opendkim.pw_uid, opendkim.pw_gid)
            os.chown(lay.dmarc / side / "run", opendmarc.pw_uid, opendmarc.pw_gid)
        lay.mail.mkdir(parents=True, exist_ok=True)
        os.chown(lay.mail, mail.pw_uid, mail.pw_gid)
        lay.mail.chmod(0o700)
        for path in [lay.dovecot / "users", *lay.dovecot.glob("passwd.*")]:
            os.chown(path, 0, dovecot_gid)
            path.chmod(0o640)
        for path in lay.live.glob("*.key"):
            path.chmod(0o600)
        for path in (lay.postsrsd, lay.mta_sts, lay.dns / "knot" / "run", lay.dns / "knot" / "db"):
            path.mkdir(parents=True, exist_ok=True)

    def _import_dnssec_keys(self, dnssec: DnssecKeys) -> None:
        """Hand knot the lab's own zone keys once, so the trust anchors are known before
        knot starts (no waiting for knot to make keys) and the bogus fault can sign with
        them too."""
        marker = self.layout.dns / "knot" / "db" / "mailprobe-imported"
        want = "".join(f"{z} {k}\n" for z, k in sorted(dnssec.dnskeys.items()))
        if marker.exists() and marker.read_text() == want:
            return
        conf = str(self.layout.knot_conf)
        for zone, key_file in dnssec.key_files.items():
            listed = procs.run(["keymgr", "-c", conf, zone, "list"], check=False)
            for line in listed.splitlines():
                if line.split():
                    procs.run(["keymgr", "-c", conf, zone, "delete", line.split()[0]])
            procs.run(
                [
                    "keymgr", "-c", conf, zone, "import-pem", str(key_file), "algorithm=13",
                    "ksk=yes", "zsk=yes", "created=1", "publish=1", "ready=1", "active=1",
                ]
            )  # fmt: skip
        marker.write_text(want)

    # ----- processes ----------------------------------------------------------------------
    def _start(self, chosen: list[Service], state: LabState) -> None:
        assert state.holder is not None
        logs = self.dir / "start-logs"
        logs.mkdir(exist_ok=True)
        running: list[tuple[Service, Path, subprocess.Popen[bytes]]] = []
        for service in chosen:
            service.pid_file.unlink(missing_ok=True)
            cmd = procs.in_namespace(state.holder, service.start)
            # Output goes to a file, not a pipe: a daemon that keeps its stdout open
            # would otherwise hold the pipe (and us) forever.
            log = logs / f"{service.name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            running.append((service, log, proc))
        errors = []
        for service, log, proc in running:
            try:
                proc.wait(timeout=procs.COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                errors.append(f"{service.name}: start command did not return")
                continue
            if proc.returncode != 0:
                text = log.read_text(errors="replace").strip()[-600:]
                errors.append(f"{service.name}: exit {proc.returncode}: {text}")
        if errors:
            raise LabError("; ".join(errors))

    def _wait_ready(self, chosen: list[Service], timeout: float = READY_TIMEOUT) -> None:
        pending = {s.name: s for s in chosen}
        started = time.monotonic()
        deadline = started + timeout
        while pending:
            for name, service in list(pending.items()):
                pid = procs.read_pid(service.pid_file)
                if pid is not None and not procs.alive(pid):
                    raise LabError(f"{service.name} exited at start; see {service.log}")
                if pid is None and time.monotonic() > started + PID_FILE_TIMEOUT:
                    raise LabError(f"{service.name} wrote no PID file; see {service.log}")
                if pid is not None and all(p.check() for p in service.probes):
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                details = []
                for s in pending.values():
                    where = ", ".join(str(p) for p in s.probes)
                    details.append(f"{s.name} ({where}; log: {s.log or 'none'})")
                raise LabError("not answering: " + "; ".join(details))
            time.sleep(0.02)

    def _service_pids(self, service: Service, ns: str | None) -> list[int]:
        """The service's main PID and all its descendants inside the lab namespace."""
        main = procs.read_pid(service.pid_file)
        if main is None or not procs.alive(main) or procs.mount_namespace(main) != ns:
            return []
        children: dict[int, list[int]] = {}
        for pid in procs.processes_in_namespace(ns) if ns else []:
            ppid = _ppid(pid)
            if ppid is not None:
                children.setdefault(ppid, []).append(pid)
        found, todo = [], [main]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def _stop_service(self, service: Service, state: LabState) -> None:
        pids = self._service_pids(service, state.mnt_ns)
        procs.stop_pids(pids, kill_at_once=pids if service.kill_hard else ())
        service.pid_file.unlink(missing_ok=True)

    # ----- down ---------------------------------------------------------------------------
    def down(self) -> list[int]:
        """Stop every lab process, remove the addresses; return the PIDs stopped."""
        if self.state() is None:
            # No lab was ever set up here (the block's addresses, if any, are another's):
            # nothing to stop, and no lock file to leave behind in a folder that had none.
            return []
        with locked(self.layout.lock_file):
            state = self.state()
            if state is None:
                return []
            return self._teardown(state)

    def _teardown(self, state: LabState) -> list[int]:
        ns = state.mnt_ns
        pids = procs.processes_in_namespace(ns) if ns else []
        hard = [p for s in self.services.values() if s.kill_hard for p in self._service_pids(s, ns)]
        procs.stop_pids(pids, kill_at_once=hard)
        # Anything a service forked while we waited (postfix respawns) goes too.
        late = procs.processes_in_namespace(ns) if ns else []
        if late:
            procs.stop_pids(late, kill_at_once=late)
        procs.remove_addresses(self.spec.addresses())
        for service in self.services.values():
            service.pid_file.unlink(missing_ok=True)
        state.running, state.holder, state.mnt_ns, state.faults = False, None, None, []
        self.dir.mkdir(parents=True, exist_ok=True)
        state.save(self.layout.state_file)
        return pids

    # ----- status -------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        result = []
        for service in self.services.values():
            pid = procs.read_pid(service.pid_file)
            up = pid is not None and procs.alive(pid) and all(p.check() for p in service.probes)
            result.append(
                ServiceStatus(
                    service.name,
                    self.spec.hosts[service.host].name,
                    ", ".join(str(p) for p in service.probes),
                    up,
                    pid if up else None,
                )
            )
        return result

    # ----- faults -------------------------------------------------------------------------
    def break_fault(self, name: str) -> None:
        self._set_fault(name, active=True)

    def heal_fault(self, name: str) -> None:
        self._set_fault(name, active=False)

    def _set_fault(self, name: str, *, active: bool) -> None:
        fault = F.BY_NAME.get(name)
        if fault is None:
            raise LabError(f"no fault {name!r}; `lab faults` lists them")
        not_running = f"no lab running in {self.dir}; start one with `lab up --dir {self.dir}`"
        if self.state() is None:  # checked before the lock, which would create the folder
            raise LabError(not_running)
        with locked(self.layout.lock_file):
            state = self.state()
            if state is None or not state.running:
                raise LabError(not_running)
            if (name in state.faults) == active:
                return
            state.faults = (
                [*state.faults, name] if active else [f for f in state.faults if f != name]
            )
            state.serial = _next_serial(state)
            self._write_config(state)
            state.save(self.layout.state_file)
            chosen = [self.services[s] for s in fault.stop]
            if active:
                for service in chosen:
                    self._stop_service(service, state)
            else:
                self._start(chosen, state)
                self._wait_ready(chosen)
            for service_name in fault.restart:
                service = self.services[service_name]
                self._stop_service(service, state)
                self._start([service], state)
                self._wait_ready([service])
            for service_name in fault.reload:
                self._reload(self.services[service_name], state)
            if fault.next_second:
                _sleep_into_next_second()

    def _reload(self, service: Service, state: LabState) -> None:
        if service.name == F.KNOT:
            procs.run(service.reload)
            self._wait_zone_serials(state.serial)
            return
        mark = _log_size(service.log)
        master = procs.read_pid(service.pid_file)
        old_children = procs.children(master) if master is not None else []
        procs.run(procs.in_namespace(_holder(state), service.reload))
        if service.name.startswith("postfix-"):
            # `postfix reload` only signals the master; wait until it has re-read its files,
            # then until the processes started under the old files have exited ("at their
            # earliest convenience"): until then an idle old smtpd can still take the next
            # connection and serve, say, the certificate the fault just replaced.
            _wait_log(service.log, mark, "reload -- version", RELOAD_TIMEOUT)
            procs.wait_gone(old_children, RELOAD_TIMEOUT)
        if service.name == F.UNBOUND:
            # With a DNS fault active the answer may rightly lack AD (bogus zone): any
            # answer shows the reloaded resolver is serving.
            service = replace(
                service, probes=tuple(replace(p, kind="answers") for p in service.probes)
            )
        self._wait_ready([service])

    def _wait_zone_serials(self, serial: int) -> None:
        ns = self.spec.hosts["ns"].address
        deadline = time.monotonic() + RELOAD_TIMEOUT
        pending = set(zone_names(self.spec))
        while pending:
            for zone in list(pending):
                query = dns.message.make_query(zone, dns.rdatatype.SOA)
                try:
                    answer = dns.query.tcp(query, ns, timeout=0.5)
                except (OSError, dns.exception.DNSException):
                    continue
                for rrset in answer.answer:
                    if rrset.rdtype == dns.rdatatype.SOA and rrset[0].serial >= serial:
                        pending.discard(zone)
            if pending and time.monotonic() > deadline:
                raise LabError(f"knot did not load serial {serial} for {', '.join(pending)}")
            if pending:
                time.sleep(0.02)


def _holder(state: LabState) -> int:
    if state.holder is None:
        raise LabError("the lab is not running")
    return state.holder


def _next_serial(state: LabState | None) -> int:
    previous = state.serial if state else 0
    return max(previous + 1, int(time.time()))


def _sleep_into_next_second() -> None:
    """Return once the wall clock (``time.time()``) has entered its next whole second."""
    boundary = math.floor(time.time()) + 1
    while (left := boundary - time.time()) > 0:
        time.sleep(left)


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path else 0
    except FileNotFoundError:
        return 0


def _wait_log(path: Path | None, offset: int, needle: str, timeout: float) -> None:
    if path is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with path.open("rb") as log:
                log.seek(offset)
                if needle.encode() in log.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise LabError(f"{path}: no {needle!r} within {timeout:.0f} s")
