"""The PKIX verdict is reused only for the same chain, name and CA bundle."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exporters.smtp.tlsfacts import PkixState, TlsFacts, pkix_verdict, pkix_verdict_now


def facts_for(ca: trustme.CA, name: str) -> TlsFacts:
    cert = ca.issue_cert(name)
    chain = tuple(
        x509.load_pem_x509_certificate(blob.bytes()).public_bytes(Encoding.DER)
        for blob in cert.cert_chain_pems
    )
    leaf = x509.load_der_x509_certificate(chain[0])
    return TlsFacts(
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        chain,
        "EC secp256r1",
        256,
        name,
        "ca",
        leaf.not_valid_after_utc,
    )


def test_memo_follows_chain_name_and_bundle(tmp_path: Path) -> None:
    ours, other = trustme.CA(), trustme.CA()
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(other.cert_pem.bytes())
    facts = facts_for(ours, "mx.example.test")

    first = pkix_verdict_now(facts, "mx.example.test", bundle)
    assert first.state is PkixState.UNTRUSTED
    assert first == pkix_verdict(facts, "mx.example.test", bundle, dt.datetime.now(dt.UTC))
    assert pkix_verdict_now(facts, "mx.example.test", bundle) is first  # reused

    other_name = pkix_verdict_now(facts, "srs.example.test", bundle)
    assert other_name.state is PkixState.NAME_MISMATCH

    other_chain = facts_for(other, "mx.example.test")
    assert pkix_verdict_now(other_chain, "mx.example.test", bundle).state is PkixState.VALID

    # The operator fixes the bundle: the next probe sees it at once.
    bundle.write_bytes(ours.cert_pem.bytes())
    stat = bundle.stat()
    os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert pkix_verdict_now(facts, "mx.example.test", bundle).state is PkixState.VALID


def test_an_unreadable_bundle_is_said_not_memoised(tmp_path: Path) -> None:
    facts = facts_for(trustme.CA(), "mx.example.test")
    verdict = pkix_verdict_now(facts, "mx.example.test", tmp_path / "missing.pem")
    assert verdict.state is PkixState.NOT_CHECKED and "cannot read" in verdict.reason
