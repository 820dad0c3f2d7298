"""The lab's throwaway CA, one certificate per host, and TLSA 3 1 1 digests.

Keys are EC P-256 (fast to make). Certificates that faults need (an expired MX
certificate, a certificate for the wrong name, a rotated key) are made up front with the
rest so that breaking a fault is a file copy and a reload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


@dataclass(frozen=True, slots=True)
class CertSpec:
    """A leaf certificate to issue: file stem, names, and which key file it uses."""

    stem: str
    names: tuple[str, ...]
    key_stem: str
    expired: bool = False
    addresses: tuple[str, ...] = ()
    """IP SANs, so a client given the address (not the lab name) can verify too."""


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        return _load_key(path)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(path, key)
    return key


def ensure_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key(pki / "ca.key")
    crt_path = pki / "ca.crt"
    if crt_path.exists():
        cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
        if cert.not_valid_after_utc > _now() + dt.timedelta(days=1):
            return cert, key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailprobe lab throwaway CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # A new CA invalidates every leaf issued by the old one.
    for old in pki.glob("*.chain.pem"):
        old.unlink()
    return cert, key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def issue(
    pki: Path, spec: CertSpec, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    """Write ``<stem>.crt`` and ``<stem>.chain.pem`` (leaf + CA) unless still valid."""
    crt_path = pki / f"{spec.stem}.crt"
    chain_path = pki / f"{spec.stem}.chain.pem"
    key = _key(pki / f"{spec.key_stem}.key")
    if chain_path.exists() and crt_path.exists():
        cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
        still_good = cert.not_valid_after_utc > _now() + dt.timedelta(days=1)
        if still_good != spec.expired:
            return
    now = _now()
    if spec.expired:
        not_before, not_after = now - dt.timedelta(days=40), now - dt.timedelta(days=10)
    else:
        not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=VALID_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_sans(spec)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    crt_path.write_bytes(pem)
    chain_path.write_bytes(pem + ca_cert.public_bytes(serialization.Encoding.PEM))


def _sans(spec: CertSpec) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in spec.addresses]
    return sans


def tlsa_311(cert_path: Path) -> str:
    """TLSA 3 1 1 data: SHA-256 of the certificate's SubjectPublicKeyInfo, hex."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()
