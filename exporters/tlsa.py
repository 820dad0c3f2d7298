"""TLSA records (RFC 6698, RFC 7671): parse them, compute them, match them to certificates.

Shared by the DNS checks (is the published record well formed?) and the SMTP prober
(does the served chain match the published records?), so both agree on one reading of
a record.  Certificates are handled as DER bytes; the chain is leaf first, as a TLS
server sends it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


class Usage(enum.IntEnum):
    PKIX_TA = 0
    PKIX_EE = 1
    DANE_TA = 2
    DANE_EE = 3


class Selector(enum.IntEnum):
    CERT = 0
    SPKI = 1


class MatchingType(enum.IntEnum):
    FULL = 0
    SHA256 = 1
    SHA512 = 2


_DIGEST_SIZE = {MatchingType.SHA256: 32, MatchingType.SHA512: 64}


class TlsaFormatError(ValueError):
    """A TLSA record that cannot be used, with the reason why."""


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    usage: Usage
    selector: Selector
    mtype: MatchingType
    data: bytes

    def __str__(self) -> str:
        return f"{int(self.usage)} {int(self.selector)} {int(self.mtype)} {self.data.hex().upper()}"

    @property
    def short(self) -> str:
        """``3 1 1 6F375C8D…``: enough to tell records apart in a reason."""
        head = self.data.hex()[:8].upper()
        return f"{int(self.usage)} {int(self.selector)} {int(self.mtype)} {head}…"


def make_record(usage: int, selector: int, mtype: int, data: bytes) -> TlsaRecord:
    """Build a record from its four fields, rejecting anything RFC 6698/7671 cannot use."""
    try:
        u, s, m = Usage(usage), Selector(selector), MatchingType(mtype)
    except ValueError:
        raise TlsaFormatError(
            f"unknown parameters {usage} {selector} {mtype} "
            "(usage 0-3, selector 0-1, matching type 0-2)"
        ) from None
    if m in _DIGEST_SIZE and len(data) != _DIGEST_SIZE[m]:
        raise TlsaFormatError(
            f"matching type {m} needs a {_DIGEST_SIZE[m]}-byte digest, got {len(data)} bytes"
        )
    if m is MatchingType.FULL:
        _check_full_data(s, data)
    return TlsaRecord(u, s, m, data)


def _check_full_data(selector: Selector, data: bytes) -> None:
    try:
        if selector is Selector.CERT:
            x509.load_der_x509_certificate(data)
        else:
            serialization.load_der_public_key(data)
    except ValueError:
        what = "a DER certificate" if selector is Selector.CERT else "a DER public key"
        raise TlsaFormatError(f"matching type 0 data is not {what}") from None


def parse_record(text: str) -> TlsaRecord:
    """Parse the presentation form ``3 1 1 <hex>`` (the hex may contain spaces)."""
    parts = text.split()
    if len(parts) < 4:
        raise TlsaFormatError(f"expected 'usage selector type data', got {text!r}")
    try:
        usage, selector, mtype = (int(p) for p in parts[:3])
        data = bytes.fromhex("".join(parts[3:]))
    except ValueError:
        raise TlsaFormatError(f"not a TLSA record: {text!r}") from None
    return make_record(usage, selector, mtype, data)


def selected_bytes(cert_der: bytes, selector: Selector) -> bytes:
    """The certificate part a selector names: the whole DER certificate or its SPKI."""
    if selector is Selector.CERT:
        return cert_der
    cert = x509.load_der_x509_certificate(cert_der)
    return spki_der(cert.public_key())


def spki_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def association_data(cert_der: bytes, selector: Selector, mtype: MatchingType) -> bytes:
    """What a TLSA record with this selector and matching type holds for ``cert_der``."""
    selected = selected_bytes(cert_der, selector)
    if mtype is MatchingType.SHA256:
        return hashlib.sha256(selected).digest()
    if mtype is MatchingType.SHA512:
        return hashlib.sha512(selected).digest()
    return selected


def record_for(cert_der: bytes, usage: int = 3, selector: int = 1, mtype: int = 1) -> TlsaRecord:
    """The record that pins ``cert_der`` (``3 1 1`` by default)."""
    s, m = Selector(selector), MatchingType(mtype)
    return TlsaRecord(Usage(usage), s, m, association_data(cert_der, s, m))


@dataclass(frozen=True, slots=True)
class TlsaMatch:
    record: TlsaRecord
    depth: int
    """Position in the chain of the matching certificate: 0 is the server's own."""


def match_chain(records: Iterable[TlsaRecord], chain_der: Sequence[bytes]) -> TlsaMatch | None:
    """The first record that matches the served chain, or None.

    End-entity usages (1, 3) match only the leaf; trust-anchor usages (0, 2) match a
    certificate above the leaf (RFC 7671 section 5.2: the trust anchor is sent in the
    chain).  PKIX usages (0, 1) additionally need ordinary path validation, which is
    the caller's business: this function only answers "does the association match".
    """
    computed: dict[tuple[int, Selector, MatchingType], bytes] = {}
    for record in records:
        depths = [0] if record.usage in (Usage.PKIX_EE, Usage.DANE_EE) else range(1, len(chain_der))
        for depth in depths:
            if depth >= len(chain_der):
                continue
            key = (depth, record.selector, record.mtype)
            if key not in computed:
                computed[key] = association_data(chain_der[depth], record.selector, record.mtype)
            if computed[key] == record.data:
                return TlsaMatch(record, depth)
    return None
