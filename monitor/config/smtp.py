"""The ``smtp`` section: which SMTP endpoints to probe, and the modules of ``/probe``.

:class:`SmtpProbeSettings` is how one endpoint is probed (TLS mode, names, timeouts,
DANE and PKIX policy, the next certificate of a rollover).  A scheduled target
(:class:`SmtpTarget`) adds where and when; a ``/probe`` module (:class:`SmtpModule`)
adds only a timeout, the target comes with each request as blackbox_exporter does it.
Per-target opt-in settings of other SMTP checks hang on :class:`SmtpTarget`.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigPath, Port, PositiveSeconds, Schedule, Strict

Family = Literal["ipv4", "ipv6"]
TlsMode = Literal["starttls", "implicit", "none"]


def address_family(host: str) -> Family | None:
    """The family of an IP literal, None for a host name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return "ipv6" if address.version == 6 else "ipv4"


class SmtpProbeSettings(Strict):
    tls: TlsMode = "starttls"
    """How TLS starts: STARTTLS after EHLO (25, 587), TLS from the first byte (465), or
    not at all."""
    server_name: str | None = None
    """Name expected in the certificate, sent as SNI and used for the TLSA lookup
    (`_PORT._tcp.NAME`); defaults to the host name (for `mx_of`: each MX name)."""
    banner_host: str | None = None
    """Host name the 220 banner must start with (e.g. `mx1.example.org`); unset: not checked."""
    ehlo_name: str = Field(default="mailprobe.invalid", min_length=1)
    """Name sent in EHLO."""
    phase_timeout: PositiveSeconds | None = None
    """Seconds one phase (connect, banner, EHLO, TLS, ...) may take; must be below the
    check's timeout so a hang is reported with its phase. Unset: 80% of the timeout."""
    dane: Literal["auto", "required", "off"] = "auto"
    """DANE (RFC 7672): `auto` verifies when TLSA records are published, `required`
    also fails when there are none, `off` skips the lookup. Needs `dns.resolvers`."""
    pkix: Literal["required", "report"] = "required"
    """`required`: a certificate that fails PKIX validation (expired, wrong name, unknown
    CA) fails the check; `report`: only reported, as MX-to-MX mail with DANE needs no PKIX."""
    cert_warn_days: float = Field(default=14.0, ge=0)
    """A served certificate expiring sooner than this turns the check to warn."""
    next_cert_file: ConfigPath | None = None
    """PEM certificate (chain) the endpoint will serve next: warn when no published TLSA
    record would match it (rollover)."""
    next_key_file: ConfigPath | None = None
    """PEM public or private key the endpoint will use next: warn when no published TLSA
    record with selector 1 would match it. Only its public half is read."""


def _mailbox(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c in value for c in "<> \t\r\n"):
        raise ValueError(f"{value!r} is not an address like user@example.org")
    return value


class RelayProbeConfig(Strict):
    mail_from: str = "relay-probe@mailprobe.invalid"
    """Sender the outside client gives in MAIL FROM."""
    rcpt_to: str = "relay-probe@relay-test.invalid"
    """Recipient in a foreign domain; RCPT TO it must be refused. RSET follows, never DATA."""

    @field_validator("mail_from", "rcpt_to")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return _mailbox(value)


class BareLfConfig(Strict):
    sink: str
    """Recipient that accepts and discards mail: the only address the probe writes to."""
    mail_from: str = ""
    """Envelope sender; empty is the null sender (no bounce can go anywhere)."""

    @field_validator("sink")
    @classmethod
    def _sink(cls, value: str) -> str:
        return _mailbox(value)

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        return value if value == "" else _mailbox(value)


