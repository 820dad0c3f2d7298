"""Where everything lives inside the lab folder (DIR)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

POSTFIX_INSTANCES = ("mx", "srs", "submission", "world")
USERS = ("alice", "canary", "dmarc")
"""alice: submission login; canary: the world mailbox; dmarc: the report mailbox."""
SINK_USER = "sink"
"""``sink@<domain>`` on the MX accepts mail and discards it (the bare-LF probe's sink)."""


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "lab.lock"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def holder_pid(self) -> Path:
        return self.root / "ns" / "holder.pid"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    def password_file(self, user: str) -> Path:
        return self.secrets / f"{user}.password"

    @property
    def srs_secret(self) -> Path:
        return self.secrets / "postsrsd.secret"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def live(self) -> Path:
        """The certificate files services actually read (copies chosen by the faults)."""
        return self.pki / "live"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def dns(self) -> Path:
        return self.root / "dns"

    @property
    def knot_conf(self) -> Path:
        return self.dns / "knot.conf"

    @property
    def zones(self) -> Path:
        return self.dns / "zones"

    @property
    def dnssec_keys(self) -> Path:
        return self.dns / "keys"

    @property
    def trust_anchors(self) -> Path:
        return self.dns / "ta.key"

    @property
    def unbound(self) -> Path:
        return self.root / "unbound"

    @property
    def unbound_conf(self) -> Path:
        return self.unbound / "unbound.conf"

    @property
    def dkim(self) -> Path:
        return self.root / "dkim"

    @property
    def ub_config_mutex(self) -> Path:
        """The LD_PRELOAD library both opendkims run with (monitor/lab/ubmutex.py)."""
        return self.dkim / "ub_config_mutex.so"

    @property
    def dmarc(self) -> Path:
        return self.root / "dmarc"

    @property
    def spf(self) -> Path:
        return self.root / "spf"

    def postfix(self, instance: str) -> Path:
        return self.root / "postfix" / instance

    def postfix_etc(self, instance: str) -> Path:
        return self.postfix(instance) / "etc"

    def maillog(self, instance: str) -> Path:
        return self.postfix(instance) / "maillog"

    @property
    def dovecot(self) -> Path:
        return self.root / "dovecot"

    @property
    def dovecot_conf(self) -> Path:
        return self.dovecot / "dovecot.conf"

    @property
    def lmtp_socket(self) -> Path:
        return self.dovecot / "run" / "lmtp"

    @property
    def auth_socket(self) -> Path:
        return self.dovecot / "run" / "auth-postfix"

    @property
    def mail(self) -> Path:
        return self.dovecot / "mail"

    @property
    def postsrsd(self) -> Path:
        return self.root / "postsrsd"

    @property
    def mta_sts(self) -> Path:
        return self.root / "mta-sts"
