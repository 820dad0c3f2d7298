"""MTA-STS (RFC 8461) as a sending MTA sees it: TXT record, policy over HTTPS, MX coverage.

The ``_mta-sts`` TXT record is read with the DNS checks' parser
(:func:`exporters.dns.policy.read_policy_record`); every name is resolved through the
configured resolvers (the ``exporters/dns`` seam), never the system's. The policy is
fetched the way RFC 8461 3.3 asks a sender to: HTTPS to ``mta-sts.DOMAIN`` with a
certificate valid for that name, no redirects, HTTP 200, and (our caps) a size limit
and a per-step timeout. A policy whose text changed while the TXT ``id`` stayed the same
is a warning: senders that cached the old one never fetch the new one (RFC 8461 3.1).
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import dns.rdatatype
import httpx
from dns.rdtypes.ANY.MX import MX

from exporters.dns.findings import Findings, name_text
from exporters.dns.policy import PolicyRecordError, read_policy_record
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import FactValue, Outcome, Phase

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_AGE_LIMIT = 31_557_600
"""RFC 8461 3.2: the largest max_age a policy may give."""
MAX_AGE_WARN = 86_400
"""A policy cached for less than a day protects little (RFC 8461 expects weeks)."""
MODES = ("enforce", "testing", "none")


@dataclass(frozen=True, slots=True)
class MtaStsSettings:
    domain: str
    ca_file: Path | None = None
    """CA bundle the policy host's certificate must chain to; unset: the system store."""
    step_timeout: float = 10.0
    """Seconds for each step of the HTTPS fetch (connect, TLS, each read)."""
    max_policy_bytes: int = 65_536
    """Bodies longer than this are refused unread (RFC 8461 3.3 lets senders cap it)."""
    port: int = 443
    """Only tests change this: RFC 8461 fetches from port 443."""


@dataclass(frozen=True, slots=True)
class RememberedPolicy:
    policy_id: str
    sha256: str
    changed_under_id: str | None = None
    """The TXT id that was in place when the policy text last changed without it."""


class StsPolicyMemory(Protocol):
    """What the check remembers of a domain's last policy (monitor/state implements it)."""

    async def recall(self, domain: str) -> RememberedPolicy | None: ...

    async def remember(self, domain: str, policy: RememberedPolicy) -> None: ...


class PolicyMemoryError(Exception):
    """The memory cannot be read or written; the reason says why."""


@dataclass(frozen=True, slots=True)
class StsPolicy:
    mode: str
    max_age: int
    mx: tuple[str, ...]
    problems: tuple[str, ...] = ()


@dataclass
class FetchedPolicy:
    """The policy file as fetched (``body``), or why it could not be (``reason``)."""

    url: str
    body: str = ""
    reason: str = ""
    """Why the fetch failed, when it did."""
    facts: dict[str, FactValue] = field(default_factory=dict)


def parse_policy(text: str) -> StsPolicy:
    """Read a policy file (RFC 8461 3.2); problems name the field in the RFC's words."""
    problems: list[str] = []
    fields: dict[str, str] = {}
    mx: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            problems.append(f"line {number} is not 'key: value'")
            continue
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        elif key in ("version", "mode", "max_age"):
            if key in fields:
                problems.append(f"'{key}' appears twice")
            fields[key] = value
    if fields.get("version") != "STSv1":
        problems.append(f"version is {fields.get('version', 'missing')!r}, not 'STSv1'")
    mode = fields.get("mode", "")
    if mode not in MODES:
        problems.append(f"mode is {mode or 'missing'!r}, not enforce, testing or none")
    max_age_text = fields.get("max_age", "")
    max_age = int(max_age_text) if max_age_text.isdigit() and len(max_age_text) <= 10 else -1
    if max_age < 0:
        problems.append(f"max_age {max_age_text or 'missing'!r} is not a number of seconds")
    elif max_age > MAX_AGE_LIMIT:
        problems.append(f"max_age {max_age} is above the limit of {MAX_AGE_LIMIT} (RFC 8461 3.2)")
    if not mx and mode != "none":
        problems.append("no 'mx' pattern")
    for pattern in mx:
        if not _valid_pattern(pattern):
            problems.append(f"mx pattern {pattern!r} is not a host name or '*.' plus one")
    return StsPolicy(mode, max_age, tuple(mx), tuple(problems))


