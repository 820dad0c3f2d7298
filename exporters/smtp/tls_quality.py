"""TLS quality of an SMTP server, judged as internet.nl's mail test judges it.

The scan is sslyze's (the kept library; it speaks SMTP STARTTLS): every protocol version
from SSL 2.0 to TLS 1.3 on its own connection, every cipher suite it knows, the
ephemeral key of each accepted suite, the certificate chain, compression. It runs in a
separate process (``sslyze_worker.py``, under the interpreter of ``.venv/sslyze``):
sslyze is blocking code with its own threads, a process can be killed when its time is
up, and sslyze's pin on ``cryptography < 47`` cannot share mailprobe's environment
(parsedmarc needs a newer one). The event loop only waits on the child's pipes.

The verdict follows the NCSC-NL TLS guidelines (2025-05) as internet.nl encodes them
(``checks/tasks/tls/tls_constants.py``), with the levels this project asks for: SSL 2.0
and 3.0 fail, TLS 1.0 and 1.1 warn; cipher suites, key-exchange groups and certificate
keys and signatures rated *insufficient* fail, *phase out* warns.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import ipaddress
import json
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dns.rdatatype
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import CheckCannotRun, CheckFailure, FactValue, Outcome, Phase

WORKER = Path(__file__).with_name("sslyze_worker.py")
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""The worker prints suites and a chain: far less than this; more is a broken worker."""

Rating = Literal["good", "sufficient", "phase_out", "insufficient"]

_TLS13: dict[str, Rating] = {
    "TLS_AES_256_GCM_SHA384": "good",
    "TLS_CHACHA20_POLY1305_SHA256": "good",
    "TLS_AES_128_GCM_SHA256": "sufficient",
    "TLS_AES_128_CCM_SHA256": "sufficient",
}
_TLS12_SUFFICIENT = (
    re.compile(
        r"^TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$"
    ),
    re.compile(r"^TLS_ECDHE_ECDSA_WITH_AES_(128|256)_CCM$"),
)
_TLS12_PHASE_OUT = (
    re.compile(
        r"^TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_CBC_SHA(256|384)"
        r"|(CAMELLIA|ARIA)_(128|256)_(GCM|CBC)_SHA(256|384))$"
    ),
    re.compile(
        r"^TLS_DHE_RSA_WITH_(AES_(128|256)_(GCM_SHA(256|384)|CCM|CBC_SHA(256|384))"
        r"|CHACHA20_POLY1305_SHA256|(CAMELLIA|ARIA)_(128|256)_(GCM|CBC)_SHA(256|384))$"
    ),
)
_GOOD_CURVES = frozenset(
    {
        "secp256r1",
        "prime256v1",
        "secp384r1",
        "secp521r1",
        "X25519",
        "X448",
        "brainpoolP256r1",
        "brainpoolP384r1",
        "brainpoolP512r1",
    }
)
_LEGACY_VERSIONS = ("TLSv1.0", "TLSv1.1")
_BROKEN_VERSIONS = ("SSLv2", "SSLv3")
_SPOKEN = {
    "SSLv2": "SSL 2.0",
    "SSLv3": "SSL 3.0",
    "TLSv1.0": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}
_SHOWN = 3


def rate_suite(version: str, name: str) -> Rating:
    """The NCSC-NL rating of a cipher suite accepted in TLS 1.2 or 1.3."""
    if version == "TLSv1.3":
        return _TLS13.get(name, "insufficient")
    if any(p.match(name) for p in _TLS12_SUFFICIENT):
        return "sufficient"
    if any(p.match(name) for p in _TLS12_PHASE_OUT):
        return "phase_out"
    return "insufficient"


_FFDHE_X = {2048: 560316, 3072: 2625351, 4096: 5736041, 6144: 15705020, 8192: 10965728}
"""RFC 7919 appendix A: the X of each ffdhe group's formula."""
_FFDHE_PHASE_OUT = frozenset({"ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"})


def _e_scaled(bits: int) -> int:
    """floor(e * 2**bits), from the series of 1/k! in integers (64 guard bits)."""
    total, term, k = 0, 1 << (bits + 64), 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> 64


