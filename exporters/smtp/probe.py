"""The SMTP prober: a host (or every MX of a domain) in one address family, probed
the way a careful DANE-aware MTA would talk to it, with a verdict a person can act on.

Per endpoint: resolve (through the DNS checks' resolver when one is configured), look
up TLSA, then a session (:mod:`exporters.smtp.session`), then the PKIX verdict and the
DANE verdict on the one served chain, reported apart.  The outcome carries the facts
of one endpoint (the first that failed, else the first), the reasons of all, and the
transcript of each session as ``detail`` for the debug view.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dns.rdatatype
from dns.rdtypes.ANY.MX import MX

from exporters.dns.resolver import (
    DnsBadAnswer,
    DnsBogus,
    DnsError,
    DnssecState,
    DnsTimeout,
    StubResolver,
)
from exporters.result import CheckCannotRun, FactValue, Outcome, Phase, Status
from exporters.smtp import dane
from exporters.smtp.session import (
    EXTENSIONS,
    Family,
    PhaseFailure,
    SmtpEndpoint,
    TlsMode,
    open_session,
)
from exporters.smtp.threaded import complete_session
from exporters.smtp.tlsfacts import (
    PkixState,
    TlsFacts,
    legacy_context,
    pkix_verdict_now,
    trust_store,
)
from exporters.smtp.transcript import Transcript

MAX_ADDRESSES = 8
"""Addresses probed per host and family; more are listed in the detail, not probed."""


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    port: int
    family: Family
    tls: TlsMode = "starttls"
    server_name: str | None = None
    banner_host: str | None = None
    ehlo_name: str = "mailprobe.invalid"
    phase_timeout: float = 8.0
    dane: Literal["auto", "required", "off"] = "auto"
    pkix: Literal["required", "report"] = "required"
    ca_file: Path | None = None
    cert_warn_days: float = 14.0
    next_cert_file: Path | None = None
    next_key_file: Path | None = None


@dataclass
class _Result:
    """One endpoint's verdict."""

    label: str
    status: Status = Status.OK
    reasons: list[str] = field(default_factory=list)
    facts: dict[str, FactValue] = field(default_factory=dict)
    transcript: Transcript = field(default_factory=Transcript)
    verdicts: list[str] = field(default_factory=list)

    def worse(self, status: Status, reason: str) -> None:
        if status.severity > self.status.severity:
            self.status = status
        self.reasons.append(reason)


async def probe_host(
    host: str, settings: ProbeSettings, resolver: StubResolver | None, phase: Phase
) -> Outcome:
    """Probe ``host`` (a name or an address) on ``settings.port`` in one family."""
    started = time.monotonic()
    _check_trust(settings)
    literal = _literal(host)
    name = settings.server_name or (None if literal else host)
    results = await _probe_name(host, name, settings, resolver, phase, mx_secure=True)
    return _outcome(results, started)


async def probe_mx_of(
    domain: str, settings: ProbeSettings, resolver: StubResolver | None, phase: Phase
) -> Outcome:
    """Probe every MX host of ``domain``, by preference."""
    started = time.monotonic()
    _check_trust(settings)
    phase.enter("resolve")
    if resolver is None:
        return Outcome.fail(
            "resolve: mx_of needs a resolver: configure dns.resolvers", _base(settings)
        )
    mark = time.monotonic()
    try:
        answer = await resolver.query(domain, "MX")
    except DnsError as exc:
        facts = {**_base(settings), "failed_phase": "resolve"}
        return Outcome.fail(f"resolve: {exc.reason}{await _dns_hint(resolver, exc)}", facts)
    hosts = sorted((r for r in answer.records if isinstance(r, MX)), key=lambda r: r.preference)
    if not hosts:
        facts = {**_base(settings), "failed_phase": "resolve"}
        return Outcome.fail(f"resolve: {domain} has no MX record", facts)
    if len(hosts) == 1 and hosts[0].exchange.to_text(omit_final_dot=True) in ("", "."):
        facts = {**_base(settings), "failed_phase": "resolve"}
        return Outcome.fail(f"resolve: {domain} publishes a Null MX: it accepts no mail", facts)
    secure = answer.dnssec is DnssecState.SECURE
    results: list[_Result] = []
    for record in hosts:
        mx = record.exchange.to_text(omit_final_dot=True)
        found = await _probe_name(mx, mx, settings, resolver, phase, mx_secure=secure)
        for result in found:
            result.facts.setdefault("resolve_seconds", time.monotonic() - mark)
        results.extend(found)
    return _outcome(results, started)


