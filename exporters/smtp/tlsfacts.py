"""What a TLS handshake showed, and the PKIX verdict on the served chain.

The prober handshakes without verification (as an opportunistic or DANE MTA does), so
one handshake gives the chain to both verdicts: PKIX here, DANE in
:mod:`exporters.smtp.dane`.  A server can be PKIX-invalid yet DANE-valid, and mail
between DANE MTAs still flows; the two are reported apart.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import ssl
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_DER: int = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)


@lru_cache(maxsize=1)
def client_context() -> ssl.SSLContext:
    """A context that completes any handshake a modern MTA would: verdicts come after.

    One per process: it holds no trust store and no per-server state, and building one
    costs about as much as a handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def legacy_context() -> ssl.SSLContext:
    """TLS 1.0 and 1.1 only, every cipher: to learn what a server that fails a modern
    handshake does speak. Never used for a verdict on a working server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def served_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[bytes, ...]:
    """The chain the server sent, leaf first, as DER.

    Python 3.13 has ``get_unverified_chain()``; 3.11 and 3.12 have the same method on
    the private ``_sslobj`` only.  Without either, the leaf alone.
    """
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        certs = getter() or []
        return tuple(c if isinstance(c, bytes) else c.public_bytes(_DER) for c in certs)
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


@dataclass(frozen=True, slots=True)
class TlsFacts:
    version: str
    cipher: str
    chain: tuple[bytes, ...]
    key_type: str
    key_bits: int
    subject: str
    issuer: str
    not_after: dt.datetime

    @classmethod
    def from_ssl(cls, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> TlsFacts:
        chain = served_chain(ssl_object)
        if not chain:
            raise ValueError("the server sent no certificate")
        key_type, key_bits, subject, issuer, not_after = _leaf_summary(chain[0])
        cipher = ssl_object.cipher()
        return cls(
            version=ssl_object.version() or "unknown",
            cipher=cipher[0] if cipher else "unknown",
            chain=chain,
            key_type=key_type,
            key_bits=key_bits,
            subject=subject,
            issuer=issuer,
            not_after=not_after,
        )

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.chain[0])


@lru_cache(maxsize=64)
def _leaf_summary(der: bytes) -> tuple[str, int, str, str, dt.datetime]:
    """Key type and size, subject, issuer and expiry of a DER certificate: a pure
    function of its bytes, so a server's unchanged certificate is parsed once."""
    leaf = x509.load_der_x509_certificate(der)
    key_type, key_bits = _key(leaf)
    return key_type, key_bits, _cn(leaf.subject), _cn(leaf.issuer), leaf.not_valid_after_utc


def _key(cert: x509.Certificate) -> tuple[str, int]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _cn(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else name.rfc4514_string()


class PkixState(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    NAME_MISMATCH = "name_mismatch"
    UNTRUSTED = "untrusted"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True, slots=True)
class PkixVerdict:
    state: PkixState
    reason: str = ""


def pkix_verdict(
    facts: TlsFacts, name: str, ca_file: Path | None, now: dt.datetime | None = None
) -> PkixVerdict:
    """Validate the served chain for ``name`` against ``ca_file`` or the system store."""
    now = now or dt.datetime.now(dt.UTC)
    leaf = facts.leaf
    if now > leaf.not_valid_after_utc:
        days = (now - leaf.not_valid_after_utc).total_seconds() / 86400
        return PkixVerdict(
            PkixState.EXPIRED,
            f"the certificate of {name} expired {days:.1f} days ago "
            f"(not after {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)",
        )
    if now < leaf.not_valid_before_utc:
        return PkixVerdict(
            PkixState.NOT_YET_VALID,
            f"the certificate of {name} is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
        )
    if not names_match(leaf, name):
        return PkixVerdict(
            PkixState.NAME_MISMATCH,
            f"the certificate is for {', '.join(cert_names(leaf)) or facts.subject}, not {name}",
        )
    try:
        store = trust_store(ca_file)
    except ValueError as exc:
        return PkixVerdict(PkixState.NOT_CHECKED, str(exc))
    subject: x509.verification.Subject = (
        x509.IPAddress(ipaddress.ip_address(name)) if _is_address(name) else x509.DNSName(name)
    )
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_EE_POLICY)
        .build_server_verifier(subject)
    )
    intermediates = [x509.load_der_x509_certificate(der) for der in facts.chain[1:]]
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError:
        where = "the configured CA file" if ca_file else "the system's CA store"
        return PkixVerdict(
            PkixState.UNTRUSTED,
            f"the chain of {name} (issuer {facts.issuer}) does not lead to a CA in {where}",
        )
    return PkixVerdict(PkixState.VALID)