class SecurityConfig(Strict):
    auth_before_tls: bool = False
    """Fail when the EHLO reply before STARTTLS lists AUTH (not for implicit TLS)."""
    plaintext_auth: bool = False
    """Fail when AUTH PLAIN before STARTTLS is not refused; no credential is sent."""
    open_relay: RelayProbeConfig | None = None
    """Fail when RCPT TO a foreign domain is accepted from this client; `{}` for defaults."""
    bare_lf: BareLfConfig | None = None
    """Fail when a bare <LF>.<LF> ends DATA (SMTP smuggling); writes one message to `sink`."""
    source_address: str | None = None
    """Local address the probes connect from, so the server sees an outside client."""
    schedule: Schedule = Schedule()
    """Interval and timeout of these probes; unset interval: one hour."""

    @field_validator("source_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


class TlsQualityConfig(Strict):
    schedule: Schedule = Schedule()
    """Interval and timeout of the scan; unset: once a day, 300 s."""
    network_timeout: int = Field(default=5, ge=1, le=60)
    """Seconds for each of the scan's connections (it makes a few hundred)."""


class SmtpTarget(SmtpProbeSettings):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    """Label value naming this endpoint in results and metrics."""
    host: str | None = None
    """Host name or address to connect to; give this or `mx_of`."""
    mx_of: str | None = None
    """Probe every MX host of this domain, by preference (needs `dns.resolvers`)."""
    port: Port = 25
    """TCP port: 25 (MX), 465 (implicit TLS), 587 (submission)."""
    families: list[Family] | None = None
    """Address families probed, each as its own check labelled `ipv4`/`ipv6`; default both
    for a host name or `mx_of`, the address's own family for an IP literal."""
    schedule: Schedule = Schedule()
    """Interval and timeout of this endpoint's checks."""
    security: SecurityConfig | None = None
    """Opt-in security probes (AUTH before TLS, open relay, bare <LF>): see docs/smtp.md."""
    tls_quality: TlsQualityConfig | None = None
    """Opt-in TLS quality scan with sslyze (versions, suites, groups, certificate), rated
    as internet.nl rates it; slow, so on its own schedule. `{}` for the defaults."""

    @model_validator(mode="after")
    def _security_probes(self) -> Self:
        if self.tls_quality is not None and self.host is None:
            raise ValueError("tls_quality: the scan needs 'host' (one server), not 'mx_of'")
        if self.tls_quality is not None and self.tls == "none":
            raise ValueError("tls_quality: this target does not use TLS (tls: none)")
        if self.security is None:
            return self
        if self.host is None:
            raise ValueError("security: the probes need 'host' (one server), not 'mx_of'")
        auth = self.security.auth_before_tls or self.security.plaintext_auth
        if auth and self.tls == "implicit":
            raise ValueError(
                "security: AUTH probes need a phase before TLS; this target uses implicit TLS"
            )
        return self

    @model_validator(mode="after")
    def _one_host(self) -> Self:
        if (self.host is None) == (self.mx_of is None):
            raise ValueError("give exactly one of 'host' or 'mx_of'")
        literal = address_family(self.host) if self.host is not None else None
        if literal is not None and self.families not in (None, [literal]):
            raise ValueError(f"families: {self.host} is an {literal} address")
        if self.families is not None and len(set(self.families)) != len(self.families):
            raise ValueError("families: listed twice")
        if self.families == []:
            raise ValueError("families: give at least one")
        return self

    @property
    def probed_families(self) -> tuple[Family, ...]:
        if self.families is not None:
            return tuple(self.families)
        literal = address_family(self.host) if self.host is not None else None
        return (literal,) if literal is not None else ("ipv4", "ipv6")


class SmtpModule(SmtpProbeSettings):
    """A ``/probe`` module: ``/probe?target=HOST:PORT&module=NAME``."""

    timeout: PositiveSeconds = 10.0
    """Seconds one probe may take; a scrape's `X-Prometheus-Scrape-Timeout-Seconds`
    lowers it, as blackbox_exporter does."""
    families: list[Family] = Field(default_factory=lambda: list[Family](["ipv4"]), min_length=1)
    """Address families probed for a host name given as target; IP literals use their own."""


class MtaStsDomain(Strict):
    domain: str = Field(min_length=1)
    """Mail domain whose MTA-STS policy is fetched and judged (needs `dns.resolvers`)."""
    schedule: Schedule = Schedule()
    """Interval and timeout of this domain's MTA-STS check; unset interval: one hour."""


class SmtpSection(Strict):
    ca_file: ConfigPath | None = None
    """CA bundle for PKIX validation of every endpoint; unset uses the system store."""
    sslyze_python: ConfigPath | None = None
    """Interpreter of the virtualenv holding sslyze, for `tls_quality`; unset:
    `sslyze/bin/python` inside mailprobe's own virtualenv (scripts/setup.sh makes it)."""
    targets: list[SmtpTarget] = Field(default_factory=list)
    """Endpoints to probe."""
    mta_sts: list[MtaStsDomain] = Field(default_factory=list)
    """Domains whose MTA-STS policy (RFC 8461) is fetched over HTTPS and judged."""
    modules: dict[str, SmtpModule] = Field(default_factory=dict)
    """Named probe settings for `/probe?target=HOST:PORT&module=NAME` (blackbox style)."""
    probe_concurrency: int = Field(default=64, ge=1, le=1024)
    """`/probe` requests probed at once; more wait their turn (within their timeout)."""

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for target in self.targets:
            if target.name in seen:
                raise ValueError(f"targets: name {target.name!r} is used twice")
            seen.add(target.name)
        return self