async def _probe_name(
    host: str,
    tls_name: str | None,
    settings: ProbeSettings,
    resolver: StubResolver | None,
    phase: Phase,
    *,
    mx_secure: bool,
) -> list[_Result]:
    phase.enter("resolve")
    mark = time.monotonic()
    try:
        addresses, addresses_secure = await _addresses(host, settings, resolver)
    except PhaseFailure as exc:
        result = _Result(host, facts=_base(settings))
        result.facts["failed_phase"] = exc.phase
        result.worse(Status.FAIL, exc.reason)
        return [result]
    resolved = time.monotonic() - mark
    lookup: dane.TlsaLookup | None = None
    tlsa_seconds = 0.0
    if settings.tls != "none" and settings.dane != "off":
        if tls_name is None:
            lookup = dane.TlsaLookup(
                "", dane.DaneState.NOT_CHECKED, reason=f"{host} is an address: no TLSA name"
            )
        elif resolver is None:
            lookup = dane.TlsaLookup(
                "", dane.DaneState.NOT_CHECKED, reason="no resolver configured"
            )
        elif not mx_secure:
            lookup = dane.TlsaLookup(
                "", dane.DaneState.INSECURE, reason=f"the MX lookup naming {host} is not signed"
            )
        elif not addresses_secure:
            # RFC 7672 2.2.2: DANE applies only to a host whose addresses are secure.
            lookup = dane.TlsaLookup(
                "", dane.DaneState.INSECURE, reason=f"the address records of {host} are not signed"
            )
        else:
            phase.enter("tlsa")
            mark = time.monotonic()
            lookup = await dane.lookup_tlsa(resolver, tls_name, settings.port)
            tlsa_seconds = time.monotonic() - mark
    results = []
    for address in addresses[:MAX_ADDRESSES]:
        label = address if host == address else f"{host} ({address})"
        result = _Result(label, facts=_base(settings))
        result.facts["resolve_seconds"] = resolved
        if lookup is not None and lookup.owner:
            result.facts["tlsa_seconds"] = tlsa_seconds
        endpoint = SmtpEndpoint(
            address=address,
            port=settings.port,
            tls=settings.tls,
            tls_name=tls_name,
            banner_host=settings.banner_host,
            ehlo_name=settings.ehlo_name,
            phase_timeout=settings.phase_timeout,
        )
        await _probe_endpoint(endpoint, settings, lookup, resolver, phase, result)
        results.append(result)
    if len(addresses) > MAX_ADDRESSES:
        results[0].verdicts.append(
            f"{len(addresses) - MAX_ADDRESSES} more addresses of {host} not probed"
        )
    return results