VERDICT_MEMO_SECONDS = 10.0
"""How long a PKIX verdict on one served chain is reused (see :func:`pkix_verdict_now`)."""
_VERDICT_MEMO_SIZE = 256
_verdicts: dict[tuple[tuple[bytes, ...], str, str, int], tuple[float, PkixVerdict]] = {}


def pkix_verdict_now(facts: TlsFacts, name: str, ca_file: Path | None) -> PkixVerdict:
    """:func:`pkix_verdict` at the current time, memoised for a few seconds.

    Every probe still handshakes and still hands its served chain here; only when the
    chain (byte for byte), the name and the CA bundle (path and modification time) are
    those of a verdict computed less than :data:`VERDICT_MEMO_SECONDS` ago is that
    verdict reused.  The verdict depends on time only at the validity bounds of the
    chain's certificates, so it may lag such a bound by at most that long.
    """
    bundle = ca_file or SYSTEM_BUNDLE
    try:
        mtime = bundle.stat().st_mtime_ns
    except OSError:
        return pkix_verdict(facts, name, ca_file)  # says why it cannot check
    key = (facts.chain, name, str(bundle), mtime)
    now = time.monotonic()
    memo = _verdicts.get(key)
    if memo is not None and memo[0] > now:
        return memo[1]
    verdict = pkix_verdict(facts, name, ca_file)
    if len(_verdicts) >= _VERDICT_MEMO_SIZE:
        for stale in [k for k, (until, _) in _verdicts.items() if until <= now]:
            del _verdicts[stale]
        while len(_verdicts) >= _VERDICT_MEMO_SIZE:
            del _verdicts[next(iter(_verdicts))]
    _verdicts[key] = (now + VERDICT_MEMO_SECONDS, verdict)
    return verdict


# The web PKI's server-certificate profile is stricter than OpenSSL, which mail servers
# and their peers use (a critical subjectAltName, say, is refused by it and accepted by
# OpenSSL); the leaf must only carry a subjectAltName.  CAs keep the web PKI profile.
_EE_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


def trust_store(ca_file: Path | None) -> Store:
    """The CAs of ``ca_file`` (or the system's); ValueError with a reason if unusable."""
    bundle = ca_file or SYSTEM_BUNDLE
    try:
        return _store(str(bundle), bundle.stat().st_mtime_ns)
    except OSError as exc:
        raise ValueError(f"cannot read the CA bundle {bundle}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"the CA bundle {bundle} holds no PEM certificate") from None


@lru_cache(maxsize=8)
def _store(path: str, _mtime_ns: int) -> Store:
    # Debian 12's bundle holds nine roots with serial number 0 (Go Daddy and Starfield
    # G2 among them): RFC 5280 wants it positive, and cryptography warns on each load,
    # two lines of stderr on every `mailprobe run` that checks against the system store.
    # They are trust anchors the distribution ships, not ours to refuse: that one
    # warning is ignored during this one load.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Parsed a serial number which wasn't positive",
            category=CryptographyDeprecationWarning,
        )
        return Store(x509.load_pem_x509_certificates(Path(path).read_bytes()))


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def cert_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName)] + [
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    ]


def names_match(cert: x509.Certificate, name: str) -> bool:
    """RFC 6125 matching of ``name`` against the SAN (one left-most ``*`` label)."""
    if _is_address(name):
        return any(
            isinstance(n, str) and n == str(ipaddress.ip_address(name)) for n in cert_names(cert)
        )
    wanted = name.rstrip(".").lower()
    for pattern in cert_names(cert):
        pattern = pattern.rstrip(".").lower()
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            head, _, rest = wanted.partition(".")
            if head and rest == pattern[2:]:
                return True
    return False