def _valid_pattern(pattern: str) -> bool:
    name = pattern.removeprefix("*.")
    labels = name.split(".")
    return bool(name) and "*" not in name and all(labels) and len(labels) >= 2


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: a pattern ``*.example.com`` stands for exactly one left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, _dot, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return host == pattern


async def check_mta_sts(
    resolver: StubResolver,
    settings: MtaStsSettings,
    memory: StsPolicyMemory | None,
    phase: Phase,
) -> Outcome:
    domain = name_text(settings.domain)
    found = Findings()
    try:
        record = await read_policy_record(resolver, domain, "mta-sts", phase)
    except PolicyRecordError as exc:
        return Outcome.fail(f"MTA-STS for {domain}: {exc.reason}", {"mta_sts_policy_fetched": 0})
    found.dnssec(record.answer)
    found.note(f"{record.owner}: {record.text}")
    for problem in record.problems:
        found.fail(problem)
    fetched = await fetch_policy(resolver, domain, settings, phase)
    found.facts.update(fetched.facts)
    if not fetched.facts.get("mta_sts_policy_fetched"):
        found.fail(fetched.reason)
        return found.outcome()
    policy = parse_policy(fetched.body)
    found.note(f"policy at {fetched.url}:\n{fetched.body.strip()}")
    for problem in policy.problems:
        found.fail(f"policy at {fetched.url}: {problem}")
    if policy.problems:
        found.facts["mta_sts_policy_valid"] = 0
        return found.outcome()
    found.facts["mta_sts_policy_valid"] = 1
    found.facts["mta_sts_mode"] = policy.mode
    found.facts["mta_sts_max_age_seconds"] = policy.max_age
    if policy.mode == "testing":
        found.warn(f"MTA-STS policy of {domain} is in mode testing: senders report but deliver")
    elif policy.mode == "none":
        found.warn(f"MTA-STS policy of {domain} is mode none: the policy is being withdrawn")
    if policy.max_age < MAX_AGE_WARN:
        found.warn(
            f"MTA-STS policy of {domain}: max_age {policy.max_age} s is under a day "
            "(RFC 8461 3.2 expects weeks)"
        )
    if policy.mode != "none":
        await _check_mx_coverage(resolver, domain, policy, found, phase)
    if memory is not None and record.sts_id is not None:
        phase.enter("compare with the remembered policy")
        await _compare_with_memory(memory, domain, record.sts_id, fetched, found)
    return found.outcome()


async def fetch_policy(
    resolver: StubResolver, domain: str, settings: MtaStsSettings, phase: Phase
) -> FetchedPolicy:
    """GET the policy; ``facts['mta_sts_policy_fetched']`` says whether it worked."""
    host = f"mta-sts.{domain}"
    url = f"https://{host}{POLICY_PATH}"
    out = FetchedPolicy(url, facts={"mta_sts_policy_fetched": 0})
    phase.enter(f"A/AAAA {host}")
    try:
        addresses = await _addresses(resolver, host)
    except DnsError as exc:
        out.reason = f"resolve: MTA-STS policy host {host}: {exc.reason}"
        return out
    if not addresses:
        out.reason = f"resolve: MTA-STS policy host {host} has no A or AAAA record"
        return out
    errors: list[str] = []
    for address in addresses:
        phase.enter(f"HTTPS GET {url} at {address}")
        try:
            out.body = await _get(address, host, settings)
        except _FetchError as exc:
            errors.append(f"{address}: {exc.reason}")
            continue
        out.facts["mta_sts_policy_fetched"] = 1
        return out
    out.reason = f"https get: MTA-STS policy {url} cannot be fetched: {'; '.join(errors)}"
    return out


