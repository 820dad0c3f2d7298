"""The DKIM check: a selector's key record parses, is strong enough, matches the signer."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from exporters.dns.findings import Findings, name_text, parse_tags, txt_records
from exporters.dns.opendkim_conf import SignerConfigError, signing_key_path
from exporters.dns.resolver import DnsError, StubResolver
from exporters.result import CheckCannotRun, Outcome, Phase

RSA_WARN_BITS = 2048
RSA_MIN_BITS = 1024
"""RFC 8301 3.2: verifiers must not consider signatures with smaller RSA keys valid."""


@dataclass(frozen=True, slots=True)
class DkimSettings:
    domain: str
    selector: str
    signer_key_file: Path | None = None
    """The signer's private key (PEM, or a bare base64 Ed25519 seed as dkimpy writes)."""
    signer_config_file: Path | None = None
    """opendkim.conf: the key is the one it names for this domain and selector."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    kind: str
    bits: int
    public_raw: bytes
    """SubjectPublicKeyInfo DER for RSA, the 32 raw bytes for Ed25519: comparable."""

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.public_raw).hexdigest()[:16]


class DkimKeyError(ValueError):
    pass


async def check_dkim(resolver: StubResolver, settings: DkimSettings, phase: Phase) -> Outcome:
    owner = f"{settings.selector}._domainkey.{name_text(settings.domain)}"
    found = Findings()
    phase.enter(f"TXT {owner}")
    try:
        values, answer = await txt_records(resolver, owner)
    except DnsError as exc:
        return Outcome.fail(f"DKIM: {exc.reason}")
    found.dnssec(answer)
    if not values:
        why = "the name does not exist" if answer.nxdomain else "no TXT record"
        return Outcome.fail(f"no DKIM key at {owner} ({why})", found.facts)
    if len(values) > 1:
        return Outcome.fail(
            f"{len(values)} TXT records at {owner}; a DKIM selector needs exactly one", found.facts
        )
    tags, problems = parse_tags(values[0])
    for problem in problems:
        found.fail(f"DKIM key {owner}: {problem}")
    if "v" in tags and tags["v"] != "DKIM1":
        found.fail(f"DKIM key {owner}: v={tags['v']} (must be DKIM1 and come first)")
    if "p" not in tags:
        found.fail(f"DKIM key {owner} has no p= tag")
        return found.outcome()
    if tags["p"] == "":
        found.fail(f"DKIM key {owner} is revoked (empty p=)")
        return found.outcome()
    if "y" in _flags(tags.get("t", "")):
        found.warn(f"DKIM key {owner} is in testing mode (t=y): verifiers may ignore failures")
    try:
        key = decode_dns_key(tags.get("k", "rsa"), tags["p"])
    except DkimKeyError as exc:
        found.fail(f"DKIM key {owner}: {exc}")
        return found.outcome()
    found.facts["dkim_key_bits"] = key.bits
    found.note(f"DKIM key {owner}: {key.kind} {key.bits} bits, {key.fingerprint}")
    if key.kind == "rsa" and key.bits < RSA_MIN_BITS:
        found.fail(
            f"DKIM key {owner} is RSA {key.bits} bits; RFC 8301 rejects below {RSA_MIN_BITS}"
        )
    elif key.kind == "rsa" and key.bits < RSA_WARN_BITS:
        found.warn(f"DKIM key {owner} is RSA {key.bits} bits; use {RSA_WARN_BITS} or more")
    key_file, source = _signer_key_file(settings)
    if key_file is not None:
        phase.enter(f"signer key {key_file}")
        signer = load_signer_public_key(key_file)
        found.facts["dkim_key_matches_signer"] = signer.public_raw == key.public_raw
        if signer.public_raw != key.public_raw:
            found.fail(
                f"DKIM key {owner} ({key.fingerprint}) differs from the signer's key "
                f"{key_file}{source} ({signer.fingerprint}): signatures will fail"
            )
    return found.outcome()


def _signer_key_file(settings: DkimSettings) -> tuple[Path | None, str]:
    """The signer's key file, and where that was learnt (for the reason)."""
    if settings.signer_config_file is None:
        return settings.signer_key_file, ""
    conf = settings.signer_config_file
    try:
        path = signing_key_path(conf, name_text(settings.domain), settings.selector)
    except SignerConfigError as exc:
        raise CheckCannotRun(f"DKIM signer: {exc}") from None
    return path, f" (named in {conf})"


def _flags(value: str) -> set[str]:
    return {flag.strip() for flag in value.split(":")}


def decode_dns_key(kind: str, p: str) -> DkimKey:
    """The key in a DKIM record's p= (RSA: SPKI, or PKCS#1 as some signers publish)."""
    try:
        raw = base64.b64decode("".join(p.split()), validate=True)
    except (binascii.Error, ValueError):
        raise DkimKeyError("p= is not valid base64") from None
    kind = kind.strip().lower()
    if kind == "ed25519":
        if len(raw) != 32:
            raise DkimKeyError(f"an ed25519 key is 32 bytes, p= holds {len(raw)}")
        return DkimKey("ed25519", 256, raw)
    if kind != "rsa":
        raise DkimKeyError(f"unknown key type k={kind}")
    try:
        # SubjectPublicKeyInfo per RFC 6376; cryptography also reads the bare PKCS#1
        # RSAPublicKey that some signers publish.
        public = serialization.load_der_public_key(raw)
    except ValueError:
        raise DkimKeyError("p= is not an RSA public key") from None
    return _key_of(public)


def _key_of(public: PublicKeyTypes) -> DkimKey:
    if isinstance(public, rsa.RSAPublicKey):
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKey("rsa", public.key_size, spki)
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return DkimKey("ed25519", 256, raw)
    raise DkimKeyError(f"unsupported key type {type(public).__name__}")


def load_signer_public_key(path: Path) -> DkimKey:
    """The public half of the signer's private key file; never exposes the private key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckCannotRun(f"cannot read DKIM signer key {path}: {exc.strerror}") from None
    if b"-----BEGIN" in data:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise CheckCannotRun(f"DKIM signer key {path} is not an unencrypted PEM key") from None
        return _key_of(private.public_key())
    try:
        seed = base64.b64decode(b"".join(data.split()), validate=True)
        private_ed = ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32])
    except (binascii.Error, ValueError):
        raise CheckCannotRun(
            f"DKIM signer key {path} is neither PEM nor a base64 Ed25519 seed"
        ) from None
    return _key_of(private_ed.public_key())