async def _addresses(
    host: str, settings: ProbeSettings, resolver: StubResolver | None
) -> tuple[list[str], bool]:
    """The host's addresses in the family, and whether the answer was DNSSEC-secure
    (a literal is; the system resolver's answer is not known to be)."""
    literal = _literal(host)
    if literal is not None:
        if literal != settings.family:
            raise PhaseFailure("resolve", f"resolve: {host} is not an {settings.family} address")
        return [str(ipaddress.ip_address(host.strip("[]")))], True
    rdtype = "AAAA" if settings.family == "ipv6" else "A"
    if resolver is not None:
        try:
            answer = await resolver.query(host, rdtype)
        except DnsError as exc:
            raise PhaseFailure(
                "resolve", f"resolve: {exc.reason}{await _dns_hint(resolver, exc)}"
            ) from None
        found = [r.to_text() for r in answer.records]
        if not found:
            why = "does not exist" if answer.nxdomain else f"has no {rdtype} record"
            raise PhaseFailure("resolve", f"resolve: {host} {why}")
        return found, answer.dnssec is DnssecState.SECURE
    family = socket.AF_INET6 if settings.family == "ipv6" else socket.AF_INET
    try:
        async with asyncio.timeout(settings.phase_timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, settings.port, family=family, type=socket.SOCK_STREAM
            )
    except TimeoutError:
        raise PhaseFailure(
            "resolve",
            f"resolve: the system resolver gave no {rdtype} for {host} "
            f"within {settings.phase_timeout:g} s",
            timed_out=True,
        ) from None
    except socket.gaierror as exc:
        raise PhaseFailure("resolve", f"resolve: {host}: {exc.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos)), False


async def _probe_endpoint(
    endpoint: SmtpEndpoint,
    settings: ProbeSettings,
    lookup: dane.TlsaLookup | None,
    resolver: StubResolver | None,
    phase: Phase,
    result: _Result,
) -> None:
    facts = result.facts
    try:
        session = await complete_session(endpoint, phase, result.transcript)
    except PhaseFailure as exc:
        facts["failed_phase"] = exc.phase
        hint = ""
        if exc.timed_out and resolver is not None:
            hint = await _resolver_unreachable_hint(resolver)
        reason = exc.reason
        if exc.handshake:
            old = await _legacy_version(endpoint)
            if old is not None:
                reason = (
                    f"{exc.phase}: TLS handshake with {endpoint.where} failed: no common TLS "
                    f"version: the server offers only {old} (TLS 1.2 or newer is needed)"
                )
                facts["tls_version"] = old
        result.worse(Status.FAIL, reason + hint)
        if lookup is not None:
            facts["dane"] = (
                lookup.state.value
                if lookup.state is not dane.DaneState.VERIFIED
                else (dane.DaneState.NOT_CHECKED.value)
            )
        return
    facts.update({f"{k}_seconds": v for k, v in session.timings.items()})
    if session.banner is not None:
        facts["banner_code"] = session.banner.code
        facts["banner_host"] = (session.banner.lines[0].split() or [""])[0]
    ehlo = session.ehlo_before_tls or session.ehlo
    if ehlo is not None:
        for ext in EXTENSIONS:
            facts[f"ext_{ext}"] = ext in ehlo.extensions
    if session.ehlo is not None:
        # After STARTTLS the server may offer more (AUTH on 587): report what it says then.
        for ext in EXTENSIONS:
            if ext != "starttls":
                facts[f"ext_{ext}"] = ext in session.ehlo.extensions
        facts["auth_mechanisms"] = " ".join(session.ehlo.auth_mechanisms)
        if session.ehlo.size_limit is not None:
            facts["size_limit_bytes"] = session.ehlo.size_limit
    if session.tls is not None:
        _judge_tls(endpoint, settings, lookup, session.tls, result)


async def _legacy_version(endpoint: SmtpEndpoint) -> str | None:
    """After a failed handshake: does the server complete one with TLS 1.0 or 1.1?"""
    try:
        session = await open_session(endpoint, tls_context=legacy_context())
    except PhaseFailure:
        return None
    names = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1"}
    version = names.get(session.tls.version, session.tls.version) if session.tls else None
    await session.close()
    return version


def _judge_tls(
    endpoint: SmtpEndpoint,
    settings: ProbeSettings,
    lookup: dane.TlsaLookup | None,
    tls: TlsFacts,
    result: _Result,
) -> None:
    facts = result.facts
    tls_phase = "tls" if endpoint.tls == "implicit" else "starttls"
    not_after = tls.not_after.timestamp()
    days_left = (not_after - time.time()) / 86400
    facts.update(
        {
            "tls_version": tls.version,
            "tls_cipher": tls.cipher,
            "tls_key_type": tls.key_type,
            "tls_key_bits": tls.key_bits,
            "cert_subject": tls.subject,
            "cert_issuer": tls.issuer,
            "cert_chain_length": len(tls.chain),
            "cert_not_after": not_after,
            "cert_days_left": round(days_left, 3),
        }
    )
    name = endpoint.tls_name or endpoint.address
    pkix = pkix_verdict_now(tls, name, settings.ca_file)
    facts["pkix"] = pkix.state.value
    result.verdicts.append(f"PKIX: {pkix.state.value}" + (f" ({pkix.reason})" * bool(pkix.reason)))
    verdict = (
        dane.verdict(lookup, tls.chain, name)
        if lookup is not None
        else dane.DaneVerdict(dane.DaneState.NOT_CHECKED, "DANE is off for this target")
    )
    facts["dane"] = verdict.state.value
    if lookup is not None and lookup.records:
        facts["dane_rollover_scheme"] = verdict.rollover_scheme
    if verdict.matched is not None:
        facts["dane_record"] = verdict.matched.short
    dane_text = _dane_words(verdict, lookup)
    result.verdicts.append(f"DANE: {verdict.state.value}" + (f" ({dane_text})" * bool(dane_text)))

    pkix_bad = pkix.state not in (PkixState.VALID, PkixState.NOT_CHECKED)
    dane_status = _dane_status(verdict.state, settings.dane)
    if pkix_bad and settings.pkix == "required":
        facts.setdefault("failed_phase", tls_phase)
        if verdict.state is dane.DaneState.VERIFIED:
            dane_text += ", so DANE senders still deliver"
        result.worse(Status.FAIL, f"{tls_phase}: PKIX: {pkix.reason}; DANE: {dane_text}")
    elif dane_status is not Status.OK:
        # Verdicts from DNS alone (no usable record, bogus, lookup failed) name the
        # TLSA lookup; a record that does not match the served chain names the handshake.
        where = tls_phase if verdict.state is dane.DaneState.MISMATCH else "tlsa"
        facts.setdefault("failed_phase", where)
        pkix_text = "valid" if not pkix_bad else pkix.reason
        if settings.dane == "required" and verdict.state in _NOT_APPLIED:
            dane_text = f"required, but {dane_text}"
        result.worse(dane_status, f"{where}: DANE: {dane_text}; PKIX: {pkix_text}")
    if days_left < settings.cert_warn_days and not pkix_bad:
        result.worse(
            Status.WARN,
            f"{tls_phase}: the certificate of {name} expires in {days_left:.1f} days "
            f"(warn below {settings.cert_warn_days:g})",
        )
    _judge_next(settings, lookup, name, result)


_NOT_APPLIED = (
    dane.DaneState.OFF,
    dane.DaneState.INSECURE,
    dane.DaneState.UNUSABLE,
    dane.DaneState.NOT_CHECKED,
)


def _judge_next(
    settings: ProbeSettings, lookup: dane.TlsaLookup | None, name: str, result: _Result
) -> None:
    if settings.next_cert_file is None and settings.next_key_file is None:
        return
    if lookup is None or not lookup.records:
        return
    try:
        matches, wanted = dane.next_matches(
            lookup.records, cert_file=settings.next_cert_file, key_file=settings.next_key_file
        )
    except (OSError, ValueError) as exc:
        what = settings.next_cert_file or settings.next_key_file
        result.worse(Status.WARN, f"tlsa: cannot read the next certificate or key {what}: {exc}")
        return
    result.facts["dane_next_matches"] = matches
    if not matches:
        result.worse(
            Status.WARN,
            f"tlsa: rollover: no TLSA record at {lookup.owner} matches the next "
            f"{'certificate' if settings.next_cert_file else 'key'} of {name}; publish "
            f"{wanted} beside the current record before switching",
        )


def _dane_status(state: dane.DaneState, mode: str) -> Status:
    if state is dane.DaneState.VERIFIED:
        return Status.OK
    if state in (dane.DaneState.MISMATCH, dane.DaneState.BOGUS, dane.DaneState.DNS_ERROR):
        return Status.FAIL
    if state is dane.DaneState.UNUSABLE:
        return Status.FAIL if mode == "required" else Status.WARN
    # off, insecure: DANE does not apply
    return Status.FAIL if mode == "required" else Status.OK


def _dane_words(verdict: dane.DaneVerdict, lookup: dane.TlsaLookup | None) -> str:
    state = verdict.state
    if state is dane.DaneState.VERIFIED and verdict.matched is not None:
        owner = lookup.owner if lookup else ""
        return f"TLSA {verdict.matched.short} at {owner} matches the served chain"
    if state in (dane.DaneState.OFF, dane.DaneState.INSECURE, dane.DaneState.UNUSABLE):
        return _DANE_NOT_APPLIED[state].format(reason=verdict.reason)
    if state is dane.DaneState.MISMATCH:
        return f"{verdict.reason}; DANE senders defer mail to this host"
    if state is dane.DaneState.BOGUS:
        return f"{verdict.reason}; DANE senders defer mail to this host"
    if state is dane.DaneState.DNS_ERROR:
        return f"TLSA lookup failed: {verdict.reason}; DANE senders defer mail to this host"
    return verdict.reason or "not checked"


_DANE_NOT_APPLIED = {
    dane.DaneState.UNUSABLE: "{reason}; DANE senders use TLS without authentication",
    dane.DaneState.OFF: "{reason} (DANE off: senders use TLS without authentication)",
    dane.DaneState.INSECURE: "{reason} (DANE does not apply)",
}


async def _dns_hint(resolver: StubResolver, exc: DnsError) -> str:
    if isinstance(exc, DnsTimeout | DnsBadAnswer) and not isinstance(exc, DnsBogus):
        return await _resolver_unreachable_hint(resolver)
    return ""


async def _resolver_unreachable_hint(resolver: StubResolver) -> str:
    """When a phase times out: is the resolver the checks use down as well?

    A mail server that cannot resolve stalls too (Postfix looks up the client before
    its banner), so an unreachable resolver makes DNS the likely cause.
    """
    probe = StubResolver(resolver.servers, timeout=min(1.0, resolver.timeout), retries=0)
    probe.transport = resolver.transport
    try:
        await probe.query(".", dns.rdatatype.SOA)
    except (DnsTimeout, DnsBadAnswer):
        servers = ", ".join(str(s) for s in resolver.servers)
        return (
            f"; the DNS resolver {servers} does not answer either: DNS is the likely cause "
            "(a mail server that cannot resolve stalls too)"
        )
    except DnsError:
        return ""
    return ""


def _check_trust(settings: ProbeSettings) -> None:
    """A CA bundle that cannot be read is the check's problem, not the server's."""
    if settings.tls == "none" or settings.pkix != "required":
        return
    try:
        trust_store(settings.ca_file)
    except ValueError as exc:
        raise CheckCannotRun(f"pkix: {exc}") from None


def _literal(host: str) -> Family | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return "ipv6" if address.version == 6 else "ipv4"


def _base(settings: ProbeSettings) -> dict[str, FactValue]:
    return {"family": settings.family, "port": settings.port}


def _outcome(results: list[_Result], started: float) -> Outcome:
    worst = max(results, key=lambda r: r.status.severity)
    chosen = worst if worst.status is not Status.OK else results[0]
    facts = dict(chosen.facts)
    facts["endpoints"] = len(results)
    facts["endpoints_failed"] = sum(1 for r in results if r.status is Status.FAIL)
    facts["total_seconds"] = time.monotonic() - started
    many = len(results) > 1
    reasons = [
        f"{r.label}: {reason}" if many else reason
        for r in results
        for reason in r.reasons
        if r.status is not Status.OK
    ]
    detail = "\n\n".join(_render(r) for r in results)
    if worst.status is Status.OK:
        return Outcome.ok(facts, detail)
    return Outcome(worst.status, "; ".join(reasons), facts, detail)


def _render(result: _Result) -> str:
    lines = [f"== {result.label}: {result.status.value}"]
    lines.extend(f"   {reason}" for reason in result.reasons)
    lines.extend(result.verdicts)
    lines.append(result.transcript.render())
    return "\n".join(lines)