async def _addresses(resolver: StubResolver, host: str) -> list[str]:
    found: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        answer = await resolver.query(host, rdtype)
        found.extend(str(getattr(r, "address", "")) for r in answer.records)
    return [a for a in found if a]


class _FetchError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _get(address: str, host: str, settings: MtaStsSettings) -> str:
    """One GET to ``address`` for ``host`` (SNI and certificate name), capped in size."""
    literal = f"[{address}]" if ":" in address else address
    request_url = f"https://{literal}:{settings.port}{POLICY_PATH}"
    timeout = httpx.Timeout(settings.step_timeout)
    async with httpx.AsyncClient(
        verify=_tls_context(settings.ca_file),
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,
    ) as client:
        try:
            request = client.build_request(
                "GET",
                request_url,
                headers={"Host": host, "Accept": "text/plain"},
                extensions={"sni_hostname": host},
            )
            response = await client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    where = response.headers.get("location")
                    extra = f" to {where} (senders do not follow redirects)" if where else ""
                    raise _FetchError(f"HTTP {response.status_code}{extra}, not 200")
                media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if media != "text/plain":
                    raise _FetchError(f"media type is {media or 'missing'!r}, not text/plain")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body.extend(chunk)
                    if len(body) > settings.max_policy_bytes:
                        raise _FetchError(f"policy longer than {settings.max_policy_bytes} bytes")
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise _FetchError(f"no answer within {settings.step_timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _FetchError(_transport_reason(exc)) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _FetchError("policy is not UTF-8 text") from None


def _transport_reason(exc: httpx.TransportError) -> str:
    """Say what failed from the cause's type, never the library's message."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server does not speak HTTP/1.1 properly"
    return "connection broke off"


async def _check_mx_coverage(
    resolver: StubResolver, domain: str, policy: StsPolicy, found: Findings, phase: Phase
) -> None:
    phase.enter(f"MX {domain}")
    try:
        answer = await resolver.query(domain, dns.rdatatype.MX)
    except DnsError as exc:
        found.fail(f"MTA-STS for {domain}: {exc.reason}")
        return
    hosts = sorted({name_text(r.exchange) for r in answer.records if isinstance(r, MX)})
    hosts = [h for h in hosts if h]
    uncovered = uncovered_hosts(policy, hosts)
    found.facts["mta_sts_mx_uncovered"] = len(uncovered)
    if uncovered:
        patterns = ", ".join(policy.mx)
        message = (
            f"MTA-STS policy of {domain} does not cover MX {', '.join(uncovered)} "
            f"(patterns: {patterns})"
        )
        if policy.mode == "enforce":
            found.fail(message + ": STS senders will not deliver there")
        else:
            found.warn(message)


async def _compare_with_memory(
    memory: StsPolicyMemory,
    domain: str,
    sts_id: str,
    fetched: FetchedPolicy,
    found: Findings,
) -> None:
    digest = hashlib.sha256(fetched.body.encode()).hexdigest()
    try:
        before = await memory.recall(domain)
        stale = _stale_id(before, sts_id, digest)
        await memory.remember(domain, RememberedPolicy(sts_id, digest, stale))
    except PolicyMemoryError as exc:
        found.warn(f"MTA-STS for {domain}: policy changes cannot be followed: {exc}")
        return
    found.facts["mta_sts_id_stale"] = int(stale is not None)
    if stale is not None:
        found.warn(
            f"MTA-STS policy at {fetched.url} changed but the id in _mta-sts.{domain} is "
            f"still {sts_id}: senders that cached the old policy keep it until max_age runs out"
        )


def _stale_id(before: RememberedPolicy | None, sts_id: str, digest: str) -> str | None:
    """The id under which the text changed, while that id is still published."""
    if before is None or before.policy_id != sts_id:
        return None
    if before.sha256 != digest:
        return sts_id
    return before.changed_under_id


def uncovered_hosts(policy: StsPolicy, hosts: Sequence[str]) -> list[str]:
    """MX hosts no ``mx`` pattern of the policy matches."""
    return [h for h in hosts if not any(mx_matches(p, h) for p in policy.mx)]