@functools.cache
def ffdhe_prime(bits: int) -> int:
    """The RFC 7919 prime of ``bits``: 2^b - 2^(b-64) + (floor(2^(b-130) e) + X) 2^64 - 1."""
    return (1 << bits) - (1 << (bits - 64)) + ((_e_scaled(bits - 130) + _FFDHE_X[bits]) << 64) - 1


def dh_group(prime_hex: str, generator: int) -> str | None:
    """``ffdhe3072`` etc. when the server's group is one of RFC 7919's, else None."""
    prime = int(prime_hex, 16) if prime_hex else 0
    bits = prime.bit_length()
    if generator == 2 and bits in _FFDHE_X and prime == ffdhe_prime(bits):
        return f"ffdhe{bits}"
    return None


def kex_words(kex: Mapping[str, Any]) -> str:
    if kex.get("type") == "DH":
        group = dh_group(str(kex.get("prime", "")), int(kex.get("generator", 0)))
        return group or f"DH {kex.get('size')} bits (not an RFC 7919 group)"
    return f"{kex.get('curve') or kex.get('type')} {kex.get('size')} bits"


def rate_key_exchange(kex: Mapping[str, Any]) -> Rating:
    """ECDHE groups by name; finite-field DH as internet.nl does it: RFC 7919's ffdhe3072
    and larger are phase-out, ffdhe2048 and any group of the server's own insufficient."""
    if kex.get("type") == "DH":
        group = dh_group(str(kex.get("prime", "")), int(kex.get("generator", 0)))
        return "phase_out" if group in _FFDHE_PHASE_OUT else "insufficient"
    curve = str(kex.get("curve") or "")
    if curve in _GOOD_CURVES:
        return "good"
    return "phase_out" if curve == "secp224r1" else "insufficient"


