"""Secrets the lab makes for itself: passwords, the SRS secret, DKIM and DNSSEC keys.

Everything is created once per lab folder and kept, so restarting the lab is quick and
the DNS records stay stable. Passwords only ever live in files (mode 600), never in argv.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

import dns.dnssectypes
import dns.rdata
import dns.rdtypes.ANY.DNSKEY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from monitor.lab.dnssec import dnssec


def ensure_secret_file(path: Path, nbytes: int = 18) -> str:
    """Return the secret in ``path``, creating it (mode 600) on first use."""
    if not path.exists():
        value = secrets.token_urlsafe(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(value + "\n")
    return path.read_text(encoding="ascii").strip()


def ssha256(password: str) -> str:
    """Dovecot's ``{SSHA256}`` scheme: base64(sha256(password + salt) + salt).

    The salt is derived from the password so the file is stable across renders.
    """
    salt = hashlib.sha256(b"mailprobe-lab-salt" + password.encode()).digest()[:8]
    digest = hashlib.sha256(password.encode() + salt).digest()
    return "{SSHA256}" + base64.b64encode(digest + salt).decode("ascii")


def ensure_rsa_key(path: Path, bits: int = 2048) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path}: not an RSA key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def dkim_txt(key: rsa.RSAPrivateKey) -> str:
    """The DKIM key record's value: ``v=DKIM1; k=rsa; p=<base64 SPKI>``."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; h=sha256; k=rsa; p=" + base64.b64encode(spki).decode("ascii")


def load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC key")
    return key


def ensure_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        return load_ec_key(path)
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def dnskey(key: ec.EllipticCurvePrivateKey) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
    """The zone's combined signing key (KSK+ZSK, flags 257) as a DNSKEY rdata."""
    return dnssec.make_dnskey(
        key.public_key(),
        dns.dnssectypes.Algorithm.ECDSAP256SHA256,
        flags=257,
    )


def parse_dnskey(text: str) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
    rdata = dns.rdata.from_text("IN", "DNSKEY", text)
    assert isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY)
    return rdata
