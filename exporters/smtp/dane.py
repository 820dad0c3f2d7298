"""DANE for SMTP (RFC 7672) on top of TLSA matching (RFC 6698, ``exporters.tlsa``).

The TLSA RRset of ``_PORT._tcp.NAME`` is read through the DNS checks' resolver seam
(:class:`exporters.dns.resolver.StubResolver`), trusting the AD bit of the configured
validating resolver.  The states, as a DANE sender acts on them:

- ``off``: no TLSA records (securely denied): DANE does not apply.
- ``insecure``: records exist in an unsigned zone: unusable, DANE does not apply.
- ``verified``: a usable record (usage 2 or 3) matches the served chain.
- ``mismatch``: usable records exist and none matches: a DANE sender defers.
- ``unusable``: records exist but none is usable for SMTP (usages 0/1, unknown
  parameters): a DANE sender uses TLS without authentication.
- ``bogus`` / ``dns_error``: validation failed or the lookup failed: a DANE sender defers.
- ``not_checked``: no resolver configured, or no TLS to match against.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TLSA import TLSA

from exporters.dns.resolver import Answer, DnsBogus, DnsError, DnssecState, StubResolver
from exporters.smtp.tlsfacts import names_match
from exporters.tlsa import (
    MatchingType,
    Selector,
    TlsaFormatError,
    TlsaRecord,
    Usage,
    association_data,
    make_record,
    match_chain,
    spki_der,
)


class DaneState(enum.StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    OFF = "off"
    INSECURE = "insecure"
    UNUSABLE = "unusable"
    BOGUS = "bogus"
    DNS_ERROR = "dns_error"
    NOT_CHECKED = "not_checked"


DANE_STATES = tuple(s.value for s in DaneState)


@dataclass(frozen=True, slots=True)
class TlsaLookup:
    owner: str
    state: DaneState
    """``off``, ``insecure``, ``unusable``, ``bogus``, ``dns_error``, or ``verified``
    meaning only "usable records found" until :func:`verdict` matches them."""
    records: tuple[TlsaRecord, ...] = ()
    """Usable records (DANE-TA and DANE-EE) of a secure answer."""
    skipped: tuple[str, ...] = ()
    """Records left out, each with why."""
    reason: str = ""


async def lookup_tlsa(resolver: StubResolver, name: str, port: int) -> TlsaLookup:
    owner = f"_{port}._tcp.{name.rstrip('.')}"
    try:
        answer = await resolver.query(owner, "TLSA")
    except DnsBogus as exc:
        return TlsaLookup(owner, DaneState.BOGUS, reason=exc.reason)
    except DnsError as exc:
        return TlsaLookup(owner, DaneState.DNS_ERROR, reason=exc.reason)
    seen = _read.get(owner)
    if seen is not None and seen[0] is answer:  # the same answer, from a resolver's cache
        return seen[1]
    if len(_read) >= 256:
        _read.clear()
    lookup = _read_answer(owner, answer)
    _read[owner] = (answer, lookup)
    return lookup


_read: dict[str, tuple[Answer, TlsaLookup]] = {}
"""The last answer read per owner name, and what it said."""


def _read_answer(owner: str, answer: Answer) -> TlsaLookup:
    if not answer.records:
        if answer.dnssec is not DnssecState.SECURE:
            return TlsaLookup(
                owner, DaneState.OFF, reason=f"no TLSA record at {owner} (answer not signed)"
            )
        return TlsaLookup(owner, DaneState.OFF, reason=f"no TLSA record at {owner}")
    if answer.dnssec is not DnssecState.SECURE:
        return TlsaLookup(
            owner,
            DaneState.INSECURE,
            reason=f"TLSA records at {owner} are not DNSSEC-signed, so no sender may use them",
        )
    usable: list[TlsaRecord] = []
    skipped: list[str] = []
    for rdata in answer.records:
        assert isinstance(rdata, TLSA)
        shown = f"{rdata.usage} {rdata.selector} {rdata.mtype}"
        if rdata.usage not in (Usage.DANE_TA, Usage.DANE_EE):
            skipped.append(
                f"TLSA {shown}: usage {rdata.usage} is not used for SMTP (RFC 7672 3.1.3)"
            )
            continue
        try:
            usable.append(make_record(rdata.usage, rdata.selector, rdata.mtype, rdata.cert))
        except TlsaFormatError as exc:
            skipped.append(f"TLSA {shown}: {exc}")
    if not usable:
        return TlsaLookup(
            owner,
            DaneState.UNUSABLE,
            skipped=tuple(skipped),
            reason=f"no usable TLSA record at {owner}: {'; '.join(skipped)}",
        )
    return TlsaLookup(owner, DaneState.VERIFIED, tuple(usable), tuple(skipped))


@dataclass(frozen=True, slots=True)
class DaneVerdict:
    state: DaneState
    reason: str = ""
    matched: TlsaRecord | None = None
    rollover_scheme: str = "none"
    """``current+next`` (two DANE-EE records), ``ee+ta`` (DANE-EE and DANE-TA), ``none``."""
    notes: tuple[str, ...] = field(default=())


def verdict(lookup: TlsaLookup, chain: Sequence[bytes], tls_name: str) -> DaneVerdict:
    """Match the usable records of ``lookup`` to the served ``chain``.

    A pure function of the records, the chain's bytes and the name (DANE-EE ignores
    dates, DANE-TA checks names and signatures only): the verdicts on the last few
    distinct inputs are kept, so an unchanged server's chain is not parsed and hashed
    again on every probe.
    """
    return _verdict(lookup, tuple(chain), tls_name)


@lru_cache(maxsize=256)
def _verdict(lookup: TlsaLookup, chain: tuple[bytes, ...], tls_name: str) -> DaneVerdict:
    if lookup.state is not DaneState.VERIFIED:
        return DaneVerdict(lookup.state, lookup.reason)
    scheme = rollover_scheme(lookup.records)
    if not chain:
        return DaneVerdict(DaneState.NOT_CHECKED, "no certificate to match", None, scheme)
    # RFC 7672 3.1.1: DANE-EE ignores names and dates.  DANE-TA (3.1.2) needs the leaf
    # to carry the name and a chain that really leads to the matched trust anchor.
    ee = [r for r in lookup.records if r.usage is Usage.DANE_EE]
    ta = [r for r in lookup.records if r.usage is Usage.DANE_TA]
    match = match_chain(ee, chain)
    if match is None and ta:
        ta_match = match_chain(ta, chain)
        if ta_match is not None:
            leaf = x509.load_der_x509_certificate(chain[0])
            if not names_match(leaf, tls_name):
                return DaneVerdict(
                    DaneState.MISMATCH,
                    f"TLSA {ta_match.record.short} at {lookup.owner} matches the issuer, but "
                    f"the certificate does not name {tls_name} (DANE-TA needs the name)",
                    None,
                    scheme,
                )
            if not _chain_signed(chain, ta_match.depth):
                return DaneVerdict(
                    DaneState.MISMATCH,
                    f"TLSA {ta_match.record.short} at {lookup.owner} matches a certificate "
                    "in the chain that did not sign the server's certificate",
                    None,
                    scheme,
                )
            match = ta_match
    if match is not None:
        return DaneVerdict(DaneState.VERIFIED, "", match.record, scheme)
    return DaneVerdict(DaneState.MISMATCH, _mismatch_reason(lookup, chain), None, scheme)


def _chain_signed(chain: Sequence[bytes], depth: int) -> bool:
    certs = [x509.load_der_x509_certificate(der) for der in chain[: depth + 1]]
    try:
        for child, parent in itertools.pairwise(certs):
            child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _mismatch_reason(lookup: TlsaLookup, chain: Sequence[bytes]) -> str:
    parts = []
    for record in lookup.records:
        if record.usage is Usage.DANE_EE:
            served = association_data(chain[0], record.selector, record.mtype)
            what = "key" if record.selector is Selector.SPKI else "certificate"
            parts.append(
                f"TLSA {int(record.usage)} {int(record.selector)} {int(record.mtype)} "
                f"{record.data.hex()[:8]}… does not match the served {what} "
                f"({_digest_name(record.mtype)} {served.hex()[:8]}…)"
            )
        else:
            parts.append(
                f"TLSA {record.short} matches no issuer in the served chain "
                f"({len(chain) - 1} above the server's own)"
            )
    return f"{lookup.owner}: " + "; ".join(parts)


def _digest_name(mtype: MatchingType) -> str:
    return {MatchingType.SHA256: "sha256", MatchingType.SHA512: "sha512"}.get(mtype, "full")


def rollover_scheme(records: Sequence[TlsaRecord]) -> str:
    """Whether the records allow a key rollover without an outage (as internet.nl asks)."""
    ee = {r.data for r in records if r.usage is Usage.DANE_EE}
    if any(r.usage is Usage.DANE_TA for r in records) and ee:
        return "ee+ta"
    if len(ee) >= 2:
        return "current+next"
    return "none"


ROLLOVER_SCHEMES = ("current+next", "ee+ta", "none")


def next_matches(
    records: Sequence[TlsaRecord], *, cert_file: Path | None, key_file: Path | None
) -> tuple[bool, str]:
    """Would a published record match the next certificate (chain) or key?

    Returns (matches, what was compared) so a warning can show the record to publish.
    """
    if cert_file is not None:
        chain = [
            c.public_bytes(serialization.Encoding.DER)
            for c in x509.load_pem_x509_certificates(cert_file.read_bytes())
        ]
        want = association_data(chain[0], Selector.SPKI, MatchingType.SHA256).hex()
        return match_chain(records, chain) is not None, f"3 1 1 {want[:8]}…"
    assert key_file is not None
    spki = _public_key_der(key_file.read_bytes())
    for record in records:
        if record.usage is Usage.DANE_EE and record.selector is Selector.SPKI:
            if record.mtype is MatchingType.SHA256:
                digest = hashlib.sha256(spki).digest()
            elif record.mtype is MatchingType.SHA512:
                digest = hashlib.sha512(spki).digest()
            else:
                digest = spki
            if digest == record.data:
                return True, ""
    return False, f"3 1 1 {hashlib.sha256(spki).hexdigest()[:8]}…"


def _public_key_der(pem: bytes) -> bytes:
    try:
        return spki_der(serialization.load_pem_public_key(pem))
    except ValueError:
        private = serialization.load_pem_private_key(pem, password=None)
        return spki_der(private.public_key())