def rate_certificate(cert: x509.Certificate) -> tuple[Rating, Rating, str]:
    """Ratings of the certificate's public key and signature, and the key in words."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        key_rating: Rating = (
            "good" if bits >= 3072 else "phase_out" if bits >= 2048 else "insufficient"
        )
        words = f"RSA {bits} bits"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        curve = key.curve.name
        key_rating = (
            "good"
            if curve in _GOOD_CURVES
            else "phase_out"
            if curve == "secp224r1"
            else "insufficient"
        )
        words = f"EC {curve}"
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key_rating, words = "good", type(key).__name__.removesuffix("PublicKey")
    else:  # DSA and anything stranger (DSA is not named: cryptography warns on its use)
        kind = type(key).__name__.removesuffix("PublicKey").lstrip("_")
        size = getattr(key, "key_size", None)
        key_rating, words = "insufficient", f"{kind} {size} bits" if size else kind
    digest = cert.signature_hash_algorithm
    if digest is None:  # EdDSA signs without a separate hash
        signature: Rating = "good"
    elif isinstance(digest, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        signature = "good"
    elif isinstance(digest, hashes.SHA224):
        signature = "phase_out"
    else:
        signature = "insufficient"
    return key_rating, signature, words


def key_bits(cert: x509.Certificate) -> int:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return int(key.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ed448.Ed448PublicKey):
        return 456
    return int(getattr(key, "key_size", 0))


@dataclass
class _Judgement:
    where: str
    fails: list[str] = field(default_factory=list)
    warns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, FactValue] = field(default_factory=dict)

    def outcome(self) -> Outcome:
        detail = "\n".join([*self.fails, *self.warns, *self.notes]) or None
        head = f"TLS quality of {self.where}: "
        if self.fails:
            return Outcome.fail(head + "; ".join([*self.fails, *self.warns]), self.facts, detail)
        if self.warns:
            return Outcome.warn(head + "; ".join(self.warns), self.facts, detail)
        return Outcome.ok(self.facts, detail)


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


_CONNECT_WORDS = {
    "ServerRejectedConnection": "connection refused",
    "ConnectionToServerTimedOut": "no answer to the connection",
    "ServerRejectedOpportunisticTlsNegotiation": "STARTTLS refused or not offered",
    "ServerRejectedTlsHandshake": "TLS handshake refused",
    "ServerTlsConfigurationNotSupported": "no TLS version or suite sslyze can speak",
    "TlsHandshakeTimedOut": "TLS handshake timed out",
    "ServerHostnameCouldNotBeResolved": "the name does not resolve",
}


def judge(where: str, scan: Mapping[str, Any]) -> Outcome:
    """Judge a worker's answer (see ``sslyze_worker.py``)."""
    found = _Judgement(where)
    versions: Mapping[str, list[dict[str, Any]]] = scan.get("versions", {})
    accepted = [v for v, suites in versions.items() if suites]
    spoken = ", ".join(_SPOKEN.get(v, v) for v in accepted)
    found.notes.append(f"protocol versions accepted: {spoken or 'none'}")
    broken = [_SPOKEN[v] for v in _BROKEN_VERSIONS if versions.get(v)]
    legacy = [_SPOKEN[v] for v in _LEGACY_VERSIONS if versions.get(v)]
    found.facts["tls_quality_broken_versions"] = len(broken)
    found.facts["tls_quality_legacy_versions"] = len(legacy)
    if broken:
        found.fails.append(f"accepts {' and '.join(broken)} (broken: must be off)")
    if legacy:
        found.warns.append(f"accepts {' and '.join(legacy)} (NCSC-NL: phase out, then off)")
    ratings: dict[Rating, list[str]] = {"insufficient": [], "phase_out": []}
    weak_kex: dict[Rating, list[str]] = {"insufficient": [], "phase_out": []}
    for version in ("TLSv1.2", "TLSv1.3"):
        for suite in versions.get(version, []):
            rating = rate_suite(version, suite["name"])
            if rating in ratings:
                ratings[rating].append(suite["name"])
            kex = suite.get("kex")
            if kex:
                kex_rating = rate_key_exchange(kex)
                what = kex_words(kex)
                if kex_rating in weak_kex and what not in weak_kex[kex_rating]:
                    weak_kex[kex_rating].append(what)
    found.facts["tls_quality_insufficient_suites"] = len(ratings["insufficient"])
    found.facts["tls_quality_phase_out_suites"] = len(ratings["phase_out"])
    found.facts["tls_quality_insufficient_key_exchange"] = len(weak_kex["insufficient"])
    if ratings["insufficient"]:
        found.fails.append(
            f"cipher suites NCSC-NL rates insufficient: {_some(ratings['insufficient'])}"
        )
    if ratings["phase_out"]:
        found.warns.append(f"cipher suites to phase out: {_some(ratings['phase_out'])}")
    if weak_kex["insufficient"]:
        found.fails.append(
            f"key exchange groups rated insufficient: {_some(weak_kex['insufficient'])}"
        )
    if weak_kex["phase_out"]:
        found.warns.append(f"key exchange groups to phase out: {_some(weak_kex['phase_out'])}")
    _judge_chain(scan.get("chain", []), found)
    if scan.get("compression"):
        found.fails.append("TLS compression is on (CRIME)")
    for what, error in sorted(scan.get("scan_errors", {}).items()):
        kind, reason = str(error.get("kind")), str(error.get("reason", "")).lower()
        words = _CONNECT_WORDS.get(kind, reason.replace("_", " ") or "unknown error")
        found.warns.append(f"{_SPOKEN.get(what, what)} could not be tested ({words})")
    return found.outcome()


def _judge_chain(chain_b64: Sequence[str], found: _Judgement) -> None:
    certificates = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in chain_b64]
    if not certificates:
        found.warns.append("no certificate chain to judge")
        return
    found.facts["tls_quality_cert_key_bits"] = key_bits(certificates[0])
    insufficient = 0
    for depth, cert in enumerate(certificates):
        if depth > 0 and cert.subject == cert.issuer:
            continue  # a root sent along: trusted by being in the store, not by its signature
        key_rating, signature, words = rate_certificate(cert)
        name = "server certificate" if depth == 0 else f"chain certificate {depth}"
        digest = cert.signature_hash_algorithm
        algorithm = digest.name.upper() if digest is not None else "EdDSA"
        found.notes.append(f"{name}: {words}, signed with {algorithm}")
        if key_rating == "insufficient":
            insufficient += 1
            found.fails.append(f"{name} key {words} is insufficient")
        elif key_rating == "phase_out":
            found.warns.append(f"{name} key {words}: phase out (RSA below 3072 bits, P-224)")
        if signature == "insufficient":
            insufficient += 1
            found.fails.append(f"{name} is signed with {algorithm} (insufficient)")
        elif signature == "phase_out":
            found.warns.append(f"{name} is signed with {algorithm}: phase out")
    found.facts["tls_quality_cert_insufficient"] = insufficient


@dataclass(frozen=True, slots=True)
class TlsQualitySettings:
    host: str
    """Address or name to scan; a name is resolved through the configured resolvers."""
    port: int
    starttls: bool
    server_name: str
    """SNI, and the name in reasons."""
    ehlo_name: str
    python: Path
    """The interpreter of the virtualenv that holds sslyze."""
    timeout: float
    """Seconds the whole scan may take before the worker is killed."""
    network_timeout: int = 5
    """Seconds for each of sslyze's connections."""

    @property
    def where(self) -> str:
        if self.server_name != self.host:
            return f"{self.server_name}:{self.port} ({self.host})"
        return f"{self.host}:{self.port}"


async def check_tls_quality(
    settings: TlsQualitySettings, resolver: StubResolver | None, phase: Phase
) -> Outcome:
    if not settings.python.exists():
        raise CheckCannotRun(
            f"sslyze's interpreter {settings.python} does not exist: scripts/setup.sh "
            "creates it (.venv/sslyze), or set smtp.sslyze_python"
        )
    phase.enter(f"resolve {settings.host}")
    address = await _address(settings.host, settings.port, resolver)
    phase.enter("tls scan")
    request = {
        "host": settings.server_name,
        "address": address,
        "port": settings.port,
        "starttls": settings.starttls,
        "ehlo_name": settings.ehlo_name,
        "network_timeout": settings.network_timeout,
    }
    answer = await _run_worker(settings, json.dumps(request).encode())
    error = answer.get("error")
    if error:
        words = _CONNECT_WORDS.get(str(error.get("kind")), "cannot connect or start TLS")
        raise CheckFailure(f"TLS scan of {settings.where}: {words} (tls scan)")
    return judge(settings.where, answer)


async def _address(host: str, port: int, resolver: StubResolver | None) -> str:
    """An IP literal as it is; a name through the resolvers (the system's without any)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host.strip("[]")))
    if resolver is not None:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = await resolver.query(host, rdtype)
            except DnsError as exc:
                raise CheckFailure(f"TLS scan: {exc.reason} (resolve)") from None
            for record in answer.records:
                return str(getattr(record, "address", ""))
        raise CheckFailure(f"TLS scan: {host} has no A or AAAA record (resolve)")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise CheckFailure(f"TLS scan: {host} does not resolve (resolve)") from None
    return str(infos[0][4][0])


async def _exchange(process: asyncio.subprocess.Process, request: bytes) -> bytes | None:
    """Write the request, read the answer up to :data:`MAX_ANSWER_BYTES`; None if longer
    (the worker is then killed by the caller's ``finally``)."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(request)
    await process.stdin.drain()
    process.stdin.close()
    out = bytearray()
    while chunk := await process.stdout.read(65536):
        out.extend(chunk)
        if len(out) > MAX_ANSWER_BYTES:
            process.kill()
            return None
    return bytes(out)


async def _run_worker(settings: TlsQualitySettings, request: bytes) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(settings.python),
        "-I",
        str(WORKER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(settings.timeout):
            out = await _exchange(process, request)
            await process.wait()
    except TimeoutError:
        raise CheckFailure(
            f"TLS scan of {settings.where} did not finish within {settings.timeout:g} s (tls scan)"
        ) from None
    finally:
        if process.returncode is None:  # timed out or cancelled: never leave it running
            process.kill()
            await process.wait()
    if out is None:
        raise CheckCannotRun(
            f"the sslyze worker for {settings.where} printed more than "
            f"{MAX_ANSWER_BYTES // 1024 // 1024} MiB"
        )
    if process.returncode != 0:
        raise CheckCannotRun(
            f"the sslyze worker for {settings.where} ended with status {process.returncode}"
        )
    try:
        answer = json.loads(out)
    except ValueError:
        raise CheckCannotRun(f"the sslyze worker for {settings.where} printed no JSON") from None
    if not isinstance(answer, dict):
        raise CheckCannotRun(f"the sslyze worker for {settings.where} printed no JSON object")
    return answer
